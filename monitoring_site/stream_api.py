"""`GET /api/v1/stream`: who may open the live event stream, and what it is to carry.

The stream itself is held by the web front on its event loop
(`monitoring_site.event_stream`), never by one of the few Django threads. The front
first hands the request to this view, on a thread, once: the view authenticates the
caller as any operator endpoint does (a user's token or an admin session, with
`alerts.view_alert`), reads what was asked for, and answers the front with a grant
(the sources and metrics to send, the values to start with). Only then does the front
answer the client, with `text/event-stream`.

Without the front (`runserver`, a test client) or without Redis (the embedded mode)
there is nothing to hold the stream or feed it: 503, saying what to poll instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from alerts.api.common import OperatorApi, person
from core.api_errors import OPERATOR_ERRORS_SCHEMA, single_error
from core.events import events_available
from core.query_params import ParamErrors
from metrics.api.reads import (
    LIVE_PARAMETERS,
    VIEW_PERMISSION,
    live_filter,
    live_values,
    param_errors,
)

# The front marks the requests it can hold (any copy a client sends is dropped), and
# recognises a grant by this header on the view's answer.
FRONT_STREAMS_META: Final = "HTTP_X_TRADEWATCH_FRONT_STREAMS"
GRANT_HEADER: Final = "X-Tradewatch-Stream-Grant"
RETRY_AFTER_SECONDS: Final = 30

STREAM_DESCRIPTION: Final = """Server-Sent Events, one per change, each with an `id`:

- `alert`: an alert changed (opened, firing, severity raised or lowered, repeat,
  acknowledged, resolved, escalated...): one per entry of its timeline;
- `health`: a health check's status changed;
- `trading_state`: a source's trading state changed (halted, reduce only, re-armed);
- `metrics` (with `?metrics=`): the latest values of those metrics, first all of them,
  then each source whose values changed (no `id`: they are not replayed);
- `ready` first (what the stream carries), `reset` when `Last-Event-ID` is older than
  what is kept (read the current state again), and a `: keepalive` comment line on an
  idle stream every 15 s.

Reconnect with `Last-Event-ID` (browsers' EventSource does) to be sent the events missed
meanwhile, in order. People only (a user's token or an admin session) with
`alerts.view_alert`; `?metrics=` also needs `metrics.view_metricseries`. 503 with
`Retry-After` when this web process holds as many streams as it may, or where no
stream can be held (see the message)."""


class AnswerInJson(BaseContentNegotiation):
    """JSON whatever `Accept` says: EventSource asks for `text/event-stream`, which the
    front answers; what this view answers (a grant, or an error) is JSON."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class StreamView(OperatorApi):
    """`GET /api/v1/stream`: grant the front a stream (see the module)."""

    content_negotiation_class = AnswerInJson

    @extend_schema(
        operation_id="event_stream",
        summary="Live events: alert, health and trading state changes, latest values",
        description=STREAM_DESCRIPTION,
        parameters=[
            *LIVE_PARAMETERS,
            OpenApiParameter(
                "Last-Event-ID",
                str,
                OpenApiParameter.HEADER,
                description="The `id` of the last event received: the events after it "
                "are sent first (or a `reset` event when they are no longer kept).",
            ),
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR, description="The event stream (never ends by itself)."
            ),
            400: OPERATOR_ERRORS_SCHEMA,
            401: OPERATOR_ERRORS_SCHEMA,
            403: OPERATOR_ERRORS_SCHEMA,
            503: OPERATOR_ERRORS_SCHEMA,
        },
    )
    def get(self, request: Request) -> Response:
        try:
            wanted = live_filter(dict(request.query_params.lists()))
        except ParamErrors as exc:
            return param_errors(exc)
        if wanted.names is not None and not person(request).has_perm(VIEW_PERMISSION):  # type: ignore[attr-defined]
            return Response(
                single_error(
                    f"Latest values (`metrics`) need the permission to view metrics "
                    f"({VIEW_PERMISSION}).",
                    "metrics",
                ),
                status=status.HTTP_403_FORBIDDEN,
            )
        if not events_available():
            return _unavailable(
                "The event stream needs Redis (CELERY_BROKER_URL or CACHE_URL): this "
                "Tradewatch runs without it. Poll GET /api/v1/alerts and "
                "GET /api/v1/metrics/realtime instead."
            )
        if request.META.get(FRONT_STREAMS_META) != "1":
            return _unavailable(
                "The event stream is served by Tradewatch's web server (`make run`, "
                "`launcher web`), which holds it outside Django; this server cannot. "
                "Poll GET /api/v1/alerts and GET /api/v1/metrics/realtime instead."
            )
        grant: dict[str, Any] = {
            "user": person(request).get_username(),
            "source_ids": wanted.source_ids,
            "metrics": wanted.names,
            "values": None,
        }
        if wanted.names is not None:
            grant["values"] = live_values(wanted)
        response = Response(grant)
        response[GRANT_HEADER] = "1"
        return response


def _unavailable(message: str) -> Response:
    response = Response(single_error(message), status=status.HTTP_503_SERVICE_UNAVAILABLE)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
