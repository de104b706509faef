"""What Tradewatch watches: sources, their API keys, and (later) what they send."""

from __future__ import annotations

from datetime import timedelta

from django.core.validators import RegexValidator
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey

# Names end up in URLs, Prometheus labels and alert messages: keep them plain.
source_name_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$",
    "Use letters, digits and . _ : - (starting with a letter or digit, 100 at most).",
)
tag_name_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_.:-]{0,49}$",
    "Use lower-case letters, digits and . _ : - (starting with a letter or digit).",
)


class Tag(models.Model):
    """A label grouping sources (e.g. `live`, `binance`, `llm`); rules can target a tag."""

    name = models.CharField(max_length=50, unique=True, validators=[tag_name_validator])

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Source(models.Model):
    """One monitored thing: a bot, model, strategy, exchange connection, service or host."""

    class Kind(models.TextChoices):
        BOT = "bot", "Bot"
        MODEL = "model", "Model"
        STRATEGY = "strategy", "Strategy"
        EXCHANGE = "exchange", "Exchange"
        SERVICE = "service", "Service"
        HOST = "host", "Host"

    name = models.CharField(max_length=100, unique=True, validators=[source_name_validator])
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.BOT)
    tags = models.ManyToManyField(Tag, blank=True, related_name="sources")
    description = models.TextField(blank=True)
    enabled = models.BooleanField(
        default=True,
        help_text="A disabled source's keys are refused and its rules are not evaluated.",
    )
    heartbeat_period = models.DurationField(
        default=timedelta(seconds=60),
        help_text="How often the source is expected to send a heartbeat.",
    )
    heartbeat_grace = models.DurationField(
        default=timedelta(seconds=60),
        help_text="How late a heartbeat may be before the source counts as silent.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(heartbeat_period__gt=timedelta(0)),
                name="source_heartbeat_period_positive",
            ),
            models.CheckConstraint(
                condition=models.Q(heartbeat_grace__gte=timedelta(0)),
                name="source_heartbeat_grace_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def issue_api_key(self, *, name: str = "default") -> tuple[SourceAPIKey, str]:
        """Create a new API key for this source; the plain key is returned only here."""
        api_key, key = SourceAPIKey.objects.create_key(source=self, name=name)
        assert isinstance(api_key, SourceAPIKey)
        return api_key, key


class SourceAPIKey(AbstractAPIKey):
    """An API key identifying one source; only its hash is stored."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="api_keys")

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "source API key"
        verbose_name_plural = "source API keys"
