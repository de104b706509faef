"""How long `record()` keeps the trading loop busy while the sender thread is flushing.

Times each call on the calling thread with perf_counter_ns, against a live receiver:
the test receiver (tests/client/receiver.py) started on a free loopback port, or the
server given with --url. Two runs of --calls calls each:

- paced (the headline figures): a trading loop's shape, ticks of --burst calls with a
  short wait for market data between them, at --rate calls per second overall. The
  sender has a full batch ready all the time, so it encodes and posts throughout.
- flat_out: the same calls back to back with no wait at all. The sender is starved of
  the GIL and the queue only grows, so this mostly measures fresh-memory page faults
  of a growing queue; reported as a worst case.

    .venv/bin/python -m bench.client_overhead [--calls 200000] [--url URL --api-key KEY]

A third run times `may_open_positions()` (the trading state, kept fresh by its own
long-polling thread) the same paced way, reported under "may_open_positions".

The last line printed is JSON: {"p50_us": .., "p99_us": .., "p999_us": .., ...}.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.client.receiver import ReceiverProcess
from tradewatch_client import Client


def percentiles(timings_ns: list[int]) -> dict[str, float]:
    """p50, p99, p99.9 and max of call durations, in microseconds."""
    ordered = sorted(timings_ns)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1000, 3)

    return {"p50_us": at(0.50), "p99_us": at(0.99), "p999_us": at(0.999), "max_us": at(1.0)}


def measure(client: Client, calls: int, burst: int, pause: float) -> dict[str, Any]:
    """Time `calls` calls of record(), `burst` at a time with `pause` seconds between."""
    record = client.record
    clock = time.perf_counter_ns
    sleep = time.sleep
    timings = [0] * calls
    sent_before = client.stats()["sent"]
    # The collector's pauses would be the trading program's, not the client's.
    gc.disable()
    started = clock()
    try:
        for start in range(0, calls, burst):
            for i in range(start, min(start + burst, calls)):
                before = clock()
                record("drawdown_pct", 12.5, symbol="BTC/USDT", strategy="mean-reversion")
                timings[i] = clock() - before
            if pause:
                sleep(pause)
    finally:
        elapsed = clock() - started
        gc.enable()
    stats = client.stats()
    result: dict[str, Any] = percentiles(timings)
    result["seconds"] = round(elapsed / 1e9, 3)
    # What the sender delivered while the loop ran: proof it was busy, not idle.
    result["sent_during_run"] = stats["sent"] - sent_before
    result["pending_at_end"] = stats["pending"]
    return result


def measure_state(client: Client, calls: int, burst: int, pause: float) -> dict[str, Any]:
    """Time `calls` calls of may_open_positions() interleaved with record(), as a loop that
    checks before each order does, while the state thread long-polls and the sender sends."""
    may_open = client.may_open_positions
    record = client.record
    clock = time.perf_counter_ns
    timings = [0] * calls
    gc.disable()
    try:
        for start in range(0, calls, burst):
            for i in range(start, min(start + burst, calls)):
                before = clock()
                may_open()
                timings[i] = clock() - before
                record("drawdown_pct", 12.5)
            if pause:
                time.sleep(pause)
    finally:
        gc.enable()
    return percentiles(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=100_000, help="paced run, calls per second")
    parser.add_argument("--burst", type=int, default=100, help="paced run, calls per tick")
    parser.add_argument("--url", help="a running Tradewatch (default: start the test receiver)")
    parser.add_argument("--api-key", default="bench-key")
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()

    with ExitStack() as stack:
        url = args.url
        if url is None:
            receiver = ReceiverProcess(api_key=args.api_key, count_only=True).start()
            stack.callback(receiver.kill)
            url = receiver.url
        print(f"sending to {url}", flush=True)
        # Room for the whole flat-out run, which outpaces the sender: the figure is the
        # cost of a call, not of dropping (which is the same deque append anyway).
        client = Client(url, args.api_key, batch_size=args.batch_size, max_queue=2 * args.calls)
        stack.callback(client.close, 10.0)

        measure(client, 20_000, args.burst, args.burst / args.rate)  # warm-up
        client.flush(timeout=60)

        paced = measure(client, args.calls, args.burst, args.burst / args.rate)
        print(f"paced: {paced}", flush=True)
        if not client.flush(timeout=60):
            print("warning: the paced run's data was not all delivered", flush=True)

        client.may_open_positions()  # starts the state thread
        deadline = time.monotonic() + 5
        while client.trading_state() == "unknown" and time.monotonic() < deadline:
            time.sleep(0.01)
        state = measure_state(client, args.calls, args.burst, args.burst / args.rate)
        print(f"may_open_positions: {state}", flush=True)
        client.flush(timeout=60)

        flat_out = measure(client, args.calls, args.calls, 0.0)
        print(f"flat out: {flat_out}", flush=True)
        flushed = client.flush(timeout=60)
        stats = client.stats()
        print(f"flushed={flushed} stats={stats}", flush=True)

    summary = {
        **{key: paced[key] for key in ("p50_us", "p99_us", "p999_us", "max_us")},
        "calls": args.calls,
        "rate_per_s": args.rate,
        "sent_during_run": paced["sent_during_run"],
        "flat_out": {key: flat_out[key] for key in ("p50_us", "p99_us", "p999_us", "max_us")},
        "may_open_positions": state,
        "delivered": stats["sent"],
        "dropped": stats["dropped_queue_full"] + stats["dropped_failed"],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
