"""Rules, their thresholds, the alerts they raise and the alerts' timelines."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from core.events import ALERT, event_publish
from metrics.models import Schedule, Source, Tag


class Severity(models.IntegerChoices):
    """Ordered: a larger number is more urgent (same values as `alerts.engine.Severity`)."""

    DEBUG = 10, "Debug"
    INFO = 20, "Info"
    WARNING = 30, "Warning"
    ERROR = 40, "Error"
    CRITICAL = 50, "Critical"
    EMERGENCY = 60, "Emergency"


class Rule(models.Model):
    """What to watch, on which sources, and when it becomes a problem."""

    class Kind(models.TextChoices):
        THRESHOLD = "threshold", "Threshold on a window aggregation"
        ABSENCE = "absence", "Absence / staleness of data"
        EVENT = "event", "Event (count in a window)"
        RATE_OF_CHANGE = "rate_of_change", "Rate of change"
        ANOMALY = "anomaly", "Anomaly (rolling z-score)"
        # Judged by the health runner when a check's status changes, not by evaluation.
        HEALTH = "health", "Health check status"

    class Aggregation(models.TextChoices):
        LAST = "last", "last"
        AVG = "avg", "average"
        MIN = "min", "minimum"
        MAX = "max", "maximum"
        SUM = "sum", "sum"
        COUNT = "count", "count"
        RATE = "rate", "rate per second"
        P95 = "p95", "95th percentile"
        P99 = "p99", "99th percentile"

    class Scope(models.TextChoices):
        ALL = "all", "All sources"
        SOURCE = "source", "One source"
        TAG = "tag", "Sources with a tag"

    class InhibitedBy(models.TextChoices):
        NOTHING = "", "Nothing"
        KILL_SWITCH = "kill_switch", "An active kill switch on the source"
        HEARTBEAT = "heartbeat", "A firing heartbeat alert on the source"

    class MissingData(models.TextChoices):
        KEEP = "keep", "Keep the current state"
        RESOLVE = "resolve", "Resolve the alert"
        ALERT = "alert", "Alert (at the rule's highest severity)"

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.THRESHOLD)
    metric = models.CharField(
        max_length=200,
        help_text="The metric name; for event rules the event type; for absence rules a "
        "metric name, `heartbeat`, or `event:<type>` (e.g. event:artifact_updated).",
    )
    labels = models.JSONField(
        default=dict, blank=True, help_text="Only series carrying these labels (all of them)."
    )
    aggregation = models.CharField(
        max_length=10, choices=Aggregation.choices, default=Aggregation.LAST
    )
    window = models.DurationField(default=timedelta(minutes=5))
    change_percent = models.BooleanField(
        default=False, help_text="Rate-of-change rules: compare the change in percent."
    )
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.ALL)
    source = models.ForeignKey(
        Source, null=True, blank=True, on_delete=models.CASCADE, related_name="rules"
    )
    tag = models.ForeignKey(Tag, null=True, blank=True, on_delete=models.PROTECT)
    for_duration = models.DurationField(
        default=timedelta(0), help_text="The condition must hold this long before firing."
    )
    keep_firing_for = models.DurationField(
        default=timedelta(0), help_text="Keep firing this long after the condition cleared."
    )
    min_samples = models.PositiveIntegerField(
        default=1, help_text="Judge only with at least this many points in the window."
    )
    guard_metric = models.CharField(
        max_length=200,
        blank=True,
        help_text="Judge only when this metric of the source is at least `guard minimum` "
        "(e.g. win rate only after trade_count 10).",
    )
    guard_minimum = models.FloatField(null=True, blank=True)
    m_of_n_m = models.PositiveSmallIntegerField(
        null=True, blank=True, verbose_name="M (of N)", help_text="Fire when the condition "
        "held in M of the last N evaluations (leave empty for every evaluation)."
    )  # fmt: skip
    m_of_n_n = models.PositiveSmallIntegerField(null=True, blank=True, verbose_name="N")
    missing_data = models.CharField(
        max_length=10, choices=MissingData.choices, default=MissingData.KEEP
    )
    inhibited_by = models.CharField(
        max_length=20,
        choices=InhibitedBy.choices,
        blank=True,
        help_text="Mute this rule's alerts on a source while this holds there.",
    )
    message_template = models.CharField(
        max_length=500,
        blank=True,
        help_text="e.g. `{source} drawdown {value:.1f} % (limit {threshold})`; "
        "fields: source, rule, metric, value, threshold, severity.",
    )
    schedule = models.ForeignKey(
        Schedule,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="rules",
        help_text="Judge only while this schedule is open (empty: always). Outside it the "
        "rule rests: its clocks do not run, and an alert open at the close follows the "
        "missing-data policy once.",
    )
    pack = models.CharField(
        max_length=50, blank=True, help_text="The built-in pack this rule came from, if any."
    )
    trading_actions = models.BooleanField(
        default=False,
        help_text="Let its thresholds' actions halt its sources or set them to reduce only "
        "when it fires. Off: it only alerts.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(scope="all", source__isnull=True, tag__isnull=True)
                    | Q(scope="source", source__isnull=False, tag__isnull=True)
                    | Q(scope="tag", tag__isnull=False, source__isnull=True)
                ),
                name="rule_scope_matches_target",
                violation_error_message="The scope needs exactly its target: a source for "
                "'one source', a tag for 'by tag', neither for 'all'.",
            ),
            models.CheckConstraint(
                condition=Q(m_of_n_m__isnull=True, m_of_n_n__isnull=True)
                | Q(m_of_n_m__gte=1, m_of_n_n__gte=models.F("m_of_n_m")),
                name="rule_m_of_n_valid",
                violation_error_message="M of N needs 1 <= M <= N, or both empty.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def applies_to(self, source_id: int, tag_ids: set[int] | frozenset[int]) -> bool:
        """Whether the rule's scope takes in this source (given the source's tag ids)."""
        if self.scope == self.Scope.SOURCE:
            return self.source_id == source_id
        if self.scope == self.Scope.TAG:
            return self.tag_id in tag_ids
        return True

    def clean(self) -> None:
        if self.window <= timedelta(0):
            raise ValidationError({"window": "The window must be longer than zero."})
        if self.for_duration < timedelta(0):
            raise ValidationError({"for_duration": "Must not be negative."})
        if self.keep_firing_for < timedelta(0):
            raise ValidationError({"keep_firing_for": "Must not be negative."})


class Threshold(models.Model):
    """One severity level of a rule: e.g. drawdown WARNING > 10, EMERGENCY > 20."""

    class Comparison(models.TextChoices):
        GT = ">", "greater than"
        GTE = ">=", "at least"
        LT = "<", "less than"
        LTE = "<=", "at most"
        EQ = "==", "equal to"
        NE = "!=", "not equal to"

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="thresholds")
    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    comparison = models.CharField(max_length=2, choices=Comparison.choices, default=Comparison.GT)
    value = models.FloatField()
    clear_value = models.FloatField(
        null=True,
        blank=True,
        help_text="Hysteresis: once firing, clear only past this value (e.g. fire above 10, "
        "clear below 8). Empty: clear as soon as the condition no longer holds.",
    )

    class Action(models.TextChoices):
        NOTHING = "", "Nothing (alert only)"
        REDUCE_ONLY = "reduce_only", "Set the source to reduce only"
        HALT = "halt", "Halt the source"

    action = models.CharField(
        max_length=12,
        choices=Action.choices,
        blank=True,
        default="",
        help_text="What the alert does to the source's trading when it fires at this "
        "severity. Only ever tightens; a person re-arms, even after the alert resolves.",
    )

    class Meta:
        ordering = ["rule", "-severity"]
        constraints = [
            models.UniqueConstraint(fields=["rule", "severity"], name="threshold_one_per_severity"),
        ]

    def __str__(self) -> str:
        return f"{self.get_severity_display()} {self.comparison} {self.value:g}"


class ThresholdOverride(models.Model):
    """A different value of one threshold for one source (e.g. a riskier strategy)."""

    threshold = models.ForeignKey(Threshold, on_delete=models.CASCADE, related_name="overrides")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="threshold_overrides")
    value = models.FloatField()
    clear_value = models.FloatField(null=True, blank=True)
    enabled = models.BooleanField(
        default=True, help_text="Untick to switch this threshold off for this source."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["threshold", "source"], name="threshold_override_one_per_source"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.threshold} for {self.source}: {self.value:g}"


class Alert(models.Model):
    """One problem on one source from one rule; repeats update it instead of adding rows."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        FIRING = "firing", "Firing"
        RESOLVED = "resolved", "Resolved"

    class Resolution(models.TextChoices):
        CONDITION_CLEARED = "cleared", "Condition cleared"
        BY_PERSON = "manual", "Resolved by a person"
        MISSING_DATA = "missing_data", "Data stopped (missing-data policy)"
        RULE_CHANGED = "rule_changed", "Rule disabled or no longer applies"

    fingerprint = models.CharField(max_length=64)
    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="alerts")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="alerts")
    labels = models.JSONField(default=dict, blank=True, help_text="The series' labels.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    value = models.FloatField(null=True, blank=True)
    peak_value = models.FloatField(null=True, blank=True)
    threshold_value = models.FloatField(null=True, blank=True)
    comparison = models.CharField(max_length=2, blank=True)
    message = models.CharField(max_length=1000, blank=True)
    count = models.PositiveIntegerField(default=1, help_text="Evaluations that found it.")
    first_seen = models.DateTimeField()
    fired_at = models.DateTimeField(null=True, blank=True)
    last_seen = models.DateTimeField()
    condition_cleared_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=20, choices=Resolution.choices, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_until = models.DateTimeField(null=True, blank=True)
    acknowledgement_note = models.CharField(max_length=1000, blank=True)
    inhibited = models.BooleanField(
        default=False, help_text="Muted by another alert (e.g. an active kill switch)."
    )
    last_notified_at = models.DateTimeField(null=True, blank=True)
    announced_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When its `firing` was first sent (not held back by inhibition or a "
        "silence). Nothing else about the alert is sent before it.",
    )
    keep_resolved = models.BooleanField(
        default=False,
        db_default=False,  # rows written in plain SQL (bulk loads) get it too
        help_text="Resolved by a person: no new alert of this problem opens until its "
        "condition clears, it gets worse, or (event rules) a new event arrives.",
    )
    keep_resolved_through = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Event rules: the newest event when it was resolved (older ones are "
        "what the person resolved).",
    )

    class Meta:
        ordering = ["-last_seen", "-id"]
        constraints = [
            # Two workers evaluating one source at once can race to open the same alert:
            # the database lets exactly one open row per fingerprint exist.
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=~Q(state="resolved"),
                name="alert_one_open_per_fingerprint",
            ),
        ]
        indexes = [
            # The admin list's order: newest activity first, all alerts or open ones only.
            models.Index(fields=["-last_seen", "-id"], name="alert_last_seen"),
            models.Index(
                fields=["-last_seen", "-id"],
                condition=Q(state__in=["pending", "firing"]),
                name="alert_open_last_seen",
            ),
            models.Index(fields=["state", "-severity", "-last_seen"], name="alert_state_severity"),
            models.Index(fields=["source", "state"], name="alert_source_state"),
            models.Index(fields=["rule", "state"], name="alert_rule_state"),
            models.Index(fields=["-first_seen"], name="alert_first_seen"),
            models.Index(fields=["fingerprint"], name="alert_fingerprint"),
            # Evaluation reads these with the open alerts of its sources: a few rows.
            models.Index(
                fields=["source"], condition=Q(keep_resolved=True), name="alert_kept_resolved"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule} on {self.source} ({self.get_severity_display()}, {self.state})"

    @property
    def is_open(self) -> bool:
        return self.state != self.State.RESOLVED

    @property
    def is_acknowledged(self) -> bool:
        return self.acknowledged_at is not None


class AlertTransition(models.Model):
    """One entry of an alert's timeline; those marked `notify` are for delivery to route."""

    class Kind(models.TextChoices):
        PENDING = "pending", "Pending"
        FIRING = "firing", "Firing"
        SEVERITY_RAISED = "severity_raised", "Severity raised"
        SEVERITY_LOWERED = "severity_lowered", "Severity lowered"
        REPEAT = "repeat", "Repeat"
        CONDITION_CLEARED = "condition_cleared", "Condition cleared (keep firing)"
        RESOLVED = "resolved", "Resolved"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        ACKNOWLEDGEMENT_EXPIRED = "ack_expired", "Acknowledgement expired"
        INHIBITED = "inhibited", "Inhibited"
        UNINHIBITED = "uninhibited", "No longer inhibited"
        ESCALATED = "escalated", "Escalated (unacknowledged too long)"
        TRADING_STATE = "trading_state", "Trading state changed"
        SILENCED = "silenced", "Silenced by a person"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="timeline")
    at = models.DateTimeField()
    kind = models.CharField(max_length=20, choices=Kind.choices)
    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    value = models.FloatField(null=True, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    details = models.JSONField(default=dict, blank=True)
    notify = models.BooleanField(
        default=False, help_text="Whether this change should reach the alert's channels."
    )
    silenced = models.BooleanField(
        default=False, help_text="A silence matched: recorded, notifications held back."
    )

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            models.Index(fields=["alert", "at"], name="alert_transition_alert_at"),
            models.Index(fields=["-at"], name="alert_transition_at"),
        ]

    def __str__(self) -> str:
        return f"{self.alert_id} {self.kind} at {self.at.isoformat()}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save; a new entry is also announced on the live event stream once its
        transaction commits (every change of an alert is an entry: one place to tell)."""
        from alerts.stream_events import transition_event

        adding = self._state.adding
        super().save(*args, **kwargs)
        if adding:
            event_publish(ALERT, transition_event(self), source_id=self.alert.source_id)


class RulePackInstall(models.Model):
    """A rule of a built-in pack that was installed once: never installed again, so an
    operator's edits, and deletions, survive every later migrate."""

    pack = models.CharField(max_length=50)
    key = models.CharField(max_length=100)
    installed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pack", "key"], name="rule_pack_install_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.pack}:{self.key}"


class RuleSourceState(models.Model):
    """What one rule found on one series of a source in its last evaluations (for M-of-N)."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="states")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="rule_states")
    labels_key = models.CharField(max_length=4000, default="{}")
    history = models.CharField(
        max_length=64,
        default="",
        help_text="Newest last: 0 the condition did not hold, else the severity that held, "
        "in tens (3 WARNING ... 6 EMERGENCY).",
    )
    evaluated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "source", "labels_key"], name="rule_source_state_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule_id}/{self.source_id}: {self.history}"
