"""Control latency: from posting a breaching batch to the bot learning it is halted.

The alert-latency benchmark's whole setup (see `bench.alert_latency`: production
processes on loopback, a throw-away database, background ingest at --load of the API's
measured capacity, one firing at a time over the probe sources), with the trading pack's
Leverage rule given a trading action: its CRITICAL threshold halts the source.

Before each firing a long-polling client (`GET /api/v1/control?wait=30` with the
state's ETag, on its own connection) waits for a change. Then t0, the breaching POST,
and:

(a) answer: the bot keeps sending (a heartbeat every 2 ms after the breaching POST's
    own answer) until an ingestion answer carries `Tradewatch-Trading-State: halted`;
    from t0 until that answer arrived (the breaching POST's own answer when it already
    says so, as it does when the source was evaluated on arrival);
(b) long poll: from t0 until the long-polling client got its 200 saying `halted`.

Between firings the source is re-armed through the operator API (an Admin's token)
and calmed, as the alert benchmark calms it.

    .venv/bin/python -m bench.control_latency [--firings 400] [--load 0.5] ...

The last line printed is JSON: {"answer_p99_ms": .., "long_poll_p99_ms": .., "halts": N,
...}. Goal: both p99 < 100 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._support import run_checked, say
from bench.alert_latency import (
    BREACH_BODY,
    HOST,
    INGEST_PATH,
    Firing,
    Probe,
    Prober,
    Variant,
    main,
    percentile,
    spread,
)

HEARTBEAT = b"{}"
NEXT_BATCH_EVERY = 0.002

SETUP = """
import django
django.setup()
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from alerts.models import Rule, Threshold
rule = Rule.objects.get(name="Leverage")
rule.trading_actions = True
rule.save()
Threshold.objects.filter(rule=rule, severity=50).update(action="halt")
admin = User.objects.create_superuser("bench-risk-owner", password=None)
print(Token.objects.create(user=admin).key)
"""


class ControlProber(Prober):
    """Fires like the alert prober, then times the bot's two ways of learning the halt."""

    def __init__(self, token: str, port: int, *args: object) -> None:
        super().__init__(port, *args)  # type: ignore[arg-type]
        self.port = port
        self.token = token
        self.answer_ms: list[float] = []
        self.long_poll_ms: list[float] = []
        self.control = http.client.HTTPConnection(HOST, port, timeout=30)

    def close(self) -> None:
        super().close()
        self.control.close()

    def _request(
        self, conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None,
        headers: dict[str, str],
    ) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
        try:
            conn.request(method, path, body=body, headers=headers)
            answer = conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            conn.close()
            conn.request(method, path, body=body, headers=headers)
            answer = conn.getresponse()
        data = answer.read()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, data

    def _ingest(self, probe: Probe, body: bytes, path: str = INGEST_PATH) -> str:
        headers = {"Authorization": f"Api-Key {probe.key}", "Content-Type": "application/json"}
        status, answer, data = self._request(self.http, "POST", path, body, headers)
        if status != 202:
            raise RuntimeError(f"probe POST answered {status}: {data[:300]!r}")
        return answer.get("tradewatch-trading-state", "")

    def fire(self, probe: Probe) -> Firing | None:
        bot = {"Authorization": f"Api-Key {probe.key}"}
        _, headers, _ = self._request(self.control, "GET", "/api/v1/control", None, bot)
        woken: list[tuple[float, int, bytes]] = []

        def long_poll() -> None:
            conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
            try:
                status, _, data = self._request(
                    conn, "GET", "/api/v1/control?wait=30", None,
                    {**bot, "If-None-Match": headers["etag"]},
                )  # fmt: skip
                woken.append((time.perf_counter(), status, data))
            finally:
                conn.close()

        poller = threading.Thread(target=long_poll, daemon=True)
        poller.start()
        time.sleep(0.05)  # the long poll is waiting in the front by now
        wall0 = time.time()
        t0 = time.perf_counter()
        state = self._ingest(probe, BREACH_BODY)
        answered = halted_at = time.perf_counter()
        deadline = t0 + self.timeout
        while state != "halted":  # the bot's next batches, until one is answered halted
            if time.perf_counter() >= deadline:
                return None
            time.sleep(NEXT_BATCH_EVERY)
            state = self._ingest(probe, HEARTBEAT, "/api/v1/heartbeat")
            halted_at = time.perf_counter()
        poller.join(max(0.0, deadline - time.perf_counter()))
        if not woken or woken[0][1] != 200 or json.loads(woken[0][2])["state"] != "halted":
            return None
        answer_ms = (halted_at - t0) * 1000
        long_poll_ms = (woken[0][0] - t0) * 1000
        self.answer_ms.append(answer_ms)
        self.long_poll_ms.append(long_poll_ms)
        first_seen = self._first_seen(probe)
        api = (answered - t0) * 1000
        started = (first_seen.timestamp() - wall0) * 1000 if first_seen else api
        return Firing(answer_ms, api, started, answer_ms - started)

    def reset(self, probe: Probe) -> bool:
        """Re-arm the source as its risk owner would, then calm it."""
        status, _, data = self._request(
            self.control, "POST", f"/api/v1/sources/{probe.source_id}/control",
            json.dumps({"state": "active", "note": "benchmark re-arm"}).encode(),
            {"Authorization": f"Token {self.token}", "Content-Type": "application/json"},
        )  # fmt: skip
        if status != 200:
            raise RuntimeError(f"re-arm answered {status}: {data[:300]!r}")
        return super().reset(probe)


_probers: list[ControlProber] = []


def _prepare(
    env: dict[str, str], conninfo: str, rule_id: int, probes: list[Probe],
    args: argparse.Namespace, port: int,
) -> Prober:  # fmt: skip
    out = run_checked([sys.executable, "-c", SETUP], env, timeout=120, what="arming the rule")
    token = out.strip().splitlines()[-1]
    prober = ControlProber(token, port, conninfo, rule_id, args.timeout, args.poll_ms / 1000)
    prober.warm_up = len(probes)  # type: ignore[attr-defined]
    _probers.append(prober)
    return prober


HALTING = Variant(key="ingest_to_halt_answer", prepare=_prepare)


if __name__ == "__main__":
    # Its own database and Redis databases, so it never meets another latency run's.
    defaults = ["--database", "tradewatch_bench_control_latency", "--redis-db", "4",
                "--cache-db", "5"]  # fmt: skip
    code = main([*defaults, *sys.argv[1:]], HALTING, "control-latency")
    if code == 0 and _probers:
        prober = _probers[-1]
        skip = getattr(prober, "warm_up", 0)
        answers, polls = prober.answer_ms[skip:], prober.long_poll_ms[skip:]
        say(f"answer (ms): {spread(answers)}")
        say(f"long poll (ms): {spread(polls)}")
        print(
            json.dumps(
                {
                    "answer_p50_ms": round(percentile(answers, 50), 1),
                    "answer_p99_ms": round(percentile(answers, 99), 1),
                    "long_poll_p50_ms": round(percentile(polls, 50), 1),
                    "long_poll_p99_ms": round(percentile(polls, 99), 1),
                    "halts": len(answers),
                }
            )
        )
    sys.exit(code)
