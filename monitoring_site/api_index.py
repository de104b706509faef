"""`GET /api/v1/`: the API's index, for a person or script finding their way in.

It names every endpoint group with each endpoint's URL, methods, the credentials it
takes and what it is for, and points at the full contract (the OpenAPI schema and its
docs page). It reveals nothing a caller could not read in the schema, so it asks for no
credentials; the schema stays the reference, and a test keeps this list equal to it.
"""

from __future__ import annotations

from typing import Any, Final

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from core.api_errors import ErrorsView

SCHEMA_URL: Final = "/api/schema/"
DOCS_URL: Final = "/api/docs/"
CONFIG_SCHEMA_URL: Final = "/api/schema/config.json"

# The credentials an endpoint takes, by the name the endpoints below use.
AUTH: Final[dict[str, str]] = {
    "none": "No credentials.",
    "source_api_key": "A source's API key in the header `Authorization: Api-Key <key>` "
    "(`tradewatch source add` or `source key` prints one).",
    "hook_key": "A source's API key in the URL path, for senders that cannot set headers.",
    "operator": "A person: `Authorization: Token <token>` (admin: Auth Token > Tokens) or "
    "an admin session; the person's Django permissions decide what they may do.",
}

# The configuration API's objects: (URL part, what they are).
CONFIG_OBJECTS: Final = (
    ("schedules", "schedules (always, exchange sessions, weekly windows)"),
    ("sources", "sources with their expectations"), ("channels", "channels"),
    ("recovery-actions", "recovery actions"),
    ("rules", "rules with their thresholds and overrides"), ("policies", "policies"),
    ("health-checks", "health checks"),
)  # fmt: skip

Endpoint = tuple[str, tuple[str, ...], str, str]  # url, methods, auth, purpose

# Group name -> (purpose, endpoints). URLs use the schema's `{placeholder}` spelling.
GROUPS: Final[dict[str, tuple[str, list[Endpoint]]]] = {
    "ingestion": (
        "Trading systems push data, each with its source's key.",
        [
            ("/api/v1/metrics", ("POST",), "source_api_key", "A batch of metric samples."),
            ("/api/v1/trades", ("POST",), "source_api_key", "A batch of fills."),
            ("/api/v1/heartbeat", ("POST",), "source_api_key", "The source is alive."),
            ("/api/v1/events", ("POST",), "source_api_key", "A batch of events."),
            ("/api/v1/whoami", ("GET",), "source_api_key", "The source a key belongs to."),
            ("/api/v1/control", ("GET",), "source_api_key",
             "The trading state the source must obey (`?wait=N` long poll, ETag)."),
            *[
                (f"/api/v1/hooks/{kind}/{{token}}/", ("POST",), "hook_key",
                 f"`POST /api/v1/{kind}` with the key in the path.")
                for kind in ("metrics", "trades", "heartbeat", "events")
            ],
        ],
    ),
    "operator": (
        "People read and act on alerts, silences and metrics.",
        [
            ("/api/v1/alerts", ("GET",), "operator", "Alerts, newest activity first."),
            ("/api/v1/alerts/{alert_id}", ("GET",), "operator", "One alert with its timeline."),
            ("/api/v1/alerts/{alert_id}/acknowledge", ("POST",), "operator",
             "Acknowledge an open alert."),
            ("/api/v1/alerts/{alert_id}/resolve", ("POST",), "operator",
             "Resolve an open alert by hand."),
            ("/api/v1/alerts/test", ("POST",), "operator",
             "Send a test notification through channels."),
            ("/api/v1/silences", ("GET", "POST"), "operator", "List or create silences."),
            ("/api/v1/silences/{silence_id}/expire", ("POST",), "operator",
             "End a silence now."),
            ("/api/v1/sources/{source}/snapshot", ("GET",), "operator",
             "A source's latest values, derived metrics, heartbeat, trades and events "
             "(by id or name)."),
            ("/api/v1/sources/{source}/control", ("POST",), "operator",
             "Halt, reduce or re-arm a source's trading (by id or name)."),
            ("/api/v1/metrics/query", ("GET",), "operator", "A metric's history."),
            ("/api/v1/schedules", ("GET",), "operator",
             "Each schedule: open or closed, its next open and close (`at` for another "
             "instant)."),
            ("/api/v1/rules/{rule_id}/backtest", ("POST",), "operator",
             "How a rule (or an edit of its thresholds) would have fired on history."),
            ("/api/v1/backtests/{job_id}", ("GET",), "operator",
             "A backtest job's progress, then its answer."),
            ("/api/v1/metrics/realtime", ("GET",), "operator",
             "Latest values of every source (or of some sources and metrics) in one call."),
            ("/api/v1/stream", ("GET",), "operator",
             "Live events (Server-Sent Events): alert, health and trading state changes, "
             "latest values on request; `Last-Event-ID` resumes."),
        ],
    ),
    "chat": (
        "Telegram and Slack send the presses of notifications' buttons; the channel's "
        "secret (Telegram) or signature (Slack) is the credential, the linked person's "
        "permissions decide.",
        [
            ("/api/v1/chat/telegram/{channel_id}/", ("POST",), "none",
             "A Telegram update (webhook), with X-Telegram-Bot-Api-Secret-Token."),
            ("/api/v1/chat/slack/{channel_id}/", ("POST",), "none",
             "A Slack press or slash command, signed (X-Slack-Signature)."),
        ],
    ),
    "health": (
        "People read the health of sources, checks and Tradewatch itself.",
        [
            ("/api/v1/health/status", ("GET",), "operator",
             "The system rollup, each source's score and each check."),
            ("/api/v1/health/safety", ("GET",), "operator",
             "Kill switch, circuit breaker, positions and exchange per source."),
        ],
    ),
    "configuration": (
        "People export and apply configuration files, and edit configuration; reading "
        "needs the Viewer group's permissions, changing the Admin group's.",
        [
            ("/api/v1/config/apply", ("POST",), "operator",
             "Apply a configuration file (`dry_run` to see the changes only)."),
            ("/api/v1/config/export", ("GET",), "operator",
             "The configuration as one file (secrets as references)."),
            *[
                endpoint
                for part, what in CONFIG_OBJECTS
                for endpoint in (
                    (f"/api/v1/config/{part}", ("GET", "POST"), "operator",
                     f"List {what}, or create one (as in a file)."),
                    (f"/api/v1/config/{part}/{{name}}", ("GET", "PUT", "DELETE"), "operator",
                     f"Read, replace or delete one of the {what}, by name."),
                )
            ],
            ("/api/v1/config/sources/{name}/keys", ("POST", "DELETE"), "operator",
             "Issue a source's API key (shown once), or revoke all of them."),
        ],
    ),
    "schema/docs": (
        "The API's contract.",
        [
            ("/api/v1/", ("GET",), "none", "This index."),
            (SCHEMA_URL, ("GET",), "none",
             "The OpenAPI 3 schema (YAML; `?format=json` for JSON)."),
            (DOCS_URL, ("GET",), "none", "Interactive API documentation."),
            (CONFIG_SCHEMA_URL, ("GET",), "none",
             "The JSON Schema of configuration files (`tradewatch config export`)."),
        ],
    ),
    "probes": (
        "For load balancers and Prometheus; keep them on the private network.",
        [
            ("/healthz", ("GET",), "none", "Liveness: the process answers."),
            ("/readyz", ("GET",), "none", "Readiness: database and broker reachable."),
            ("/metrics", ("GET",), "none", "Prometheus exposition."),
        ],
    ),
}  # fmt: skip


