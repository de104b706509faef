"""Schedules (when things are expected to run) and sources' expectations of signals
other than heartbeats ("alive but not trading"): models of the metrics app, kept apart
from `metrics.models`, which imports them."""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import models

from .models import source_name_validator


class Schedule(models.Model):
    """When something is expected to run: always, an exchange's sessions, or weekly windows.

    Attached to a rule (judged only while it is open), to a source (its heartbeat and
    other expectations count only while it is open) and to a silence (in force only
    while it is open). The answers come from `metrics.schedules`.
    """

    class Kind(models.TextChoices):
        ALWAYS = "always", "Always (every day, all day: crypto)"
        EXCHANGE = "exchange", "An exchange's trading sessions"
        WEEKLY = "weekly", "Weekly windows in a time zone"

    name = models.CharField(max_length=100, unique=True, validators=[source_name_validator])
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.ALWAYS)
    exchange = models.CharField(
        max_length=20,
        blank=True,
        help_text="Exchange kind: the calendar's code (XNYS, XNAS, XLON, XETR, XTKS, CMES...), "
        "with its holidays, early closes and breaks.",
    )
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        help_text="Weekly kind: the IANA time zone the windows' times are in "
        "(e.g. UTC, America/New_York); daylight-saving changes follow the wall clock.",
    )
    windows = models.JSONField(
        default=list,
        blank=True,
        help_text='Weekly kind: e.g. ["mon-fri 09:30-16:00", "sun 02:00-04:00"]; "daily" for '
        "every day, an end at or before the start runs past midnight, 24:00 ends the day.",
    )
    invert = models.BooleanField(
        default=False,
        help_text="Open outside the sessions or windows instead (e.g. a rule that rests "
        "during a maintenance window).",
    )
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from .schedules import schedule_problems

        problems = schedule_problems(
            kind=self.kind, exchange=self.exchange, zone=self.timezone, windows=self.windows
        )
        if problems:
            raise ValidationError(problems)
        if self.kind == self.Kind.EXCHANGE:
            from .calendars import exchange_code

            self.exchange = exchange_code(self.exchange)
        if self.kind == self.Kind.WEEKLY:
            from .schedules import windows_normalised

            self.windows = windows_normalised(self.windows)


class Expectation(models.Model):
    """A signal a source is expected to keep showing besides heartbeats ("alive but not
    trading"): decisions, orders, market data, or a bounded order reject rate.

    Without a row a signal is still watched with its default grace on the source's
    schedule, and only once the source has reported it: a bot that never sends
    decisions is never alerted about them.
    """

    class Signal(models.TextChoices):
        DECISION = "decision", "Decisions (decision events)"
        ORDER = "order", "Orders (order_submitted events or trades)"
        MARKET_DATA = "market_data", "Market data (market_data events or market_data_age_ms)"
        ORDER_REJECTS = "order_rejects", "Order reject rate (order_rejected over order_submitted)"

    source = models.ForeignKey("Source", on_delete=models.CASCADE, related_name="expectations")
    signal = models.CharField(max_length=20, choices=Signal.choices)
    grace = models.DurationField(
        null=True,
        blank=True,
        help_text="Decisions, orders, market data: the longest silence allowed while the "
        "schedule is open. Order rejects: the window the reject rate is measured over. "
        "Empty: the default (30 min, 1 h, 5 min; 15 min).",
    )
    schedule = models.ForeignKey(
        Schedule,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="expectations",
        help_text="Empty: the source's schedule.",
    )
    enabled = models.BooleanField(
        default=True, help_text="Untick to stop watching this signal on this source."
    )

    class Meta:
        ordering = ["source", "signal"]
        constraints = [
            models.UniqueConstraint(fields=["source", "signal"], name="expectation_one_per_signal"),
            models.CheckConstraint(
                condition=models.Q(grace__isnull=True) | models.Q(grace__gt=timedelta(0)),
                name="expectation_grace_positive",
                violation_error_message="The grace must be longer than zero.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source}: {self.get_signal_display()}"
