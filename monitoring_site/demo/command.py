"""`tradewatch demo`: run the simulated systems against a running Tradewatch and say, one
line per step, what they do and what should fire; `--clean` removes the demo's things.

The run: check that the server answers, make the demo's sources (new keys), console
channel and policy, send each system's equity history, then tick: every system sends
what the scenario says for that moment through its own client, the steps of the moment
are printed, and the alert changes the database shows for the demo's sources are
printed as they appear (`seen: ...`). Ctrl-C, SIGTERM or `--duration` end it with a
summary; the demo's things stay until `--clean`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any, Final

import psutil
from django.core.management.base import CommandParser, OutputWrapper
from django.db import DatabaseError

from alerts.cli.style import RESOLVED_COLOR, paint_severity, severity_name
from core.cli_text import add_color_arguments, paint, use_color
from monitoring_site.launch_defaults import DEFAULT_BIND, address_of

from . import watching
from .provisioning import CHANNEL_NAME, DEMO_TAG, POLICY_NAME, demo_clean, demo_provision
from .scenario import HISTORY_SECONDS, MAX_PACE, MIN_PACE, TICK, Expect, Scenario
from .sending import Senders, key_source, server_awaited
from .story import demo_story

SUMMARY: Final = "run simulated trading systems against a running Tradewatch (Ctrl-C stops)"
EPILOG: Final = (
    "Six simulated systems (a healthy bot, a bot sliding into a 20 % drawdown and back, a "
    "model that crashes and recovers, a bot whose heartbeat lapses, an exchange connection "
    "that slows down and drops, a bot tripping its circuit breaker and kill switch) push "
    "through the HTTP API with their own keys, to the server `make run` started (or "
    "--url). One line per step says what should fire next; `seen:` lines show the alert "
    "changes as they happen. Their notifications print in the `make run` terminal through "
    "the console channel `demo`. Running it again replaces the demo sources; --clean "
    "removes every demo source (named demo-..., tagged demo) with its data and alerts, and "
    "the channel and policy `demo`."
)
# Seconds a tick waits at most for the clients to deliver before going on.
FLUSH_SECONDS: Final = 5.0
# How often the alert changes of the demo sources are read between ticks.
WATCH_SECONDS: Final = 0.5


def _pace(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and MIN_PACE <= value <= MAX_PACE):
        raise argparse.ArgumentTypeError(f"must be between {MIN_PACE:g} and {MAX_PACE:g}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def _wait(text: str) -> float:
    """Seconds to wait for the server: 0 (do not wait) or more."""
    return 0.0 if text.strip() in ("0", "0.0") else _seconds(text)


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "--url", default=None, metavar="URL",
        help="the Tradewatch to send to (default: TRADEWATCH_BIND's address, as `make run` "
        f"binds it, or http://{DEFAULT_BIND})",
    )  # fmt: skip
    parser.add_argument(
        "--pace", type=_pace, default=1.0, metavar="FACTOR",
        help="tell the story this many times as fast (default 1: every announced alert "
        "fires within 60 s)",
    )  # fmt: skip
    parser.add_argument(
        "--duration", type=_seconds, default=None, metavar="SECONDS",
        help="stop after this many seconds (default: run until Ctrl-C)",
    )  # fmt: skip
    parser.add_argument(
        "--wait", type=_wait, default=60.0, metavar="SECONDS",
        help="how long to wait for Tradewatch to answer (default 60: `make run` may still "
        "be starting)",
    )  # fmt: skip
    parser.add_argument(
        "--clean", action="store_true",
        help="remove every demo source with its data and alerts, and the demo channel and "
        "policy; nothing else",
    )  # fmt: skip
    add_color_arguments(parser)


def default_url(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return address_of(env.get("TRADEWATCH_BIND") or DEFAULT_BIND)


class _Stop(BaseException):
    """SIGTERM: stop as Ctrl-C does. A BaseException, as KeyboardInterrupt is: code that
    catches Exception (the client library's flush does) must not swallow it."""


def _on_terminate(signum: int, frame: FrameType | None) -> None:
    raise _Stop


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """A second Ctrl-C while the demo closes must not end it with a traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run(options: dict[str, Any], out: OutputWrapper, err: OutputWrapper) -> int:
    if options["clean"]:
        try:
            removed = demo_clean()
        except DatabaseError as error:
            return _database_problem(err, error)
        out.write(f"Removed {removed.describe()}.")
        return 0
    url = (options["url"] or default_url()).rstrip("/")
    if not url.startswith(("http://", "https://")):
        err.write(f"{url} is not an HTTP address: give the server's with --url.")
        return 1
    demo = Demo(demo_story(options["pace"]), url, out, err, color=use_color(options["color"], out))
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_terminate)
    try:
        if not server_awaited(url, options["wait"], out.write):
            err.write(
                f"Nothing answers at {url}/healthz: start Tradewatch with `make run` first "
                "(or give its address with --url)."
            )
            return 1
        if demo.prepare():
            demo.loop(options["duration"])
    except (KeyboardInterrupt, _Stop):
        pass  # Ctrl-C or SIGTERM: the person has seen enough, which is success
    except DatabaseError as error:
        demo.exit_code = _database_problem(err, error)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        with _uninterrupted():
            demo.finish()
    return demo.exit_code


def _database_problem(err: OutputWrapper, error: DatabaseError) -> int:
    first = (str(error).strip().splitlines() or ["no answer"])[0]
    err.write(
        f"Cannot use the database ({first}): run the demo with the DATABASE_URL `make run` uses."
    )
    return 1


@dataclass
class Pending:
    """An announced expectation, and when it was seen (None: not yet)."""

    source: str
    expect: Expect
    due: float  # seconds after the start
    seen_at: float | None = None
    overdue_said: bool = False


class Demo:
    """One run: its clients, what it announced, and what it has seen."""

    def __init__(
        self, scenario: Scenario, url: str, out: OutputWrapper, err: OutputWrapper, *, color: bool
    ) -> None:
        self.scenario = scenario
        self.url = url
        self.out = out
        self.err = err
        self.color = color
        self.exit_code = 0
        # The process's start, so the figures count from `make demo` (Django's start-up,
        # the set-up and the history included).
        self.started = psutil.Process().create_time()
        self.clock_zero = time.monotonic() - (time.time() - self.started)
        self.story_zero: float | None = None  # monotonic time of scenario second 0
        self.senders: Senders | None = None
        self.names = [system.name for system in scenario.systems]
        self.pending: list[Pending] = []
        self.last_change = 0
        self.first_alert: float | None = None
        self.severities: dict[int, float] = {}
        self.database_lost = False
        self.server_lost = False

    # --- printing -----------------------------------------------------------------

    def elapsed(self) -> float:
        return time.monotonic() - self.clock_zero

    def say(self, text: str, *, at: float | None = None) -> None:
        moment = self.elapsed() if at is None else at
        self.out.write(f"[{moment:6.1f} s] {text}")
        self.out.flush()

    def severity(self, severity: int) -> str:
        return paint_severity(severity_name(severity), severity, self.color)

    # --- set-up ---------------------------------------------------------------------

    def prepare(self) -> bool:
        """Make the demo's things and send the history; False if the server cannot be used."""
        scenario = self.scenario
        self.say(f"demo: Tradewatch answers at {self.url}")
        provisioned = demo_provision(scenario.systems)
        if provisioned.replaced.sources:
            self.say(f"demo: replaced the previous demo: removed {provisioned.replaced.describe()}")
        made = ", ".join(f"{system.name} ({system.kind})" for system in scenario.systems)
        self.say(f"demo: sources tagged {DEMO_TAG!r}, each with a new API key: {made}")
        self.say(
            f"demo: console channel {CHANNEL_NAME!r} "
            f"({'created' if provisioned.channel_created else 'already there'}) and policy "
            f"{POLICY_NAME!r} ({'created' if provisioned.policy_created else 'already there'}): "
            "the demo sources' alerts, INFO and up, print in the `make run` terminal"
        )
        first = scenario.systems[0].name
        try:
            known = key_source(self.url, provisioned.keys[first])
        except OSError as error:
            self.err.write(f"Tradewatch at {self.url} cannot check the demo's keys: {error}")
            self.exit_code = 1
            return False
        if known != first:
            self.err.write(
                f"The server at {self.url} does not know the demo's keys: it uses another "
                "database than this command. Run both with the same DATABASE_URL."
            )
            self.exit_code = 1
            return False
        self.senders = Senders(self.url, provisioned.keys)
        now = time.time()
        samples = 0
        for system in scenario.systems:
            samples += self.senders.send(system.name, system.history(), now)
        if samples:
            self.senders.flush(60.0)
            self.report_problems()
            hours = HISTORY_SECONDS / 3600
            self.say(
                f"demo: sent {hours:g} h of equity history ({samples:,} samples) for the charts"
            )
        self.say(
            f"demo: the story takes {scenario.seconds(scenario.ends):.0f} s at pace "
            f"{scenario.pace:g}, a tick every {scenario.tick_seconds:g} s; then the systems "
            "carry on steadily until Ctrl-C"
        )
        return True

    # --- the run ----------------------------------------------------------------------

    def loop(self, duration: float | None) -> None:
        scenario = self.scenario
        self.story_zero = time.monotonic()
        stop_at = None if duration is None else self.clock_zero + duration
        previous = -TICK
        index = 0
        told = False
        while True:
            now = scenario.tick_time(index)
            due = self.story_zero + scenario.seconds(now)
            if stop_at is not None and due > stop_at:
                break
            self.wait_until(due)
            self.tick(previous, now)
            if not told and now >= scenario.ends:
                self.say("demo: the story is told; the systems carry on steadily")
                told = True
            previous = now
            index += 1
        if stop_at is not None:
            # What the last sends bring about, until the end of the duration.
            self.wait_until(stop_at)

    def wait_until(self, moment: float) -> None:
        """Sleep until `moment` (monotonic), reading the alert changes meanwhile."""
        while True:
            left = moment - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, WATCH_SECONDS))
            self.watch()

    def tick(self, previous: float, now: float) -> None:
        assert self.senders is not None
        start = time.time()
        for system in self.scenario.systems:
            self.senders.send(system.name, system.sends(previous, now), start)
        for announcement in self.scenario.due(previous, now):
            self.say(announcement.line())
            at = self.scenario.seconds(announcement.at) + self.story_offset()
            for expect in announcement.step.expects:
                self.pending.append(Pending(announcement.source, expect, at + expect.within))
        delivered = self.senders.flush(max(FLUSH_SECONDS, self.scenario.tick_seconds))
        if not delivered and not self.server_lost:
            self.say(f"demo: Tradewatch at {self.url} does not take the data; still trying")
        elif delivered and self.server_lost:
            self.say("demo: Tradewatch takes the data again")
        self.server_lost = not delivered
        self.report_problems()
        self.watch()

    def story_offset(self) -> float:
        """Seconds from the start of the process to scenario second 0."""
        assert self.story_zero is not None
        return self.story_zero - self.clock_zero

    def report_problems(self) -> None:
        assert self.senders is not None
        for problem in self.senders.problems():
            self.say(f"demo: {problem.source}: the server did not take its data: {problem.error}")

    def watch(self) -> None:
        """Print the alert changes of the demo's sources that appeared since last time."""
        try:
            changes = watching.changes_since(self.last_change, self.names)
        except DatabaseError as error:
            if not self.database_lost:
                first = (str(error).strip().splitlines() or ["no answer"])[0]
                self.say(f"demo: cannot read alerts from the database ({first})")
                self.database_lost = True
            return
        self.database_lost = False
        for change in changes:
            self.last_change = change.id
            self.seen(change)
        now = self.elapsed()
        for item in self.pending:
            if item.seen_at is None and not item.overdue_said and now > item.due:
                item.overdue_said = True
                self.say(
                    f"not seen yet: {item.expect} on {item.source} (due by {item.due:.0f} s; "
                    "are the worker and beat of `make run` running?)"
                )

    def seen(self, change: watching.Seen) -> None:
        at = max(0.0, change.at.timestamp() - self.started)
        if change.fires:
            if self.first_alert is None:
                self.first_alert = at
            self.severities.setdefault(change.severity, at)
        announced = False
        for item in self.pending:
            if item.seen_at is None and watching.meets(item.expect, item.source, change):
                item.seen_at = at
                announced = True
                break
        severity = self.severity(change.severity)
        if change.kind == watching.Kind.FIRING:
            what = f"{change.rule} {severity} firing"
        elif change.kind == watching.Kind.SEVERITY_RAISED:
            what = f"{change.rule} raised to {severity}"
        elif change.kind == watching.Kind.SEVERITY_LOWERED:
            what = f"{change.rule} lowered to {severity}"
        else:
            what = f"{change.rule} {paint('resolved', RESOLVED_COLOR, self.color)}"
        self.say(
            f"seen: {what} on {change.source}{' (as announced)' if announced else ''}",
            at=at,
        )

    # --- the end ----------------------------------------------------------------------

    def finish(self) -> None:
        if self.senders is not None:
            self.senders.close(2.0)
            self.watch()
        announced = self.pending
        if announced:
            seen = [item for item in announced if item.seen_at is not None]
            text = f"demo: {len(seen)} of {len(announced)} announced alert changes seen"
            missing = [f"{item.expect} on {item.source}" for item in announced if not item.seen_at]
            if missing:
                text += "; not seen (yet): " + ", ".join(missing)
            self.say(text)
        if self.first_alert is not None:
            text = f"demo: first alert firing {self.first_alert:.1f} s after the start"
            ordered = sorted(self.severities.values())
            if len(ordered) >= 3:
                text += f"; alerts of 3 severities firing by {ordered[2]:.1f} s"
            names = ", ".join(severity_name(s) for s in sorted(self.severities, reverse=True))
            self.say(f"{text} ({names})")
        if self.senders is not None:
            self.say(
                "demo: stopped. The demo sources, their alerts, the channel and the policy stay: "
                "`python manage.py tradewatch demo --clean` removes them"
            )
