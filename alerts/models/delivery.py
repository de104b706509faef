"""Where alerts go: channels, the policies that route to them, and the notification outbox."""

from __future__ import annotations

import json
import uuid
import zoneinfo
from datetime import time, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from metrics.models import Source, Tag

from .alerting import Alert, AlertTransition, Rule, Severity


def default_repeat_seconds() -> dict[str, int]:
    """The SPEC's repeat intervals, as a policy starts with them."""
    return dict(settings.TRADEWATCH_REPEAT_SECONDS)


class Channel(models.Model):
    """One destination with its secrets, minimum severity, rate limit and statistics."""

    class Kind(models.TextChoices):
        CONSOLE = "console", "Console"
        JSONL = "jsonl", "JSONL file"
        EMAIL = "email", "Email"
        SLACK = "slack", "Slack"
        DISCORD = "discord", "Discord"
        TELEGRAM = "telegram", "Telegram"
        WEBHOOK = "webhook", "Signed webhook"
        APPRISE = "apprise", "Apprise URL (Teams, Pushover, ...)"
        RECOVERY = "recovery", "Recovery action (signed command to the trading system)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    config = models.JSONField(
        default=dict, blank=True, help_text="Settings of the kind that are not secret."
    )
    # The kind's secrets (webhook URLs, tokens, passwords, signing secrets) as one
    # encrypted JSON object: never shown back in full anywhere.
    secrets_encrypted = models.TextField(blank=True, editable=False)
    min_severity = models.PositiveSmallIntegerField(choices=Severity.choices, default=Severity.INFO)
    rate_limit = models.PositiveIntegerField(
        default=30,
        help_text="Notifications per window; more are held back and sent as one digest "
        "(0: no limit).",
    )
    rate_window = models.DurationField(default=timedelta(minutes=1))
    disabled_reason = models.CharField(max_length=500, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    sent_count = models.PositiveIntegerField(default=0, editable=False)
    failed_count = models.PositiveIntegerField(default=0, editable=False)
    last_success_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.CharField(max_length=1000, blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("send_test", "Can send test notifications through channels")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def secrets(self) -> dict[str, str]:
        """The decrypted secrets (for sending only: never log or show them)."""
        from alerts.crypto import decrypt_text

        if not self.secrets_encrypted:
            return {}
        values: dict[str, str] = json.loads(decrypt_text(self.secrets_encrypted))
        return values

    @secrets.setter
    def secrets(self, values: dict[str, str]) -> None:
        from alerts.crypto import encrypt_text

        kept = {key: value for key, value in values.items() if value not in (None, "")}
        self.secrets_encrypted = encrypt_text(json.dumps(kept)) if kept else ""

    def clean(self) -> None:
        from alerts.channels.registry import channel_kind

        if not isinstance(self.config, dict):
            raise ValidationError({"config": "A JSON object of the kind's settings."})
        try:
            kind = channel_kind(self.kind)
        except LookupError as exc:
            raise ValidationError({"kind": str(exc)}) from None
        misplaced = sorted(set(kind.secret_fields) & set(self.config))
        if misplaced:
            # Settings are shown, exported and recorded in the history as they are.
            raise ValidationError(
                {"config": [f"{name}: a secret; give it with the secrets." for name in misplaced]}
            )
        try:
            kind.validate(self.config, self.secrets)
        except ValidationError as exc:
            # The kind names its own fields; on the channel they live inside `config`
            # or `secrets`, so each message says which one it is about.
            named: dict[str, list[str]] = {"config": [], "secrets": []}
            for field, messages in exc.message_dict.items():
                where = "secrets" if field in kind.secret_fields else "config"
                named[where] += [f"{field}: {message}" for message in messages]
            raise ValidationError({key: value for key, value in named.items() if value}) from None


WEEKDAYS = [
    (0, "Monday"), (1, "Tuesday"), (2, "Wednesday"), (3, "Thursday"), (4, "Friday"),
    (5, "Saturday"), (6, "Sunday"),
]  # fmt: skip


class Policy(models.Model):
    """Which alerts go to which channels, how often repeats go out, and escalation."""

    name = models.CharField(max_length=100, unique=True)
    enabled = models.BooleanField(default=True)
    min_severity = models.PositiveSmallIntegerField(
        choices=Severity.choices, default=Severity.WARNING
    )
    sources = models.ManyToManyField(
        Source, blank=True, related_name="+", help_text="Only these sources (none: all)."
    )
    tags = models.ManyToManyField(
        Tag, blank=True, related_name="+", help_text="Only sources with one of these tags."
    )
    rules = models.ManyToManyField(
        Rule, blank=True, related_name="+", help_text="Only these rules (none: all)."
    )
    channels = models.ManyToManyField(Channel, related_name="policies")
    notify_resolved = models.BooleanField(
        default=True, help_text="Announce when the alert resolves."
    )
    notify_acknowledged = models.BooleanField(
        default=True, help_text="Announce when a person acknowledges the alert."
    )
    repeat_seconds = models.JSONField(
        default=default_repeat_seconds,
        help_text="Seconds between repeats of a firing, unacknowledged alert, per severity "
        "(EMERGENCY, CRITICAL, ERROR, WARNING, INFO, DEBUG).",
    )
    escalate_after = models.DurationField(
        null=True, blank=True,
        help_text="Escalate when an alert stays firing and unacknowledged this long.",
    )  # fmt: skip
    escalation_channels = models.ManyToManyField(Channel, blank=True, related_name="+")
    fallback_channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Used when a notification of this policy fails for good.",
    )  # fmt: skip
    # The operations digest (monitoring_site.digest): a summary of the policy's sources
    # sent to its channels every day, every week, or both, at one local time.
    digest_daily = models.BooleanField(
        default=False, help_text="Send the operations digest of the last day every day."
    )
    digest_weekly_day = models.PositiveSmallIntegerField(
        null=True, blank=True, choices=WEEKDAYS,
        help_text="Send the operations digest of the last 7 days on this day (empty: none).",
    )  # fmt: skip
    digest_time = models.TimeField(
        default=time(8, 0), help_text="When digests go out, in the digest time zone."
    )
    digest_timezone = models.CharField(
        max_length=64, default="UTC", help_text="An IANA time zone, e.g. Europe/London."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "policies"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.digest_timezone not in zoneinfo.available_timezones():
            raise ValidationError(
                {"digest_timezone": f"Unknown time zone {self.digest_timezone!r}: use an IANA "
                 "name such as UTC, Europe/London or America/New_York."}
            )  # fmt: skip
        known = {label.upper() for label in Severity.labels}
        if not isinstance(self.repeat_seconds, dict):
            raise ValidationError({"repeat_seconds": "A JSON object: severity → seconds."})
        for severity, seconds in self.repeat_seconds.items():
            if str(severity).upper() not in known:
                raise ValidationError({"repeat_seconds": f"Unknown severity {severity!r}."})
            if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 0:
                raise ValidationError(
                    {"repeat_seconds": f"{severity}: a whole number of seconds, 0 or more."}
                )

    def repeat_interval(self, severity: int) -> timedelta:
        label = Severity(severity).label.upper()
        seconds = self.repeat_seconds.get(label, settings.TRADEWATCH_REPEAT_SECONDS.get(label))
        return timedelta(seconds=int(seconds if seconds is not None else 600))


class Notification(models.Model):
    """One delivery of one alert change (or of a check's recovery action) to one channel:
    the outbox row.

    Written in the same transaction as the alert change, so a crash never loses it;
    a worker claims it by lease, marks it sent only after the endpoint said 2xx, and a
    sweeper queues again whatever is due or was abandoned.
    """

    class Event(models.TextChoices):
        FIRING = "firing", "Firing"
        REPEAT = "repeat", "Repeat"
        ESCALATED = "escalated", "Escalated"
        RESOLVED = "resolved", "Resolved"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        TEST = "test", "Test"
        DIGEST = "digest", "Digest"
        # A health check turned bad and sends its recovery action (no alert involved).
        CHECK = "check", "Check turned bad"
        # A source's trading state changed: its recovery channels tell the bot.
        TRADING_STATE = "trading_state", "Trading state changed"
        # A policy's scheduled summary (monitoring_site.digest); no alert involved.
        OPERATIONS_DIGEST = "operations_digest", "Operations digest"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SUPPRESSED = "suppressed", "Suppressed"

    class Held(models.TextChoices):
        NOTHING = "", "—"
        SILENCED = "silenced", "Silenced"
        RATE_LIMITED = "rate_limited", "Rate limited (goes out in a digest)"

    # The `webhook-id` of every attempt: a receiver recognises a repeated delivery.
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    alert = models.ForeignKey(
        Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    transition = models.ForeignKey(
        AlertTransition, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="notifications")
    policy = models.ForeignKey(
        Policy, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    event = models.CharField(max_length=20, choices=Event.choices)
    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    # The alert as it was at this change: what the message says, whenever it goes out.
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    held = models.CharField(max_length=20, choices=Held.choices, blank=True)
    digest = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="carried",
        help_text="The digest that carried this held-back notification.",
    )  # fmt: skip
    is_fallback = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    # Leases: `queued_until` while a task for it sits in the broker, `claimed_until`
    # while a worker sends it. Past either, the sweeper may queue it again.
    queued_until = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    rate_slot_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One digest waits per channel at a time; held-back notifications join it.
            models.UniqueConstraint(
                fields=["channel"],
                condition=Q(event="digest", state="pending", attempts=0),
                name="notification_one_waiting_digest",
            ),
        ]
        indexes = [
            # The sweeper's question: pending, due, not leased.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(state="pending"),
                name="notification_due",
            ),
            # The rate limit's sliding window per channel.
            models.Index(
                fields=["channel", "rate_slot_at"],
                condition=Q(rate_slot_at__isnull=False),
                name="notification_rate_slot",
            ),
            models.Index(
                fields=["channel", "held"],
                condition=Q(state="suppressed", held="rate_limited", digest__isnull=True),
                name="notification_awaiting_digest",
            ),
            models.Index(fields=["alert", "event"], name="notification_alert_event"),
            models.Index(fields=["-created_at"], name="notification_created"),
        ]

    def __str__(self) -> str:
        return f"{self.get_event_display()} → {self.channel_id} ({self.state})"

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.uid.hex}"


