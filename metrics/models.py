"""What Tradewatch watches: sources, their API keys, and (later) what they send."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey

from .indexes import TimeBrinIndex

# Names end up in URLs, Prometheus labels and alert messages: keep them plain.
SOURCE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$"
source_name_validator: RegexValidator = RegexValidator(
    SOURCE_NAME_PATTERN,
    "Use letters, digits and . _ : - (starting with a letter or digit, 100 at most).",
)
tag_name_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_.:-]{0,49}$",
    "Use lower-case letters, digits and . _ : - (starting with a letter or digit).",
)

# The shortest heartbeat period a source may be given, and why (the admin, the command
# line and any other form show the same words).
MIN_HEARTBEAT_PERIOD = timedelta(seconds=1)
HEARTBEAT_PERIOD_TOO_SHORT = (
    "Must be at least 1 second: heartbeats travel over HTTP (batched and retried by the "
    "client library), so a shorter period would count ordinary delays as a silent source."
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
        validators=[MinValueValidator(MIN_HEARTBEAT_PERIOD, HEARTBEAT_PERIOD_TOO_SHORT)],
        help_text="How often the source is expected to send a heartbeat (at least 1 second).",
    )
    heartbeat_grace = models.DurationField(
        default=timedelta(seconds=60),
        help_text="How late a heartbeat may be before the source counts as silent.",
    )
    schedule = models.ForeignKey(
        "Schedule",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="sources",
        help_text="When the source is expected to run (empty: always). Outside it a quiet "
        "source is 'market closed', not lapsed; its heartbeat counts from the open plus "
        "its grace. Its other expectations follow it unless they name their own.",
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


class MetricSeries(models.Model):
    """One time series: a source's metric name with one set of labels.

    The newest sample is kept on the row itself (`last_ts`, `last_value`), so "latest
    value per series" and "newest per source" are index reads, not scans of samples.
    """

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="series")
    name = models.CharField(max_length=200)
    labels = models.JSONField(default=dict, blank=True)
    # Canonical JSON of `labels` (sorted keys): the identity of the series.
    labels_key = models.CharField(max_length=4000, default="{}")
    last_ts = models.DateTimeField(null=True, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "metric series"
        constraints = [
            # Serves the lookup of a series and "every series of a source".
            models.UniqueConstraint(
                fields=["source", "name", "labels_key"], name="metric_series_identity"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source_id}:{self.name}{self.labels_key if self.labels else ''}"


class MetricSample(models.Model):
    """One value of one series at one time: the narrow row samples are stored in.

    Three columns and a primary key on (series, ts) keep a sample near 80 bytes with
    its index; the key serves "one series over a time range", and a second sample at
    the same instant replaces the first (last write wins). On PostgreSQL the table is
    partitioned by day (`metrics.partitions`): the key holds `ts`, as partitioning needs.
    """

    pk = models.CompositePrimaryKey("series_id", "ts")
    # No index of its own: the primary key (series_id, ts) already leads with it.
    series = models.ForeignKey(
        MetricSeries, on_delete=models.CASCADE, db_constraint=False, db_index=False
    )
    ts = models.DateTimeField()
    value = models.FloatField()

    class Meta:
        indexes = [
            # Retention and "everything since" scans: a few kB however large the table.
            TimeBrinIndex(fields=["ts"], name="metric_sample_ts_brin", autosummarize=True),
        ]

    def __str__(self) -> str:
        return f"{self.series_id}@{self.ts.isoformat()}={self.value}"


class Trade(models.Model):
    """One fill reported by a source; its id is unique per source (replays are duplicates).

    On PostgreSQL the table is partitioned by week (`metrics.partitions`), its primary
    key there is (id, ts); ids still come from one sequence, so `id` alone stays unique.
    """

    class Side(models.TextChoices):
        BUY = "buy", "Buy"
        SELL = "sell", "Sell"

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="trades")
    trade_id = models.CharField(max_length=100)
    symbol = models.CharField(max_length=50)
    side = models.CharField(max_length=4, choices=Side.choices)
    quantity = models.FloatField()
    price = models.FloatField()
    pnl = models.FloatField(
        null=True, blank=True, help_text="Realised PnL; empty on opening fills."
    )
    fee = models.FloatField(default=0.0)
    ts = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # A trade id once per source is `TradeId`'s constraint: on PostgreSQL this table is
        # partitioned by time, and a unique key there would have to include `ts`.
        indexes = [models.Index(fields=["source", "ts"], name="trade_source_ts")]

    def __str__(self) -> str:
        return f"{self.source_id}:{self.trade_id}"


class TradeId(models.Model):
    """A trade id a source has sent: what makes a replayed trade a duplicate.

    Trades are partitioned by time (`metrics.partitions`) and PostgreSQL keeps a unique
    key only within one partition, so the identity of a trade across all of them lives
    in this small plain table; ingestion claims the id here before storing the trade.
    """

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    trade_id = models.CharField(max_length=100)
    # Retention forgets an id when its trade's partition goes.
    ts = models.DateTimeField(help_text="The time of the trade stored under this id.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "trade_id"], name="trade_id_unique_per_source"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source_id}:{self.trade_id}"


class Event(models.Model):
    """A discrete fact from a source: a circuit breaker tripped, a model crashed...

    On PostgreSQL the table is partitioned by week (`metrics.partitions`), its primary
    key there is (id, ts); ids still come from one sequence, so `id` alone stays unique.
    """

    KNOWN_TYPES = (
        "circuit_breaker_tripped",
        "circuit_breaker_reset",
        "kill_switch_activated",
        "kill_switch_released",
        "model_crashed",
        "model_recovered",
        "error",
        "connectivity_lost",
        "connectivity_restored",
        "artifact_updated",
    )

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=100, help_text="A known type or a custom one.")
    message = models.TextField(blank=True)
    context = models.JSONField(default=dict, blank=True)
    ts = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # "Events of this type for this source in a window" (event rules, safety view).
            models.Index(fields=["source", "type", "ts"], name="event_source_type_ts"),
            # "The newest events of a source" (snapshot, safety view).
            models.Index(fields=["source", "-ts"], name="event_source_newest"),
            TimeBrinIndex(fields=["ts"], name="event_ts_brin", autosummarize=True),
        ]

    def __str__(self) -> str:
        return f"{self.source_id}:{self.type}@{self.ts.isoformat()}"


class SourceHeartbeat(models.Model):
    """The newest heartbeat of a source, kept apart from `Source` so that beats every few
    seconds never rewrite (or audit) the source's configuration row."""

    class Status(models.TextChoices):
        OK = "ok", "OK"
        DEGRADED = "degraded", "Degraded"
        ERROR = "error", "Error"
        STARTING = "starting", "Starting"
        STOPPING = "stopping", "Stopping"

    source = models.OneToOneField(
        Source, on_delete=models.CASCADE, primary_key=True, related_name="heartbeat"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OK)
    info = models.JSONField(default=dict, blank=True)
    last_seen = models.DateTimeField()
    first_seen = models.DateTimeField()
    count = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.source_id} {self.status} at {self.last_seen.isoformat()}"


