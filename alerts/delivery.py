"""Delivery: claim a notification, send it through its channel, settle the outcome.

At least once, at most a duplicate per fault: a worker claims a row with a lease
(`claimed_until`) and marks it sent only after the endpoint said 2xx. A worker that
dies mid-send leaves the lease to run out; the sweeper then queues the row again, and
the retry carries the same `webhook-id` so receivers can tell. Waits between attempts
live in `next_attempt_at`; only short ones also ride on a broker countdown.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from .channels.base import DeliveryResult, NotificationMessage
from .channels.registry import acts_once, channel_kind
from .models import Channel, DeliveryAttempt, Notification, Severity
from .routing import notifications_create, notifications_enqueue

logger = logging.getLogger(__name__)

State = Notification.State
Event = Notification.Event

# Events Tradewatch records about its own delivery; pack rules turn them into alerts.
NOTIFICATION_FAILED = "notification_failed"
CHANNEL_DISABLED = "channel_disabled"


@dataclass(frozen=True)
class Outcome:
    """What one call of `notification_deliver` did."""

    state: str
    detail: str = ""


def backoff(attempt: int, *, jitter: random.Random | None = None) -> float:
    """Seconds before attempt `attempt + 1`: exponential, capped, with full jitter.

    Half the step is fixed and half random, so retries of many notifications spread
    out while the wait still grows with each failure.
    """
    base = settings.TRADEWATCH_DELIVERY_BACKOFF_SECONDS
    step = min(settings.TRADEWATCH_DELIVERY_BACKOFF_MAX_SECONDS, base * 2.0 ** max(attempt - 1, 0))
    rng = jitter or random
    return step / 2 + rng.uniform(0, step / 2)


def _lease() -> timedelta:
    return timedelta(seconds=settings.TRADEWATCH_DELIVERY_LEASE_SECONDS)


# A broker countdown may fire a little before the instant it was set for; a retry
# arriving that early still counts as due instead of being dropped until the sweeper.
EARLY_SLACK = timedelta(seconds=1)


def _claim(notification_id: int, now: datetime) -> Notification | Outcome:
    """Take the notification for this worker, or say why not (sent, not due, held)."""
    with transaction.atomic():
        # The notification row only: locking its channel row too would make every other
        # worker's claim on that channel skip its notification as "locked".
        notification = (
            Notification.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk=notification_id, state=State.PENDING)
            .filter(next_attempt_at__lte=now + EARLY_SLACK)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .select_related("channel")
            .first()
        )
        if notification is None:
            return Outcome("skipped", "sent, failed, not due, or being sent elsewhere")
        channel = notification.channel
        if not channel.enabled:
            notification.attempts += 1
            _fail(notification, channel, now, f"channel {channel.name} is disabled")
            return Outcome(State.FAILED, "channel disabled")
        if notification.event == Event.DIGEST:
            _digest_collect(notification)
        elif (
            channel.rate_limit
            and notification.event not in (Event.TEST, Event.OPERATIONS_DIGEST)
            and not acts_once(channel.kind)
        ):
            # A command to a trading system is never held back for a digest, nor is a
            # test or an operations digest (asked for by a person, or once a day).
            held = _rate_limit_hold(notification, channel, now)
            if held is not None:
                return held
            notification.rate_slot_at = now
        notification.attempts += 1
        notification.claimed_until = now + _lease()
        notification.queued_until = None
        notification.save(
            update_fields=["attempts", "claimed_until", "queued_until", "rate_slot_at"]
        )
    return notification


def _rate_limit_hold(notification: Notification, channel: Channel, now: datetime) -> Outcome | None:
    """Hold the notification for the channel's next digest if its window is full."""
    # The channel row's lock makes counting and taking a slot one step across workers.
    Channel.objects.select_for_update().filter(pk=channel.pk).first()
    window_start = now - channel.rate_window
    in_window = Notification.objects.filter(channel=channel, rate_slot_at__gt=window_start)
    if in_window.count() < channel.rate_limit:
        return None
    oldest = in_window.order_by("rate_slot_at").values_list("rate_slot_at", flat=True).first()
    notification.state = State.SUPPRESSED
    notification.held = Notification.Held.RATE_LIMITED
    notification.save(update_fields=["state", "held"])
    digest_due = (oldest or now) + channel.rate_window
    _digest_ensure(channel, due=digest_due, now=now)
    return Outcome(State.SUPPRESSED, f"rate limited; digest at {digest_due.isoformat()}")


