"""How a stored batch reaches PostgreSQL: samples, latest values and the derivation
request, whether the batch is small (one statement) or large (COPY and one statement)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from metrics.ingest import SMALL_BATCH_ROWS
from metrics.models import DerivationRequest, MetricSample, MetricSeries, Source

pytestmark = pytest.mark.django_db(transaction=True)


def post(client: APIClient, samples: list[dict[str, object]]) -> int:
    response = client.post(
        "/api/v1/metrics", json.dumps({"samples": samples}), content_type="application/json"
    )
    return int(response.status_code)


@pytest.mark.parametrize("others", [0, SMALL_BATCH_ROWS + 10], ids=["small", "large"])
def test_it_stores_a_batch_of_known_series_with_its_latest_values_and_derivation_request(
    source_client: APIClient, source: Source, others: int
) -> None:
    now = timezone.now().replace(microsecond=0)
    first = [{"name": "equity", "value": 1000.0, "ts": (now - timedelta(seconds=600)).isoformat()}]
    assert post(source_client, first) == 202  # creates the series: the process knows them now
    batch = [
        {"name": "equity", "value": 1010.0, "ts": (now - timedelta(seconds=2)).isoformat()},
        {"name": "equity", "value": 1005.0, "ts": (now - timedelta(seconds=5)).isoformat()},
        *[
            {
                "name": "equity",
                "value": 900.0 + n,
                "ts": (now - timedelta(seconds=10 + n)).isoformat(),
            }
            for n in range(others)
        ],
    ]

    assert post(source_client, batch) == 202

    equity = MetricSeries.objects.get(source=source, name="equity")
    assert (equity.last_value, equity.last_ts) == (1010.0, now - timedelta(seconds=2))
    assert MetricSample.objects.filter(series=equity).count() == 1 + len(batch)
    # One request per batch, each from its batch's earliest equity.
    earliest = min(datetime.fromisoformat(str(sample["ts"])) for sample in batch)
    requested = DerivationRequest.objects.filter(source=source).values_list("since", flat=True)
    assert sorted(requested) == sorted([now - timedelta(seconds=600), earliest])
