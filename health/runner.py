"""Running health checks: claim the due ones, probe each within its timeout, record.

* Claim: a check is taken by one runner at a time. Rows are locked with SKIP LOCKED
  and, in the same transaction, given a lease (`lease_until`, the check's timeout plus
  a margin) and their next run time; another runner skips leased rows, so two workers
  (or the command line beside them) never probe the same check at once, and a runner
  that dies frees its checks when the lease runs out.
* Probe: network probes run on threads of their own, each bounded by its check's
  timeout: a probe still running at its deadline is recorded as a timeout and
  abandoned (its own socket timeouts end it soon after), so one slow target never
  delays the others past theirs. Probes reading Tradewatch's tables run on the
  runner's thread, which owns the Django connection.
* Record: per result, one transaction: a `HealthReport`, flap damping and the
  circuit breaker (`health.transitions`) on the check's row, alerts through the alerts
  lifecycle (`health.alerting`), and a recovery action when the status turned bad.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.events import HEALTH, event_publish

from . import alerting, recovery
from .checks import CheckResult, Target, check_class
from .models import HealthCheck, HealthReport
from .scoring import Status
from .transitions import Breaker, BreakerState, Damping, damp, trip

logger = logging.getLogger(__name__)

# Beyond its timeout, how long a check stays leased to the runner that claimed it.
LEASE_MARGIN: Final = timedelta(seconds=10)
# How long one beat run keeps claiming due checks (beat runs the task every 5 s).
CLAIM_SECONDS: Final = 4.0
_POLL_SECONDS: Final = 0.05


def _workers() -> int:
    return int(settings.TRADEWATCH_HEALTH_WORKERS)


@dataclass(frozen=True)
class Outcome:
    """What one run of one check came to."""

    check_id: int
    name: str
    result: CheckResult
    status: Status
    previous: Status
    breaker: Breaker
    report_id: int

    @property
    def changed(self) -> bool:
        return self.status is not self.previous


@dataclass
class RunSummary:
    """What a runner pass did."""

    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ran(self) -> int:
        return len(self.outcomes)


def checks_claim(
    *, now: datetime, limit: int, check_ids: list[int] | None = None, force: bool = False
) -> list[HealthCheck]:
    """Take up to `limit` checks (due ones, or `check_ids` now when `force`) for this runner."""
    with transaction.atomic():
        candidates = HealthCheck.objects.select_for_update(skip_locked=True, of=("self",)).filter(
            Q(lease_until__isnull=True) | Q(lease_until__lt=now)
        )
        if check_ids is not None:
            candidates = candidates.filter(pk__in=check_ids)
        if not force:
            candidates = candidates.filter(enabled=True, next_run_at__lte=now)
        checks = list(candidates.select_related("source").order_by("next_run_at")[:limit])
        for check in checks:
            check.lease_until = now + check.timeout + LEASE_MARGIN
            # Scheduled from the claim, not the end of the run: intervals stay steady.
            check.next_run_at = now + check.interval
            if check.breaker == Breaker.OPEN:
                check.breaker = Breaker.HALF_OPEN  # this run is the half-open probe
        HealthCheck.objects.bulk_update(checks, ["lease_until", "next_run_at", "breaker"])
    return checks


def target_of(check: HealthCheck) -> Target:
    return Target(
        check_id=check.pk, name=check.name, kind=check.kind, config=dict(check.config or {}),
        timeout=check.timeout.total_seconds(), source_id=check.source_id,
    )  # fmt: skip


def probe(target: Target) -> CheckResult:
    """Run one probe, turning an unexpected error into a CRITICAL result."""
    try:
        return check_class(target.kind)().run(target, timezone.now())
    except Exception as exc:  # a broken probe is a failed check, never a dead runner
        logger.exception("health check %s failed unexpectedly", target.name)
        return CheckResult.failed(Status.CRITICAL, f"the check failed: {type(exc).__name__}: {exc}")


@dataclass
class _Running:
    check: HealthCheck
    deadline: float


class ProbePool:
    """Probes on threads of their own, each collected by its deadline at the latest."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.running: dict[int, _Running] = {}
        self._done: queue.Queue[tuple[int, CheckResult]] = queue.Queue()

    @property
    def free(self) -> int:
        return self.size - len(self.running)

    def start(self, check: HealthCheck) -> None:
        target = target_of(check)
        running = _Running(check, time.monotonic() + target.timeout)
        self.running[id(running)] = running
        thread = threading.Thread(
            target=lambda: self._done.put((id(running), probe(target))),
            name=f"health-{check.pk}",
            daemon=True,
        )
        thread.start()

    def collect(self, wait: float) -> list[tuple[HealthCheck, CheckResult]]:
        """Results finished within `wait` seconds, and timeouts of probes past their deadline."""
        collected: list[tuple[HealthCheck, CheckResult]] = []
        if self.running:
            nearest = min(running.deadline for running in self.running.values())
            wait = max(0.0, min(wait, nearest - time.monotonic()))
        try:
            item: tuple[int, CheckResult] | None = self._done.get(timeout=wait)
        except queue.Empty:
            item = None
        while item is not None:
            running = self.running.pop(item[0], None)
            if running is not None:  # None: an abandoned probe finishing late
                collected.append((running.check, item[1]))
            try:
                item = self._done.get_nowait()
            except queue.Empty:
                item = None
        now = time.monotonic()
        for token, running in list(self.running.items()):
            if now >= running.deadline:
                del self.running[token]
                seconds = running.check.timeout.total_seconds()
                collected.append((running.check, timed_out(seconds)))
        return collected


