"""Periodic work runs once per period, however many times it is sent.

Beat's lock (`monitoring_site.beat`) keeps a second beat from sending anything; this is
the second line: every run beat sends carries its entry's name in the
`periodic_task_name` header, and before the task body runs it claims the entry's row in
`health.PeriodicRun` with `SELECT ... FOR UPDATE SKIP LOCKED`. A run that finds the row
locked (another run is claiming it this instant), still held (another run is working) or
started less than half a period ago (this period already ran) does nothing. So a double
run changes nothing, whichever way the duplicate came: a second beat, a beat that lost
its lock and took it back, a message redelivered after a worker died.

Tasks called any other way (by hand, from the admin, from tests) run unconditionally.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import Task
from django.db import transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

PERIODIC_HEADER = "periodic_task_name"
# A run sent this long after the previous one started is of the next period; shorter,
# of the same period. Half: beat's own jitter is far smaller, a missed period far longer.
SAME_PERIOD_FRACTION = 0.5
# How long a claim holds when the task sets no time limit.
DEFAULT_HOLD = timedelta(minutes=10)


@dataclass(frozen=True)
class Claim:
    """Whether a run may go ahead, and why not when it may not."""

    granted: bool
    reason: str = ""


def entry_period(name: str) -> timedelta | None:
    """The interval of the beat entry `name` (None: a crontab, clocked, or unknown entry)."""
    from django_celery_beat.models import PeriodicTask

    row = (
        PeriodicTask.objects.filter(name=name, interval__isnull=False)
        .values_list("interval__every", "interval__period")
        .first()
    )
    if row is None:
        return None
    every, period = row
    return timedelta(**{period: every})


def period_claim(
    *,
    name: str,
    task: str,
    hold: timedelta,
    period: timedelta | None = None,
    now: datetime | None = None,
) -> Claim:
    """Claim this period of the beat entry `name` for one run of `task`.

    `period`: the entry's interval when it is not a beat entry (read from beat's table
    otherwise). `hold`: how long the claim keeps other runs out if this one never says
    it finished (its worker died): the task's time limit.
    """
    from health.models import PeriodicRun

    now = now or timezone.now()
    period = period or entry_period(name)
    # The row exists before anyone locks it; two first runs racing both insert nothing twice.
    PeriodicRun.objects.bulk_create([PeriodicRun(name=name, task=task)], ignore_conflicts=True)
    with transaction.atomic():
        run = PeriodicRun.objects.select_for_update(skip_locked=True).filter(name=name).first()
        if run is None:
            return Claim(False, "another run is claiming this period")
        if run.running_until is not None and run.running_until > now:
            reason = "another run of this entry is still working"
        elif (
            period is not None
            and run.last_started_at is not None
            and now - run.last_started_at < period * SAME_PERIOD_FRACTION
        ):
            reason = "this period already ran"
        else:
            run.last_started_at = now
            run.running_until = now + hold
            run.runs += 1
            run.task = task
            run.save(update_fields=["last_started_at", "running_until", "runs", "task"])
            return Claim(True)
        run.skipped += 1
        run.save(update_fields=["skipped"])
        return Claim(False, reason)


def period_release(*, name: str, now: datetime | None = None) -> None:
    """The run of `name` is over: the next period's run may start when due."""
    from health.models import PeriodicRun

    PeriodicRun.objects.filter(name=name).update(
        running_until=None, last_finished_at=now or timezone.now()
    )


class TradewatchTask(Task[Any, Any]):
    """Every Tradewatch task's base: periodic runs claim their period first."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        name = getattr(self.request, PERIODIC_HEADER, None)
        if not isinstance(name, str) or not name:
            return super().__call__(*args, **kwargs)
        limit = self.time_limit or self.app.conf.task_time_limit
        hold = timedelta(seconds=limit) if limit else DEFAULT_HOLD
        claim = period_claim(name=name, task=self.name, hold=hold)
        if not claim.granted:
            logger.info("periodic run of %r skipped: %s", name, claim.reason)
            return None
        try:
            return super().__call__(*args, **kwargs)
        finally:
            period_release(name=name)
