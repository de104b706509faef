"""Cost of the ingestion rate limit per request, on the Redis cache: the sliding window
(`metrics.ratelimit.hit`, one Lua script over up to 61 one-second counters) against the
fixed one-minute window it replaced (one INCR script), in the same run.

Each is timed over --calls calls for one source, a steady stream of 50 requests a
second (so the window holds its full 61 counters) at a limit that never refuses.

    CACHE_URL=redis://127.0.0.1:6379/15 .venv/bin/python -m bench.rate_limit [--calls 20000]

The last line printed is JSON: {"sliding_p50_us": .., "sliding_p99_us": .., "fixed_...": ..}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitoring_site.settings")

_FIXED = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000)
    calls = parser.parse_args().calls

    import django

    django.setup()
    from core.redis_cache import cache_key, redis_cache_client, redis_script
    from metrics import ratelimit

    client = redis_cache_client()
    if client is None:
        raise SystemExit("the cache is not Redis: set CACHE_URL=redis://...")
    start = 1_900_000_000.0
    sliding: list[int] = []
    fixed: list[int] = []
    fixed_script = redis_script(client, _FIXED)
    for i in range(calls):
        now = start + i / 50
        began = time.perf_counter_ns()
        ratelimit.hit("bench-rate:1", limit=10**9, now=now)
        sliding.append(time.perf_counter_ns() - began)
        key = cache_key(f"bench-rate-fixed:1:{int(now // 60)}")
        began = time.perf_counter_ns()
        fixed_script(keys=[key], args=[120])
        fixed.append(time.perf_counter_ns() - began)
    client.delete(cache_key("bench-rate:1"))

    def pct(values: list[int], q: float) -> float:
        ordered = sorted(values)
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000, 1)

    result = {
        "calls": calls,
        "sliding_p50_us": pct(sliding, 0.5),
        "sliding_p99_us": pct(sliding, 0.99),
        "fixed_p50_us": pct(fixed, 0.5),
        "fixed_p99_us": pct(fixed, 0.99),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