def _digest_ensure(channel: Channel, *, due: datetime, now: datetime) -> None:
    """One digest waits per channel; create it, due at `due`, if none does."""
    wait = max((due - now).total_seconds(), 0.0)
    digest = Notification(
        channel=channel, event=Event.DIGEST, severity=Severity.INFO, payload={},
        created_at=now, next_attempt_at=due, queued_until=_queued_until(due, wait),
    )  # fmt: skip
    try:
        with transaction.atomic():
            digest.save()
    except IntegrityError:
        return  # one is waiting already; it will carry this one too
    _queue_later(digest.pk, wait)


def _digest_collect(digest: Notification) -> None:
    """Attach every held-back notification of the channel to this digest."""
    Notification.objects.filter(
        channel_id=digest.channel_id,
        state=State.SUPPRESSED,
        held=Notification.Held.RATE_LIMITED,
        digest__isnull=True,
    ).update(digest=digest)
    severities = Notification.objects.filter(digest=digest).values_list("severity", flat=True)
    digest.severity = max(severities, default=Severity.INFO)
    digest.save(update_fields=["severity"])


def notification_message(notification: Notification) -> NotificationMessage:
    """The plain message a channel kind sends for this row."""
    channel, created_at = notification.channel.name, notification.created_at.isoformat()
    if notification.event == Event.OPERATIONS_DIGEST:
        alert = {key: value for key, value in notification.payload.items() if key != "report"}
        return NotificationMessage(
            webhook_id=notification.webhook_id,
            event=notification.event,
            alert=alert,
            channel=channel,
            created_at=created_at,
            report=notification.payload.get("report"),
        )
    if notification.event != Event.DIGEST:
        return NotificationMessage(
            webhook_id=notification.webhook_id,
            event=notification.event,
            alert=notification.payload,
            channel=channel,
            created_at=created_at,
        )
    carried = [
        {"event": event, **payload}
        for event, payload in Notification.objects.filter(digest=notification)
        .order_by("created_at", "id")
        .values_list("event", "payload")
    ]
    headline = max(carried, key=lambda item: Severity[item["severity"]].value, default={})
    return NotificationMessage(
        webhook_id=notification.webhook_id,
        event=Event.DIGEST,
        alert=headline,
        digest=tuple(carried),
        channel=channel,
        created_at=created_at,
    )


def _send(notification: Notification) -> DeliveryResult:
    channel = notification.channel
    try:
        kind = channel_kind(channel.kind)(channel.config, channel.secrets)
        return kind.send(notification_message(notification))
    except Exception as exc:
        # A fault in a channel kind or its configuration is retried like a network
        # error, and recorded: it must not leave the notification claimed and silent.
        logger.exception(
            "channel %s raised while sending notification %s", channel.pk, notification.pk
        )
        return DeliveryResult(ok=False, error=f"{type(exc).__name__}: {exc}"[:1000])


def notification_deliver(*, notification_id: int, now: datetime | None = None) -> Outcome:
    """Send one notification if it is due and nobody else is sending it."""
    claimed = _claim(notification_id, now or timezone.now())
    if isinstance(claimed, Outcome):
        return claimed
    if claimed.event == Event.DIGEST and not claimed.payload and not claimed.carried.exists():
        Notification.objects.filter(pk=claimed.pk).update(
            state=State.SUPPRESSED, claimed_until=None, last_error="nothing was held back"
        )
        return Outcome(State.SUPPRESSED, "empty digest")
    result = _send(claimed)
    return notification_settle(claimed, result, now=timezone.now())


