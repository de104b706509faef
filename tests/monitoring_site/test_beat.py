"""Beat safety: one beat sends periodic work, and each run claims its period."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from health.models import PeriodicRun
from health.periodic import period_claim, period_release
from monitoring_site.beat import BeatLock
from monitoring_site.schedule import PERIODIC_WORK, install_periodic_tasks
from tests.processes import (
    BASE_DIR,
    broker_purge,
    celery_worker,
    process_environment,
    stop,
    wait_until,
)


def log_messages(path: Path) -> list[str]:
    messages = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                messages.append(str(json.loads(line).get("message", "")))
            except ValueError:
                continue
    return messages


def every(name: str, seconds: int) -> PeriodicTask:
    interval, _ = IntervalSchedule.objects.get_or_create(
        every=seconds, period=IntervalSchedule.SECONDS
    )
    return PeriodicTask.objects.create(
        name=name, task="monitoring_site.tasks.ping", interval=interval
    )


@pytest.mark.django_db(transaction=True)
def test_it_lets_one_beat_hold_the_lock_at_a_time() -> None:
    first, second = BeatLock(), BeatLock()
    try:
        assert first.acquire()
        assert first.held()
        assert not second.acquire()

        first.release()

        assert wait_until(second.acquire, 5)
        assert not first.acquire()
    finally:
        first.release()
        second.release()


@pytest.mark.django_db
def test_it_runs_a_period_once_however_many_times_it_is_sent() -> None:
    every("Every ten seconds", 10)
    now = timezone.now()
    hold = timedelta(seconds=60)

    first = period_claim(name="Every ten seconds", task="t", hold=hold, now=now)
    period_release(name="Every ten seconds", now=now + timedelta(seconds=1))
    again = period_claim(
        name="Every ten seconds", task="t", hold=hold, now=now + timedelta(seconds=3)
    )
    next_period = period_claim(
        name="Every ten seconds", task="t", hold=hold, now=now + timedelta(seconds=10)
    )

    assert first.granted
    assert (again.granted, again.reason) == (False, "this period already ran")
    assert next_period.granted
    run = PeriodicRun.objects.get(name="Every ten seconds")
    assert (run.runs, run.skipped) == (2, 1)


@pytest.mark.django_db
def test_it_keeps_out_a_run_while_another_still_works() -> None:
    every("Slow", 10)
    now = timezone.now()

    assert period_claim(name="Slow", task="t", hold=timedelta(seconds=60), now=now).granted
    late = period_claim(
        name="Slow", task="t", hold=timedelta(seconds=60), now=now + timedelta(seconds=30)
    )
    after_the_hold = period_claim(
        name="Slow", task="t", hold=timedelta(seconds=60), now=now + timedelta(seconds=61)
    )

    assert (late.granted, late.reason) == (False, "another run of this entry is still working")
    # A run whose worker died never released its claim: the hold runs out.
    assert after_the_hold.granted


@pytest.mark.django_db(transaction=True)
def test_it_skips_the_period_a_concurrent_run_is_claiming() -> None:
    every("Contended", 10)
    PeriodicRun.objects.create(name="Contended", task="t")
    locked, done = threading.Event(), threading.Event()

    def hold_the_row() -> None:
        try:
            with transaction.atomic():
                PeriodicRun.objects.select_for_update().get(name="Contended")
                locked.set()
                done.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        claim = period_claim(name="Contended", task="t", hold=timedelta(seconds=60))
        waited = time.monotonic() - started
    finally:
        done.set()
        holder.join()

    assert (claim.granted, claim.reason) == (False, "another run is claiming this period")
    assert waited < 2  # SKIP LOCKED: no waiting on the other run's lock


def start_beat(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "monitoring_site", "beat", "--loglevel", "INFO"],
            env=env, cwd=BASE_DIR, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_runs_every_periodic_task_once_per_period_with_two_beats_for_a_minute(
    tmp_path: Path,
) -> None:
    broker_purge()
    install_periodic_tasks()
    env = process_environment(LOG_FORMAT="json")
    first_log, second_log = tmp_path / "beat-1.log", tmp_path / "beat-2.log"
    with celery_worker(env, log_path=tmp_path / "worker.log"):
        first = start_beat(env, first_log)
        second = None
        try:
            assert wait_until(
                lambda: (
                    "beat lock taken: this beat sends the periodic work" in log_messages(first_log)
                ),
                60,
            ), first_log.read_text()
            second = start_beat(env, second_log)
            assert wait_until(
                lambda: any("stands by" in m for m in log_messages(second_log)), 60
            ), second_log.read_text()

            before = dict(PeriodicRun.objects.values_list("name", "runs"))
            started = time.monotonic()
            time.sleep(60)
            # The standby first: stopped second, it would take the lock the first one
            # lets go of and send what is due meanwhile (the 5 s Telegram poll, at once).
            stop(second)
            stop(first)
            elapsed = time.monotonic() - started
            # Let the worker finish what was sent before the beats stopped.
            time.sleep(3)
        finally:
            stop(first)
            if second is not None:
                stop(second)
    broker_purge()

    runs: dict[str, Any] = {
        name: count - before.get(name, 0)
        for name, count in PeriodicRun.objects.values_list("name", "runs")
    }
    skipped = dict(PeriodicRun.objects.values_list("name", "skipped"))
    sent_by_second = [m for m in log_messages(second_log) if "Sending due task" in m]
    sent_by_first = Counter(
        m.split("Sending due task ")[1].split(" (")[0]
        for m in log_messages(first_log)
        if "Sending due task" in m
    )

    assert sent_by_second == []
    for work in PERIODIC_WORK:
        expected = elapsed / work.every_seconds
        ran = runs.get(work.name, 0)
        # Once per period: never a second run of a period (at most one more at the edges
        # of the minute), and no period missed beyond those edges.
        assert expected - 2 <= ran <= expected + 1, (work.name, ran, expected, runs)
        assert skipped.get(work.name, 0) == 0, work.name
        if work.every_seconds <= 60:
            assert sent_by_first[work.name] >= ran, (work.name, sent_by_first)
