"""`make run` restarts a crashed process with backoff; one that keeps crashing stops all."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from celery import current_app

from monitoring_site.launcher import Supervisor
from monitoring_site.supervision import GiveUp, Restart, RestartPolicy, describe_exit
from tests.processes import BASE_DIR, free_port, process_environment, wait_until

# --- The policy: pure decisions -----------------------------------------------------------


def test_it_restarts_with_a_delay_that_doubles_with_each_recent_crash() -> None:
    policy = RestartPolicy(limit=10, window=300, base_delay=1, max_delay=30)

    delays = [policy.crashed(now=float(t)) for t in range(7)]

    assert delays == [
        Restart(delay=1, crashes=1),
        Restart(delay=2, crashes=2),
        Restart(delay=4, crashes=3),
        Restart(delay=8, crashes=4),
        Restart(delay=16, crashes=5),
        Restart(delay=30, crashes=6),  # capped
        Restart(delay=30, crashes=7),
    ]


def test_it_gives_up_when_the_limit_is_reached_within_the_window() -> None:
    policy = RestartPolicy(limit=3, window=60)

    assert isinstance(policy.crashed(now=0), Restart)
    assert isinstance(policy.crashed(now=10), Restart)
    assert policy.crashed(now=20) == GiveUp(crashes=3, window=60)


def test_it_forgets_crashes_older_than_the_window() -> None:
    policy = RestartPolicy(limit=3, window=60, base_delay=1)
    policy.crashed(now=0)
    policy.crashed(now=10)

    # The first two crashes are out of the window: this one counts as the first again.
    assert policy.crashed(now=75) == Restart(delay=1, crashes=1)
    assert policy.crashed(now=80) == Restart(delay=2, crashes=2)
    assert isinstance(policy.crashed(now=90), GiveUp)


def test_a_limit_of_one_gives_up_at_the_first_crash() -> None:
    assert RestartPolicy(limit=1).crashed(now=0) == GiveUp(crashes=1, window=300)


@pytest.mark.parametrize(
    ("limit", "window", "base", "maximum"), [(0, 60, 1, 2), (3, 0, 1, 2), (3, 60, 5, 2)]
)
def test_it_refuses_a_nonsensical_policy(
    limit: int, window: float, base: float, maximum: float
) -> None:
    with pytest.raises(ValueError, match="must be"):
        RestartPolicy(limit=limit, window=window, base_delay=base, max_delay=maximum)


def test_it_names_an_exit_code_or_a_signal() -> None:
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(-9) == "killed by signal SIGKILL (9)"
    assert describe_exit(-15) == "killed by signal SIGTERM (15)"


# --- The supervisor with small processes of its own --------------------------------------


def test_a_child_that_keeps_failing_makes_the_supervisor_give_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    supervisor = Supervisor(
        {**os.environ, "TRADEWATCH_RESTART_LIMIT": "2"},
        commands={"crasher": ["python", "-c", "raise SystemExit(3)"]},
    )
    supervisor.start()

    code = supervisor.wait()

    out = capsys.readouterr().out
    assert code == 1
    assert out.count("started crasher") == 2
    assert "exited (exit code 3); restarting it in 1 s (crash 1 within 300 s" in out
    assert "exited (exit code 3); it crashed 2 times within 300 s: giving up" in out


@pytest.mark.parametrize(
    "setting", [{"TRADEWATCH_RESTART_LIMIT": "0"}, {"TRADEWATCH_RESTART_WINDOW_SECONDS": "soon"}]
)
def test_a_bad_restart_setting_is_refused_by_name(setting: dict[str, str]) -> None:
    with pytest.raises(SystemExit, match="TRADEWATCH_RESTART_LIMIT must be a whole number"):
        Supervisor(setting, commands={"any": ["true"]})


def test_a_crashed_child_s_own_children_are_cleared_before_it_restarts(
    tmp_path: Path,
) -> None:
    # The child starts a grandchild (as gunicorn starts its workers), then is killed.
    pidfile = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
        f"open({str(pidfile)!r}, 'w').write(str(p.pid)); time.sleep(600)"
    )
    supervisor = Supervisor(os.environ, commands={"parent": ["python", "-c", script]})
    supervisor.start()
    try:
        assert wait_until(lambda: pidfile.exists() and pidfile.read_text(), 20)
        grandchild = int(pidfile.read_text())
        parent = supervisor.processes["parent"].pid
        os.kill(parent, signal.SIGKILL)

        assert wait_until(lambda: not supervisor.check_children() or _gone(grandchild), 20)
        assert supervisor.children["parent"].restart_at is not None  # restart pending
    finally:
        supervisor.stop()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # An orphan is reaped by init; until then it is a zombie, dead all the same.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    return False


# --- The real launcher ------------------------------------------------------------------


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
            return bool(response.status == 200)
    except OSError:
        return False


def _pids(log: Path, name: str) -> list[int]:
    return [int(pid) for pid in re.findall(rf"started {name} \(pid (\d+)\)", log.read_text())]


def _ping() -> str:
    return str(current_app.send_task("monitoring_site.tasks.ping", queue="default").get(60))


@pytest.mark.slow
def test_a_killed_worker_comes_back_and_one_that_keeps_crashing_stops_everything(
    transactional_db: None, tmp_path: Path
) -> None:
    port = free_port()
    env = process_environment(
        HOME=str(tmp_path),
        STATIC_ROOT=str(tmp_path / "static"),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        TRADEWATCH_SECRETS_FILE=str(tmp_path / "secrets" / "tradewatch.env"),
        TRADEWATCH_BIND=f"127.0.0.1:{port}",
        TRADEWATCH_ADMIN_PASSWORD="a-test-password",
        WEB_CONCURRENCY="1",
        # The third crash within five minutes gives up.
        TRADEWATCH_RESTART_LIMIT="3",
        TRADEWATCH_RESTART_WINDOW_SECONDS="300",
    )
    log = tmp_path / "launcher.log"
    with log.open("wb") as out:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "monitoring_site.launcher"],
            env=env, cwd=BASE_DIR, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    healthz = f"http://127.0.0.1:{port}/healthz"
    try:
        assert wait_until(lambda: _answers(healthz), 120), log.read_text()
        assert _ping() == "pong"
        [first_worker] = _pids(log, "worker")
        [web] = _pids(log, "web")

        # kill -9 of the worker: it is started again, web never stopped answering.
        os.kill(first_worker, signal.SIGKILL)
        assert wait_until(lambda: len(_pids(log, "worker")) == 2, 30), log.read_text()
        assert _answers(healthz)
        second_worker = _pids(log, "worker")[1]
        assert second_worker != first_worker
        assert _ping() == "pong"  # the new worker consumes the queues
        text = log.read_text()
        assert (
            f"worker (pid {first_worker}) exited (killed by signal SIGKILL (9)); "
            "restarting it in 1 s (crash 1 within 300 s; at 3 the launcher gives up)."
        ) in text
        assert "stopping" not in text
        assert _pids(log, "web") == [web]  # web and beat untouched
        assert len(_pids(log, "beat")) == 1

        # kill -9 of web's master: its orphaned workers (holding the port) are cleared
        # and a new web answers; each process has its own count of crashes.
        os.kill(web, signal.SIGKILL)
        assert wait_until(lambda: len(_pids(log, "web")) == 2, 30), log.read_text()
        assert wait_until(lambda: _answers(healthz), 60), log.read_text()
        assert f"web (pid {web}) exited (killed by signal SIGKILL (9)); restarting it in 1 s" in (
            log.read_text()
        )

        # Second crash: restarted after twice the delay.
        os.kill(second_worker, signal.SIGKILL)
        assert wait_until(lambda: len(_pids(log, "worker")) == 3, 30), log.read_text()
        assert f"worker (pid {second_worker}) exited (killed by signal SIGKILL (9)); " in (
            log.read_text()
        )
        assert "restarting it in 2 s (crash 2 within 300 s" in log.read_text()
        assert _answers(healthz)

        # Third crash within the window: the launcher gives up, stops all, exits non-zero.
        third_worker = _pids(log, "worker")[2]
        os.kill(third_worker, signal.SIGKILL)
        code = launcher.wait(timeout=90)
    finally:
        if launcher.poll() is None:
            launcher.send_signal(signal.SIGINT)
            launcher.wait(timeout=60)
    text = log.read_text()
    assert code == 1, text
    assert (
        f"worker (pid {third_worker}) exited (killed by signal SIGKILL (9)); it crashed 3 "
        "times within 300 s: giving up, stopping the others."
    ) in text
    assert "stopped." in text
    assert not _answers(healthz)  # web is gone too
