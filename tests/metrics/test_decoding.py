"""The one-pass decoder of metric batches against the validator that words every error.

`metrics.validation` (orjson, then plain checks) is the reference: it was the only path
before the decoder, and it still answers every batch the decoder does not take. For any
body, the decoder either declines (and the reference answers, as before), or returns
exactly the samples the reference returns. Plainly valid batches must take the fast way.
"""

from __future__ import annotations

import io
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import APIException
from rest_framework.test import APIClient

from metrics.api.parsers import StrictJSONParser
from metrics.decoding import NotFastPath, samples_decoded
from metrics.validation import (
    BatchInvalid,
    BatchTooLarge,
    Limits,
    Sample,
    validate_samples,
)

NOW = datetime.now(UTC)
LIMITS = Limits(now=NOW, retention=timedelta(days=30), max_items=50)


def reference(raw: bytes, limits: Limits) -> tuple[str, Any]:
    """What the API answered before the decoder: samples, or the refusal as sent."""
    try:
        body = StrictJSONParser().parse(io.BytesIO(raw)) if raw else {}
        return "valid", validate_samples(body, limits)
    except APIException as exc:
        return f"refused {exc.status_code}", str(exc.detail)
    except BatchTooLarge as exc:
        return "refused 413", str(exc)
    except BatchInvalid as exc:
        return "refused 400", ([error.as_dict() for error in exc.errors], exc.total)


def decoded(raw: bytes, limits: Limits = LIMITS) -> list[Sample] | None:
    try:
        return samples_decoded(raw, limits)
    except NotFastPath:
        return None


def same_samples(ours: list[Sample], theirs: list[Sample]) -> bool:
    # Values compared bit for bit (-0.0 and 0.0 differ in what is stored).
    return len(ours) == len(theirs) and all(
        (a.name, dict(a.labels), a.labels_key, a.ts) == (b.name, dict(b.labels), b.labels_key, b.ts)
        and math.copysign(1, a.value) == math.copysign(1, b.value)
        and a.value == b.value
        for a, b in zip(ours, theirs, strict=True)
    )


def assert_agrees(raw: bytes, limits: Limits = LIMITS) -> list[Sample] | None:
    ours = decoded(raw, limits)
    verdict, theirs = reference(raw, limits)
    if ours is not None:
        assert verdict == "valid", (raw, theirs)
        assert same_samples(ours, theirs), (raw, ours, theirs)
    return ours


# --- generated bodies ----------------------------------------------------------------

