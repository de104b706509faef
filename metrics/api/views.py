"""HTTP endpoints for trading systems, authenticated by source API key.

Views only parse, check the size, call the validator and the ingest service, and
shape the answer; what is valid and how it is stored lives in `metrics.validation`
and `metrics.ingest`.
"""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.api_errors import ErrorsView, errors_body, single_error
from core.generations import generations_read_once
from metrics import control, decoding, ingest, instrumentation, validation
from metrics.authentication import (
    HookKeyAuthentication,
    SourceAPIKeyAuthentication,
    SourcePrincipal,
)
from metrics.idempotency import MAX_KEY_LENGTH, Answer, IdempotencyKeyReused, answer_once
from metrics.models import Source
from metrics.permissions import IsSource

from .parsers import BodyTooLarge, StrictJSONParser, body_bytes, body_parsed
from .throttling import SourceIngestThrottle

ERROR_SCHEMA = inline_serializer(
    "IngestErrors",
    {
        "errors": serializers.ListField(
            child=inline_serializer(
                "IngestError",
                {
                    "index": serializers.IntegerField(allow_null=True),
                    "field": serializers.CharField(allow_null=True),
                    "message": serializers.CharField(),
                },
            )
        )
    },
)
IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    description="Send the same key again (within 24 h) to get the first answer back "
    "without storing the batch twice.",
)


class SourceView(ErrorsView):
    """Base of every endpoint a source calls: its key, its rate limit, strict JSON."""

    authentication_classes = [SourceAPIKeyAuthentication]
    permission_classes = [IsSource]
    throttle_classes = [SourceIngestThrottle]
    parser_classes = [StrictJSONParser]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # Key check, evaluation on arrival and the trading-state answer each consult a
        # generation: one round trip to the cache for all of them.
        with generations_read_once():
            return super().dispatch(request, *args, **kwargs)

    def source(self, request: Request) -> Source:
        principal = request.user
        assert isinstance(principal, SourcePrincipal)
        return principal.source


# Every accepted batch is answered with the state the source must obey now, so a bot
# learns of a halt from the next batch it sends (`metrics.control`: no query).
STATE_HEADER = "Tradewatch-Trading-State"


class IngestView(SourceView):
    """Validate a whole batch, store it in one transaction, answer 202."""

    endpoint: ClassVar[str]
    answers_trading_state = True

    def validate(self, body: Any, limits: validation.Limits) -> Any:
        raise NotImplementedError

    def validated(self, request: Request, limits: validation.Limits) -> Any:
        """The valid items of the request's body; BatchInvalid or BatchTooLarge if none."""
        return self.validate(body_parsed(request), limits)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise BodyTooLarge(
                f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
            )
        if length and request.content_type.split(";")[0].strip() != "application/json":
            raise exceptions.UnsupportedMediaType(
                request.content_type or "none", "Send JSON with Content-Type: application/json."
            )
        if "Idempotency-Key" in request.headers:
            # Read (and keep) the raw body before the parser consumes the stream: the key
            # is bound to the exact bytes of its first batch.
            request._request.body  # noqa: B018

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        reason = {
            400: "malformed",
            401: "unauthenticated",
            403: "forbidden",
            413: "too_large",
            415: "content_type",
            429: "throttled",
            503: "unavailable",
        }.get(response.status_code, "other")
        instrumentation.record_rejected(endpoint=self.endpoint, reason=reason)
        return response

    def store(self, source: Source, items: Any) -> Answer:
        raise NotImplementedError

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        started = time.perf_counter()
        limits = validation.Limits(
            now=timezone.now(),
            retention=timedelta(days=settings.TRADEWATCH_METRIC_RETENTION_DAYS),
            max_items=settings.TRADEWATCH_MAX_BATCH_ITEMS,
        )
        try:
            items = self.validated(request, limits)
        except validation.BatchTooLarge as exc:
            instrumentation.record_rejected(endpoint=self.endpoint, reason="too_large")
            return Response(
                single_error(str(exc), field=None), status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
            )
        except validation.BatchInvalid as exc:
            instrumentation.record_rejected(endpoint=self.endpoint, reason="invalid")
            body = errors_body([error.as_dict() for error in exc.errors])
            if exc.total > len(exc.errors):
                body["total_errors"] = exc.total
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        source = self.source(request)
        key = request.headers.get("Idempotency-Key")
        if key is None:
            answer = self.store(source, items)
        else:
            if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
                instrumentation.record_rejected(endpoint=self.endpoint, reason="invalid")
                return Response(
                    single_error(
                        f"must be 1 to {MAX_KEY_LENGTH} printable characters", "Idempotency-Key"
                    ),
                    status=status.HTTP_400_BAD_REQUEST,
                )
            try:
                answer = answer_once(
                    source=source,
                    key=key,
                    endpoint=self.endpoint,
                    body_sha256=hashlib.sha256(request.body).hexdigest(),
                    store=lambda: self.store(source, items),
                )
            except IdempotencyKeyReused:
                instrumentation.record_rejected(endpoint=self.endpoint, reason="key_reused")
                return Response(
                    single_error(
                        "this key was already used for a different batch; use a new key",
                        "Idempotency-Key",
                    ),
                    status=status.HTTP_422_UNPROCESSABLE_ENTITY,
                )
        state = control.trading_state(source.pk).state
        response = Response({**answer.body, "trading_state": state}, status=answer.status_code)
        response[STATE_HEADER] = state
        if answer.replayed:
            response["Idempotent-Replayed"] = "true"
        else:
            instrumentation.record_ingested(endpoint=self.endpoint, items=_count(answer.body))
        instrumentation.observe_ingest_seconds(
            endpoint=self.endpoint, seconds=time.perf_counter() - started
        )
        return response


