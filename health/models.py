"""Health of Tradewatch's own processes and of what it watches: checks and their reports."""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from alerts.models import Channel
from metrics.indexes import TimeBrinIndex
from metrics.models import Source

from .scoring import Status
from .transitions import Breaker


class ProcessHeartbeat(models.Model):
    """The last sign of life of one of Tradewatch's own processes (beat, workers)."""

    class Role(models.TextChoices):
        BEAT = "beat", "Beat"
        WORKER = "worker", "Worker"

    role = models.CharField(max_length=20, choices=Role.choices)
    name = models.CharField(max_length=200, help_text="Host and process that reported.")
    last_seen = models.DateTimeField()
    queues = models.CharField(
        max_length=200, blank=True, help_text="The queues a worker consumes, comma-separated."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["role", "name"], name="process_heartbeat_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.role} {self.name}"


STATUS_CHOICES = [(status.value, status.label) for status in Status]
BREAKER_CHOICES = [
    (Breaker.CLOSED.value, "Closed"),
    (Breaker.OPEN.value, "Open"),
    (Breaker.HALF_OPEN.value, "Half-open"),
]


class HealthCheck(models.Model):
    """A periodic probe of one target, with its schedule, damping, breaker and state.

    The configuration (kind, target, interval, damping, breaker) is edited in the admin;
    the state below it is written by the runner only, with targeted UPDATEs, so an edit
    and a run never overwrite each other's fields.
    """

    class Kind(models.TextChoices):
        HEARTBEAT = "heartbeat", "Source heartbeat freshness"
        ACTIVITY = "activity", "Source activity (time since last decision / trade / sample)"
        HTTP = "http", "HTTP endpoint"
        TCP = "tcp", "TCP port"
        POSTGRES = "postgres", "PostgreSQL"
        BROKER = "broker", "Broker (Redis ping)"
        HOST = "host", "Host resources (CPU, memory, disk)"
        STALENESS = "staleness", "Metric or artifact staleness"

    class RecoverWhen(models.TextChoices):
        DEGRADED = "degraded", "Degraded or worse"
        UNHEALTHY = "unhealthy", "Unhealthy or worse"
        CRITICAL = "critical", "Critical"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    source = models.ForeignKey(
        Source,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="health_checks",
        help_text="The source checked (heartbeat, activity, staleness), or the one an "
        "infrastructure check's alerts belong to (empty: Tradewatch itself).",
    )
    config = models.JSONField(
        default=dict, blank=True, help_text="The target: see the kind's fields in the docs."
    )
    enabled = models.BooleanField(default=True)
    interval = models.DurationField(default=timedelta(seconds=30))
    timeout = models.DurationField(default=timedelta(seconds=5))
    failures_to_unhealthy = models.PositiveSmallIntegerField(
        default=2, help_text="Bad results in a row before the status turns bad (flap damping)."
    )
    successes_to_recover = models.PositiveSmallIntegerField(
        default=2, help_text="Good results in a row before a bad status recovers."
    )
    breaker_threshold = models.PositiveSmallIntegerField(
        default=3, help_text="Failures in a row that open the circuit breaker."
    )
    breaker_retry = models.DurationField(
        default=timedelta(minutes=5), help_text="While open, probe only this often (half-open)."
    )
    recovery_action = models.ForeignKey(
        Channel,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="recovery_checks",
        limit_choices_to={"kind": Channel.Kind.RECOVERY},
        help_text="A recovery action (a channel of kind recovery), sent when the check's "
        "status turns as bad as `recover when`.",
    )
    recover_when = models.CharField(
        max_length=10, choices=RecoverWhen.choices, default=RecoverWhen.UNHEALTHY
    )

    # --- state, written by the runner -------------------------------------------------
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default=Status.UNKNOWN.value)
    observed_status = models.CharField(
        max_length=10, choices=STATUS_CHOICES, default=Status.UNKNOWN.value,
        help_text="The last probe's own result, before flap damping.",
    )  # fmt: skip
    status_changed_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    consecutive_successes = models.PositiveIntegerField(default=0)
    breaker = models.CharField(max_length=10, choices=BREAKER_CHOICES, default=Breaker.CLOSED.value)
    breaker_failures = models.PositiveIntegerField(default=0)
    breaker_opened_at = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="A runner holds the check until then (or until done)."
    )
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_score = models.PositiveSmallIntegerField(null=True, blank=True)
    last_latency_ms = models.FloatField(null=True, blank=True)
    last_summary = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        # Operators run checks and reset breakers without being allowed to edit them.
        permissions = [
            ("run_healthcheck", "Can run health checks now"),
            ("reset_breaker", "Can reset circuit breakers of health checks"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(interval__gt=timedelta(0)), name="health_check_interval_positive"
            ),
            models.CheckConstraint(
                condition=Q(timeout__gt=timedelta(0)), name="health_check_timeout_positive"
            ),
            models.CheckConstraint(
                condition=Q(
                    failures_to_unhealthy__gte=1,
                    successes_to_recover__gte=1,
                    breaker_threshold__gte=1,
                ),
                name="health_check_damping_at_least_one",
            ),
        ]
        indexes = [
            # The runner's claim: "enabled checks due by now, oldest first".
            models.Index(
                fields=["next_run_at"], condition=Q(enabled=True), name="health_check_due"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from .checks import check_class

        if self.timeout and self.timeout > timedelta(seconds=120):
            raise ValidationError({"timeout": "At most 120 seconds."})
        if self.interval and self.interval < timedelta(seconds=1):
            raise ValidationError({"interval": "At least one second."})
        if self.breaker_retry is not None and self.breaker_retry <= timedelta(0):
            raise ValidationError({"breaker_retry": "Must be longer than zero."})
        try:
            kind = check_class(self.kind)
        except KeyError:
            raise ValidationError({"kind": f"Unknown kind {self.kind!r}."}) from None
        if kind.needs_source and self.source_id is None:
            raise ValidationError({"source": f"A {self.get_kind_display()} check needs a source."})
        if self.recovery_action is not None and self.recovery_action.kind != Channel.Kind.RECOVERY:
            raise ValidationError(
                {"recovery_action": "Choose a channel of kind recovery (a recovery action)."}
            )
        kind.validate(self.config if isinstance(self.config, dict) else {})

    @property
    def status_enum(self) -> Status:
        return Status(self.status)


class HealthReport(models.Model):
    """One run of one check: what the probe found, and the check's status after it."""

    health_check = models.ForeignKey(
        HealthCheck, on_delete=models.CASCADE, related_name="reports", verbose_name="check"
    )
    created_at = models.DateTimeField(db_index=False)
    status = models.CharField(
        max_length=10, choices=STATUS_CHOICES, help_text="The probe's own result."
    )
    check_status = models.CharField(
        max_length=10, choices=STATUS_CHOICES, help_text="The check's status after flap damping."
    )
    score = models.PositiveSmallIntegerField()
    latency_ms = models.FloatField(null=True, blank=True)
    issues = models.JSONField(default=list, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    details = models.JSONField(default=dict, blank=True)
    breaker = models.CharField(max_length=10, choices=BREAKER_CHOICES, default=Breaker.CLOSED.value)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # "The newest reports of a check" (admin, API, CLI).
            models.Index(fields=["health_check", "-created_at"], name="health_report_check_newest"),
            # Retention and the admin's date drill-down over a large table.
            TimeBrinIndex(fields=["created_at"], name="health_report_created_brin"),
        ]

    def __str__(self) -> str:
        return f"{self.health_check_id} {self.status} at {self.created_at.isoformat()}"


class PeriodicRun(models.Model):
    """The last run of one beat entry: how a run claims its period (see
    `health.periodic`), and a record of periodic work actually happening."""

    name = models.CharField(max_length=200, unique=True, help_text="The beat entry's name.")
    task = models.CharField(max_length=200)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    running_until = models.DateTimeField(
        null=True, blank=True, help_text="A run holds the period until then (or until done)."
    )
    runs = models.PositiveBigIntegerField(default=0)
    skipped = models.PositiveBigIntegerField(
        default=0, help_text="Runs sent again within the same period (a second beat, a "
        "replayed message) that found the period taken and did nothing.",
    )  # fmt: skip

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
