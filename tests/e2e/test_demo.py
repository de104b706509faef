"""`tradewatch demo` against a live Tradewatch: web server, a Celery worker and beat.

The demo runs as a person runs it, in a process of its own, at four times its pace; every
alert change it announces must show in the database (on the announced source, with the
announced rule and severity), the console channel must print the notifications in the
worker's output, and `--clean` must take the demo away while the things of the test's
own (a source, its alert, a channel and policy) stay.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.request import Request, urlopen

import pytest
from django.core.management import call_command

from alerts.models import Alert, Channel, Notification, Policy
from alerts.rulepacks.trading import install_trading_pack
from metrics.models import MetricSample, Source, Tag, Trade
from metrics.services import source_create
from monitoring_site.demo.scenario import Expect
from monitoring_site.demo.story import demo_story
from monitoring_site.demo.watching import changes_since, first_meeting
from monitoring_site.schedule import install_periodic_tasks
from tests.processes import (
    BASE_DIR,
    broker_purge,
    celery_worker,
    ctrl_c_default,
    free_port,
    process_environment,
    stop,
    wait_until,
    web_server,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PACE = 4.0


@contextmanager
def beat(env: dict[str, str], log: Path) -> Iterator[None]:
    """Celery beat as `make run` starts it: it evaluates every source every 15 s."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "monitoring_site", "beat", "--loglevel",
             "INFO"],
            env=env, cwd=BASE_DIR, stdout=output, stderr=subprocess.STDOUT,
            preexec_fn=ctrl_c_default,
        )  # fmt: skip
        try:
            yield
        finally:
            stop(process)


def post(url: str, key: str, path: str, body: object) -> None:
    request = Request(  # noqa: S310 (the test's own server)
        f"{url}{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urlopen(request, timeout=10) as answer:  # noqa: S310
        assert answer.status == 202


@contextmanager
def demo(env: dict[str, str], log: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """`tradewatch demo` in a process of its own, its output (both streams) to `log`."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "tradewatch", "demo", "--no-color", *args],
            env=env, cwd=BASE_DIR, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield process
        finally:
            stop(process)


def test_the_demo_fires_what_it_announces_prints_it_and_cleans_up_only_its_own(
    tmp_path: Path,
) -> None:
    install_trading_pack()
    install_periodic_tasks()
    broker_purge()
    # The test's own things, which the demo must leave alone: a live source carrying the
    # tag `demo` (but not a demo-... name), its alert, a channel and a policy.
    mine, key = source_create(name="live-bot", tags=["demo", "live"])
    ops = Channel.objects.create(name="ops", kind="console", config={"colour": False})
    ops_policy = Policy.objects.create(name="ops")
    ops_policy.sources.add(mine)
    ops_policy.channels.add(ops)
    env = process_environment()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    worker_log = tmp_path / "worker.log"
    demo_log = tmp_path / "demo.log"
    scenario = demo_story(PACE)
    names = [system.name for system in scenario.systems]

    with (
        (tmp_path / "web.log").open("wb") as web_log,
        web_server(env, port, output=web_log),
        celery_worker(env, log_path=worker_log),
        beat(env, tmp_path / "beat.log"),
    ):
        post(url, key, "/api/v1/metrics", {"samples": [{"name": "leverage", "value": 4.5}]})
        expected = scenario.expectations()

        def all_seen() -> bool:
            seen = changes_since(0, names)
            return all(first_meeting(expect, source, seen) for source, expect, _ in expected)

        with demo(env, demo_log, "--url", url, "--pace", str(PACE), "--duration", "300") as run:
            # The story takes 20 s at this pace; the heartbeat lapse may wait for beat's
            # next evaluation of every source, and a busy machine starts Django slowly.
            assert wait_until(all_seen, 150, interval=1), (
                changes_since(0, names), demo_log.read_text()
            )  # fmt: skip
            # ... and the demo has said so, line by line.
            assert wait_until(
                lambda: demo_log.read_text().count("(as announced)") == len(expected), 15
            )
            # Stopping it (SIGTERM, as a supervisor does; Ctrl-C takes the same way out)
            # ends it with a summary, exit code 0, no traceback.
            run.send_signal(signal.SIGTERM)
            assert run.wait(30) == 0
        assert wait_until(lambda: Alert.objects.filter(source=mine).exists(), 30)
        assert wait_until(lambda: _printed(worker_log, expected), 30), worker_log.read_text()

    output = demo_log.read_text()
    # What the demo said it would do, it said, and it saw it happen.
    for announcement in scenario.announcements():
        assert announcement.line() in output
    assert "Traceback" not in output
    assert f"demo: {len(expected)} of {len(expected)} announced alert changes seen\n" in output
    assert "first alert firing" in output
    channel = Channel.objects.get(name="demo")
    assert Notification.objects.filter(channel=channel, state="sent").count() >= len(
        [e for e in expected if e[1].change == "firing"]
    )
    # The systems' data came through the API, each under its own source.
    for name in ("demo-healthy", "demo-drawdown", "demo-breaker"):
        assert MetricSample.objects.filter(series__source__name=name).count() > 360
    assert Trade.objects.filter(source__name="demo-healthy").exists()

    out = io.StringIO()
    call_command("tradewatch", "demo", "--clean", stdout=out)
    cleaned = out.getvalue()

    assert cleaned.startswith(f"Removed 6 source(s) ({', '.join(sorted(names))}), 6 API key(s)")
    assert not Source.objects.filter(name__in=names).exists()
    assert not Alert.objects.filter(source__name__startswith="demo-").exists()
    assert not Channel.objects.filter(name="demo").exists()
    assert not Policy.objects.filter(name="demo").exists()
    assert Source.objects.filter(name="live-bot").exists()
    assert Alert.objects.filter(source=mine, rule__name="Leverage").exists()
    assert list(Channel.objects.all()) == [ops]
    assert list(Policy.objects.all()) == [ops_policy]
    assert Tag.objects.filter(name="demo").exists()


def _printed(log: Path, expected: list[tuple[str, Expect, float]]) -> bool:
    """Whether the worker's output has a console notification of each announced firing:
    a line naming its severity, rule and source."""
    lines = log.read_text(errors="replace").splitlines()
    return all(
        any(
            all(word in line for word in (expect.severity.name, expect.rule, source))
            for line in lines
        )
        for source, expect, _ in expected
        if expect.change == "firing"
    )
