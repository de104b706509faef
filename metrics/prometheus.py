"""Prometheus text exposition at `/metrics`: latest values of sources, and our own counters.

Naming (stable: dashboards and alert rules depend on it):

* Every series of every enabled source becomes a gauge sample in the family
  `tradewatch_metric_<name>`, where `<name>` is the metric name made to follow
  Prometheus' conventions by a fixed mapping (`metrics.prometheus_names`): `.` and `:`
  turned into `_` (colons are reserved for recording rules), a time unit at the end
  converted to seconds (`exchange_latency_ms` is `..._exchange_latency_seconds`, its
  values ÷ 1,000), and `_value` appended to a name ending as another type's series
  does (`trade_count` is `..._trade_count_value`). The metric names themselves (API,
  rules, admin) do not change. The `tradewatch_metric_` prefix is used by nothing
  else, so a source's metric can never clash with Tradewatch's own families below.
  HELP says whether Tradewatch derived the metric or the source reported it.
* Labels: `source="<source name>"` plus the series' labels. A series label that is
  not a valid Prometheus label name has its other characters replaced by `_`; one
  called `source`, or starting with `__` (reserved), is renamed `exported_<name>`
  (as Prometheus itself does on conflicts).
* Samples carry no timestamp: Prometheus stamps them at scrape time. A value that
  has not changed for hours (max drawdown) would otherwise fall behind Prometheus'
  accepted window and be refused, leaving gaps where the value is simply steady.
* Two series that end up with the same family and labels (e.g. `a.b` and `a:b`,
  `latency_ms` and `latency_seconds`) would be a duplicate series, which Prometheus
  refuses: the newest value wins.
* Per enabled source: `tradewatch_source_up{source}` is 1 while its heartbeat is
  within period + grace, else 0 (also 0 before its first heartbeat), and
  `tradewatch_source_heartbeat_age_seconds{source}` once it has sent one.
* Tradewatch's own: `tradewatch_ingested_items_total{endpoint}`,
  `tradewatch_rejected_batches_total{endpoint,reason}` and the histogram
  `tradewatch_ingest_duration_seconds{endpoint}` (see `metrics.instrumentation`).

The endpoint has no authentication: Prometheus scrapes it from inside the private
network (keep it there, or put the proxy's auth in front of it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Final

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_safe
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from . import instrumentation
from .models import MetricSeries, Source
from .prometheus_names import INVALID_CHARS, documentation, exposed
from .queries import heartbeat_overdue
from .services import SYSTEM_SOURCE_NAME

CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4
SOURCE_LABEL: Final = "source"
# Large enough to keep round trips few, small enough to keep a chunk's rows cheap.
_CHUNK_SIZE: Final = 2000


def label_name(name: str) -> str:
    """A series label as a Prometheus label name that cannot clash with `source`."""
    cleaned = INVALID_CHARS.sub("_", name) or "_"
    if cleaned[0].isdigit():
        cleaned = "_" + cleaned
    if cleaned == SOURCE_LABEL or cleaned.startswith("__"):
        cleaned = "exported_" + cleaned
    return cleaned


def sample_labels(source_name: str, labels: Mapping[str, object]) -> dict[str, str]:
    """The labels of one exported sample: the source, then the series' own."""
    exported = {SOURCE_LABEL: source_name}
    for name, value in labels.items():
        # setdefault: two series labels that clean to the same name keep the first.
        exported.setdefault(label_name(str(name)), str(value))
    return exported


def source_metric_families(
    rows: Iterable[tuple[str, Mapping[str, object], str, float | None, datetime | None]],
) -> list[Metric]:
    """Gauge families from (metric name, labels, source name, value, time) rows.

    Pure: the collector feeds it database rows; tests feed it anything. Rows without
    a value (a series created but never written) are left out.
    """
    samples: dict[str, dict[tuple[tuple[str, str], ...], tuple[dict[str, str], float, float]]]
    samples = {}
    helps: dict[str, str] = {}
    for name, labels, source_name, value, ts in rows:
        if value is None or ts is None:
            continue
        shown = exposed(name)
        family = shown.family
        if family not in helps:
            helps[family] = documentation(name)
        exported = sample_labels(source_name, labels)
        key = tuple(sorted(exported.items()))
        timestamp = ts.timestamp()
        known = samples.setdefault(family, {}).get(key)
        if known is None or known[2] < timestamp:
            samples[family][key] = (exported, value * shown.scale, timestamp)
    families = []
    for family in sorted(samples):
        metric = Metric(family, helps[family], "gauge")
        for exported, value, _newest in samples[family].values():
            metric.add_sample(family, exported, value)
        families.append(metric)
    return families


def source_health_families(
    rows: Iterable[tuple[str, bool, float | None]],
) -> list[Metric]:
    """`tradewatch_source_up` and heartbeat age from (source, heartbeat fresh, age) rows."""
    up = Metric(
        "tradewatch_source_up",
        "1 while the source's last heartbeat is within its period and grace, else 0.",
        "gauge",
    )
    age = Metric(
        "tradewatch_source_heartbeat_age_seconds",
        "Seconds since the source's last heartbeat.",
        "gauge",
    )
    for source_name, fresh, age_seconds in rows:
        labels = {SOURCE_LABEL: source_name}
        up.add_sample(up.name, labels, 1.0 if fresh else 0.0)
        if age_seconds is not None:
            age.add_sample(age.name, labels, age_seconds)
    return [up, age]


class SourceMetricsCollector(Collector):
    """Reads latest values and heartbeats of enabled sources, two queries per scrape."""

    def collect(self) -> Iterator[Metric]:
        rows = (
            MetricSeries.objects.filter(
                source__enabled=True, last_ts__isnull=False, last_value__isnull=False
            )
            .values_list("name", "labels", "source__name", "last_value", "last_ts")
            # Streamed: a few thousand series would otherwise sit twice in memory
            # (Django's result cache and the families).
            .iterator(chunk_size=_CHUNK_SIZE)
        )
        yield from source_metric_families(rows)

        now = timezone.now()
        health = []
        # Tradewatch's own source sends no heartbeats (its self-check reports instead): an
        # "up" of 0 for ever would only teach operators to ignore the series.
        sources = Source.objects.filter(enabled=True).exclude(name=SYSTEM_SOURCE_NAME)
        for name, period, grace, last_seen in sources.values_list(
            "name", "heartbeat_period", "heartbeat_grace", "heartbeat__last_seen"
        ):
            if last_seen is None:
                health.append((name, False, None))
            else:
                age = max(now - last_seen, timedelta(0))
                fresh = not heartbeat_overdue(age=age, period=period, grace=grace)
                health.append((name, fresh, age.total_seconds()))
        yield from source_health_families(health)


class _Exposition(Collector):
    """Everything one scrape shows, collected afresh on each request."""

    def collect(self) -> Iterator[Metric]:
        yield from SourceMetricsCollector().collect()
        yield from instrumentation.own_metrics()


def exposition() -> bytes:
    """The `/metrics` body in the Prometheus text format 0.0.4."""
    return generate_latest(_Exposition())


@require_safe
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """`GET /metrics`: the Prometheus scrape target (no authentication)."""
    return HttpResponse(exposition(), content_type=CONTENT_TYPE)
