"""The operator health API: the system rollup with each source's score, and safety.

People call these with a DRF token or their admin session and need the
`health.view_healthcheck` permission; sources' API keys are never accepted. Views call
a selector of `health.selectors` and return its answer.
"""

from __future__ import annotations

from typing import Any, Final

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from core.api_errors import OPERATOR_ERRORS_SCHEMA, ErrorsView
from core.operator_api import OPERATOR_AUTHENTICATION, HasModelPermission
from health import selectors

VIEW_PERMISSION: Final = "health.view_healthcheck"
STATUS_HELP: Final = "HEALTHY, DEGRADED, UNHEALTHY, CRITICAL (UNKNOWN: nothing known yet)."


class CanViewHealth(HasModelPermission):
    """A person allowed to read health: `health.view_healthcheck` (Viewer group and up)."""

    permission = VIEW_PERMISSION
    message = f"You need the permission to view health ({VIEW_PERMISSION})."


class HealthReadView(ErrorsView):
    # People only: a source's API key is refused, with a message saying so.
    authentication_classes = OPERATOR_AUTHENTICATION
    permission_classes = [IsAuthenticated, CanViewHealth]


WORDS = serializers.ListField(child=serializers.CharField())
SOURCE_HEALTH_FIELDS: Final[dict[str, serializers.Field[Any, Any, Any, Any]]] = {
    "id": serializers.IntegerField(),
    "name": serializers.CharField(),
    "kind": serializers.CharField(),
    "score": serializers.IntegerField(
        help_text="0-100: points for heartbeat, error rate, decisions and consecutive "
        "errors, capped by the worst state (kill switch, breaker, exchange, positions, "
        "lapsed orders or market data, order rejects) and firing alert."
    ),
    "status": serializers.CharField(help_text=STATUS_HELP),
    "issues": WORDS,
    "warnings": WORDS,
    "notes": serializers.ListField(
        child=serializers.CharField(),
        help_text="Why something is not judged now, e.g. market closed (and when it opens).",
    ),
    "market_closed": serializers.BooleanField(
        help_text="Outside its schedule: a quiet source is market closed, not lapsed."
    ),
}
STATUS_SCHEMA = inline_serializer(
    "HealthStatus",
    {
        "status": serializers.CharField(
            help_text=f"The system rollup, the worst of sources, Tradewatch itself and "
            f"checks: {STATUS_HELP}"
        ),
        "generated_at": serializers.DateTimeField(),
        "sources": serializers.ListField(
            child=inline_serializer("SourceHealth", SOURCE_HEALTH_FIELDS),
            help_text="Every enabled source, worst score first.",
        ),
        "tradewatch": inline_serializer(
            "OwnHealth",
            SOURCE_HEALTH_FIELDS,
            allow_null=True,
            help_text="Tradewatch's own source, judged by its firing alerts (beat, workers, "
            "queues, notifications; the watchdog left out). Null before it exists.",
        ),
        "checks": serializers.ListField(
            child=inline_serializer(
                "CheckHealth",
                {
                    "id": serializers.IntegerField(),
                    "name": serializers.CharField(),
                    "kind": serializers.CharField(),
                    "source": serializers.CharField(allow_null=True),
                    "status": serializers.CharField(help_text=f"After flap damping: {STATUS_HELP}"),
                    "score": serializers.IntegerField(allow_null=True),
                    "latency_ms": serializers.FloatField(allow_null=True),
                    "summary": serializers.CharField(),
                    "breaker": serializers.CharField(help_text="closed, open or half_open."),
                    "last_run_at": serializers.DateTimeField(allow_null=True),
                },
            )
        ),
    },
)
SAFETY_SCHEMA = inline_serializer(
    "HealthSafety",
    {
        "sources": serializers.ListField(
            child=inline_serializer(
                "SourceSafety",
                {
                    "id": serializers.IntegerField(),
                    "name": serializers.CharField(),
                    "status": serializers.CharField(help_text=STATUS_HELP),
                    "issues": WORDS,
                    "kill_switch": serializers.DictField(help_text="active, since"),
                    "circuit_breaker": serializers.DictField(help_text="tripped, since"),
                    "positions": serializers.DictField(
                        help_text="open, limit, utilisation_pct (DEGRADED above 80 %)"
                    ),
                    "exchange": serializers.DictField(
                        help_text="connected (null: never reported), lost_since, latency_ms"
                    ),
                    "trading": serializers.DictField(
                        help_text="The trading state the source must obey (Tradewatch's "
                        "own control, not the bot's kill switch): state (active, "
                        "reduce_only, halted), may_open_positions, scope, tag, reason, "
                        "set_by, alert_id, since, expires_at"
                    ),
                },
            )
        )
    },
)


class HealthStatusApi(HealthReadView):
    """`GET /api/v1/health/status`: the system rollup, each source's score and each check."""

    @extend_schema(
        operation_id="health_status",
        summary="System health: rollup, source scores and checks",
        responses={200: STATUS_SCHEMA, 401: OPERATOR_ERRORS_SCHEMA, 403: OPERATOR_ERRORS_SCHEMA},
    )
    def get(self, request: Request) -> Response:
        return Response(selectors.system_status())


class HealthSafetyApi(HealthReadView):
    """`GET /api/v1/health/safety`: kill switch, breaker, positions and exchange per source."""

    @extend_schema(
        operation_id="health_safety",
        summary="Safety view per source",
        responses={200: SAFETY_SCHEMA, 401: OPERATOR_ERRORS_SCHEMA, 403: OPERATOR_ERRORS_SCHEMA},
    )
    def get(self, request: Request) -> Response:
        return Response({"sources": selectors.safety_view()})
