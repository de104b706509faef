"""A sliding-window request limit: at most N requests in any 60 seconds.

Requests are counted in one-second slots. A request at time t is let in when fewer than
N were let in during its own slot and the 60 before it (61 slots): any 60-second span
touches at most 61 consecutive slots, and the last request let in within it saw all the
others, so no span of 60 seconds ever holds more than N. (A fixed window, by contrast,
lets 2N through across its boundary.) The price of counting in slots instead of
keeping every request's time: a request counts against the limit for 60 to 61 seconds,
and the memory per source is at most 61 counters, whatever N is.

Refused requests are not counted: a client that keeps asking gets in as soon as the
window has room, and `retry_after` says exactly when that is.

The window logic is `decide` (pure); `hit` runs it atomically, in Redis with one Lua
script when the cache is Redis, else with the cache's atomic increments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from django.core.cache import cache

from core.redis_cache import cache_key, redis_cache_client, redis_script

WINDOW_SECONDS: Final = 60
# The request's own slot and the WINDOW_SECONDS before it (see the module docstring).
SLOTS: Final = WINDOW_SECONDS + 1


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    # When refused: seconds until a request would pass (rounded up, at least 1).
    retry_after: int = 0


def decide(counts: Mapping[int, int], *, slot: int, limit: int) -> tuple[bool, int | None]:
    """Whether a request in `slot` passes, given the counts per slot let in so far.

    Returns (allowed, None) or (False, the first slot at which a request would pass if
    nothing else arrives meanwhile).
    """
    oldest = slot - SLOTS + 1
    live = sorted((s, n) for s, n in counts.items() if s >= oldest)
    total = sum(n for _, n in live)
    if total < limit:
        return True, None
    # Enough of the oldest requests must leave the window to bring it under the limit;
    # slot s leaves it once the current slot is s + SLOTS.
    excess = total - limit + 1
    freed = 0
    for counted_slot, count in live:
        freed += count
        if freed >= excess:
            return False, max(counted_slot + SLOTS, slot + 1)
    return False, slot + 1  # unreachable: the live counts add up to at least `excess`


def retry_after(pass_slot: int, now: float) -> int:
    """Seconds from `now` until `pass_slot` begins, rounded up (at least 1)."""
    return max(1, math.ceil(pass_slot - now))


# The same as `decide`, counting the request when it passes, in one atomic step.
# KEYS[1]: a hash of slot -> requests let in; ARGV: slot, limit, slots.
_HIT = """
local slot = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local slots = tonumber(ARGV[3])
local oldest = slot - slots + 1
local data = redis.call('HGETALL', KEYS[1])
local live = {}
local total = 0
for i = 1, #data, 2 do
  local s = tonumber(data[i])
  if s < oldest then
    redis.call('HDEL', KEYS[1], data[i])
  else
    local n = tonumber(data[i + 1])
    total = total + n
    live[#live + 1] = {s, n}
  end
end
if total < limit then
  redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
  redis.call('EXPIRE', KEYS[1], slots + 1)
  return {1, 0}
end
table.sort(live, function(a, b) return a[1] < b[1] end)
local excess = total - limit + 1
local freed = 0
for _, entry in ipairs(live) do
  freed = freed + entry[2]
  if freed >= excess then return {0, math.max(entry[1] + slots, slot + 1)} end
end
return {0, slot + 1}
"""


def hit(key: str, *, limit: int, now: float) -> Decision:
    """Count one request under `key` at `now` (UNIX seconds) if the window has room.

    Raises whatever the cache raises when it is unavailable; the caller decides.
    """
    slot = math.floor(now)
    client = redis_cache_client()
    if client is not None:
        allowed, pass_slot = redis_script(client, _HIT)(
            keys=[cache_key(key)], args=[slot, limit, SLOTS]
        )
        if allowed:
            return Decision(True)
        return Decision(False, retry_after(int(pass_slot), now))
    return _hit_with_cache(key, slot=slot, limit=limit, now=now)


def _hit_with_cache(key: str, *, slot: int, limit: int, now: float) -> Decision:
    """`hit` on a cache without scripts: count first, then look, and take it back if
    the window was full. Two racing requests may both be refused where one could have
    passed, but never both let in past the limit."""
    own = f"{key}:{slot}"
    if not cache.add(own, 1, timeout=SLOTS + 1):
        try:
            cache.incr(own)
        except ValueError:  # expired between the two calls
            cache.add(own, 1, timeout=SLOTS + 1)
    keys = {f"{key}:{s}": s for s in range(slot - SLOTS + 1, slot + 1)}
    counts = {keys[name]: int(count) for name, count in cache.get_many(list(keys)).items()}
    counts[slot] = counts.get(slot, 1) - 1  # judge the window without this request
    allowed, pass_slot = decide(counts, slot=slot, limit=limit)
    if allowed:
        return Decision(True)
    cache.decr(own)
    assert pass_slot is not None
    return Decision(False, retry_after(pass_slot, now))