class IdempotentRequest(models.Model):
    """The first answer to a batch sent with an `Idempotency-Key`, replayed for 24 h."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE)
    key = models.CharField(max_length=200)
    endpoint = models.CharField(max_length=50)
    body_sha256 = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField()
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "key"], name="idempotent_request_key"),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotent_request_created")]

    def __str__(self) -> str:
        return f"{self.source_id}:{self.key}"


class DerivationRequest(models.Model):
    """A batch of equity or trades stored since the source's derived metrics were last
    brought up to date: written in the batch's own transaction, so no batch can be
    missed (whatever happens to the cache or the broker), and taken by derivation.

    `since` is the batch's earliest time: a batch older than what derivation has seen
    (late, out of order, or a replayed instant) makes it start again from a checkpoint.
    """

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    since = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.source_id} since {self.since.isoformat()}"


class DerivedState(models.Model):
    """The running state of a source's derived trading metrics (`metrics.ledger.Ledger`)."""

    source = models.OneToOneField(
        Source, on_delete=models.CASCADE, primary_key=True, related_name="derived_state"
    )
    ledger = models.JSONField(default=dict)
    # The ledger's newest input, as a column: derivation reads what came after it in the
    # same statement that takes the state.
    as_of = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.source_id} derived state"


class DerivedCheckpoint(models.Model):
    """The ledger as of a grid time (an hour): where derivation starts again when a late
    sample lands before its newest input, and the equity Sharpe and Sortino sample."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField()
    equity = models.FloatField(null=True, blank=True)
    ledger = models.JSONField()

    class Meta:
        constraints = [
            # Serves "the newest checkpoint before t" and "those of the last 30 days".
            models.UniqueConstraint(fields=["source", "at"], name="derived_checkpoint_at"),
        ]

    def __str__(self) -> str:
        return f"{self.source_id}@{self.at.isoformat()}"


class TradingControl(models.Model):
    """A trading state set on one source, on every source with a tag, or on all of them.

    The state a trading system must obey is the strictest of the controls that cover it
    (`metrics.control.effective_state`): a global halt wins over a source's `active`. One
    row per target, changed in place, so its audit history is the whole story; re-arming
    sets it back to `active` rather than deleting it.
    """

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        REDUCE_ONLY = "reduce_only", "Reduce only (close positions, open none)"
        HALTED = "halted", "Halted"

    class Scope(models.TextChoices):
        SOURCE = "source", "One source"
        TAG = "tag", "Sources with a tag"
        ALL = "all", "All sources"

    scope = models.CharField(max_length=10, choices=Scope.choices)
    source = models.ForeignKey(
        Source, null=True, blank=True, on_delete=models.CASCADE, related_name="controls"
    )
    tag = models.ForeignKey(
        Tag, null=True, blank=True, on_delete=models.CASCADE, related_name="controls"
    )
    state = models.CharField(max_length=12, choices=State.choices, default=State.ACTIVE)
    reason = models.CharField(max_length=1000, help_text="Why: the person's note or the rule.")
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", help_text="The person who set it (empty: a rule did).",
    )  # fmt: skip
    set_by_rule = models.CharField(
        max_length=200, blank=True, help_text="The rule whose threshold action set it."
    )
    set_via = models.CharField(
        max_length=20, blank=True, help_text="Where: admin, dashboard, api, cli or rule."
    )
    # The alert that caused it (no foreign key: alerts build on this app, not under it).
    alert_id = models.BigIntegerField(null=True, blank=True)
    set_at = models.DateTimeField()
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Reduce only: back to active at this time."
    )

    class Meta:
        ordering = ["scope", "-set_at"]
        permissions = [
            ("halt", "Can halt trading or set it to reduce only"),
            ("rearm", "Can re-arm halted or reduce-only trading"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(scope="all", source__isnull=True, tag__isnull=True)
                    | models.Q(scope="source", source__isnull=False, tag__isnull=True)
                    | models.Q(scope="tag", tag__isnull=False, source__isnull=True)
                ),
                name="trading_control_scope_matches_target",
            ),
            models.CheckConstraint(
                condition=models.Q(expires_at__isnull=True) | models.Q(state="reduce_only"),
                name="trading_control_expiry_only_reduce_only",
            ),
            # One control per target: a change updates it (and its history shows each).
            models.UniqueConstraint(
                fields=["source"], condition=models.Q(scope="source"),
                name="trading_control_one_per_source",
            ),
            models.UniqueConstraint(
                fields=["tag"], condition=models.Q(scope="tag"), name="trading_control_one_per_tag"
            ),
            models.UniqueConstraint(
                fields=["scope"], condition=models.Q(scope="all"), name="trading_control_one_global"
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.target}: {self.state}"

    @property
    def target(self) -> str:
        if self.scope == self.Scope.SOURCE:
            return f"source {self.source}"
        if self.scope == self.Scope.TAG:
            return f"tag {self.tag}"
        return "all sources"


# Schedules and sources' expectations live beside (models of this app all the same).
from .schedule_models import Expectation as Expectation  # noqa: E402
from .schedule_models import Schedule as Schedule  # noqa: E402