stamp = NOW.timestamp()
names = st.sampled_from(
    ["equity", "drawdown_pct", "a:b.c", "_x", "9lives", "a b", "", "x" * 200, "x" * 201, "é"]
) | st.text(max_size=8)
numbers = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([0, -0.0, 1e308, 1.5, -3])
)
values = numbers | st.booleans() | st.none() | st.text(max_size=3) | st.just([1])
timestamps = (
    st.floats(min_value=stamp - 40 * 86400, max_value=stamp + 3600)
    | st.integers(min_value=int(stamp) - 40 * 86400, max_value=int(stamp) + 3600)
    | st.sampled_from(
        [
            NOW.isoformat(),
            (NOW - timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
            (NOW - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S+00:00"),
            (NOW - timedelta(minutes=1)).strftime("%Y%m%dT%H%M%SZ"),
            NOW.replace(tzinfo=None).isoformat(),
            (NOW - timedelta(days=31)).isoformat(),
            (NOW + timedelta(hours=1)).isoformat(),
            "yesterday",
            "",
        ]
    )
    | numbers
    | st.booleans()
    | st.none()
)
label_names = st.sampled_from(["symbol", "exchange", "_k", "bad-name", "1x", "x" * 101]) | st.text(
    max_size=4
)
label_values = st.text(max_size=5) | st.sampled_from(["BTC/USDT", "x" * 201]) | values
label_sets: st.SearchStrategy[Any] = (
    st.dictionaries(label_names, label_values, max_size=18)
    | st.none()
    | st.just([])
    | st.just("symbol")
)
FIELDS = {"name": names, "value": values, "ts": timestamps, "labels": label_sets}
sample_bodies: st.SearchStrategy[Any] = st.fixed_dictionaries(
    {}, optional={**FIELDS, "unit": st.just("pct"), "source": st.just(1)}
) | st.sampled_from([None, 1, "x", []])
bodies = st.fixed_dictionaries(
    {}, optional={"samples": st.lists(sample_bodies, max_size=6) | values, "source": st.just("me")}
) | st.lists(sample_bodies, max_size=2)


@settings(max_examples=1500, deadline=None)
@given(body=bodies, ascii_only=st.booleans())
def test_it_returns_what_the_reference_returns_or_declines(body: Any, ascii_only: bool) -> None:
    # NaN and Infinity come out as bare words: malformed JSON, worth sending too.
    raw = json.dumps(body, allow_nan=True, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")

    assert_agrees(raw)


good_samples = st.fixed_dictionaries(
    {
        "name": st.from_regex(r"[A-Za-z_:][A-Za-z0-9_:.]{0,30}", fullmatch=True),
        "value": st.floats(allow_nan=False, allow_infinity=False)
        | st.integers(min_value=-(2**53), max_value=2**53),
    },
    optional={
        "ts": st.floats(min_value=stamp - 29 * 86400, max_value=stamp + 200)
        | st.integers(min_value=int(stamp) - 29 * 86400, max_value=int(stamp) + 200)
        | st.just(None),
        "labels": st.dictionaries(
            st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True),
            st.text(max_size=20).filter(lambda text: "\x00" not in text),
            max_size=16,
        )
        | st.none(),
    },
)


@settings(max_examples=500, deadline=None)
@given(batch=st.lists(good_samples, min_size=1, max_size=20), ascii_only=st.booleans())
def test_it_takes_every_plainly_valid_batch_the_fast_way(
    batch: list[dict[str, Any]], ascii_only: bool
) -> None:
    raw = json.dumps({"samples": batch}, ensure_ascii=ascii_only).encode()

    assert assert_agrees(raw) is not None


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batch=st.lists(good_samples, min_size=1, max_size=4),
    position=st.integers(min_value=0),
    noise=st.binary(min_size=1, max_size=4),
    replace=st.booleans(),
)
def test_it_agrees_on_corrupted_bytes(
    batch: list[dict[str, Any]], position: int, noise: bytes, replace: bool
) -> None:
    raw = json.dumps({"samples": batch}).encode()
    at = position % len(raw)
    corrupted = raw[:at] + noise + raw[at + (len(noise) if replace else 0) :]

    assert_agrees(corrupted)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"samples":[{"name":"x","name":"y","value":1}]}',
        b'{"samples":[{"name":"x","value":"a","value":2}]}',
        b'{"samples":[{"name":"x","value":1}],"samples":[]}',
        b'{"samples":[{"name":"x","value":1,"labels":{"a":"1","a":2}}]}',
        b'{"samples":[{"name":"x","value":1,"labels":{"a":"\\u0000"}}]}',
        b'{"samples":[{"name":"\\u0078","value":1,"labels":{"\\u0061":"\\u00e9"}}]}',
        b'{"samples":[{"name":"x","value":1,"labels":{"a":"\\ud800"}}]}',
        b'{"samples":[{"name":"x","value":1,"labels":{"a":"\xff"}}]}',
        b'{"samples":[{"name":"x","value":1,"labels":{"a":1e999}}]}',
        b'{"samples":[{"name":"x","value":1,"labels":' + b"[" * 3000 + b"]" * 3000 + b"}]}",
        b'{"samples":[{"name":"x","value":1e999}]}',
        b'{"samples":[{"name":"x","value":-1e-400}]}',
        b'{"samples":[{"name":"x","value":' + b"9" * 400 + b"}]}",
        b'\xef\xbb\xbf{"samples":[{"name":"x","value":1}]}',
        b' \n{"samples" : [ {"name":"x", "value":1 , "labels" : { } } ] }\t',
        b'{"samples":[{"name":"x","value":1,"labels":null,"ts":null}]}',
        b"",
        b"null",
        b"[]",
    ],
)
def test_it_agrees_on_odd_bodies(raw: bytes) -> None:
    assert_agrees(raw)


def test_it_declines_a_batch_over_the_item_limit() -> None:
    raw = json.dumps({"samples": [{"name": "x", "value": 1}] * 51}).encode()

    assert decoded(raw) is None
    assert reference(raw, LIMITS)[0] == "refused 413"


def test_it_takes_unix_seconds_and_iso_times_as_the_reference_does() -> None:
    ts = (NOW - timedelta(seconds=30)).timestamp()
    raw = json.dumps(
        {
            "samples": [
                {"name": "x", "value": 1, "ts": ts},
                {"name": "x", "value": 2, "ts": int(ts)},
                {"name": "x", "value": 3, "ts": (NOW - timedelta(seconds=5)).isoformat()},
                {"name": "x", "value": 4},
            ]
        }
    ).encode()

    samples = assert_agrees(raw)

    assert samples is not None
    assert [sample.ts for sample in samples][3] == NOW


# --- through the API: the same answers as the reference ---------------------------------


@pytest.mark.django_db
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies)
def test_the_api_answers_what_the_reference_says(source_client: APIClient, body: Any) -> None:
    raw = json.dumps(body, allow_nan=True).encode()
    limits = Limits(now=datetime.now(UTC), retention=timedelta(days=30), max_items=10_000)
    verdict, detail = reference(raw, limits)

    response = source_client.generic(
        "POST", "/api/v1/metrics", raw,  # type: ignore[arg-type]  # bytes are what is sent
        content_type="application/json",
    )  # fmt: skip

    if verdict == "valid":
        assert response.status_code == 202, response.content
        assert response.json()["accepted"] == len(detail)
        return
    assert f"refused {response.status_code}" == verdict, response.content
    errors = response.json()["errors"]
    if verdict == "refused 400" and isinstance(detail, tuple):
        listed, total = detail
        assert errors == listed
        assert response.json().get("total_errors", len(listed)) == total
    else:
        assert [error["message"] for error in errors] == [detail]
