"""Metric batches from bytes to valid samples in one pass: the way valid batches take.

msgspec decodes a body straight into typed structs, checking the JSON types, the
required fields and unknown fields in C as it parses (no dict per sample, no second
walk). What JSON types cannot say is checked after, per sample: the name's pattern
and the label set (each once per process, then found in a cache: a bot sends the same
few again and again), the timestamp's window.

Any doubt at all (the parser or any check refuses, a NUL character is spelt out, the
batch is empty or too large) and `samples_decoded` raises `NotFastPath`: the caller then
validates the body with `metrics.validation`, which words every error of the batch
(index, field, message). Refused batches are so answered exactly as before, word for
word, and this module never words an error; a test holds both ways to the same
answers on generated bodies.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import msgspec
import orjson

from .validation import (
    EMPTY_LABELS_KEY,
    ItemError,
    Limits,
    Sample,
    check_name,
    labels_checked,
    parse_timestamp,
    valid_names,
)

NO_LABELS = msgspec.Raw(b"{}")


# gc=False: a sample holds only strings, numbers and bytes (no cycle can run through
# it), so the garbage collector need not track the hundreds of them a batch makes.
class SampleBody(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One sample as sent: `ts` is UNIX seconds (JSON integers arrive as floats), an
    ISO 8601 string, or absent; the labels stay raw JSON text until checked."""

    name: str
    value: float
    ts: float | str | None = None
    labels: msgspec.Raw = NO_LABELS


class SampleBatchBody(msgspec.Struct, forbid_unknown_fields=True):
    samples: list[SampleBody]


_DECODER = msgspec.json.Decoder(SampleBatchBody)


class NotFastPath(Exception):
    """The body is not a plainly valid batch: validate it with `metrics.validation`,
    which accepts it or words why not."""


# Label sets by their raw JSON text, each checked once per process (bounded; cleared
# whole when full). The same set spelt differently is simply kept twice.
_labels_by_text: dict[bytes, tuple[Mapping[str, str], str]] = {}
_LABELS_BY_TEXT_LIMIT = 10_000


def _labels(raw: msgspec.Raw) -> tuple[Mapping[str, str], str]:
    text = bytes(raw)
    known = _labels_by_text.get(text)
    if known is not None:
        return known
    checked = labels_checked(orjson.loads(text))
    if len(_labels_by_text) >= _LABELS_BY_TEXT_LIMIT:
        _labels_by_text.clear()
    _labels_by_text[text] = checked
    return checked


def samples_decoded(raw: bytes, limits: Limits) -> list[Sample]:
    """Every sample of a `{"samples": [...]}` body, or NotFastPath."""
    # PostgreSQL stores no NUL: `metrics.validation`'s parser refuses it by name.
    if b"\\u0000" in raw:
        raise NotFastPath
    try:
        items = _DECODER.decode(raw).samples
    # Malformed JSON, a type or field refused (DecodeError), text that is not UTF-8
    # (UnicodeDecodeError, a ValueError), nesting past the parser's depth.
    except (msgspec.DecodeError, ValueError, RecursionError):
        raise NotFastPath from None
    if not items or len(items) > limits.max_items:
        raise NotFastPath
    now, oldest, newest = limits.now, limits.oldest, limits.newest
    names = valid_names
    known_labels = _labels_by_text
    samples: list[Sample] = []
    append = samples.append
    labels: Mapping[str, str]
    try:
        for item in items:
            name = item.name
            if name not in names:
                check_name(name)
            # A float, and finite: JSON spells no NaN or infinity, and msgspec refuses a
            # number beyond a double's range.
            value = item.value
            raw_labels = item.labels
            if raw_labels is NO_LABELS:
                labels, labels_key = {}, EMPTY_LABELS_KEY
            else:
                found = known_labels.get(bytes(raw_labels))
                labels, labels_key = found if found is not None else _labels(raw_labels)
            raw_ts = item.ts
            if raw_ts is None:
                ts = now
            elif type(raw_ts) is float:
                ts = datetime.fromtimestamp(raw_ts, UTC)
                if ts > newest or ts < oldest:
                    raise NotFastPath
            else:
                ts = parse_timestamp(raw_ts, "ts", limits)
            append(Sample(name, labels, labels_key, ts, value))
    # A check refused (ItemError); label text orjson refuses (a ValueError) or nests too
    # deep; a timestamp out of the platform's range.
    except (ItemError, ValueError, RecursionError, OverflowError, OSError):
        raise NotFastPath from None
    return samples