def notification_settle(
    notification: Notification, result: DeliveryResult, *, now: datetime
) -> Outcome:
    """Record the attempt; mark sent, schedule the retry, or fail for good."""
    channel = notification.channel
    logger.info(
        "delivery notification=%s channel=%s kind=%s attempt=%d ok=%s status=%s "
        "duration_ms=%.1f error=%r answer=%r",
        notification.pk, channel.pk, channel.kind, notification.attempts, result.ok,
        result.status, result.duration_ms, result.error[:200], result.answer[:200],
    )  # fmt: skip
    with transaction.atomic():
        DeliveryAttempt.from_result(notification, now, result).save()
        if result.ok:
            Notification.objects.filter(pk=notification.pk).update(
                state=State.SENT, sent_at=now, claimed_until=None, last_status=result.status,
                last_error="",
            )  # fmt: skip
            Channel.objects.filter(pk=channel.pk).update(
                sent_count=F("sent_count") + 1, last_success_at=now
            )
            if notification.event == Event.DIGEST:
                _digest_follow_up(channel, now)
            return Outcome(State.SENT)
        # The endpoint's own words are what an operator needs to fix it.
        error = result.error or f"HTTP {result.status}"
        if result.answer:
            error = f"{error} Answer: {result.answer[:300]}"
        Notification.objects.filter(pk=notification.pk).update(
            last_status=result.status, last_error=error[:1000]
        )
        notification.last_status = result.status
        if result.disable_channel:
            channel_disable(
                channel, reason=f"the endpoint answered {result.status} (gone)", now=now
            )
        final = (
            result.permanent
            or result.disable_channel
            or notification.event == Event.TEST
            or notification.attempts >= settings.TRADEWATCH_DELIVERY_MAX_ATTEMPTS
        )
        if final:
            _fail(notification, channel, now, error)
            return Outcome(State.FAILED, error)
        wait = max(backoff(notification.attempts), result.retry_after or 0.0)
        _retry_schedule(notification, now=now, wait=wait)
        return Outcome(State.PENDING, f"retry in {wait:.1f} s: {error}")


def _retry_schedule(notification: Notification, *, now: datetime, wait: float) -> None:
    due = now + timedelta(seconds=wait)
    Notification.objects.filter(pk=notification.pk).update(
        next_attempt_at=due, claimed_until=None, queued_until=_queued_until(due, wait)
    )
    _queue_later(notification.pk, wait)


def _queued_until(due: datetime, wait: float) -> datetime | None:
    """The queue lease of a row due after `wait` s: None when only the sweeper will queue
    it (too long for a broker countdown, so a broker restart cannot lose the wait)."""
    if wait > settings.TRADEWATCH_DELIVERY_COUNTDOWN_MAX_SECONDS:
        return None
    return due + timedelta(seconds=settings.TRADEWATCH_DELIVERY_REQUEUE_SECONDS)


def _queue_later(notification_id: int, wait: float) -> None:
    """Queue the row with a countdown on commit, when the wait is short enough for one."""
    if wait <= settings.TRADEWATCH_DELIVERY_COUNTDOWN_MAX_SECONDS:
        transaction.on_commit(lambda: notifications_enqueue([notification_id], countdown=wait))


def _fail(notification: Notification, channel: Channel, now: datetime, error: str) -> None:
    """The notification failed for good: say so, and try the policy's fallback channel."""
    Notification.objects.filter(pk=notification.pk).update(
        state=State.FAILED, claimed_until=None, attempts=notification.attempts,
        last_error=error[:1000],
    )  # fmt: skip
    Channel.objects.filter(pk=channel.pk).update(
        failed_count=F("failed_count") + 1, last_error=error[:1000], last_error_at=now
    )
    if notification.event == Event.TEST:
        return
    _fallback(notification, channel, now)
    delivery_problem_record(
        NOTIFICATION_FAILED,
        f"Notification {notification.pk} ({notification.event}) to channel {channel.name} "
        f"failed after {notification.attempts} attempt(s): {error[:300]}",
        context={"notification": notification.pk, "channel": channel.pk, "error": error[:300]},
    )


def _fallback(notification: Notification, channel: Channel, now: datetime) -> None:
    if notification.is_fallback or notification.policy_id is None:
        return
    policy = notification.policy
    fallback = policy.fallback_channel if policy is not None else None
    if fallback is None or fallback.pk == channel.pk or not fallback.enabled:
        return
    if acts_once(fallback.kind):
        return  # a failed message must not make a trading system act
    notifications_create(
        [
            Notification(
                alert_id=notification.alert_id, transition_id=notification.transition_id,
                channel=fallback, policy=policy, event=notification.event,
                severity=notification.severity, payload=notification.payload, is_fallback=True,
            )
        ],
        at=now,
    )  # fmt: skip


