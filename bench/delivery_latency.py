"""Delivery latency: from posting a breaching batch to a local webhook receiving the alert.

The alert-latency benchmark's whole setup (see `bench.alert_latency`: production
processes on loopback, a throw-away database, background ingest at --load of the API's
measured capacity, one firing at a time over the probe sources), plus a signed webhook
channel pointing at a receiver in this process and a policy sending the Leverage rule's
CRITICAL alerts to it (resolutions not announced). A firing's latency runs from sending
the breaching POST to the receiver having read the signed notification of that source's
alert; the breakdown splits it at the alert's `first_seen` as there: to evaluation (POST
until the evaluation started), then "evaluate" covering evaluation, the delivery task and
the POST to the receiver; api is the POST until its answer.

    .venv/bin/python -m bench.delivery_latency [--firings 400] [--load 0.5] [--continuous] ...

--continuous: the probe sources also send a steady stream, as there.

The last line printed is JSON: {"ingest_to_delivery_p50_ms": ..,
"ingest_to_delivery_p99_ms": .., "firings": .., "timeouts": .., ...}. Goal: p99 < 100 ms,
in both modes.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._support import run_checked
from bench.alert_latency import BREACH_BODY, HOST, Firing, Probe, Prober, Variant, main

# The receiver's signing secret: a benchmark's own, never a real one.
SIGNING_SECRET = "whsec_" + "YmVuY2htYXJrLW9ubHktc2lnbmluZy1zZWNyZXQ="


class Receiver:
    """A webhook receiver on loopback noting when each source's firing arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        self.got = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                arrived = time.perf_counter()
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()
                payload = json.loads(body)
                if payload.get("event") == "firing":
                    with receiver.got:
                        source = payload["alert"]["source"]
                        receiver.arrivals.setdefault(source, []).append(arrived)
                        receiver.got.notify_all()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{HOST}:{self.server.server_address[1]}/tradewatch"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def first_after(self, source: str, t0: float, deadline: float) -> float | None:
        """When the first firing of `source` sent after `t0` arrived (None at deadline)."""
        with self.got:
            while True:
                later = [t for t in self.arrivals.get(source, []) if t >= t0]
                if later:
                    return later[0]
                left = deadline - time.perf_counter()
                if left <= 0:
                    return None
                self.got.wait(left)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class DeliveryProber(Prober):
    """Fires like the alert prober, but waits for the receiver instead of the table."""

    def __init__(self, receiver: Receiver, names: dict[int, str], *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.receiver = receiver
        self.names = names

    def close(self) -> None:
        super().close()
        self.receiver.close()

    def fire(self, probe: Probe) -> Firing | None:
        wall0 = time.time()
        t0 = time.perf_counter()
        self._post(probe, BREACH_BODY)
        answered = time.perf_counter()
        arrived = self.receiver.first_after(self.names[probe.source_id], t0, t0 + self.timeout)
        if arrived is None:
            return None
        first_seen = self._first_seen(probe)
        latency = (arrived - t0) * 1000
        api = (answered - t0) * 1000
        started = (first_seen.timestamp() - wall0) * 1000 if first_seen else api
        send = self._send_started(probe, datetime.fromtimestamp(wall0, UTC))
        send_ms = None if send is None else (send.timestamp() - wall0) * 1000
        return Firing(latency, api, started, latency - started, send_ms)

    # The firing alert's newest delivery attempt: written when the send ended (`at`), so
    # the send began `duration_ms` before.
    SEND = (
        "SELECT d.at - make_interval(secs => d.duration_ms / 1000) "
        "FROM alerts_deliveryattempt d JOIN alerts_notification n ON n.id = d.notification_id "
        "JOIN alerts_alert a ON a.id = n.alert_id "
        "WHERE a.source_id = %s AND a.rule_id = %s AND a.state = 'firing' AND d.at > %s "
        "ORDER BY d.id DESC LIMIT 1"
    )

    def _send_started(self, probe: Probe, since: datetime) -> datetime | None:
        """When the worker began sending (its attempt row commits just after the receipt:
        waited for up to a second, outside the measured latency)."""
        deadline = time.perf_counter() + 1.0
        while time.perf_counter() < deadline:
            row = self.db.execute(self.SEND, (probe.source_id, self.rule_id, since), prepare=True)
            found = row.fetchone()
            if found is not None:
                return found[0]  # type: ignore[no-any-return]
            time.sleep(0.002)
        return None


CHANNEL_SETUP = """
import django
django.setup()
from alerts.models import Channel, Policy, Rule, Severity
channel = Channel(name="bench receiver", kind="webhook", config={{"url": {url!r}}}, rate_limit=0)
channel.secrets = {{"signing_secret": {secret!r}}}
channel.full_clean()
channel.save()
policy = Policy.objects.create(
    name="bench", min_severity=Severity.CRITICAL, notify_resolved=False,
    notify_acknowledged=False,
)
policy.channels.set([channel])
policy.rules.set([Rule.objects.get(name="Leverage")])
print("ok")
"""


def _prepare(
    env: dict[str, str], conninfo: str, rule_id: int, probes: list[Probe],
    args: argparse.Namespace, port: int,
) -> Prober:  # fmt: skip
    receiver = Receiver()
    code = CHANNEL_SETUP.format(url=receiver.url, secret=SIGNING_SECRET)
    run_checked([sys.executable, "-c", code], env, timeout=120, what="creating the channel")
    # Sources are created in order as probe-000, probe-001, ...
    names = {probe.source_id: f"probe-{i:03d}" for i, probe in enumerate(probes)}
    return DeliveryProber(
        receiver, names, port, conninfo, rule_id, args.timeout, args.poll_ms / 1000
    )


WEBHOOK_DELIVERY = Variant(
    key="ingest_to_delivery",
    prepare=_prepare,
    extra_env={
        "TRADEWATCH_DELIVERY_ALLOWED_NETWORKS": "127.0.0.0/8",
        "TRADEWATCH_ENCRYPTION_KEY": "YmVuY2htYXJrLWtleS0wMTIzNDU2Nzg5YWJjZGVmMDE=",
    },
    doc=__doc__ or "",
)


if __name__ == "__main__":
    # Its own database and Redis databases, so it never meets an alert-latency run's.
    defaults = ["--database", "tradewatch_bench_delivery_latency", "--redis-db", "6",
                "--cache-db", "7"]  # fmt: skip
    sys.exit(main([*defaults, *sys.argv[1:]], WEBHOOK_DELIVERY, "delivery-latency"))
