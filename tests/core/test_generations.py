"""Generation tokens read once per ingestion request: one round trip for all of them,
never a copy taken for newer than it is, and an edit made meanwhile seen at once."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache

from core.generations import (
    KeptCopy,
    generation_bump,
    generation_current,
    generation_known,
    generations_read_once,
)
from core.redis_cache import redis_cache_client

RULES = generation_known("test-rules-generation")
KEYS = generation_known("test-keys-generation")


@pytest.fixture(autouse=True)
def _tokens() -> None:
    cache.set(RULES, "r1", timeout=None)
    cache.set(KEYS, "k1", timeout=None)


def token(key: str) -> object:
    return generation_current(key, what="test")


def test_inside_a_request_every_token_comes_from_one_read_at_its_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = redis_cache_client()
    assert client is not None
    calls: list[str] = []
    for method in ("get", "mget"):
        real = getattr(client, method)

        def counted(*args: Any, _real: Any = real, _name: str = method, **kwargs: Any) -> Any:
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(client, method, counted)

    with generations_read_once():
        first = (token(RULES), token(KEYS), token(RULES))
        cache.set(RULES, "r2", timeout=None)  # another process's edit, committed now
        again = (token(RULES), token(KEYS))

    assert calls == ["mget"]  # one round trip for all of them
    assert first[0] == first[2] == again[0]  # read at the start: older than any row read
    assert first[1] == again[1]
    assert token(RULES) != first[0]  # the next request sees the edit
    assert calls == ["mget", "get"]


def test_an_edit_committed_inside_the_request_is_read_again(
    db: None, django_capture_on_commit_callbacks: Any
) -> None:
    reads: list[int] = []
    copy: KeptCopy[int] = KeptCopy(RULES, what="test rules", ttl_seconds=300)

    def read() -> int:
        reads.append(1)
        return len(reads)

    with generations_read_once():
        assert copy.get(read) == 1
        assert copy.get(read) == 1  # kept: same token
        with django_capture_on_commit_callbacks(execute=True):
            generation_bump(RULES)  # e.g. a threshold action halting the source
        # Its token was dropped: read again from the cache, so the copy taken under the
        # old one is not taken for current.
        assert copy.get(read) == 2
        assert copy.get(read) == 2


def test_outside_a_request_each_read_goes_to_the_cache() -> None:
    assert token(RULES) != token(KEYS)
    cache.set(RULES, "r3", timeout=None)
    first = token(RULES)
    cache.set(RULES, "r4", timeout=None)
    assert token(RULES) != first
