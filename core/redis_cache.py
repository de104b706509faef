"""The Redis client behind the default cache, its keys, and Lua scripts run on it.

Hot paths (rate limits, evaluation flags, configuration generations) speak to Redis
directly, in one round trip, instead of through Django's cache API, which costs several
times that. Each caller falls back to the cache API when the default cache is not Redis
(the embedded mode's file cache, tests' local memory).
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

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


def redis_cache_url() -> str | None:
    """The URL of the default cache's Redis (for an asyncio client of the web front), or
    None when the cache is not Redis."""
    location = settings.CACHES["default"].get("LOCATION", "")
    if isinstance(location, list | tuple):
        location = location[0]
    if not str(location).startswith(("redis://", "rediss://", "unix://")):
        return None
    return str(location)


def cache_key(name: str) -> str:
    """The key the default cache stores `name` under (its prefix and version added)."""
    return caches["default"].make_and_validate_key(name)


_scripts: dict[str, Any] = {}


def redis_script(client: Any, source: str) -> Callable[..., Any]:
    """Lua `source` run on `client` in one round trip (EVALSHA; loaded when missing)."""
    script = _scripts.get(source)
    if script is None:
        script = _scripts[source] = client.register_script(source)
    return functools.partial(script, client=client)