def timed_out(seconds: float) -> CheckResult:
    return CheckResult(
        Status.CRITICAL, latency_ms=seconds * 1000, issues=[f"no result within {seconds:g} s"]
    )


def checks_run_due(
    *, claim_seconds: float = CLAIM_SECONDS, workers: int | None = None
) -> RunSummary:
    """Run the checks that are due, claiming more as probes finish, for `claim_seconds`."""
    return _run(claim_seconds=claim_seconds, workers=workers or _workers())


def checks_run(*, check_ids: list[int], workers: int | None = None) -> RunSummary:
    """Run these checks now, due or not (command line, admin); skips leased ones."""
    return _run(claim_seconds=0, workers=workers or _workers(), check_ids=check_ids, force=True)


def _run(
    *, claim_seconds: float, workers: int, check_ids: list[int] | None = None, force: bool = False
) -> RunSummary:
    summary = RunSummary()
    pool = ProbePool(workers)
    stop_claiming = time.monotonic() + claim_seconds
    claiming = True
    while True:
        if claiming and pool.free > 0:
            claimed = checks_claim(
                now=timezone.now(), limit=pool.free, check_ids=check_ids, force=force
            )
            for check in claimed:
                if check_class(check.kind).uses_database:
                    summary.outcomes.append(
                        check_record(check=check, result=probe(target_of(check)))
                    )
                else:
                    pool.start(check)
            # Forced runs take their checks in one claim; due runs keep claiming a while.
            if force or (not claimed and time.monotonic() >= stop_claiming):
                claiming = False
        if not claiming and not pool.running:
            break
        for check, result in pool.collect(_POLL_SECONDS):
            summary.outcomes.append(check_record(check=check, result=result))
        if claiming and time.monotonic() >= stop_claiming:
            claiming = False
    return summary


def check_record(
    *, check: HealthCheck, result: CheckResult, now: datetime | None = None
) -> Outcome:
    """Store a result: report, damping, breaker, alerts and recovery, in one transaction."""
    now = now or timezone.now()
    previous = Status(check.status)
    was_open = check.breaker == Breaker.OPEN
    damping = damp(
        Damping(previous, check.consecutive_failures, check.consecutive_successes),
        result.status,
        failures_to_unhealthy=check.failures_to_unhealthy,
        successes_to_recover=check.successes_to_recover,
    )
    breaker = trip(
        BreakerState(Breaker(check.breaker), check.breaker_failures),
        result.status,
        threshold=check.breaker_threshold,
    )
    changes: dict[str, object] = {
        "status": damping.status.value,
        "observed_status": result.status.value,
        "consecutive_failures": damping.failures,
        "consecutive_successes": damping.successes,
        "breaker": breaker.state.value,
        "breaker_failures": breaker.failures,
        "last_run_at": now,
        "last_score": result.score,
        "last_latency_ms": result.latency_ms,
        "last_summary": result.summary(),
        "lease_until": None,
    }
    if damping.status is not previous:
        changes["status_changed_at"] = now
    if breaker.state is Breaker.OPEN:
        changes["breaker_opened_at"] = now
        # Treated as down: the next probe waits for the breaker, not the interval.
        changes["next_run_at"] = now + check.breaker_retry
    elif check.breaker != Breaker.CLOSED:
        changes["breaker_opened_at"] = None
    with transaction.atomic():
        report = HealthReport.objects.create(
            health_check=check, created_at=now, status=result.status.value,
            check_status=damping.status.value, score=result.score or 0,
            latency_ms=result.latency_ms, issues=result.issues, warnings=result.warnings,
            details=result.details, breaker=breaker.state.value,
        )  # fmt: skip
        HealthCheck.objects.filter(pk=check.pk).update(**changes)
        for name, value in changes.items():
            setattr(check, name, value)
        alerting.health_alerts_apply(
            check=check, status=damping.status, result=result, now=now,
            changed=damping.status is not previous,
        )  # fmt: skip
        if damping.status is not previous:
            recovery.recovery_for_check(
                check=check, status=damping.status, previous=previous, now=now
            )
            event_publish(
                HEALTH, status_change_event(check, previous, now), source_id=check.source_id
            )
    if breaker.state is Breaker.OPEN and not was_open:
        logger.warning("health check %s: circuit breaker open", check.name)
    return Outcome(
        check_id=check.pk, name=check.name, result=result, status=damping.status,
        previous=previous, breaker=breaker.state, report_id=report.pk,
    )  # fmt: skip


def status_change_event(check: HealthCheck, previous: Status, now: datetime) -> dict[str, object]:
    """A check's status change as the live event stream sends it."""
    return {
        "check_id": check.pk,
        "check": check.name,
        "kind": check.kind,
        "source_id": check.source_id,
        "status": check.status,
        "previous_status": previous.value,
        "score": check.last_score,
        "summary": check.last_summary,
        "breaker": check.breaker,
        "at": now,
    }


def breaker_reset(*, check_ids: list[int], now: datetime | None = None) -> int:
    """Close the breakers of these checks by hand and probe them at the next beat."""
    now = now or timezone.now()
    return HealthCheck.objects.filter(pk__in=check_ids).update(
        breaker=Breaker.CLOSED, breaker_failures=0, breaker_opened_at=None, next_run_at=now
    )
