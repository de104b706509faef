"""The periodic work Tradewatch needs, installed into django-celery-beat's tables.

Entries are created when missing and otherwise left alone, so an operator's edits in
the admin (interval, enabled flag) survive every later `migrate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PeriodicWork:
    """One beat entry: a task run every `every_seconds`."""

    name: str
    task: str
    every_seconds: int
    description: str

    @property
    def expires_seconds(self) -> int:
        # A run still queued after its interval is stale: the next one supersedes it,
        # so a backlog after an outage does not replay hundreds of identical runs.
        return max(self.every_seconds, 5)


PERIODIC_WORK: tuple[PeriodicWork, ...] = (
    PeriodicWork(
        name="Beat tick",
        task="health.tasks.record_beat_tick",
        every_seconds=15,
        description="Records that beat is alive; /readyz and self-monitoring read it.",
    ),
    PeriodicWork(
        name="Evaluate all sources",
        task="alerts.tasks.evaluate_all_sources",
        every_seconds=15,
        description="Rules that depend on time passing: absence, staleness, `for` durations.",
    ),
    PeriodicWork(
        name="Sweep the notification outbox",
        task="alerts.tasks.sweep_outbox",
        every_seconds=5,
        description="Queues notifications that are due for a retry, were lost by the "
        "broker, or were abandoned by a worker that died while sending.",
    ),
    PeriodicWork(
        name="Escalate unacknowledged alerts",
        task="alerts.tasks.escalate",
        every_seconds=30,
        description="Sends alerts left firing and unacknowledged past their policy's "
        "escalation time to its escalation channels.",
    ),
    PeriodicWork(
        name="Poll Telegram for button presses",
        task="chat.tasks.poll_telegram",
        every_seconds=5,
        description="Asks the bots of Telegram channels set to `buttons: poll` for the "
        "buttons pressed since (channels set to `webhook` are called by Telegram instead).",
    ),
    PeriodicWork(
        name="Run due health checks",
        task="health.tasks.run_due_checks",
        every_seconds=5,
        description="Probes every health check whose interval is up; each at its own "
        "interval, with flap damping and a circuit breaker.",
    ),
    PeriodicWork(
        name="Send operations digests",
        task="monitoring_site.tasks.send_digests",
        every_seconds=60,
        description="Sends each policy's daily or weekly operations digest once it is due "
        "(once per period, however many beats or workers run).",
    ),
    PeriodicWork(
        name="Prune health reports",
        task="health.tasks.prune",
        every_seconds=3600,
        description="Deletes health reports past their retention (30 days), in chunks.",
    ),
    PeriodicWork(
        name="Prune alerts and notifications",
        task="alerts.tasks.prune",
        every_seconds=3600,
        description="Deletes resolved alerts and finished notifications past their "
        "retention (90 days), in chunks.",
    ),
    PeriodicWork(
        name="Prune metrics",
        task="metrics.tasks.prune",
        every_seconds=3600,
        description="Drops the day (samples) and week (trades, events) partitions wholly "
        "past the metric retention; deletes in chunks what the default partition caught.",
    ),
    PeriodicWork(
        name="Create metric partitions ahead",
        task="metrics.tasks.partitions_ensure",
        every_seconds=3600,
        description="Creates the partitions of samples, trades and events for the next "
        "days, and moves rows the default partition caught into their own partition.",
    ),
)


def install_periodic_tasks(**kwargs: Any) -> None:
    """Create the beat entries that do not exist yet (a post_migrate receiver)."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    using = kwargs.get("using", "default")
    for work in PERIODIC_WORK:
        if PeriodicTask.objects.using(using).filter(name=work.name).exists():
            continue
        interval, _ = IntervalSchedule.objects.using(using).get_or_create(
            every=work.every_seconds, period=IntervalSchedule.SECONDS
        )
        PeriodicTask.objects.using(using).create(
            name=work.name,
            task=work.task,
            interval=interval,
            expire_seconds=work.expires_seconds,
            description=work.description,
        )
