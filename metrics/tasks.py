"""Celery tasks of the metrics app, and the Redis helpers the apps share."""

from __future__ import annotations

import functools
import logging
import weakref
from collections.abc import Callable
from typing import Any

from celery import shared_task
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from .retention import samples_prune

logger = logging.getLogger(__name__)


# redis-py clients by cache backend: Django builds a new one on every call, which costs
# more than the round trip it makes (each copies a table of ~200 reply callbacks). Weak
# keys: a backend built anew (settings changed) never finds the client of an old one.
_clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def redis_cache_client() -> Any | None:
    """The redis-py client behind the default cache, or None when it is not Redis."""
    backend = caches["default"]  # one per thread
    if not isinstance(backend, RedisCache):
        return None
    inner = backend._cache
    client = _clients.get(inner)
    if client is None:
        client = _clients[inner] = inner.get_client(write=True)
    return client


def cache_key(name: str) -> str:
    return caches["default"].make_and_validate_key(name)


_scripts: dict[str, Any] = {}


def redis_script(client: Any, source: str) -> Callable[..., Any]:
    """Lua `source` run on `client` in one round trip (EVALSHA; loaded when missing)."""
    script = _scripts.get(source)
    if script is None:
        script = _scripts[source] = client.register_script(source)
    return functools.partial(script, client=client)


@shared_task(name="metrics.tasks.prune", time_limit=600, soft_time_limit=570)
def prune() -> None:
    """Delete samples, trades, events and idempotency records past their retention."""
    samples_prune()
