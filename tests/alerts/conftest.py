"""Fixtures for the alerts tests: rules built in a line, data written as ingestion does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from alerts.evaluation import forget_rules_cache, source_evaluate
from alerts.models import Alert, Rule, Threshold
from metrics.ingest import event_ingest, heartbeat_record, metric_ingest
from metrics.models import Source
from metrics.validation import EMPTY_LABELS_KEY, EventIn, HeartbeatIn, Sample


@pytest.fixture(autouse=True)
def _fresh_rules() -> Iterator[None]:
    forget_rules_cache()
    yield
    forget_rules_cache()


@pytest.fixture
def no_pack(db: None) -> None:
    """Only the rules a test makes (the trading pack is installed by migrate)."""
    Rule.objects.all().delete()


MakeRule = Callable[..., Rule]


@pytest.fixture
def make_rule(no_pack: None) -> MakeRule:
    def make(
        metric: str = "drawdown_pct",
        thresholds: list[tuple[int, str, float, float | None]] | None = None,
        **fields: Any,
    ) -> Rule:
        fields.setdefault("name", f"{metric} rule {Rule.objects.count()}")
        rule = Rule.objects.create(metric=metric, **fields)
        for severity, comparison, value, clear in thresholds or [(30, ">", 10, None)]:
            Threshold.objects.create(
                rule=rule, severity=severity, comparison=comparison, value=value, clear_value=clear
            )
        forget_rules_cache()
        return rule

    return make


def record(
    source: Source,
    name: str,
    value: float,
    ts: datetime | None = None,
    labels: dict[str, str] | None = None,
) -> None:
    """Store one sample as the ingestion API would (without queueing an evaluation)."""
    import orjson

    labels = labels or {}
    key = orjson.dumps(labels, option=orjson.OPT_SORT_KEYS).decode() if labels else EMPTY_LABELS_KEY
    metric_ingest(
        source=source,
        samples=[Sample(name, labels, key, ts or timezone.now(), float(value))],
        evaluate=False,
    )


def send_event(source: Source, kind: str, ts: datetime | None = None, **context: Any) -> None:
    event_ingest(source=source, events=[EventIn(kind, "", context, ts or timezone.now())])


def beat(source: Source, ts: datetime | None = None) -> None:
    heartbeat_record(source=source, heartbeat=HeartbeatIn("ok", {}, ts or timezone.now()))


def evaluate(source: Source, now: datetime | None = None) -> None:
    source_evaluate(source_id=source.pk, now=now)


def open_alerts(source: Source | None = None) -> list[Alert]:
    alerts = Alert.objects.exclude(state=Alert.State.RESOLVED)
    if source is not None:
        alerts = alerts.filter(source=source)
    return list(alerts.select_related("rule"))


def later(seconds: float) -> datetime:
    return timezone.now() + timedelta(seconds=seconds)
