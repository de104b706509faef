"""Two "hosts" on one database and one Redis: nothing lost, doubled or done twice.

Each host is what a machine of a multi-host layout runs: a web server, one worker per
queue (`TRADEWATCH_WORKER_QUEUES`, as the compose file's services) and a beat, each a
separate process started with the production launcher's commands, on ports and names of
its own. Bots send through both web servers at once, replaying batches, trades and
idempotency keys on the other host. What must hold: every sample stored once, one series
per name, every trade once, one alert per problem, each notification delivered once,
and each periodic task run once per period (one beat sends; the other stands by).
"""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest

from alerts.channels.signing import signing_secret_new
from alerts.models import Alert, Channel, Notification, Policy, Rule, Severity, Threshold
from health.models import PeriodicRun
from metrics.models import MetricSample, MetricSeries, Source, Trade
from metrics.services import source_create
from monitoring_site.launcher import resolve, worker_command
from monitoring_site.schedule import PERIODIC_WORK, install_periodic_tasks
from tests.monitoring_site.test_beat import log_messages, start_beat
from tests.processes import (
    BASE_DIR,
    broker_purge,
    free_port,
    process_environment,
    start_web_server,
    stop,
    wait_until,
)
from tests.processes import test_database_url as database_url
from tests.receivers import Receiver, receiver

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

QUEUES = ("default", "ingest", "delivery", "health")
SOURCES = 8  # half of them breach the rule
BATCHES = 12  # per source, alternately through each host, each sent to both concurrently
SAMPLES_PER_BATCH = 25
TRADES = 10  # per source, every one sent through both hosts


@dataclass
class Host:
    name: str
    port: int
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            command, env=env, cwd=BASE_DIR, stdout=out, stderr=subprocess.STDOUT
        )


@contextmanager
def host(name: str, env: dict[str, str], folder: Path) -> Iterator[Host]:
    """One host: a web server, a worker per queue and a beat, stopped on the way out."""
    folder.mkdir()
    own = {**env, "PROMETHEUS_MULTIPROC_DIR": str(folder / "prometheus")}
    started = Host(name, free_port())
    try:
        with (folder / "web.log").open("wb") as out:
            started.processes["web"] = start_web_server(own, started.port, output=out)
        for queue in QUEUES:
            worker_env = {
                **own, "TRADEWATCH_WORKER_QUEUES": queue, "TRADEWATCH_WORKER_CONCURRENCY": "1",
            }  # fmt: skip
            # The launcher's own command; named after the host too, as two machines' are.
            command = [*resolve(worker_command(worker_env)), "--hostname", f"{queue}.{name}@%h"]
            started.logs[queue] = folder / f"worker-{queue}.log"
            started.processes[queue] = start(command, worker_env, started.logs[queue])
        yield started
    finally:
        for process in started.processes.values():
            stop(process)


def post(port: int, path: str, key: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            "POST", path, json.dumps(body),
            {"Content-Type": "application/json", "Authorization": f"Api-Key {key}",
             **(headers or {})},
        )  # fmt: skip
        answer = connection.getresponse()
        data = json.loads(answer.read())
        assert answer.status == 202, (path, answer.status, data)
        return data
    finally:
        connection.close()


def both_at_once(*calls: Any) -> list[Any]:
    """Run the calls on threads at the same moment; their results in order."""
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(calls))

    def run(index: int) -> None:
        try:
            barrier.wait(10)
            results[index] = calls[index]()
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]
    return results


def send_everything(name: str, key: str, value: float, hosts: list[Host], base: datetime) -> int:
    """One bot's traffic through both hosts; the accepted trade count it was answered."""
    accepted = 0
    for batch in range(BATCHES):
        samples = [
            {
                "name": "mh_leverage",
                "value": value,
                "ts": (
                    base + timedelta(milliseconds=10 * (batch * SAMPLES_PER_BATCH + k))
                ).isoformat(),
            }
            for k in range(SAMPLES_PER_BATCH)
        ]
        first, second = hosts[batch % 2], hosts[(batch + 1) % 2]
        # Every third batch under an Idempotency-Key, sent to both hosts at once; the
        # others as a retry the bot made through the other host: the same instants again.
        headers = {"Idempotency-Key": f"{name}-{batch}"} if batch % 3 == 0 else {}
        both_at_once(
            partial(post, first.port, "/api/v1/metrics", key, {"samples": samples}, headers),
            partial(post, second.port, "/api/v1/metrics", key, {"samples": samples}, headers),
        )
    trades = {
        "trades": [
            {"id": f"{name}-t{i}", "symbol": "BTC/USDT", "side": "buy", "quantity": 0.1,
             "price": 50_000, "pnl": 1.0, "fee": 0.1, "ts": base.isoformat()}
            for i in range(TRADES)
        ]
    }  # fmt: skip
    for answer in both_at_once(
        lambda: post(hosts[0].port, "/api/v1/trades", key, trades),
        lambda: post(hosts[1].port, "/api/v1/trades", key, trades),
    ):
        accepted += answer["accepted"]
    return accepted


def webhook_channel(hook: Receiver) -> Channel:
    channel = Channel(
        name="multi-host hook", kind=Channel.Kind.WEBHOOK, config={"url": f"{hook.url}/alerts"},
        rate_limit=0,
    )  # fmt: skip
    channel.secrets = {"signing_secret": signing_secret_new()}
    channel.full_clean()
    channel.save()
    return channel