class DeliveryAttempt(models.Model):
    """One try of a notification: the endpoint's answer, kept as the delivery log."""

    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="delivery_attempts"
    )
    at = models.DateTimeField()
    ok = models.BooleanField()
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.FloatField()
    answer = models.CharField(max_length=500, blank=True, help_text="Start of the answer.")
    error = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["notification", "at"], name="delivery_attempt_at")]

    def __str__(self) -> str:
        return f"{self.notification_id} at {self.at.isoformat()}: {self.status or self.error}"

    @classmethod
    def from_result(cls, notification: Notification, at: Any, result: Any) -> DeliveryAttempt:
        return cls(
            notification=notification, at=at, ok=result.ok, status=result.status,
            duration_ms=result.duration_ms, answer=(result.answer or "")[:500],
            error=(result.error or "")[:1000],
        )  # fmt: skip


class DigestRun(models.Model):
    """One operations digest of one policy for one period: how a run claims the period.

    Inserted, with the digest's notifications, in one transaction: the unique constraint
    lets exactly one run (of however many beats or workers) have each period.
    """

    class Kind(models.TextChoices):
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="digest_runs")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    created_at = models.DateTimeField()
    notifications = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-period_end", "policy"]
        constraints = [
            models.UniqueConstraint(
                fields=["policy", "kind", "period_end"], name="digest_run_once_per_period"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.policy_id} {self.kind} digest to {self.period_end.isoformat()}"
