"""The ingestion rate limit is a sliding window, against the real Redis cache.

Time is driven explicitly (the throttle's clock is replaced), never waited for.
"""

from __future__ import annotations

import json
import random
from bisect import bisect_left
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from metrics import ratelimit
from metrics.api import throttling
from metrics.models import Source

pytestmark = pytest.mark.django_db

LIMIT = 20
BOUNDARY = 1_800_000_000.0  # a minute boundary (a multiple of 60)


class Clock:
    """Stands in for the `time` module in the throttle: `time()` says what the test says."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(BOUNDARY)
    monkeypatch.setattr(throttling, "time", SimpleNamespace(time=fake.time))
    return fake


def post(client: APIClient) -> int:
    response = client.post(
        "/api/v1/heartbeat", json.dumps({"status": "ok"}), content_type="application/json"
    )
    return int(response.status_code)


def most_in_any_minute(times: list[float]) -> int:
    """The largest number of `times` within any 60-second span [t, t + 60)."""
    times = sorted(times)
    return max((bisect_left(times, t + 60) - i for i, t in enumerate(times)), default=0)


@override_settings(TRADEWATCH_INGEST_RATE_PER_MINUTE=LIMIT)
def test_it_never_lets_more_than_the_limit_through_across_a_minute_boundary(
    source_client: APIClient, clock: Clock
) -> None:
    passed: list[float] = []
    # A burst from 5 s before a minute boundary to 5 s after it, every 100 ms.
    for step in range(100):
        clock.now = BOUNDARY - 5 + step * 0.1
        status = post(source_client)
        assert status in (202, 429)
        if status == 202:
            passed.append(clock.now)

    assert len(passed) == LIMIT
    assert most_in_any_minute(passed) == LIMIT


@override_settings(TRADEWATCH_INGEST_RATE_PER_MINUTE=LIMIT)
def test_its_retry_after_is_honest(source_client: APIClient, clock: Clock) -> None:
    clock.now = BOUNDARY - 1.5
    assert [post(source_client) for _ in range(LIMIT)] == [202] * LIMIT
    clock.now = BOUNDARY + 0.25

    response = source_client.post("/api/v1/heartbeat", "{}", content_type="application/json")

    assert response.status_code == 429
    assert "throttled" in response.json()["errors"][0]["message"].lower()
    wait = int(response["Retry-After"])
    # Counted in the slot [B - 2, B - 1), they leave the window at B + 59: 58.75 s on.
    assert wait == 59
    clock.now += wait - 1
    assert post(source_client) == 429  # a second early is still too early
    clock.now += 1
    assert post(source_client) == 202  # at Retry-After it passes


@override_settings(TRADEWATCH_INGEST_RATE_PER_MINUTE=50)
def test_it_holds_the_limit_over_any_minute_of_random_bursts(  # straight on Redis
    source: Source,
) -> None:
    chance = random.Random(18)
    passed: list[float] = []
    refused_waits: list[tuple[float, int]] = []
    now = BOUNDARY - 90
    while now < BOUNDARY + 150:
        # Bursts of 100 requests a second and lulls of up to 5 s: about 200 a minute.
        now += chance.choice([0.01] * 20 + [0.3, 1.0, 5.0])
        decision = ratelimit.hit(f"ingest-rate:{source.pk}", limit=50, now=now)
        if decision.allowed:
            passed.append(now)
        else:
            refused_waits.append((now, decision.retry_after))

    assert most_in_any_minute(passed) == 50  # reached, never passed
    assert refused_waits
    # Every Retry-After was honest: a request at that time would have found room (the
    # ones let in after the refusal did not count then, so leave them out).
    for at, wait in refused_waits:
        before = [t for t in passed if t < at]
        in_window = [t for t in before if int(t) >= int(at + wait) - 60]
        assert len(in_window) < 50, (at, wait)


def test_it_holds_the_limit_on_a_cache_without_scripts(settings: Any, source: Source) -> None:
    # The embedded mode's file cache has no Lua: the same window with atomic increments.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "rl"}
    }
    passed: list[float] = []
    now = BOUNDARY - 30
    for step in range(400):
        now = BOUNDARY - 30 + step * 0.25
        decision = ratelimit.hit(f"ingest-rate:{source.pk}", limit=LIMIT, now=now)
        if decision.allowed:
            passed.append(now)
        else:
            assert 1 <= decision.retry_after <= 61

    assert most_in_any_minute(passed) == LIMIT