@contextmanager
def connections_counted() -> Iterator[list[int]]:
    """The most PostgreSQL connections to the test database seen at once (sampled), in
    the list's only item once the block ends: the layout's connection count."""
    most = [0]
    done = threading.Event()
    url = database_url()

    def sample() -> None:
        with psycopg.connect(url, autocommit=True) as connection:
            while not done.wait(0.2):
                [(count,)] = connection.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                ).fetchall()
                most[0] = max(most[0], int(count))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield most
    finally:
        done.set()
        sampler.join(10)


@pytest.fixture(autouse=True)
def _empty_queues() -> Iterator[None]:
    broker_purge()
    yield
    broker_purge()


def test_two_hosts_lose_double_and_repeat_nothing(tmp_path: Path) -> None:
    install_periodic_tasks()
    rule = Rule.objects.create(
        name="Multi-host leverage", metric="mh_leverage", aggregation="last",
        window=timedelta(minutes=5),
    )  # fmt: skip
    Threshold.objects.create(rule=rule, severity=Severity.CRITICAL, comparison=">", value=3)
    keys = {f"mh-bot-{i}": source_create(name=f"mh-bot-{i}")[1] for i in range(SOURCES)}
    breaching = {name for i, name in enumerate(keys) if i % 2 == 0}
    env = process_environment(
        LOG_FORMAT="json",
        TRADEWATCH_DELIVERY_ALLOWED_NETWORKS="127.0.0.0/8",
        # One firing notification per alert within the test: no repeat announcements.
        TRADEWATCH_REPEAT_CRITICAL_SECONDS="3600",
    )

    with receiver() as hook, ExitStack() as stack, connections_counted() as connections:
        channel = webhook_channel(hook)
        Policy.objects.create(name="all", min_severity=Severity.WARNING).channels.set([channel])
        hosts = [stack.enter_context(host(name, env, tmp_path / name)) for name in ("a", "b")]
        beats = [start_beat(env, tmp_path / f"beat-{h.name}.log") for h in hosts]
        for beat in beats:
            stack.callback(stop, beat)
        beat_logs = [tmp_path / f"beat-{h.name}.log" for h in hosts]
        assert wait_until(
            lambda: any(
                "beat lock taken: this beat sends the periodic work" in log_messages(log)
                for log in beat_logs
            ),
            60,
        )
        before = dict(PeriodicRun.objects.values_list("name", "runs"))
        started = time.monotonic()

        base = datetime.now(UTC) - timedelta(minutes=1)
        accepted = both_at_once(
            *[
                lambda n=name, k=key: send_everything(
                    n, k, 5.0 if n in breaching else 1.0, hosts, base
                )
                for name, key in keys.items()
            ]
        )

        assert wait_until(lambda: len(hook.requests) >= len(breaching), 60), len(hook.requests)
        # Long enough for any second delivery, evaluation or beat's next periods to show.
        time.sleep(max(0.0, 40 - (time.monotonic() - started)))
        # The standby first (it would take the lock the first lets go of).
        holder = next(
            i for i, log in enumerate(beat_logs)
            if "beat lock taken: this beat sends the periodic work" in log_messages(log)
        )  # fmt: skip
        stop(beats[1 - holder])
        stop(beats[holder])
        elapsed = time.monotonic() - started
        time.sleep(3)  # what was sent before beat stopped finishes
        arrived = Counter(request.headers["webhook-id"] for request in list(hook.requests))
        firing = [request.json() for request in list(hook.requests)]
    # Not a goal, a figure (README "Scaling"): what this two-host layout holds open.
    print(f"two hosts held at most {connections[0]} PostgreSQL connections")

    # Samples: every instant of every series once, and one series per (source, name).
    sent_instants = BATCHES * SAMPLES_PER_BATCH
    for name in keys:
        source = Source.objects.get(name=name)
        assert MetricSeries.objects.filter(source=source, name="mh_leverage").count() == 1
        stored = MetricSample.objects.filter(series__source=source, series__name="mh_leverage")
        assert stored.count() == sent_instants
        assert Trade.objects.filter(source=source).count() == TRADES
    # Each trade was accepted by exactly one of the two hosts (the other: a duplicate).
    assert accepted == [TRADES] * SOURCES

    # One alert per problem, and it fired once.
    alerts = Alert.objects.filter(rule=rule)
    assert sorted(alerts.values_list("source__name", flat=True)) == sorted(breaching)
    assert all(alert.state == Alert.State.FIRING for alert in alerts)
    notifications = Notification.objects.filter(alert__rule=rule)
    assert notifications.count() == len(breaching)
    assert set(notifications.values_list("state", flat=True)) == {Notification.State.SENT}
    # Each delivered once: one request per notification, none twice.
    assert len(arrived) == len(breaching), arrived
    assert set(arrived.values()) == {1}, arrived
    assert sorted(body["alert"]["source"] for body in firing) == sorted(breaching)

    # Periodic work: only one beat sent anything, and each entry ran once per period.
    senders = [log for log in beat_logs if any("Sending due task" in m for m in log_messages(log))]
    assert len(senders) == 1
    runs = {
        name: count - before.get(name, 0)
        for name, count in PeriodicRun.objects.values_list("name", "runs")
    }
    skipped = dict(PeriodicRun.objects.values_list("name", "skipped"))
    for work in PERIODIC_WORK:
        if work.every_seconds > 15:
            continue
        expected = elapsed / work.every_seconds
        ran = runs.get(work.name, 0)
        assert expected - 2 <= ran <= expected + 1, (work.name, ran, expected, runs)
        assert skipped.get(work.name, 0) == 0, (work.name, skipped)
