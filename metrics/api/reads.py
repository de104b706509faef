"""Operator reads of metrics: a source's snapshot and time-range queries.

People call these (with a DRF token or their admin session) and need the
`metrics.view_metricseries` permission. Sources' API keys are not accepted here: a
trading system pushes data, it never reads other sources' data back. Views only
parse, call a selector of `metrics.queries` and shape the answer; every error is
`{"errors": [{"index": null, "field": ..., "message": ...}]}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from django.db.models import Q
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from core.api_errors import OPERATOR_ERRORS_SCHEMA, ErrorsView, errors_body, single_error
from core.operator_api import OPERATOR_AUTHENTICATION, HasModelPermission
from core.query_params import AGGREGATIONS, ParamError, ParamErrors, parse_metric_query
from metrics import queries
from metrics.models import SOURCE_NAME_PATTERN, Source
from metrics.validation import NAME_PATTERN

VIEW_PERMISSION: Final = "metrics.view_metricseries"
# Metric names one live request may name (`?metrics=`).
MAX_LIVE_METRICS: Final = 50


class CanViewMetrics(HasModelPermission):
    """A person allowed to read metrics: `metrics.view_metricseries` (Viewer group and up)."""

    permission = VIEW_PERMISSION
    message = f"You need the permission to view metrics ({VIEW_PERMISSION})."


class OperatorReadView(ErrorsView):
    """Base of the read endpoints: people only, with the view permission."""

    # People only: a source's API key is refused, with a message saying so.
    authentication_classes = OPERATOR_AUTHENTICATION
    permission_classes = [IsAuthenticated, CanViewMetrics]


# --- OpenAPI shapes ----------------------------------------------------------------------


@extend_schema_field(
    {
        "type": "array",
        "description": "[time (ISO 8601, UTC), value]",
        "items": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]},
        "minItems": 2,
        "maxItems": 2,
        "example": ["2026-03-02T12:05:00Z", 12.5],
    }
)
class PointField(serializers.ListField):
    """One point of a query result, documented for OpenAPI only."""


LABELS_FIELD = serializers.DictField(child=serializers.CharField())
SOURCE_REF_SCHEMA = inline_serializer(
    "SourceRef", {"id": serializers.IntegerField(), "name": serializers.CharField()}
)
VALUE_AT_SCHEMA = inline_serializer(
    "SnapshotValue",
    {
        "value": serializers.FloatField(allow_null=True),
        "ts": serializers.DateTimeField(allow_null=True),
    },
)
SNAPSHOT_SCHEMA = inline_serializer(
    "SourceSnapshot",
    {
        "source": inline_serializer(
            "SnapshotSource",
            {
                "id": serializers.IntegerField(),
                "name": serializers.CharField(),
                "kind": serializers.CharField(),
                "enabled": serializers.BooleanField(),
                "tags": serializers.ListField(child=serializers.CharField()),
            },
        ),
        "generated_at": serializers.DateTimeField(),
        "metrics": serializers.ListField(
            child=inline_serializer(
                "SnapshotSeries",
                {
                    "name": serializers.CharField(),
                    "labels": LABELS_FIELD,
                    "value": serializers.FloatField(allow_null=True),
                    "ts": serializers.DateTimeField(allow_null=True),
                },
            ),
            help_text="Every series of the source with its latest value, except the "
            "trading metrics (see `trading`).",
        ),
        "trading": serializers.DictField(
            child=VALUE_AT_SCHEMA,
            allow_null=True,
            help_text="Derived trading metrics (equity, drawdown_pct, daily_pnl, ...) by "
            "name; null when the source has none.",
        ),
        "heartbeat": inline_serializer(
            "SnapshotHeartbeat",
            {
                "status": serializers.CharField(),
                "info": serializers.DictField(),
                "last_seen": serializers.DateTimeField(),
                "age_seconds": serializers.FloatField(),
                "overdue": serializers.BooleanField(
                    help_text="Older than the source's heartbeat period plus grace (counted "
                    "from its schedule's opening at the earliest; never while closed)."
                ),
                "market_closed": serializers.BooleanField(
                    help_text="The source's schedule is closed now: quiet is expected."
                ),
            },
            allow_null=True,
        ),
        "trades": inline_serializer(
            "SnapshotTrades",
            {
                "count": serializers.IntegerField(),
                "last_ts": serializers.DateTimeField(allow_null=True),
            },
        ),
        "events": serializers.ListField(
            child=inline_serializer(
                "SnapshotEvent",
                {
                    "type": serializers.CharField(),
                    "message": serializers.CharField(),
                    "ts": serializers.DateTimeField(),
                },
            ),
            help_text=f"The newest {queries.SNAPSHOT_EVENTS} events, newest first.",
        ),
    },
)
QUERY_RESULT_SCHEMA = inline_serializer(
    "MetricQueryResult",
    {
        "source": SOURCE_REF_SCHEMA,
        "name": serializers.CharField(),
        # A plain string rather than a ChoiceField: an enum component named after the
        # field would collide with other "aggregation" enums of the API (alert rules).
        "aggregation": serializers.CharField(
            allow_null=True,
            help_text=f"One of {', '.join(AGGREGATIONS)}; null for raw points (no step).",
        ),
        "step": serializers.IntegerField(allow_null=True, help_text="Bucket width in seconds."),
        "start": serializers.DateTimeField(),
        "end": serializers.DateTimeField(),
        "truncated": serializers.BooleanField(
            help_text="More points matched than `max_points`: narrow the range or labels, "
            "or use a larger step."
        ),
        "max_points": serializers.IntegerField(),
        "series": serializers.ListField(
            child=inline_serializer(
                "MetricQuerySeries",
                {"labels": LABELS_FIELD, "points": serializers.ListField(child=PointField())},
            )
        ),
    },
)
QUERY_PARAMETERS = [
    OpenApiParameter("source", str, required=True, description="Source id or name."),
    OpenApiParameter("name", str, required=True, description="Metric name, e.g. drawdown_pct."),
    OpenApiParameter(
        "labels",
        str,
        description='One series: a JSON object (`{"symbol":"BTC/USDT"}`) or `k=v,k2=v2`; '
        "empty for the series without labels. Leave out for every series of the name.",
    ),
    OpenApiParameter(
        "start",
        OpenApiTypes.STR,
        description="ISO 8601 with offset or UNIX seconds; default `end` minus one hour.",
    ),
    OpenApiParameter(
        "end", OpenApiTypes.STR, description="ISO 8601 with offset or UNIX seconds; default now."
    ),
    OpenApiParameter(
        "step",
        str,
        description="Bucket width: seconds (`60`) or `30s`, `5m`, `1h`, `1d`, `1w`; buckets "
        f"start at multiples of it since the UNIX epoch, at most {queries.MAX_BUCKETS} per "
        "series. Leave out for raw points.",
    ),
    OpenApiParameter(
        "aggregation",
        str,
        enum=list(AGGREGATIONS),
        default="avg",
        description="How each bucket's samples become one value (with `step` only).",
    ),
]


# --- live values: which sources and metrics (shared with the event stream) --------------


@dataclass(frozen=True)
class LiveFilter:
    """Which latest values a reader asked for: None means every source, or every metric."""

    source_ids: list[int] | None
    names: list[str] | None


def _listed(values: Sequence[str]) -> list[str]:
    """`a,b` and repeated parameters alike, in order, without blanks or repeats."""
    items = [item.strip() for value in values for item in value.split(",")]
    return list(dict.fromkeys(item for item in items if item))


def live_filter(params: Mapping[str, Sequence[str]]) -> LiveFilter:
    """Read `source` (ids or names) and `metrics` (names), each repeatable or `a,b`.

    Raises ParamErrors naming every bad parameter (an unknown source, a malformed name).
    """
    errors: list[ParamError] = []
    names: list[str] | None = None
    if "metrics" in params:
        names = _listed(params["metrics"])
        wrong = [name for name in names if not NAME_PATTERN.fullmatch(name) or len(name) > 200]
        if wrong:
            errors.append(ParamError("metrics", f"Not a metric name: {', '.join(wrong)}."))
        elif not names:
            errors.append(ParamError("metrics", "Name at least one metric, e.g. equity."))
        elif len(names) > MAX_LIVE_METRICS:
            errors.append(ParamError("metrics", f"At most {MAX_LIVE_METRICS} metric names."))
    source_ids: list[int] | None = None
    if "source" in params:
        refs = _listed(params["source"])
        ids = [int(ref) for ref in refs if ref.isascii() and ref.isdigit() and len(ref) < 19]
        # Only what could be a name is looked for (PostgreSQL refuses a NUL in a string).
        named = [ref for ref in refs if re.fullmatch(SOURCE_NAME_PATTERN, ref)]
        found = Source.objects.filter(Q(pk__in=ids) | Q(name__in=named)).values_list("pk", "name")
        known = {ref for pk, name in found for ref in (str(pk), name)}
        missing = [ref for ref in refs if ref not in known]
        if missing:
            errors.append(
                ParamError("source", f"No source with id or name {', '.join(map(repr, missing))}.")
            )
        elif not refs:
            errors.append(ParamError("source", "Name at least one source (id or name)."))
        # An id wins over a name that is all digits, as everywhere else.
        by_id = {str(pk): pk for pk, _ in found}
        by_name = {name: pk for pk, name in found}
        source_ids = sorted({by_id.get(ref) or by_name[ref] for ref in refs if ref in known})
    if errors:
        raise ParamErrors(errors)
    return LiveFilter(source_ids=source_ids, names=names)


def param_errors(exc: ParamErrors) -> Response:
    """400 naming every bad parameter of the request."""
    return Response(
        errors_body([error.as_dict() for error in exc.errors]), status=status.HTTP_400_BAD_REQUEST
    )


def live_values(wanted: LiveFilter) -> dict[str, Any]:
    """The latest values asked for, as `GET /api/v1/metrics/realtime` answers them (and the
    event stream sends them first)."""
    return {
        "generated_at": timezone.now(),
        "sources": queries.latest_values(source_ids=wanted.source_ids, names=wanted.names),
    }


LIVE_PARAMETERS = [
    OpenApiParameter(
        "metrics",
        str,
        description="Metric names, comma-separated (`equity,drawdown_pct`) or repeated; "
        f"at most {MAX_LIVE_METRICS}. Leave out for every metric.",
    ),
    OpenApiParameter(
        "source",
        str,
        description="Source ids or names, comma-separated or repeated. Leave out for every source.",
    ),
]
LIVE_SOURCE_SCHEMA = inline_serializer(
    "LiveSource",
    {
        "id": serializers.IntegerField(),
        "name": serializers.CharField(),
        "metrics": serializers.ListField(
            child=inline_serializer(
                "LiveSeries",
                {
                    "name": serializers.CharField(),
                    "labels": LABELS_FIELD,
                    "value": serializers.FloatField(allow_null=True),
                    "ts": serializers.DateTimeField(),
                },
            ),
            help_text="Each series (name and labels) with its latest value.",
        ),
    },
)
REALTIME_SCHEMA = inline_serializer(
    "RealtimeValues",
    {
        "generated_at": serializers.DateTimeField(),
        "sources": serializers.ListField(child=LIVE_SOURCE_SCHEMA),
    },
)


# --- views -------------------------------------------------------------------------------


class SourceSnapshotView(OperatorReadView):
    """`GET /api/v1/sources/<id or name>/snapshot`: everything known about a source now."""

    @extend_schema(
        operation_id="source_snapshot",
        summary="Latest values, heartbeat, trades and events of one source",
        parameters=[
            OpenApiParameter(
                "source",
                str,
                OpenApiParameter.PATH,
                required=True,
                # Names and ids both match it: names are letters, digits and . _ : -
                pattern=SOURCE_NAME_PATTERN,
                description="The source's id or name (an id wins when a name is all "
                "digits). Both are shown by `GET /api/v1/whoami` and "
                "`manage.py tradewatch source list`.",
            )
        ],
        responses={
            200: SNAPSHOT_SCHEMA,
            401: OPERATOR_ERRORS_SCHEMA,
            403: OPERATOR_ERRORS_SCHEMA,
            404: OPERATOR_ERRORS_SCHEMA,
        },
    )
    def get(self, request: Request, source: str) -> Response:
        found = queries.source_find(source)
        if found is None:
            return Response(
                single_error(f"No source with id or name {source!r}.", "source"),
                status=status.HTTP_404_NOT_FOUND,
            )
        return Response(queries.source_snapshot(source=found))


class MetricQueryView(OperatorReadView):
    """`GET /api/v1/metrics/query`: a metric's samples over time, raw or per time bucket."""

    @extend_schema(
        operation_id="metric_query",
        summary="Samples of a metric over a time range, raw or aggregated per bucket",
        parameters=QUERY_PARAMETERS,
        responses={
            200: QUERY_RESULT_SCHEMA,
            400: OPERATOR_ERRORS_SCHEMA,
            401: OPERATOR_ERRORS_SCHEMA,
            403: OPERATOR_ERRORS_SCHEMA,
        },
    )
    def get(self, request: Request) -> Response:
        try:
            params = parse_metric_query(dict(request.query_params.lists()), now=timezone.now())
        except ParamErrors as exc:
            return param_errors(exc)
        source = queries.source_find(params.source)
        if source is None:
            return Response(
                single_error(f"no source with id or name {params.source!r}", "source"),
                status=status.HTTP_400_BAD_REQUEST,
            )
        try:
            result = queries.metric_query(
                source=source,
                name=params.name,
                labels=params.labels,
                start=params.start,
                end=params.end,
                step=params.step,
                aggregation=params.aggregation,
            )
        except ParamError as exc:
            return Response(errors_body([exc.as_dict()]), status=status.HTTP_400_BAD_REQUEST)
        return Response(
            {
                "source": {"id": source.pk, "name": source.name},
                "name": params.name,
                "aggregation": params.aggregation if params.step is not None else None,
                "step": int(params.step.total_seconds()) if params.step is not None else None,
                "start": params.start,
                "end": params.end,
                "truncated": result.truncated,
                "max_points": result.limit,
                "series": [
                    {"labels": series.labels, "points": series.points} for series in result.series
                ],
            }
        )


class RealtimeView(OperatorReadView):
    """`GET /api/v1/metrics/realtime`: the latest values of every source, in one call."""

    @extend_schema(
        operation_id="metrics_realtime",
        summary="Latest values of every source (or of some sources and metrics) in one call",
        description="Every source, by name, with each series' latest value. `GET "
        "/api/v1/stream?metrics=...` sends the same values as they change.",
        parameters=LIVE_PARAMETERS,
        responses={
            200: REALTIME_SCHEMA,
            400: OPERATOR_ERRORS_SCHEMA,
            401: OPERATOR_ERRORS_SCHEMA,
            403: OPERATOR_ERRORS_SCHEMA,
        },
    )
    def get(self, request: Request) -> Response:
        try:
            wanted = live_filter(dict(request.query_params.lists()))
        except ParamErrors as exc:
            return param_errors(exc)
        return Response(live_values(wanted))
