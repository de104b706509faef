"""The operations digest: a policy's sources summed up every day or week, to its channels.

A policy sends it daily, weekly, or both (`Policy.digest_*`), at one local time. What it
says, for the period that ends then (the last 24 hours, or the last 7 days):

* per source in the policy's scope (its sources and tags; none: every watched source):
  PnL of the last day and of the last 7 days (net of fees, as everywhere in Tradewatch),
  drawdown now and the largest of the period (the derived `drawdown_pct`), trades and
  win rate in the period, the lowest health check score and the heartbeat lapses, and
  a small chart of its equity;
* incidents: alerts of the policy's scope that fired in the period, by severity; how
  long acknowledging and resolving them took (median and longest); how many were still
  open when it ended;
* delivery: the policy's notifications of the period, sent and failed.

Beat asks every minute (`send_digests`); each policy's due period is claimed by
inserting its `DigestRun` row, in the same transaction as the digest's notifications,
so two beats (or a beat and the command line) send it once. The notifications go
through the outbox (`alerts.delivery`): retries, the attempt log and the fallback
channel apply as to any other. `tradewatch digest --policy P --preview` prints it.
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction
from django.db.models import Count, F, FloatField, Max, Min, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from alerts.models import (
    Alert,
    AlertTransition,
    Channel,
    DigestRun,
    Notification,
    Policy,
    Severity,
)
from alerts.routing import notifications_create
from alerts.selectors import without_watchdog
from health.models import HealthReport
from health.selectors import watched_sources
from metrics.models import MetricSample, Source, Trade
from metrics.queries import metric_query

from .digest_render import payload

logger = logging.getLogger(__name__)

DAY: Final = timedelta(days=1)
WEEK: Final = timedelta(days=7)
# A digest not sent within this long of its time (beat was down) is skipped, not sent late.
GRACE: Final = timedelta(hours=6)
CHART_POINTS: Final = 48
HEARTBEAT_METRIC: Final = "heartbeat"
DRAWDOWN: Final = "drawdown_pct"
EQUITY: Final = "equity"
LENGTHS: Final = {DigestRun.Kind.DAILY: DAY, DigestRun.Kind.WEEKLY: WEEK}


# --- when ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """The time one digest covers: [start, end), `end` being when it is due."""

    kind: str
    start: datetime
    end: datetime


def _at(day: Any, moment: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, moment, tzinfo=zone).astimezone(UTC)


def latest_periods(
    *, daily: bool, weekly_day: int | None, at: time, zone: ZoneInfo, now: datetime
) -> list[Period]:
    """Each kind's most recent period ending at or before `now` (local days, so a day
    across a clock change is 23 or 25 hours long)."""
    today = now.astimezone(zone).date()
    day = today if _at(today, at, zone) <= now else today - DAY
    periods = []
    if daily:
        periods.append(Period(DigestRun.Kind.DAILY, _at(day - DAY, at, zone), _at(day, at, zone)))
    if weekly_day is not None:
        week_day = day - timedelta(days=(day.weekday() - weekly_day) % 7)
        periods.append(
            Period(DigestRun.Kind.WEEKLY, _at(week_day - WEEK, at, zone), _at(week_day, at, zone))
        )
    return periods


def due_periods(policy: Policy, now: datetime) -> list[Period]:
    """The policy's periods whose digest is due now (ended less than GRACE ago)."""
    return [
        period for period in policy_periods(policy, now) if timedelta(0) <= now - period.end < GRACE
    ]


def policy_periods(policy: Policy, now: datetime) -> list[Period]:
    return latest_periods(
        daily=policy.digest_daily, weekly_day=policy.digest_weekly_day,
        at=policy.digest_time, zone=ZoneInfo(policy.digest_timezone), now=now,
    )  # fmt: skip