def _digest_follow_up(channel: Channel, now: datetime) -> None:
    """Held-back notifications that missed this digest go out in the next one."""
    waiting = Notification.objects.filter(
        channel=channel, state=State.SUPPRESSED, held=Notification.Held.RATE_LIMITED,
        digest__isnull=True,
    ).exists()  # fmt: skip
    if waiting:
        _digest_ensure(channel, due=now + channel.rate_window, now=now)


def channel_disable(channel: Channel, *, reason: str, now: datetime) -> None:
    """Stop using a channel whose endpoint is gone, and raise an alert about it."""
    updated = Channel.objects.filter(pk=channel.pk, enabled=True).update(
        enabled=False, disabled_reason=reason[:500], disabled_at=now
    )
    if updated:
        from .routing import routing_changed

        transaction.on_commit(routing_changed)
        delivery_problem_record(
            CHANNEL_DISABLED,
            f"Channel {channel.name} was disabled: {reason}",
            context={"channel": channel.pk, "reason": reason},
        )


def delivery_problem_record(event_type: str, message: str, *, context: dict[str, object]) -> None:
    """Record a delivery problem as an event of Tradewatch itself, and evaluate it.

    The pack's delivery rules watch these events, so the problem becomes an alert
    through the same rules, silences and channels as any other.
    """
    from metrics.models import Event as SourceEvent
    from metrics.services import system_source

    from .trigger import evaluation_request

    source = system_source()
    SourceEvent.objects.create(
        source=source, type=event_type, message=message[:2000], context=context,
        ts=timezone.now(),
    )  # fmt: skip
    source_id = source.pk
    transaction.on_commit(lambda: evaluation_request(source_id))


def outbox_sweep(*, now: datetime | None = None, limit: int = 500) -> int:
    """Queue notifications that are due and neither queued nor being sent; return how many.

    Covers everything a broker can lose: tasks queued before a Redis restart, retries
    waiting longer than a countdown, and rows of a worker killed mid-send (its lease
    ran out). `SKIP LOCKED` lets two sweepers run at once without queueing a row twice.
    """
    now = now or timezone.now()
    requeue = timedelta(seconds=settings.TRADEWATCH_DELIVERY_REQUEUE_SECONDS)
    with transaction.atomic():
        ids = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(state=State.PENDING, next_attempt_at__lte=now)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .filter(Q(queued_until__isnull=True) | Q(queued_until__lt=now))
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            Notification.objects.filter(pk__in=ids).update(queued_until=now + requeue)
            transaction.on_commit(lambda: notifications_enqueue(ids))
    return len(ids)


def notification_retry(*, notification_id: int, now: datetime | None = None) -> bool:
    """A person asks for another try of a failed notification: queue it now."""
    now = now or timezone.now()
    requeue = timedelta(seconds=settings.TRADEWATCH_DELIVERY_REQUEUE_SECONDS)
    with transaction.atomic():
        updated = Notification.objects.filter(
            pk=notification_id, state__in=[State.FAILED, State.PENDING]
        ).update(
            state=State.PENDING, attempts=0, next_attempt_at=now, claimed_until=None,
            queued_until=now + requeue,
        )  # fmt: skip
        if updated:
            transaction.on_commit(lambda: notifications_enqueue([notification_id]))
    return bool(updated)


def channel_send_test(
    *,
    channel: Channel,
    severity: int = Severity.INFO,
    message: str = "Test notification from Tradewatch: this channel works.",
    now: datetime | None = None,
) -> DeliveryResult:
    """Send a test through the channel now, record it like any notification, and say how
    it went (one attempt: an operator waiting for the answer wants it, not a retry)."""
    from .payloads import notification_test_payload

    now = now or timezone.now()
    notification = Notification.objects.create(
        channel=channel, event=Event.TEST, severity=severity,
        payload=notification_test_payload(severity=severity, message=message), created_at=now,
        next_attempt_at=now, attempts=1, claimed_until=now + _lease(),
    )  # fmt: skip
    result = _send(notification)
    notification_settle(notification, result, now=timezone.now())
    return result
