"""Retention deletes what is past its age, in chunks, and keeps the rest."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.chunks import delete_older_than, delete_older_than_in
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


def test_it_deletes_samples_the_default_partition_caught_in_chunks(source: Source) -> None:
    now = timezone.now()
    series = MetricSeries.objects.create(source=source, name="x")
    # Years back: no partition covers them, the default partition holds them.
    far = now - timedelta(days=3000)
    MetricSample.objects.bulk_create(
        [MetricSample(series=series, ts=far - timedelta(minutes=i), value=i) for i in range(25)]
        + [MetricSample(series=series, ts=far + timedelta(days=2, minutes=i), value=i)
           for i in range(5)]
    )  # fmt: skip
    chunks: list[int] = []

    deleted = delete_older_than_in(
        "metrics_metricsample_default", "ts", far + timedelta(days=1), chunk=10,
        progress=chunks.append,
    )  # fmt: skip

    assert deleted == 25
    assert chunks == [10, 10, 5]
    assert MetricSample.objects.count() == 5


def test_it_refuses_to_delete_by_row_address_from_a_partitioned_table() -> None:
    # A row address is unique only within a partition: rows of other days would go too.
    with pytest.raises(ValueError, match="partitioned"):
        delete_older_than(MetricSample, "ts", timezone.now())


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
    # A week's partition past the retention: trades and events go by the week.
    for i, ts in enumerate((old - timedelta(days=7), recent)):
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

    # Samples, trades and events a month old went whole with their partition or row by
    # row from the default partition, depending on the partitions the test database has.
    assert {key: counts[key] for key in ("idempotency_records", "derived_checkpoints")} == {
        "idempotency_records": 1, "derived_checkpoints": 1,
    }  # fmt: skip
    assert DerivedCheckpoint.objects.get().at == now - timedelta(days=30.5)
    assert list(MetricSample.objects.values_list("value", flat=True)) == [2.0]
    assert Trade.objects.get().trade_id == "1"
    assert Event.objects.get().ts == recent
