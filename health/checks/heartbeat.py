"""Source heartbeat freshness: the newest heartbeat against the source's period + grace.

Outside the source's schedule (a market closed) the source is not expected to beat: the
check is healthy and says so. In session the age counts from the later of the newest
heartbeat and the session's opening, so the first heartbeat of the day is due at the
open plus the period and grace, not judged against the last one of the day before.
"""

from __future__ import annotations

from datetime import datetime

from health.scoring import Status, describe_seconds, worst
from metrics.models import Source, SourceHeartbeat
from metrics.schedules import schedule_timetable
from metrics.timetables import clock_start

from .base import CheckResult, Probe, Target

# What the source says of itself in its heartbeat, when it is not "ok".
_REPORTED = {
    SourceHeartbeat.Status.DEGRADED: Status.DEGRADED,
    SourceHeartbeat.Status.ERROR: Status.UNHEALTHY,
}


class HeartbeatProbe(Probe):
    """CRITICAL without a heartbeat within period + grace; DEGRADED once past the period."""

    kind = "heartbeat"
    needs_source = True
    uses_database = True

    def run(self, target: Target, now: datetime) -> CheckResult:
        source = Source.objects.filter(pk=target.source_id or 0).first()
        if source is None:
            return CheckResult.failed(Status.UNKNOWN, "the source no longer exists")
        beat = SourceHeartbeat.objects.filter(source_id=source.pk).first()
        period = source.heartbeat_period.total_seconds()
        grace = source.heartbeat_grace.total_seconds()
        if beat is None:
            return CheckResult.failed(
                Status.CRITICAL, f"no heartbeat received from {source.name} yet"
            )
        table = schedule_timetable(source.schedule_id)
        segment = table.segment(now)
        if not segment.open:
            opens = table.next_open(now)
            return CheckResult(
                Status.HEALTHY,
                details={
                    "market_closed": True,
                    "schedule": table.describe(),
                    "next_open": opens.isoformat() if opens else None,
                },
            )
        counted_from = clock_start(beat.last_seen, segment.since) or beat.last_seen
        age = max(0.0, (now - counted_from).total_seconds())
        details = {"age_seconds": round(age, 3), "period": period, "grace": grace,
                   "reported": beat.status}  # fmt: skip
        if age > period + grace:
            return CheckResult(
                Status.CRITICAL,
                issues=[
                    f"no heartbeat for {describe_seconds(age)} (expected every "
                    f"{describe_seconds(period)} + {describe_seconds(grace)} grace)"
                ],
                details=details,
            )
        status = Status.HEALTHY
        issues: list[str] = []
        warnings: list[str] = []
        if age > period:
            status = Status.DEGRADED
            warnings.append(f"heartbeat late: last one {describe_seconds(age)} ago")
        reported = _REPORTED.get(SourceHeartbeat.Status(beat.status))
        if reported is not None:
            status = worst([status, reported])
            said = f"{source.name} reports itself {beat.status}"
            (issues if reported.is_failure else warnings).append(said)
        return CheckResult(status, issues=issues, warnings=warnings, details=details)
