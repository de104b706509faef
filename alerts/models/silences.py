"""Silences: maintenance windows that hold alerts' notifications back."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from metrics.models import Schedule, Source, Tag

from .alerting import Alert, Rule, Severity


class Silence(models.Model):
    """Mute notifications of matching alerts for a while (a maintenance window)."""

    sources = models.ManyToManyField(Source, blank=True, related_name="silences")
    tags = models.ManyToManyField(Tag, blank=True, related_name="silences")
    rules = models.ManyToManyField(Rule, blank=True, related_name="silences")
    min_severity = models.PositiveSmallIntegerField(
        choices=Severity.choices,
        default=Severity.DEBUG,
        help_text="Mute alerts of this severity and above (Debug: every alert).",
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(
        null=True, blank=True, help_text="Empty: until its alert resolves, or (with a schedule) "
        "for as long as the silence stands.",
    )  # fmt: skip
    alert = models.ForeignKey(
        Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="silences",
        help_text="'Until resolved': this silence ends when this alert resolves.",
    )  # fmt: skip
    schedule = models.ForeignKey(
        Schedule,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="silences",
        help_text="In force only while this schedule is open (e.g. maintenance Sundays "
        "02:00-04:00 UTC); with a schedule the silence needs no end.",
    )
    reason = models.CharField(max_length=500)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)
    expired_at = models.DateTimeField(null=True, blank=True, help_text="Ended early by hand.")

    class Meta:
        ordering = ["-starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__isnull=False)
                | Q(alert__isnull=False)
                | Q(schedule__isnull=False),
                name="silence_has_an_end",
                violation_error_message="A silence needs an end time, an alert to last until, "
                "or a schedule.",
            ),
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True) | Q(ends_at__gt=models.F("starts_at")),
                name="silence_ends_after_start",
                violation_error_message="A silence must end after it starts.",
            ),
        ]
        indexes = [models.Index(fields=["ends_at"], name="silence_ends_at")]

    def __str__(self) -> str:
        return self.reason
