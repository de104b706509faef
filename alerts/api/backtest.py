"""`POST /api/v1/rules/<id>/backtest` and `GET /api/v1/backtests/<job>`: try a rule on history.

Whoever may view rules (`alerts.view_rule`) may backtest them: a backtest writes
nothing. A period of at most a day on at most 5 sources is replayed in the request and
answered at once (200, the answer); anything more is a job for a worker (202, with the
job to poll at `GET /api/v1/backtests/<job>`, whose `result` is the same answer once
`status` is `done`). See `alerts.backtest` for what the answer holds.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from alerts import selectors
from alerts.backtest import BacktestRefused, BacktestRequest, Tier, backtest_run, request_check
from alerts.backtest.jobs import job_get, job_start
from alerts.models import Rule, Threshold
from core.api_errors import OPERATOR_ERRORS_SCHEMA, single_error
from core.operator_api import HasModelPermission

from .common import COMMON_ERRORS, OperatorApi, bad_request, field_errors, found_all, person
from .serializers import SEVERITY_HELP, TimestampField

# Periods up to this long on up to this many sources are replayed in the request; the
# others go to a worker.
SYNCHRONOUS_PERIOD: Final = timedelta(days=1)
SYNCHRONOUS_SOURCES: Final = 5


class CanViewRules(HasModelPermission):
    permission = "alerts.view_rule"
    message = "You need the permission to view rules (alerts.view_rule)."


@extend_schema_serializer(component_name="BacktestTier")
class TierSerializer(serializers.Serializer[Any]):
    severity = serializers.CharField(help_text=f"{SEVERITY_HELP} Or its number (10..60).")
    comparison = serializers.ChoiceField(Threshold.Comparison.values)
    value = serializers.FloatField()
    clear_value = serializers.FloatField(required=False, allow_null=True, default=None)

    def validate_severity(self, value: str) -> int:
        text = value.strip()
        if text.isdigit() and int(text) in selectors.SEVERITY_LABELS.values():
            return int(text)
        try:
            return selectors.severity_parse(text)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


_THRESHOLD_OUT = inline_serializer(
    "BacktestThreshold",
    {
        "severity": serializers.CharField(),
        "comparison": serializers.CharField(),
        "value": serializers.FloatField(),
        "clear_value": serializers.FloatField(allow_null=True),
    },
)
_ALERT_OUT = inline_serializer(
    "BacktestAlert",
    {
        "source": serializers.CharField(),
        "source_id": serializers.IntegerField(),
        "labels": serializers.DictField(child=serializers.CharField()),
        "start": serializers.DateTimeField(help_text="When it opened (pending or firing)."),
        "fired_at": serializers.DateTimeField(allow_null=True),
        "end": serializers.DateTimeField(allow_null=True, help_text="null: open at the end."),
        "state_at_end": serializers.CharField(),
        "resolution": serializers.CharField(allow_null=True),
        "seconds": serializers.FloatField(),
        "peak_severity": serializers.CharField(),
        "peak_value": serializers.FloatField(allow_null=True),
        "evaluations": serializers.IntegerField(),
        "notifications": serializers.IntegerField(),
    },
)
_RUN_OUT = inline_serializer(
    "BacktestRun",
    {
        "label": serializers.CharField(help_text="`current` or `edited`."),
        "thresholds": _THRESHOLD_OUT.__class__(many=True),
        "summary": inline_serializer(
            "BacktestSummary",
            {
                "alerts": serializers.IntegerField(),
                "fired": serializers.IntegerField(),
                "open_at_end": serializers.IntegerField(),
                "firing_seconds": serializers.FloatField(),
                "notifications": serializers.IntegerField(),
                "judged": serializers.IntegerField(),
            },
        ),
        "alerts": _ALERT_OUT.__class__(many=True, help_text="The first 1,000."),
        "notifications": inline_serializer(
            "BacktestNotifications",
            {
                "total": serializers.IntegerField(),
                "by_policy": inline_serializer(
                    "BacktestPolicyNotifications",
                    {
                        "policy_id": serializers.IntegerField(),
                        "policy": serializers.CharField(),
                        "channels": serializers.ListField(child=serializers.CharField()),
                        "events": serializers.DictField(child=serializers.IntegerField()),
                        "total": serializers.IntegerField(),
                    },
                    many=True,
                ),
                "items": inline_serializer(
                    "BacktestNotification",
                    {
                        "at": serializers.DateTimeField(),
                        "alert": serializers.IntegerField(help_text="Index in `alerts`."),
                        "event": serializers.CharField(),
                        "severity": serializers.CharField(),
                        "policy": serializers.CharField(),
                        "channel": serializers.CharField(),
                    },
                    many=True,
                ),
            },
        ),
    },
)
ANSWER_SCHEMA = inline_serializer(
    "BacktestAnswer",
    {
        "rule": serializers.DictField(),
        "from": serializers.DateTimeField(),
        "to": serializers.DateTimeField(),
        "sources": serializers.ListField(child=serializers.DictField()),
        "cadence": inline_serializer(
            "BacktestCadence",
            {"beat_seconds": serializers.FloatField(), "instants": serializers.IntegerField()},
        ),
        "samples": serializers.IntegerField(),
        "seconds": serializers.FloatField(),
        "runs": _RUN_OUT.__class__(many=True, help_text="`current`, then `edited` if asked."),
        "charts": serializers.ListField(
            child=serializers.DictField(),
            help_text="Per series: `points` [time, lowest, highest] over the period.",
        ),
        "notes": serializers.ListField(child=serializers.CharField()),
    },
)
JOB_SCHEMA = inline_serializer(
    "BacktestJob",
    {
        "job": serializers.CharField(),
        "status": serializers.CharField(help_text="queued, running, done or failed."),
        "progress": serializers.FloatField(help_text="0 to 1."),
        "rule_id": serializers.IntegerField(),
        "error": serializers.CharField(allow_null=True),
        "result": ANSWER_SCHEMA.__class__(allow_null=True, help_text="Once `done`."),
        "url": serializers.CharField(),
    },
)


class RuleBacktestApi(OperatorApi):
    """`POST /api/v1/rules/<id>/backtest`: how the rule would have fired on history."""

    permission_classes = [IsAuthenticated, CanViewRules]

    @extend_schema_serializer(component_name="BacktestRequest")
    class InputSerializer(serializers.Serializer[Any]):
        sources = serializers.ListField(
            child=serializers.CharField(), required=False, allow_empty=False, max_length=50,
            help_text="Source ids or names; left out: the enabled sources the rule applies to.",
        )  # fmt: skip
        from_ = TimestampField(help_text="ISO 8601 with an offset, or UNIX seconds.")
        to = TimestampField(required=False, help_text="Default: now.")
        thresholds = TierSerializer(
            many=True, required=False,
            help_text="An edit to judge beside the saved thresholds (`runs[1]`).",
        )  # fmt: skip

        def get_fields(self) -> dict[str, Any]:
            fields = super().get_fields()
            fields["from"] = fields.pop("from_")  # `from` is a keyword in Python
            return fields

        def validate_sources(self, value: list[str]) -> list[int]:
            return [source.pk for source in found_all(selectors.sources_find(value), "source")]

    @extend_schema(
        operation_id="rule_backtest",
        summary="Try a rule (or an edit of its thresholds) on history",
        description="Replays the rule as the live engine would have judged it over stored "
        "samples, trades and events, writing nothing: the alerts it would have opened, "
        "the notifications the enabled policies would have sent, a chart of the metric. "
        "A period of at most a day on at most 5 sources is answered at once (200); "
        "anything more is a job for a worker (202): poll `url` until `status` is `done`.",
        parameters=[OpenApiParameter("rule_id", int, OpenApiParameter.PATH)],
        request=InputSerializer,
        responses={
            200: ANSWER_SCHEMA,
            202: OpenApiResponse(JOB_SCHEMA, description="Queued for a worker."),
            400: OPERATOR_ERRORS_SCHEMA,
            404: OPERATOR_ERRORS_SCHEMA,
            **COMMON_ERRORS,
        },
    )
    def post(self, request: Request, rule_id: int) -> Response:
        if not Rule.objects.filter(pk=rule_id).exists():
            return Response(single_error(f"No rule with id {rule_id}.", "rule_id"), status=404)
        serializer = self.InputSerializer(data=request.data)
        if not serializer.is_valid():
            return bad_request(field_errors(serializer.errors))
        data = serializer.validated_data
        tiers = data.get("thresholds")
        asked = BacktestRequest(
            rule_id=rule_id,
            start=data["from"],
            end=data.get("to") or timezone.now(),
            source_ids=tuple(data["sources"]) if "sources" in data else None,
            thresholds=None
            if tiers is None
            else tuple(
                Tier(t["severity"], t["comparison"], t["value"], t["clear_value"]) for t in tiers
            ),
        )
        try:
            sources = request_check(asked)  # refused now rather than in a worker
            if (
                asked.end - asked.start <= SYNCHRONOUS_PERIOD
                and len(sources) <= SYNCHRONOUS_SOURCES
            ):
                return Response(backtest_run(asked))
        except BacktestRefused as exc:
            return bad_request([{"index": None, "field": exc.field, "message": exc.message}])
        job = job_start(asked, user_id=person(request).pk)
        url = f"/api/v1/backtests/{job}"
        return Response(
            {**_job_answer(job_get(job) or {}), "url": url},
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": url},
        )


def _job_answer(job: dict[str, Any]) -> dict[str, Any]:
    return {
        "job": job.get("job"),
        "status": job.get("status"),
        "progress": job.get("progress", 0.0),
        "rule_id": job.get("rule_id"),
        "error": job.get("error"),
        "result": job.get("result"),
        "url": f"/api/v1/backtests/{job.get('job')}",
    }


class BacktestJobApi(OperatorApi):
    """`GET /api/v1/backtests/<job>`: where a backtest job stands, and its answer."""

    permission_classes = [IsAuthenticated, CanViewRules]

    @extend_schema(
        operation_id="backtest_job",
        summary="A backtest job: its progress, then its answer",
        description="Jobs are kept an hour.",
        parameters=[OpenApiParameter("job_id", str, OpenApiParameter.PATH)],
        responses={200: JOB_SCHEMA, 404: OPERATOR_ERRORS_SCHEMA, **COMMON_ERRORS},
    )
    def get(self, request: Request, job_id: str) -> Response:
        job = job_get(job_id)
        if job is None:
            return Response(
                single_error(f"No backtest job {job_id!r} (jobs are kept an hour).", "job_id"),
                status=404,
            )
        return Response(_job_answer(job))
