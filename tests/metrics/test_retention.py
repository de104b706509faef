"""Retention deletes what is past its age, in chunks, and keeps the rest."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.chunks import delete_older_than
from metrics.models import (
    DerivedCheckpoint,
    Event,
    IdempotentRequest,
    MetricSample,
    MetricSeries,
    Source,
    Trade,
)
from metrics.retention import samples_prune

pytestmark = pytest.mark.django_db


def test_it_deletes_samples_past_the_retention_in_chunks(source: Source) -> None:
    now = timezone.now()
    series = MetricSeries.objects.create(source=source, name="x")
    MetricSample.objects.bulk_create(
        [
            MetricSample(series=series, ts=now - timedelta(days=31, minutes=i), value=i)
            for i in range(25)
        ]
        + [
            MetricSample(series=series, ts=now - timedelta(days=29, minutes=i), value=i)
            for i in range(5)
        ]
    )

    deleted = delete_older_than(MetricSample, "ts", now - timedelta(days=30), chunk=10)

    assert deleted == 25
    assert MetricSample.objects.count() == 5


def test_it_prunes_every_kind_of_old_row(source: Source) -> None:
    now = timezone.now()
    old, recent = now - timedelta(days=31), now - timedelta(days=1)
    series = MetricSeries.objects.create(source=source, name="x")
    MetricSample.objects.bulk_create(
        [
            MetricSample(series=series, ts=old, value=1),
            MetricSample(series=series, ts=recent, value=2),
        ]
    )
    for i, ts in enumerate((old, recent)):
        Trade.objects.create(
            source=source, trade_id=str(i), symbol="S", side="buy", quantity=1, price=1, ts=ts
        )
        Event.objects.create(source=source, type="error", ts=ts)
    IdempotentRequest.objects.create(
        source=source, key="k", endpoint="metrics", body_sha256="", status_code=202,
        response={}, created_at=now - timedelta(hours=25),
    )  # fmt: skip
    # Kept a day longer than samples: a late sample at the edge restarts from one.
    for age in (32, 30.5):
        DerivedCheckpoint.objects.create(
            source=source, at=now - timedelta(days=age), equity=1.0, ledger={}
        )

    counts = samples_prune(now=now)

    assert counts == {
        "samples": 1, "trades": 1, "events": 1, "idempotency_records": 1,
        "derived_checkpoints": 1,
    }  # fmt: skip
    assert DerivedCheckpoint.objects.get().at == now - timedelta(days=30.5)
    assert list(MetricSample.objects.values_list("value", flat=True)) == [2.0]
    assert Trade.objects.get().trade_id == "1"
    assert Event.objects.get().ts == recent
