"""`manage.py tradewatch tail | status | export`: formatting (pure), then the verbs.

`tail` runs as the user runs it, in a process of its own reading this test's
database, so those tests commit their rows (`transaction=True`).
"""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO, Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection
from django.utils import timezone

from alerts.cli.export import FIELDS
from alerts.cli.status import WATCHDOG_LINE, OpenAlertRow, exit_code, format_status
from alerts.cli.tail import (
    Cursor,
    Filters,
    TransitionLine,
    backlog,
    follow,
    format_transition,
    poll,
)
from alerts.evaluation import forget_rules_cache
from alerts.models import Alert, AlertTransition, Rule, Severity
from core.cli_text import format_time
from health.selfmonitoring import self_check, tradewatch_queues, worker_presence_record
from metrics.models import Source
from monitoring_site.management.commands.tradewatch import Command
from tests import factories
from tests.alerts.conftest import MakeRule, evaluate, record
from tests.factories import SourceFactory
from tests.processes import BASE_DIR, ctrl_c_default, process_environment, stop, wait_until

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def tradewatch(*args: str) -> tuple[str, int]:
    """Run a verb in this process: (its output, its exit code)."""
    out = io.StringIO()
    command = Command()
    call_command(command, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue(), command.exit_code


# `tail` follows the timeline: each alert here comes with its first entry, as the
# lifecycle writes it.
make_alert = partial(factories.make_alert, timeline=True)


@pytest.fixture
def rules(make_rule: MakeRule) -> dict[str, Rule]:
    return {name: make_rule(name=name) for name in ("Drawdown", "Leverage", "Latency")}


@pytest.fixture
def beta() -> Source:
    return SourceFactory.create(name="beta-bot")


# --- tail: pure ---------------------------------------------------------------------------


LINE = TransitionLine(
    id=7, alert_id=42, at=T0, severity=Severity.CRITICAL, kind="firing", source="alpha-bot",
    rule="Drawdown", value=12.5, message="Drawdown on alpha-bot: 12.5 > 10",
)  # fmt: skip


def test_it_formats_a_timeline_entry_as_one_line() -> None:
    assert format_transition(LINE, color=False) == (
        "2026-03-02 12:00:00Z  CRITICAL   firing             alpha-bot  Drawdown  value=12.5  "
        "Drawdown on alpha-bot: 12.5 > 10  #42"
    )


def test_it_names_who_acted_and_what_was_silenced_and_colours_by_severity() -> None:
    line = TransitionLine(
        **{**LINE.__dict__, "kind": "acknowledged", "actor": "alice", "silenced": True}
    )

    shown = format_transition(line, color=True)

    assert shown.startswith("2026-03-02 12:00:00Z  \033[1;31mCRITICAL \033[0m  acknowledged")
    assert shown.endswith("by alice  (silenced)  #42")
    resolved = TransitionLine(**{**LINE.__dict__, "kind": "resolved", "value": None})
    assert "\033[32mresolved" in format_transition(resolved, color=True)
    assert "value=-" in format_transition(resolved, color=False)


def test_it_moves_on_and_remembers_the_ids_it_skipped_for_a_while() -> None:
    cursor = Cursor(10, gap_seconds=30)

    cursor.advance([11, 14], now=100.0)

    assert cursor.last_id == 14
    assert cursor.waiting(now=100.0) == [12, 13]
    cursor.advance([13, 15], now=101.0)  # 13 committed late
    assert cursor.waiting(now=101.0) == [12]
    assert cursor.waiting(now=131.0) == []  # 12 was rolled back: forgotten
    assert cursor.last_id == 15


def test_it_remembers_a_bounded_number_of_gaps() -> None:
    cursor = Cursor(0, max_gaps=5)

    cursor.advance([1_000_000], now=0.0)

    assert cursor.waiting(now=0.0) == [999_995, 999_996, 999_997, 999_998, 999_999]
    assert cursor.last_id == 1_000_000


def test_it_rides_out_a_database_restart_with_one_notice() -> None:
    answers: list[Exception | tuple[list[TransitionLine], bool]] = [
        OperationalError("terminating connection due to administrator command\nmore"),
        OperationalError("connection refused"),
        ([LINE], False),
    ]
    shown: list[TransitionLine] = []
    notices: list[str] = []
    sleeps: list[float] = []
    resets: list[None] = []

    def poll_once() -> tuple[list[TransitionLine], bool]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    follow(
        poll_once, show=shown.append, notice=notices.append, reset=lambda: resets.append(None),
        interval=0.2, sleep=sleeps.append, keep_going=lambda: bool(answers),
    )  # fmt: skip

    assert shown == [LINE]
    assert notices == [
        "Lost the database (terminating connection due to administrator command); "
        "reconnecting every 1s.",
        "Reconnected to the database.",
    ]
    assert len(resets) == 2
    assert sleeps == [1.0, 1.0, 0.2]


def test_it_polls_again_at_once_while_more_is_waiting() -> None:
    answers = [([LINE], True), ([LINE], False)]
    sleeps: list[float] = []

    follow(
        lambda: answers.pop(0), show=lambda line: None, notice=print, reset=lambda: None,
        interval=0.5, sleep=sleeps.append, keep_going=lambda: bool(answers),
    )  # fmt: skip

    assert sleeps == [0.5]


# --- tail: database -----------------------------------------------------------------------


@pytest.mark.django_db
def test_it_polls_new_entries_by_source_and_severity(
    source: Source, beta: Source, rules: dict[str, Rule]
) -> None:
    make_alert(rules["Drawdown"], source, severity=Severity.CRITICAL)
    cursor = Cursor(AlertTransition.objects.latest("id").pk)
    warning = make_alert(rules["Latency"], source, severity=Severity.WARNING)
    make_alert(rules["Leverage"], beta, severity=Severity.EMERGENCY)
    error = make_alert(rules["Leverage"], source, severity=Severity.ERROR, value=3)
    filters = Filters(source_ids=[source.pk], severity_min=Severity.WARNING)

    lines, more = poll(cursor, filters, now=0.0)

    assert [(line.alert_id, line.rule, line.value) for line in lines] == [
        (warning.pk, "Latency", 12.5),
        (error.pk, "Leverage", 3),
    ]
    assert not more
    assert poll(cursor, Filters([], Severity.ERROR), now=1.0) == ([], False)


@pytest.mark.django_db
def test_it_shows_the_recent_past_first(source: Source, rules: dict[str, Rule]) -> None:
    make_alert(
        rules["Drawdown"], source, severity=Severity.ERROR, at=timezone.now() - timedelta(hours=2)
    )
    recent = make_alert(rules["Latency"], source, severity=Severity.WARNING)
    newest = AlertTransition.objects.latest("id").pk

    lines = list(
        backlog(Filters([], None), since=timezone.now() - timedelta(minutes=10), up_to=newest)
    )

    assert [line.alert_id for line in lines] == [recent.pk]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "ghost"], "--source: no source with id or name 'ghost'"),
        (["--severity-min", "loud"], "argument --severity-min: 'loud' is not a severity; use one"),
        (["--interval", "0"], "argument --interval: must be between 0.05 and 3600 seconds"),
        (["--interval", "soon"], "argument --interval: 'soon' is not a number of seconds"),
        (["--since", "a while"], "argument --since: must be whole seconds"),
        (["--color", "--no-color"], "argument --no-color: not allowed with argument --color"),
    ],
)
def test_it_names_the_bad_tail_argument(args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as error:
        tradewatch("tail", *args)

    assert message in str(error.value)


# --- tail: the real process ---------------------------------------------------------------


class Reader:
    """Collects a pipe's lines in a thread, so a test can wait for one without blocking."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            self.lines.append(line.decode().rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 30) -> str:
        assert wait_until(lambda: any(text in line for line in self.lines), timeout), self.lines
        return next(line for line in self.lines if text in line)

    @property
    def text(self) -> str:
        self._thread.join(timeout=5)
        return "\n".join(self.lines)


@pytest.fixture
def start_tail() -> Iterator[Any]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, **env: str) -> tuple[subprocess.Popen[bytes], Reader, Reader]:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "tradewatch", "tail", "--interval", "0.2", *args],
            env=process_environment(**env), cwd=BASE_DIR, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, preexec_fn=ctrl_c_default,
        )  # fmt: skip
        started.append(process)
        assert process.stdout is not None
        assert process.stderr is not None
        out, err = Reader(process.stdout), Reader(process.stderr)
        err.wait_for("Following alerts; Ctrl-C stops.")
        return process, out, err

    yield start
    for process in started:
        stop(process)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_tail_prints_an_alert_raised_after_it_started_and_stops_on_ctrl_c(
    source: Source, make_rule: MakeRule, start_tail: Any
) -> None:
    make_rule(name="Drawdown", thresholds=[(Severity.CRITICAL, ">", 10, None)])
    process, out, err = start_tail("--no-color")

    record(source, "drawdown_pct", 15)
    evaluate(source)

    line = out.wait_for("alpha-bot")
    alert = Alert.objects.get()
    assert line == format_transition(
        TransitionLine(
            id=0, alert_id=alert.pk, at=alert.first_seen, severity=Severity.CRITICAL,
            kind="firing", source="alpha-bot", rule="Drawdown", value=15.0, message=alert.message,
        ),
        color=False,
    )  # fmt: skip
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 0
    assert "Traceback" not in err.text
    assert out.lines == [line]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_tail_reconnects_quietly_when_the_database_drops_it(
    source: Source, beta: Source, rules: dict[str, Rule], start_tail: Any
) -> None:
    name = "tradewatch-tail-test"
    process, out, err = start_tail(
        "--source", "alpha-bot", "--severity-min", "error", "--no-color", PGAPPNAME=name
    )

    # What a database restart looks like to a client: its connection is cut.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            [name],
        )
        assert cursor.fetchall() == [(True,)]
    err.wait_for("Lost the database (")
    err.wait_for("Reconnected to the database.")
    make_alert(rules["Latency"], source, severity=Severity.WARNING)
    make_alert(rules["Drawdown"], beta, severity=Severity.CRITICAL)
    wanted = make_alert(rules["Leverage"], source, severity=Severity.CRITICAL)

    out.wait_for(f"#{wanted.pk}")
    assert stop(process) == 0  # SIGTERM too ends it cleanly
    assert len(out.lines) == 1
    assert sum("Lost the database" in line for line in err.lines) == 1
    assert "Traceback" not in err.text


# --- status -------------------------------------------------------------------------------


def test_it_exits_by_the_worst_firing_severity() -> None:
    assert exit_code({}) == 0
    assert exit_code({(Severity.EMERGENCY, "pending"): 2}) == 0
    assert exit_code({(Severity.ERROR, "firing"): 1, (Severity.CRITICAL, "pending"): 1}) == 1
    assert exit_code({(Severity.WARNING, "firing"): 3, (Severity.CRITICAL, "firing"): 1}) == 2


def test_it_says_when_nothing_is_open() -> None:
    assert format_status({}, [], now=T0, color=False) == ["No open alerts."]


def test_it_colours_severities_in_the_summary_and_the_table() -> None:
    row = OpenAlertRow(
        id=1, severity=Severity.EMERGENCY, state="firing", source="a", rule="r", value=1.0,
        comparison="", threshold=None, since=T0, acknowledged_by=None, acknowledged=True,
        inhibited=True,
    )  # fmt: skip

    lines = format_status({(60, "firing"): 1}, [row], now=T0 + timedelta(hours=2), color=True)

    assert lines[1] == "  \033[1;97;41mEMERGENCY\033[0m  1"
    assert lines[4] == (
        "\033[1;97;41mEMERGENCY\033[0m  firing, inhibited  a       r     1      "
        "2026-03-02 12:00:00Z (2h00m)  (someone)"
    )


@pytest.mark.django_db
def test_status_lists_open_alerts_most_severe_first(
    source: Source, beta: Source, rules: dict[str, Rule]
) -> None:
    now = timezone.now()
    alice = User.objects.create_user("alice")
    early, late = now - timedelta(minutes=12, seconds=30), now - timedelta(minutes=3, seconds=30)
    make_alert(
        rules["Drawdown"], source, severity=Severity.EMERGENCY, value=22.5, at=early,
        acknowledged_by=alice, acknowledged_at=now,
    )  # fmt: skip
    make_alert(rules["Latency"], beta, severity=Severity.WARNING, value=250, at=late)
    make_alert(rules["Leverage"], source, severity=Severity.CRITICAL, state="pending", at=late)
    make_alert(rules["Latency"], source, severity=Severity.INFO, state="resolved", at=early)

    output, code = tradewatch("status", "--no-color")

    assert output.splitlines() == [
        "Open alerts: 3 (2 firing, 1 pending)",
        "  EMERGENCY  1",
        "  CRITICAL   1",
        "  WARNING    1",
        "",
        "SEVERITY   STATE    SOURCE     RULE      VALUE      SINCE                       "
        "ACKNOWLEDGED BY",
        f"EMERGENCY  firing   alpha-bot  Drawdown  22.5 > 10  {format_time(early)} (12m)  alice",
        f"CRITICAL   pending  alpha-bot  Leverage  12.5 > 10  {format_time(late)} (3m)   -",
        f"WARNING    firing   beta-bot   Latency   250 > 10   {format_time(late)} (3m)   -",
    ]
    assert code == 2


@pytest.mark.django_db
def test_status_filters_by_source_and_limits_the_table(
    source: Source, beta: Source, rules: dict[str, Rule]
) -> None:
    make_alert(rules["Drawdown"], source, severity=Severity.EMERGENCY)
    make_alert(rules["Latency"], beta, severity=Severity.WARNING)
    make_alert(rules["Leverage"], beta, severity=Severity.ERROR)

    output, code = tradewatch("status", "--source", "beta-bot", "--limit", "1")

    lines = output.splitlines()
    assert lines[0] == "Open alerts: 2 (2 firing, 0 pending)"
    assert lines[-2].startswith("ERROR     firing  beta-bot  Leverage")
    assert lines[-1] == "... and 1 more (--limit 0 shows them all)"
    assert code == 1


@pytest.mark.django_db
def test_status_exits_0_with_only_pending_alerts(source: Source, rules: dict[str, Rule]) -> None:
    assert tradewatch("status") == ("No open alerts.\n", 0)

    make_alert(rules["Drawdown"], source, severity=Severity.EMERGENCY, state="pending")

    assert tradewatch("status")[1] == 0


def watchdog_fires() -> None:
    """A healthy Tradewatch: every queue consumed, the self-check run, its watchdog firing."""
    forget_rules_cache()
    worker_presence_record(name="everything@host", queues=tradewatch_queues())
    self_check()
    watchdog = Alert.objects.get(rule__name="Tradewatch watchdog")
    assert (watchdog.state, watchdog.severity) == (Alert.State.FIRING, Severity.INFO)


@pytest.mark.django_db
def test_status_exits_0_on_a_healthy_system_whose_watchdog_fires() -> None:
    watchdog_fires()

    assert tradewatch("status") == (f"No open alerts.\n{WATCHDOG_LINE}\n", 0)


@pytest.mark.django_db
def test_status_leaves_the_watchdog_out_of_its_counts_and_table(source: Source) -> None:
    watchdog_fires()
    make_alert(Rule.objects.get(name="Low win rate"), source, severity=Severity.WARNING)

    output, code = tradewatch("status", "--no-color")

    lines = output.splitlines()
    assert lines[:3] == ["Open alerts: 1 (1 firing, 0 pending)", "  WARNING    1", ""]
    assert [line.split()[:4] for line in lines[4:-1]] == [["WARNING", "firing", "alpha-bot", "Low"]]
    assert lines[-1] == WATCHDOG_LINE
    assert code == 1
    assert tradewatch("status", "--source", "alpha-bot")[0].splitlines()[-1] != WATCHDOG_LINE


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "ghost"], "--source: no source with id or name 'ghost'"),
        (["--limit", "-1"], "--limit: must be 0 (no limit) or more"),
    ],
)
def test_status_cannot_answer_with_exit_code_3(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        tradewatch("status", *args)

    assert err.value.returncode == 3


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_status_exit_code_reaches_the_shell(source: Source, rules: dict[str, Rule]) -> None:
    make_alert(rules["Drawdown"], source, severity=Severity.CRITICAL)

    done = subprocess.run(
        [sys.executable, "manage.py", "tradewatch", "status"], env=process_environment(),
        cwd=BASE_DIR, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 2, done.stderr
    assert "CRITICAL  firing  alpha-bot  Drawdown  12.5 > 10" in done.stdout
    assert "\033[" not in done.stdout  # not a terminal: no colour


# --- export -------------------------------------------------------------------------------


@pytest.fixture
def exported(source: Source, beta: Source, rules: dict[str, Rule]) -> list[Alert]:
    """Four alerts first seen at T0-1m, T0, T0+30m and T0+1h; the middle two are in range."""
    alice = User.objects.create_user("alice")
    make_alert(rules["Drawdown"], source, severity=Severity.ERROR, at=T0 - timedelta(minutes=1))
    first = make_alert(
        rules["Drawdown"], source, severity=Severity.EMERGENCY, value=0.1 + 0.2, at=T0,
        labels={"symbol": "BTC/USDT", "venue": "binance"}, acknowledged_by=alice,
        acknowledged_at=T0 + timedelta(seconds=90), count=7,
    )  # fmt: skip
    second = make_alert(
        rules["Latency"], beta, severity=Severity.WARNING, state="resolved",
        at=T0 + timedelta(minutes=30), resolved_at=T0 + timedelta(minutes=31, microseconds=5),
        resolution=Alert.Resolution.CONDITION_CLEARED, message='quote "this", and, that',
    )  # fmt: skip
    make_alert(rules["Leverage"], beta, severity=Severity.ERROR, at=T0 + timedelta(hours=1))
    return [first, second]


def expected_record(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.pk,
        "fingerprint": alert.fingerprint,
        "rule": alert.rule.name,
        "source": alert.source.name,
        "labels": alert.labels,
        "severity": Severity(alert.severity).name.lower(),
        "state": alert.state,
        "value": alert.value,
        "peak_value": alert.peak_value,
        "threshold_value": alert.threshold_value,
        "message": alert.message,
        "count": alert.count,
        "first_seen": alert.first_seen.isoformat(),
        "fired_at": alert.fired_at.isoformat() if alert.fired_at else None,
        "last_seen": alert.last_seen.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "resolution": alert.resolution,
        "acknowledged_by": alert.acknowledged_by.username if alert.acknowledged_by else None,
        "acknowledged_at": alert.acknowledged_at.isoformat() if alert.acknowledged_at else None,
    }


RANGE = ["--from", "2026-03-02T12:00:00Z", "--to", "2026-03-02T14:00:00+01:00"]


@pytest.mark.django_db
def test_export_writes_one_json_alert_per_line(exported: list[Alert]) -> None:
    output, code = tradewatch("export", *RANGE)

    records = [json.loads(line) for line in output.splitlines()]
    assert records == [expected_record(alert) for alert in exported]
    assert list(records[0]) == list(FIELDS)
    assert records[0]["value"] == 0.1 + 0.2  # exactly
    assert records[0]["acknowledged_by"] == "alice"
    assert code == 0


@pytest.mark.django_db
def test_export_writes_csv_with_a_header(exported: list[Alert], tmp_path: Path) -> None:
    target = tmp_path / "alerts.csv"

    output, _ = tradewatch("export", *RANGE, "--format", "csv", "--output", str(target))

    assert output == ""
    with target.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == list(FIELDS)
    for row, alert in zip(rows, exported, strict=True):
        expected = expected_record(alert)
        expected["labels"] = json.dumps(alert.labels, separators=(",", ":"), sort_keys=True)
        expected = {key: "" if value is None else str(value) for key, value in expected.items()}
        assert row == expected
    assert float(rows[0]["value"]) == 0.1 + 0.2
    assert rows[1]["message"] == 'quote "this", and, that'
    assert [path.name for path in tmp_path.iterdir()] == ["alerts.csv"]  # no partial file


@pytest.mark.django_db
def test_export_of_an_empty_range_is_empty(exported: list[Alert]) -> None:
    args = ["--from", "2020-01-01T00:00:00Z", "--to", "2020-01-02T00:00:00Z"]

    assert tradewatch("export", *args) == ("", 0)
    assert tradewatch("export", *args, "--format", "csv") == (",".join(FIELDS) + "\n", 0)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "2026-03-02T12:00:00Z"], "the following arguments are required: --from"),
        (["--from", "yesterday"], "argument --from: must be ISO 8601 with an offset"),
        (["--from", "2026-03-02T12:00:00"], "argument --from: needs a UTC offset"),
        ([*RANGE[:2], "--to", "2026-03-02T11:00:00Z"], "--to: must be after --from"),
        ([*RANGE, "--format", "xml"], "argument --format: invalid choice: 'xml'"),
        ([*RANGE, "--output", "/"], "--output: / is a directory"),
        ([*RANGE, "--output", "/nonexistent/a.jsonl"], "--output: cannot write /nonexistent"),
    ],
)
def test_export_names_the_bad_argument(args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as error:
        tradewatch("export", *args)

    assert message in str(error.value)