def _count(body: dict[str, Any]) -> int:
    accepted = body.get("accepted", 0)
    return accepted if isinstance(accepted, int) else 0


TRADING_STATE_FIELD = serializers.ChoiceField(
    control.State.choices,
    help_text="The trading state the source must obey now (also in the "
    "`Tradewatch-Trading-State` header): `active`, `reduce_only` (close positions, open "
    "none) or `halted`.",
)
ACCEPTED = inline_serializer(
    "Accepted", {"accepted": serializers.IntegerField(), "trading_state": TRADING_STATE_FIELD}
)
INGEST_RESPONSES = {
    202: ACCEPTED,
    400: ERROR_SCHEMA,
    401: ERROR_SCHEMA,
    413: ERROR_SCHEMA,
    415: ERROR_SCHEMA,
    422: ERROR_SCHEMA,
    429: ERROR_SCHEMA,
    503: ERROR_SCHEMA,
}


class MetricsIngestView(IngestView):
    """`POST /api/v1/metrics`: a batch of metric samples."""

    endpoint = "metrics"

    def validate(self, body: Any, limits: validation.Limits) -> Any:
        return validation.validate_samples(body, limits)

    def validated(self, request: Request, limits: validation.Limits) -> Any:
        # Valid batches in one pass from the raw bytes; anything else is validated
        # (and its errors worded) as before.
        try:
            return decoding.samples_decoded(body_bytes(request), limits)
        except decoding.NotFastPath:
            return super().validated(request, limits)

    def store(self, source: Source, items: Any) -> Answer:
        return Answer(202, {"accepted": ingest.metric_ingest(source=source, samples=items)})

    @extend_schema(
        request=inline_serializer(
            "MetricBatch",
            {
                "samples": serializers.ListField(
                    child=inline_serializer(
                        "MetricSampleIn",
                        {
                            "name": serializers.RegexField(
                                r"^[A-Za-z_:][A-Za-z0-9_:.]*$", max_length=200
                            ),
                            "value": serializers.FloatField(),
                            "ts": serializers.CharField(
                                required=False, help_text="ISO 8601 with offset or UNIX seconds"
                            ),
                            "labels": serializers.DictField(
                                child=serializers.CharField(max_length=200), required=False
                            ),
                        },
                    ),
                    min_length=1,
                )
            },
        ),
        responses=INGEST_RESPONSES,
        parameters=[IDEMPOTENCY_HEADER],
        examples=[
            OpenApiExample(
                "Drawdown",
                {
                    "samples": [
                        {"name": "drawdown_pct", "value": 12.5, "labels": {"symbol": "BTC/USDT"}}
                    ]
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)


class TradesIngestView(IngestView):
    """`POST /api/v1/trades`: a batch of fills; ids already stored count as duplicates."""

    endpoint = "trades"

    def validate(self, body: Any, limits: validation.Limits) -> Any:
        return validation.validate_trades(body, limits)

    def store(self, source: Source, items: Any) -> Answer:
        stored = ingest.trade_ingest(source=source, trades=items)
        return Answer(202, {"accepted": stored.accepted, "duplicates": stored.duplicates})

    @extend_schema(
        request=inline_serializer(
            "TradeBatch",
            {
                "trades": serializers.ListField(
                    child=inline_serializer(
                        "TradeIn",
                        {
                            "id": serializers.CharField(max_length=100),
                            "symbol": serializers.CharField(max_length=50),
                            "side": serializers.ChoiceField(["buy", "sell"]),
                            "quantity": serializers.FloatField(min_value=0),
                            "price": serializers.FloatField(min_value=0),
                            "pnl": serializers.FloatField(required=False, allow_null=True),
                            "fee": serializers.FloatField(required=False),
                            "ts": serializers.CharField(required=False),
                        },
                    ),
                    min_length=1,
                )
            },
        ),
        responses={
            **INGEST_RESPONSES,
            202: inline_serializer(
                "TradesAccepted",
                {
                    "accepted": serializers.IntegerField(),
                    "duplicates": serializers.IntegerField(),
                    "trading_state": TRADING_STATE_FIELD,
                },
            ),
        },
        parameters=[IDEMPOTENCY_HEADER],
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)


class EventsIngestView(IngestView):
    """`POST /api/v1/events`: a batch of events (circuit breaker, kill switch, ...)."""

    endpoint = "events"

    def validate(self, body: Any, limits: validation.Limits) -> Any:
        return validation.validate_events(body, limits)

    def store(self, source: Source, items: Any) -> Answer:
        return Answer(202, {"accepted": ingest.event_ingest(source=source, events=items)})

    @extend_schema(
        request=inline_serializer(
            "EventBatch",
            {
                "events": serializers.ListField(
                    child=inline_serializer(
                        "EventIn",
                        {
                            "type": serializers.CharField(max_length=100),
                            "message": serializers.CharField(required=False, max_length=4000),
                            "context": serializers.DictField(required=False),
                            "ts": serializers.CharField(required=False),
                        },
                    ),
                    min_length=1,
                )
            },
        ),
        responses=INGEST_RESPONSES,
        parameters=[IDEMPOTENCY_HEADER],
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)


class HeartbeatView(IngestView):
    """`POST /api/v1/heartbeat`: the source is alive (an empty body means status ok)."""

    endpoint = "heartbeat"

    def validate(self, body: Any, limits: validation.Limits) -> Any:
        return validation.validate_heartbeat(body, limits)

    def store(self, source: Source, items: Any) -> Answer:
        ingest.heartbeat_record(source=source, heartbeat=items)
        return Answer(202, {"accepted": 1})

    @extend_schema(
        request=inline_serializer(
            "HeartbeatIn",
            {
                "status": serializers.ChoiceField(
                    list(validation.HEARTBEAT_STATUSES), required=False
                ),
                "info": serializers.DictField(required=False),
                "ts": serializers.CharField(required=False),
            },
        ),
        responses=INGEST_RESPONSES,
        parameters=[IDEMPOTENCY_HEADER],
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)


HOOK_VIEWS: dict[str, type[IngestView]] = {
    "metrics": MetricsIngestView,
    "trades": TradesIngestView,
    "events": EventsIngestView,
    "heartbeat": HeartbeatView,
}


def hook_view(kind: str) -> Any:
    """The ingest view of `kind` taking the key from the URL, for senders without headers."""
    base = HOOK_VIEWS[kind]
    view_class: type[IngestView] = type(
        f"{base.__name__}Hook",
        (base,),
        {
            "authentication_classes": [HookKeyAuthentication],
            "__doc__": f"`POST /api/v1/hooks/{kind}/<key>/`: {base.__doc__}",
        },
    )
    return view_class.as_view()


class WhoAmIView(SourceView):
    """Tell a trading system which source its key belongs to (to check a key)."""

    @extend_schema(
        responses=inline_serializer(
            "WhoAmI",
            {
                "source": serializers.CharField(help_text="The source's name."),
                "source_id": serializers.IntegerField(
                    help_text="The source's id; operator endpoints such as "
                    "`/api/v1/sources/<id or name>/snapshot` take it, or the name."
                ),
                "kind": serializers.CharField(),
                "key_name": serializers.CharField(),
            },
        )
    )
    def get(self, request: Request) -> Response:
        principal = request.user
        assert isinstance(principal, SourcePrincipal)
        return Response(
            {
                "source": principal.source.name,
                "source_id": principal.source.pk,
                "kind": principal.source.kind,
                "key_name": principal.api_key.name,
            }
        )
