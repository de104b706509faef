"""Tradewatch watching itself: beat, workers, queues, delivery, and a watchdog.

Every worker records that it is alive (and which queues it consumes) every
`TRADEWATCH_WORKER_HEARTBEAT_SECONDS`, from a timer in the worker itself, and the first
worker whose turn it is runs the self-check (at most once per
`TRADEWATCH_SELF_CHECK_SECONDS` across all of them, claimed like periodic work). It
does not depend on beat, so it notices beat's death.

The self-check stores what it measured as metric samples of the system source
(`tradewatch`) and evaluates that source at once, so the self-monitoring rules below
raise, repeat and resolve alerts through the same lifecycle, silences, policies and
channels as any trading alert:

* `beat_tick_age_seconds`: seconds since beat's last tick ran (Beat not ticking);
* `workers_alive{queue}`: workers that consume the queue and reported in the last
  `TRADEWATCH_WORKER_STALE_SECONDS` (Workers absent);
* `queue_backlog{queue}`: messages waiting in the broker (Queue backlog growing);
* `watchdog`: always 1, so the Watchdog alert always fires and repeats every
  INFO repeat interval: route it to a dead man's switch outside Tradewatch, which
  alarms when the repeats stop (Tradewatch, its database or its network died).

Failing notifications are the trading pack's `notification_failed` event rule, on the
same source. When no worker consumes `delivery`, the self-check sends the system
source's own notifications itself, so "workers absent" still reaches someone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from celery import bootsteps
from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

PACK = "self"
BEAT_TICK_AGE = "beat_tick_age_seconds"
WORKERS_ALIVE = "workers_alive"
QUEUE_BACKLOG = "queue_backlog"
WATCHDOG = "watchdog"
SELF_CHECK = "Self-monitoring"

WARNING, ERROR, CRITICAL, INFO = 30, 40, 50, 20


def tradewatch_queues() -> list[str]:
    """Every queue Tradewatch routes work to (the settings' routes and the default)."""
    routes: Mapping[str, Mapping[str, str]] = settings.CELERY_TASK_ROUTES
    queues = {settings.CELERY_TASK_DEFAULT_QUEUE} | {route["queue"] for route in routes.values()}
    return sorted(queues)


# --- the rules ---------------------------------------------------------------------------


def pack_rules() -> list[dict[str, Any]]:
    """The self-monitoring rules, as Rule fields plus their thresholds."""
    minutes = timedelta(minutes=1)
    return [
        {
            "key": "beat_not_ticking",
            "name": "Tradewatch beat not ticking",
            "kind": "threshold",
            "metric": BEAT_TICK_AGE,
            "window": 5 * minutes,
            "description": "Seconds since beat's last tick ran on a worker: past a minute, "
            "no periodic work (time-based rules, outbox sweeps, health checks) is sent.",
            "message_template": "Beat has not ticked for {value:.0f} s",
            "thresholds": [(CRITICAL, ">", 60.0, 30.0)],
        },
        {
            "key": "workers_absent",
            "name": "Tradewatch workers absent",
            "kind": "threshold",
            "metric": WORKERS_ALIVE,
            "window": 5 * minutes,
            "description": "No live worker consumes a queue: its work waits undone.",
            "message_template": "{value:g} workers consume this queue",
            "thresholds": [(CRITICAL, "<", 1.0, None)],
        },
        {
            "key": "queue_backlog",
            "name": "Tradewatch queue backlog growing",
            "kind": "rate_of_change",
            "metric": QUEUE_BACKLOG,
            "window": 5 * minutes,
            "description": "Messages waiting in a queue grew this much in 5 minutes: its "
            "workers fall behind (add workers for that queue).",
            "message_template": "Queue backlog grew by {value:.0f} messages in 5 minutes",
            "thresholds": [(ERROR, ">", 5000.0, None), (WARNING, ">", 500.0, None)],
        },
        {
            "key": "watchdog",
            "name": "Tradewatch watchdog",
            "kind": "threshold",
            "metric": WATCHDOG,
            "window": 2 * minutes,
            "missing_data": "resolve",
            "description": "Always firing while Tradewatch works, repeated every INFO "
            "repeat interval: send it to a dead man's switch outside Tradewatch, which "
            "alarms when the repeats stop.",
            "message_template": "Tradewatch is alive",
            "thresholds": [(INFO, ">=", 1.0, None)],
        },
    ]


def install_self_monitoring_rules(**kwargs: Any) -> int:
    """Install the rules never installed before, scoped to the system source (post_migrate).

    Written once (recorded in `RulePackInstall`), then the operator's: edits and
    deletions in the admin survive every later migrate.
    """
    from alerts.models import Rule, RulePackInstall, Threshold
    from metrics.services import system_source

    using = kwargs.get("using", "default")
    installed = 0
    source = None
    for item in pack_rules():
        fields = dict(item)
        key, thresholds = fields.pop("key"), fields.pop("thresholds")
        with transaction.atomic(using=using):
            _, created = RulePackInstall.objects.using(using).get_or_create(pack=PACK, key=key)
            if not created or Rule.objects.using(using).filter(name=fields["name"]).exists():
                continue
            source = source or system_source()
            rule = Rule.objects.using(using).create(
                scope=Rule.Scope.SOURCE, source=source, pack=PACK, **fields
            )
            Threshold.objects.using(using).bulk_create(
                Threshold(rule=rule, severity=severity, comparison=comparison, value=value,
                          clear_value=clear)
                for severity, comparison, value, clear in thresholds
            )  # fmt: skip
            installed += 1
    return installed


# --- what the workers report -------------------------------------------------------------


def worker_presence_record(
    *, name: str, queues: Iterable[str], now: datetime | None = None
) -> None:
    """Store that the worker `name`, consuming `queues`, is alive now."""
    from .models import ProcessHeartbeat

    ProcessHeartbeat.objects.update_or_create(
        role=ProcessHeartbeat.Role.WORKER,
        name=name,
        defaults={"last_seen": now or timezone.now(), "queues": ",".join(sorted(queues))[:200]},
    )


def workers_alive(*, now: datetime) -> dict[str, int]:
    """Live workers per queue (every Tradewatch queue, 0 when none consumes it)."""
    from .models import ProcessHeartbeat

    since = now - timedelta(seconds=settings.TRADEWATCH_WORKER_STALE_SECONDS)
    alive = dict.fromkeys(tradewatch_queues(), 0)
    for queues in ProcessHeartbeat.objects.filter(
        role=ProcessHeartbeat.Role.WORKER, last_seen__gte=since
    ).values_list("queues", flat=True):
        for queue in filter(None, queues.split(",")):
            alive[queue] = alive.get(queue, 0) + 1
    return alive


def beat_tick_age(*, now: datetime) -> float | None:
    """Seconds since beat's last tick ran (None before its first one)."""
    from .models import ProcessHeartbeat

    last = (
        ProcessHeartbeat.objects.filter(role=ProcessHeartbeat.Role.BEAT)
        .order_by("-last_seen")
        .values_list("last_seen", flat=True)
        .first()
    )
    return None if last is None else max((now - last).total_seconds(), 0.0)


def queue_backlogs(queues: Iterable[str]) -> dict[str, int]:
    """Messages waiting in each queue of the broker (a queue it cannot read counts 0)."""
    from celery import current_app

    backlog: dict[str, int] = {}
    with current_app.connection_for_read() as connection:
        channel = connection.default_channel
        for queue in queues:
            try:
                declared = channel.queue_declare(queue=queue, passive=True)  # type: ignore[attr-defined]
                backlog[queue] = int(declared.message_count)
            except Exception:
                # Never declared yet, or emptied (Redis drops empty lists): nothing waits.
                backlog[queue] = 0
    return backlog


# --- the check ---------------------------------------------------------------------------


def self_check(*, now: datetime | None = None) -> dict[str, Any]:
    """Measure Tradewatch's own health, store it on the system source, evaluate it now."""
    from alerts.evaluation import source_evaluate
    from core.query_params import labels_key
    from metrics.ingest import metric_ingest
    from metrics.services import system_source
    from metrics.validation import Sample

    now = now or timezone.now()
    alive = workers_alive(now=now)
    try:
        backlog = queue_backlogs(alive)
    except Exception:
        logger.warning("self-check could not read the queues' backlog", exc_info=True)
        backlog = {}
    age = beat_tick_age(now=now)

    def sample(name: str, value: float, labels: dict[str, str] | None = None) -> Sample:
        labels = labels or {}
        return Sample(name, labels, labels_key(labels), now, float(value))

    samples = [sample(WATCHDOG, 1.0)]
    if age is not None:
        samples.append(sample(BEAT_TICK_AGE, age))
    samples += [sample(WORKERS_ALIVE, count, {"queue": q}) for q, count in alive.items()]
    samples += [sample(QUEUE_BACKLOG, count, {"queue": q}) for q, count in backlog.items()]
    source = system_source()
    # Evaluated here rather than queued: the ingest queue's workers may be the ones absent.
    metric_ingest(source=source, samples=samples, evaluate=False)
    source_evaluate(source_id=source.pk, now=now, source=source)
    if not alive.get("delivery"):
        own_notifications_deliver(source_id=source.pk)
    return {"beat_tick_age_seconds": age, "workers_alive": alive, "queue_backlog": backlog}


def own_notifications_deliver(*, source_id: int, limit: int = 20) -> int:
    """Send the system source's due notifications from here (no delivery worker is alive)."""
    from alerts.delivery import notification_deliver
    from alerts.models import Notification

    due = Notification.objects.filter(
        alert__source_id=source_id,
        state=Notification.State.PENDING,
        next_attempt_at__lte=timezone.now(),
    ).values_list("pk", flat=True)[:limit]
    sent = 0
    for notification_id in list(due):
        outcome = notification_deliver(notification_id=notification_id)
        sent += outcome.state == Notification.State.SENT
    return sent


def self_check_if_due() -> bool:
    """Run the self-check unless another worker ran it this period; True when it ran."""
    from health.periodic import period_claim, period_release

    if settings.TRADEWATCH_SELF_CHECK_SECONDS <= 0:
        return False  # switched off
    period = timedelta(seconds=settings.TRADEWATCH_SELF_CHECK_SECONDS)
    claim = period_claim(
        name=SELF_CHECK, task="health.selfmonitoring.self_check", hold=4 * period, period=period
    )
    if not claim.granted:
        return False
    try:
        self_check()
    finally:
        period_release(name=SELF_CHECK)
    return True


class WorkerPresence(bootsteps.StartStopStep):
    """A worker step: report this worker alive, and run the self-check when its turn.

    Runs on the worker's own timer, in its main process: Celery's Django fixup makes
    the pool processes it forks drop the database connection this opens, unused.
    """

    requires = ("celery.worker.components:Timer",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.timer_entry: Any = None

    def start(self, worker: Any) -> None:
        self.timer_entry = worker.timer.call_repeatedly(
            settings.TRADEWATCH_WORKER_HEARTBEAT_SECONDS, self.report, (worker,), priority=10
        )

    def stop(self, worker: Any) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None

    def report(self, worker: Any) -> None:
        """Record this worker's presence, then run the self-check if it is due."""
        try:
            close_old_connections()
            queues = list(worker.app.amqp.queues.consume_from or worker.app.amqp.queues)
            worker_presence_record(name=worker.hostname, queues=queues)
            self_check_if_due()
        except Exception:
            # The database or broker may be down: that is what the next report tells.
            logger.warning("worker presence report failed", exc_info=True)
