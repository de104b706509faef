"""`GET /api/v1/control`: the trading state a source must obey, answered at once or held
(long poll) by the web front until it changes."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.api_errors import errors_body, field_errors
from metrics import control

from .views import ERROR_SCHEMA, STATE_HEADER, TRADING_STATE_FIELD, SourceView

# The front (monitoring_site.front) holds a long poll on its event loop, not on a Django
# thread: it marks the requests it can hold, and a 304 carrying HOLD_HEADER asks it to
# wait that many seconds for a change before answering (then it asks again).
FRONT_HOLDS_META = "HTTP_X_TRADEWATCH_FRONT_HOLDS"
HOLD_HEADER = "X-Tradewatch-Hold"
MAX_WAIT_SECONDS = 60


class ControlView(SourceView):
    """`GET /api/v1/control`: the trading state this source must obey (long poll with ?wait)."""

    answers_trading_state = True

    class QuerySerializer(serializers.Serializer[Any]):
        wait = serializers.IntegerField(
            required=False, default=0, min_value=0, max_value=MAX_WAIT_SECONDS
        )

    @extend_schema(
        operation_id="trading_control",
        summary="The trading state this source must obey",
        description="Answers at once, with an `ETag`. Send it back in `If-None-Match` with "
        f"`?wait=N` (at most {MAX_WAIT_SECONDS}) to be answered when the state changes "
        "or after N seconds (304), whichever comes first.",
        parameters=[
            OpenApiParameter(
                "wait",
                int,
                description="Seconds to wait for a change (0 to "
                f"{MAX_WAIT_SECONDS}) when `If-None-Match` names the current state.",
            ),
            OpenApiParameter(
                "If-None-Match",
                str,
                OpenApiParameter.HEADER,
                description="The `ETag` of the state the caller knows.",
            ),
        ],
        responses={
            200: inline_serializer(
                "TradingControlState",
                {
                    "source": serializers.CharField(),
                    "source_id": serializers.IntegerField(),
                    "state": TRADING_STATE_FIELD,
                    "may_open_positions": serializers.BooleanField(),
                    "scope": serializers.CharField(
                        allow_null=True, help_text="source, tag or all: what decided it."
                    ),
                    "tag": serializers.CharField(allow_null=True),
                    "reason": serializers.CharField(allow_blank=True),
                    "set_by": serializers.CharField(allow_null=True),
                    "alert_id": serializers.IntegerField(allow_null=True),
                    "since": serializers.DateTimeField(allow_null=True),
                    "expires_at": serializers.DateTimeField(allow_null=True),
                },
            ),
            304: None,
            400: ERROR_SCHEMA,
            401: ERROR_SCHEMA,
            429: ERROR_SCHEMA,
        },
    )
    def get(self, request: Request) -> Response:
        query = self.QuerySerializer(data=request.query_params)
        if not query.is_valid():
            return Response(
                errors_body(field_errors(query.errors)), status=status.HTTP_400_BAD_REQUEST
            )
        source = self.source(request)
        state = control.trading_state(source.pk)
        known = request.headers.get("If-None-Match", "")
        if known and state.etag in (tag.strip() for tag in known.split(",")):
            response = Response(status=status.HTTP_304_NOT_MODIFIED)
            wait = query.validated_data["wait"]
            if wait and request.META.get(FRONT_HOLDS_META) == "1":
                response[HOLD_HEADER] = str(wait)
        else:
            response = Response({"source": source.name, "source_id": source.pk, **state.as_dict()})
        response["ETag"] = state.etag
        response[STATE_HEADER] = state.state
        return response