def api_index() -> dict[str, Any]:
    """The index as the endpoint answers it."""
    return {
        "name": "Tradewatch API",
        "version": "1",
        "schema": SCHEMA_URL,
        "docs": DOCS_URL,
        "auth": AUTH,
        "groups": [
            {
                "name": name,
                "purpose": purpose,
                "endpoints": [
                    {"url": url, "methods": list(methods), "auth": auth, "purpose": what}
                    for url, methods, auth, what in endpoints
                ],
            }
            for name, (purpose, endpoints) in GROUPS.items()
        ],
    }


INDEX_SCHEMA = inline_serializer(
    "ApiIndex",
    {
        "name": serializers.CharField(),
        "version": serializers.CharField(),
        "schema": serializers.CharField(help_text="The OpenAPI 3 schema."),
        "docs": serializers.CharField(help_text="Interactive API documentation."),
        "auth": serializers.DictField(
            child=serializers.CharField(),
            help_text="Each kind of credentials an endpoint's `auth` names, explained.",
        ),
        "groups": serializers.ListField(
            child=inline_serializer(
                "ApiIndexGroup",
                {
                    "name": serializers.CharField(),
                    "purpose": serializers.CharField(),
                    "endpoints": serializers.ListField(
                        child=inline_serializer(
                            "ApiIndexEndpoint",
                            {
                                "url": serializers.CharField(),
                                "methods": serializers.ListField(child=serializers.CharField()),
                                "auth": serializers.ChoiceField(choices=list(AUTH)),
                                "purpose": serializers.CharField(),
                            },
                        )
                    ),
                },
            )
        ),
    },
)


class ApiIndexView(ErrorsView):
    """`GET /api/v1/`: every endpoint group, with URLs, methods, credentials and purpose."""

    # No authentication at all, so even a wrong or revoked credential still reads it.
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="api_index",
        summary="The API's endpoints, grouped, with the credentials each takes",
        responses={200: INDEX_SCHEMA},
    )
    def get(self, request: Request) -> Response:
        return Response(api_index())