# --- what --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFigures:
    """One source over the period."""

    id: int
    name: str
    pnl_day: float
    pnl_week: float
    drawdown_now: float | None
    drawdown_max: float | None
    trades: int
    win_rate: float | None
    lowest_score: int | None
    heartbeat_lapses: int
    equity: list[tuple[datetime, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Incidents:
    """The scope's alerts that fired in the period."""

    opened: dict[str, int]  # severity label -> count, most severe first, none left out
    acknowledged: int
    ack_median_seconds: float | None
    ack_longest_seconds: float | None
    resolved: int
    resolve_median_seconds: float | None
    resolve_longest_seconds: float | None
    still_open: int

    @property
    def total(self) -> int:
        return sum(self.opened.values())


@dataclass(frozen=True)
class Digest:
    policy: str
    timezone: str
    period: Period
    sources: list[SourceFigures]
    incidents: Incidents
    sent: int
    failed: int


def scope_sources(policy: Policy) -> list[Source]:
    """The sources a policy's digest covers: its sources and tags, or every watched one."""
    chosen = list(policy.sources.all())
    tags = list(policy.tags.all())
    if not chosen and not tags:
        return watched_sources()
    tagged = Source.objects.filter(tags__in=tags) if tags else Source.objects.none()
    return sorted({*chosen, *tagged}, key=lambda source: source.name)


def digest_build(policy: Policy, period: Period) -> Digest:
    """Every figure of the policy's digest for `period` (reads only)."""
    sources = scope_sources(policy)
    ids = [source.pk for source in sources]
    return Digest(
        policy=policy.name,
        timezone=policy.digest_timezone,
        period=period,
        sources=_source_figures(sources, period),
        incidents=_incidents(policy, ids, period),
        **_delivery(policy, period),
    )


def _source_figures(sources: list[Source], period: Period) -> list[SourceFigures]:
    ids = [source.pk for source in sources]
    start, end = period.start, period.end
    net = Coalesce("pnl", Value(0.0), output_field=FloatField()) - F("fee")
    trades = {
        row["source_id"]: row
        for row in Trade.objects.filter(source_id__in=ids, ts__gte=end - WEEK, ts__lt=end)
        .annotate(net=net)
        .values("source_id")
        .annotate(
            pnl_week=Sum("net"),
            pnl_day=Sum("net", filter=Q(ts__gte=end - DAY)),
            count=Count("id", filter=Q(ts__gte=start)),
            closed=Count("id", filter=Q(ts__gte=start, pnl__isnull=False)),
            wins=Count("id", filter=Q(ts__gte=start, pnl__isnull=False, net__gt=0)),
        )
    }
    drawdown_max = dict(
        _drawdowns(ids)
        .filter(ts__gte=start, ts__lt=end)
        .values_list("series__source_id")
        .annotate(worst=Max("value"))
    )
    lowest = dict(
        HealthReport.objects.filter(
            health_check__source_id__in=ids, created_at__gte=start, created_at__lt=end
        )
        .values_list("health_check__source_id")
        .annotate(low=Min("score"))
    )
    lapses = dict(
        without_watchdog(Alert.objects.all())
        .filter(source_id__in=ids, rule__metric=HEARTBEAT_METRIC, fired_at__gte=start)
        .filter(fired_at__lt=end)
        .values_list("source_id")
        .annotate(count=Count("id"))
    )
    figures = []
    for source in sources:
        row: dict[str, Any] = dict(trades.get(source.pk, {}))
        closed = row.get("closed", 0)
        now_value = (
            _drawdowns([source.pk])
            .filter(ts__lt=end)
            .order_by("-ts")
            .values_list("value", flat=True)
            .first()
        )
        figures.append(
            SourceFigures(
                id=source.pk,
                name=source.name,
                pnl_day=row.get("pnl_day") or 0.0,
                pnl_week=row.get("pnl_week") or 0.0,
                drawdown_now=now_value,
                drawdown_max=drawdown_max.get(source.pk),
                trades=row.get("count", 0),
                win_rate=row["wins"] / closed * 100 if closed else None,
                lowest_score=lowest.get(source.pk),
                heartbeat_lapses=lapses.get(source.pk, 0),
                equity=_equity(source, period),
            )
        )
    return figures


def _drawdowns(source_ids: list[int]) -> QuerySet[MetricSample]:
    """The samples of the sources' derived drawdown (in percent of the running peak)."""
    return MetricSample.objects.filter(
        series__source_id__in=source_ids, series__name=DRAWDOWN, series__labels_key="{}"
    )


def _equity(source: Source, period: Period) -> list[tuple[datetime, float]]:
    step = (period.end - period.start) / CHART_POINTS
    result = metric_query(
        source=source, name=EQUITY, labels={}, start=period.start,
        end=period.end - timedelta(microseconds=1), step=step, aggregation="last",
    )  # fmt: skip
    return [point for series in result.series for point in series.points]


def _incidents(policy: Policy, source_ids: list[int], period: Period) -> Incidents:
    scope = without_watchdog(Alert.objects.all()).filter(
        source_id__in=source_ids, severity__gte=policy.min_severity
    )
    rule_ids = list(policy.rules.values_list("pk", flat=True))
    if rule_ids:
        scope = scope.filter(rule_id__in=rule_ids)
    # Fired in the period: `fired_at` is set.
    opened = [
        (pk, severity, fired, resolved)
        for pk, severity, fired, resolved in scope.filter(
            fired_at__gte=period.start, fired_at__lt=period.end
        ).values_list("pk", "severity", "fired_at", "resolved_at")
        if fired is not None
    ]
    first_ack = dict(
        AlertTransition.objects.filter(
            alert_id__in=[pk for pk, *_ in opened],
            kind=AlertTransition.Kind.ACKNOWLEDGED,
            at__lt=period.end,
        )
        .values_list("alert_id")
        .annotate(first=Min("at"))
    )
    ack = [(first_ack[pk] - fired).total_seconds() for pk, _, fired, _ in opened if pk in first_ack]
    resolve = [
        (resolved - fired).total_seconds()
        for _, _, fired, resolved in opened
        if resolved is not None and resolved < period.end
    ]
    by_severity = Counter(severity for _, severity, _, _ in opened)
    still_open = (
        scope.filter(fired_at__lt=period.end)
        .filter(Q(resolved_at__isnull=True) | Q(resolved_at__gte=period.end))
        .count()
    )
    return Incidents(
        opened={
            Severity(level).label.upper(): by_severity[level]
            for level in sorted(Severity.values, reverse=True)
        },
        acknowledged=len(ack),
        ack_median_seconds=statistics.median(ack) if ack else None,
        ack_longest_seconds=max(ack, default=None),
        resolved=len(resolve),
        resolve_median_seconds=statistics.median(resolve) if resolve else None,
        resolve_longest_seconds=max(resolve, default=None),
        still_open=still_open,
    )


def _delivery(policy: Policy, period: Period) -> dict[str, int]:
    counted = (
        Notification.objects.filter(
            policy=policy, created_at__gte=period.start, created_at__lt=period.end
        )
        .exclude(event=Notification.Event.OPERATIONS_DIGEST)
        .aggregate(
            sent=Count("id", filter=Q(state=Notification.State.SENT)),
            failed=Count("id", filter=Q(state=Notification.State.FAILED)),
        )
    )
    return {"sent": counted["sent"], "failed": counted["failed"]}


# --- sending ------------------------------------------------------------------------------


def digest_send(policy: Policy, period: Period, *, now: datetime) -> DigestRun | None:
    """Claim the policy's period and put its digest in the outbox, once (None: claimed
    already, by this run earlier or another one)."""
    channels = [
        channel
        for channel in policy.channels.filter(enabled=True)
        if channel.kind != Channel.Kind.RECOVERY  # a bot is not told about a digest
    ]
    with transaction.atomic():
        try:
            with transaction.atomic():
                run = DigestRun.objects.create(
                    policy=policy, kind=period.kind, period_start=period.start,
                    period_end=period.end, created_at=now,
                )  # fmt: skip
        except IntegrityError:
            return None
        content = payload(digest_build(policy, period))
        created = notifications_create(
            [
                Notification(
                    channel=channel,
                    policy=policy,
                    event=Notification.Event.OPERATIONS_DIGEST,
                    severity=Severity.INFO,
                    payload=content,
                )
                for channel in channels
            ],
            at=now,
        )
        run.notifications = len(created)
        run.save(update_fields=["notifications"])
    return run


def digests_send(*, now: datetime | None = None) -> int:
    """Send every digest due now that no run has sent yet; how many were sent."""
    now = now or timezone.now()
    sent = 0
    policies = Policy.objects.filter(enabled=True).filter(
        Q(digest_daily=True) | Q(digest_weekly_day__isnull=False)
    )
    for policy in policies:
        for period in due_periods(policy, now):
            try:
                run = digest_send(policy, period, now=now)
            except Exception:  # one policy's failure must not stop the others' digests
                logger.exception("the %s digest of policy %s failed", period.kind, policy.pk)
                continue
            if run is not None:
                sent += 1
                logger.info(
                    "%s digest of policy %s to %s: %d notifications",
                    period.kind, policy.name, period.end.isoformat(), run.notifications,
                )  # fmt: skip
    return sent
