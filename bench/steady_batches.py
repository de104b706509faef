"""A steady stream of batches from many sources, as trading bots send: for the latency
benchmarks' `--continuous` mode.

Each source posts a small batch of metrics that rules of the trading pack read (so each
batch asks for an evaluation of its source) every `period` seconds, on its own phase,
from a separate process (its own GIL: the prober's timings are not disturbed). The
values stay calm: the stream itself never fires an alert; the probe's breaching batches
arrive among it.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import multiprocessing.synchronize
import random
import threading
import time
from dataclasses import dataclass

# Read by the pack's "Open positions limit" rule (on its newest value); never breaching.
STREAM_BODY = json.dumps({"samples": [{"name": "open_positions", "value": 1}]}).encode()


@dataclass(frozen=True)
class StreamResult:
    sent: int
    errors: int
    late: int  # sends that started more than one period behind their schedule
    seconds: float

    @property
    def batches_per_s(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def _sender(
    host: str,
    port: int,
    keys: list[str],
    period: float,
    stop: threading.Event,
    totals: list[int],
    lock: threading.Lock,
    seed: int,
) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    start = time.monotonic()
    due = [start + rng.uniform(0, period) for _ in keys]
    sent = errors = late = 0
    while not stop.is_set():
        index = min(range(len(keys)), key=due.__getitem__)
        wait = due[index] - time.monotonic()
        if wait > 0:
            stop.wait(wait)
            continue
        if -wait > period:
            late += 1
        due[index] += period
        try:
            conn.request(
                "POST",
                "/api/v1/metrics",
                STREAM_BODY,
                {"Authorization": f"Api-Key {keys[index]}", "Content-Type": "application/json"},
            )
            response = conn.getresponse()
            response.read()
            if response.status == 202:
                sent += 1
            else:
                errors += 1
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.close()
    with lock:
        totals[0] += sent
        totals[1] += errors
        totals[2] += late


def _stream_main(
    host: str,
    port: int,
    keys: list[str],
    period: float,
    threads: int,
    stop: multiprocessing.synchronize.Event,
    results: multiprocessing.Queue[StreamResult],
) -> None:
    totals = [0, 0, 0]
    lock = threading.Lock()
    local_stop = threading.Event()
    workers = [
        threading.Thread(
            target=_sender,
            args=(host, port, keys[i::threads], period, local_stop, totals, lock, i),
            daemon=True,
        )
        for i in range(min(threads, len(keys)))
    ]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    stop.wait()
    local_stop.set()
    for worker in workers:
        worker.join(timeout=35)
    results.put(StreamResult(totals[0], totals[1], totals[2], time.monotonic() - started))


class Stream:
    """`keys`' sources each posting a calm batch every `period` seconds, until `stop`."""

    def __init__(
        self, host: str, port: int, keys: list[str], *, period: float = 0.1, threads: int = 4
    ) -> None:
        context = multiprocessing.get_context("fork")
        self._stop = context.Event()
        self._results: multiprocessing.Queue[StreamResult] = context.Queue()
        self._process = context.Process(
            target=_stream_main,
            args=(host, port, keys, period, threads, self._stop, self._results),
            daemon=True,
        )

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def start(self) -> Stream:
        self._process.start()
        return self

    def stop(self) -> StreamResult | None:
        if not self._process.is_alive() and self._process.exitcode is not None:
            return None
        self._stop.set()
        try:
            result = self._results.get(timeout=60)
        except Exception:
            result = None
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
        return result
