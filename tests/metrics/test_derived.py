"""Derived trading metrics: recomputed from stored trades and equity, stored as samples."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from alerts.models import Alert
from alerts.tasks import evaluate_all_sources, evaluate_source
from alerts.trigger import DERIVATION_NEEDED
from metrics.derived import Derivation, trading_metrics_derive
from metrics.ingest import metric_ingest
from metrics.models import DerivationRequest, DerivedCheckpoint, DerivedState, MetricSeries, Source
from metrics.validation import Sample
from tests.processes import celery_worker, process_environment, wait_until

pytestmark = pytest.mark.django_db


def post(client: APIClient, path: str, body: object) -> None:
    response = client.post(path, json.dumps(body), content_type="application/json")
    assert response.status_code == 202, response.content


def latest(source: Source) -> dict[str, float | None]:
    return {
        name: value
        for name, value in MetricSeries.objects.filter(source=source, labels_key="{}").values_list(
            "name", "last_value"
        )
    }


def test_it_derives_drawdown_pnl_and_win_rate_from_trades_and_equity(
    source_client: APIClient, source: Source
) -> None:
    now = timezone.now()
    equity = [(10, 1000.0), (8, 1200.0), (5, 900.0)]  # minutes ago, value
    post(source_client, "/api/v1/metrics", {"samples": [
        {"name": "equity", "value": value, "ts": (now - timedelta(minutes=m)).isoformat()}
        for m, value in equity
    ]})  # fmt: skip
    btc, eth = {"symbol": "BTC/USDT"}, {"symbol": "ETH/USDT"}
    post(source_client, "/api/v1/trades", {"trades": [
        {**btc, "id": "1", "side": "buy", "quantity": 1, "price": 100, "pnl": 50, "fee": 1},
        {**btc, "id": "2", "side": "sell", "quantity": 1, "price": 90, "pnl": -20, "fee": 1},
        {**eth, "id": "3", "side": "buy", "quantity": 2, "price": 45, "pnl": -5, "fee": 0},
    ]})  # fmt: skip

    values = trading_metrics_derive(source=source).values

    stored = latest(source)
    # peak 1200, now 900: (1200 - 900) / 1200 = 25 %
    assert stored["drawdown_pct"] == pytest.approx(25.0)
    assert stored["max_drawdown_pct"] == pytest.approx(25.0)
    assert stored["peak_equity"] == 1200.0
    # net pnl: (50 - 1) + (-20 - 1) + (-5 - 0) = 23
    assert stored["total_pnl"] == pytest.approx(23.0)
    assert stored["daily_pnl"] == pytest.approx(23.0)
    # one win of three closing trades
    assert stored["win_rate_pct"] == pytest.approx(100 / 3)
    assert stored["consecutive_losses"] == 2
    assert stored["trades_last_5m"] == 3
    # open: BTC flat (buy 1, sell 1), ETH 2 x 45 = 90 of equity 900 -> 10 %
    assert stored["largest_position_pct"] == pytest.approx(10.0)
    assert stored["equity"] == 900.0  # the source's own series, not written again
    assert "equity" not in values


def test_it_derives_nothing_for_a_source_without_data(source: Source) -> None:
    derivation = trading_metrics_derive(source=source)

    assert (derivation.values, derivation.as_of, derivation.inputs) == ({}, None, 0)
    assert not MetricSeries.objects.filter(source=source).exists()


def test_it_queues_one_evaluation_for_a_burst_of_batches(
    source_client: APIClient, source: Source, django_capture_on_commit_callbacks: object
) -> None:
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("ingest")

    for i in range(20):
        with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
            post(source_client, "/api/v1/trades", {"trades": [
                {"id": f"t-{i}", "symbol": "BTC/USDT", "side": "buy", "quantity": 1, "price": 1}
            ]})  # fmt: skip

    queued = [json.loads(message) for message in broker.lrange("ingest", 0, -1)]
    assert [m["headers"]["task"] for m in queued] == ["alerts.tasks.evaluate_source"]
    assert json.loads(base64.b64decode(queued[0]["body"]))[0] == [source.pk]
    assert cache.get(DERIVATION_NEEDED.format(source_id=source.pk)) == 1
    broker.delete("ingest")


def test_it_asks_for_no_derivation_for_samples_other_than_equity(
    source_client: APIClient, source: Source, django_capture_on_commit_callbacks: object
) -> None:
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("ingest")
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        post(source_client, "/api/v1/metrics", {"samples": [{"name": "latency_ms", "value": 3}]})

    assert cache.get(DERIVATION_NEEDED.format(source_id=source.pk)) is None
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("ingest")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_derives_in_a_real_worker_after_trades_arrive_over_the_api(
    source_client: APIClient, source: Source
) -> None:
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("ingest")
    with celery_worker(process_environment(), queues="ingest"):
        post(source_client, "/api/v1/metrics", {"samples": [{"name": "equity", "value": 1000}]})
        post(source_client, "/api/v1/trades", {"trades": [
            {"id": "w", "symbol": "BTC/USDT", "side": "sell", "quantity": 1, "price": 10, "pnl": 12}
        ]})  # fmt: skip

        assert wait_until(lambda: latest(source).get("total_pnl") == 12.0, 60)

    assert latest(source)["win_rate_pct"] == 100.0


def test_it_skips_a_disabled_source(source: Source) -> None:
    Source.objects.filter(pk=source.pk).update(enabled=False)

    evaluate_source.run(source.pk)

    assert not MetricSeries.objects.filter(source=source).exists()


def test_it_alerts_on_a_drawdown_trough_inside_one_batch(
    source_client: APIClient, source: Source, django_capture_on_commit_callbacks: object
) -> None:
    # The pack's drawdown rule judges the newest value; the trough (10.9 %) came and went
    # inside the batch, and must still be seen.
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    start = timezone.now() - timedelta(seconds=30)
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        post(source_client, "/api/v1/metrics", {"samples": [
            {"name": "equity", "value": value, "ts": (start + timedelta(seconds=i)).isoformat()}
            for i, value in enumerate([1000.0, 1100.0, 980.0, 1090.0])
        ]})  # fmt: skip

    evaluate_source.run(source.pk)
    broker.delete("ingest")

    [alert] = Alert.objects.filter(source=source, rule__name="Drawdown")
    assert alert.peak_value == pytest.approx((1100 - 980) / 1100 * 100)
    assert (alert.state, alert.resolution) == ("resolved", "cleared")
    assert list(alert.timeline.values_list("kind", "notify")) == [
        ("firing", True),
        ("resolved", True),
    ]


def equity_batch(source: Source, points: list[tuple[timedelta, float]], base: datetime) -> None:
    metric_ingest(
        source=source,
        samples=[Sample("equity", {}, "{}", base + offset, value) for offset, value in points],
        evaluate=False,
    )


def test_it_folds_a_late_batch_in_from_the_checkpoint_before_it(source: Source) -> None:
    base = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    minute = timedelta(minutes=1)
    equity_batch(source, [(minute * k, 1000.0 + k) for k in range(0, 240, 10)], base)
    trading_metrics_derive(source=source)
    # One checkpoint per hour the inputs reached (an input on the hour belongs to it).
    stamps = list(DerivedCheckpoint.objects.filter(source=source).values_list("at", flat=True))
    assert stamps == [base + timedelta(hours=h) for h in (0, 1, 2, 3)]

    # At 2:35: a crash to 500, arriving late.
    equity_batch(source, [(timedelta(minutes=155), 500.0)], base)
    derivation = trading_metrics_derive(source=source)

    assert derivation.rebuilt_from == base + timedelta(hours=2)
    # From the 2:00 checkpoint: 2:10 to 3:50 and the late one, not all 25 inputs.
    assert derivation.inputs == 12
    assert derivation.values["max_drawdown_pct"] == pytest.approx((1150 - 500) / 1150 * 100)
    # The same as folding everything again from scratch.
    DerivedState.objects.filter(source=source).delete()
    DerivedCheckpoint.objects.filter(source=source).delete()
    assert trading_metrics_derive(source=source).values == derivation.values


def test_it_derives_on_beat_what_no_hint_announced(source: Source) -> None:
    # Stored while the cache was away: no flag was raised, no task queued; the batch's
    # own request row is what beat's evaluation finds.
    equity_batch(source, [(timedelta(0), 1000.0), (timedelta(seconds=1), 850.0)],
                 timezone.now() - timedelta(seconds=5))  # fmt: skip

    evaluate_all_sources.run()

    assert latest(source)["drawdown_pct"] == pytest.approx(15.0)
    assert not DerivationRequest.objects.filter(source=source).exists()


def test_it_folds_a_long_history_in_slices_that_each_end_between_instants(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = timezone.now() - timedelta(hours=3)
    equity_batch(source, [(timedelta(minutes=k), 1000.0 - (k % 7) * 3) for k in range(100)], base)
    whole = trading_metrics_derive(source=source)
    DerivedState.objects.filter(source=source).delete()
    DerivedCheckpoint.objects.filter(source=source).delete()
    monkeypatch.setattr("metrics.derived.SLICE_INPUTS", 30)

    slices: list[Derivation] = []
    while not slices or not slices[-1].complete:
        slices.append(trading_metrics_derive(source=source))

    # 30 read each time, the last instant read left for the next slice: it is only
    # certain to be whole once read again with what follows.
    assert [d.inputs for d in slices] == [29, 29, 29, 13]
    assert slices[-1].values == whole.values
    assert not DerivationRequest.objects.filter(source=source).exists()


def test_it_forgets_a_sharpe_that_a_late_sample_makes_undefined(
    source: Source, reader: APIClient
) -> None:
    # Hourly grid 1:00, 2:00, 3:00 (from the first sample at 0:59). Before the late
    # sample the grid reads 100, 101, 101: returns 1 % and 0, a Sharpe ratio. The late
    # sample at 1:59 makes it 100, 100, 100: no deviation, no Sharpe (found by the
    # oracle's random draws, where the old value stayed the latest, as of the newest
    # input, and rules kept reading it).
    base = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    equity_batch(
        source,
        [(timedelta(minutes=59), 100.0), (timedelta(hours=1, minutes=30), 101.0)],
        base,
    )
    equity_batch(source, [(timedelta(hours=3, milliseconds=15), 101.0)], base)
    assert trading_metrics_derive(source=source).values["sharpe_ratio"] is not None
    assert latest(source)["sharpe_ratio"] is not None

    equity_batch(source, [(timedelta(hours=1, minutes=59), 100.0)], base)
    equity_batch(source, [(timedelta(hours=3, milliseconds=15), 100.0)], base)
    derivation = trading_metrics_derive(source=source)

    assert "sharpe_ratio" not in derivation.values
    snapshot = reader.get(f"/api/v1/sources/{source.pk}/snapshot").json()["trading"]
    assert "sharpe_ratio" not in snapshot
    assert latest(source)["sharpe_ratio"] is None
