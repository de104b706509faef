"""Console channel: one readable line on the process's own stdout, coloured on a terminal."""

from __future__ import annotations

import io
import os
import pty
import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import pytest

from alerts.channels.console import ConsoleChannel
from tests.alerts.channels.receivers import alert_payload, notification

LINE = (
    "[Firing] CRITICAL drawdown on alpha-bot | Drawdown 21.5 % is past 20 % | "
    "value 21.5 (threshold > 20) | http://127.0.0.1:8000/admin/alerts/alert/42/change/"
)
ESCAPE = "\033["


@pytest.fixture(autouse=True)
def _colour_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    # The environment running the tests may ask for no colour; each test decides.
    monkeypatch.delenv("NO_COLOR", raising=False)


@contextmanager
def terminal() -> Iterator[tuple[TextIO, int]]:
    """A pseudo-terminal: the stream a program writes to, and the end a person reads."""
    reader, writer = pty.openpty()
    stream = open(writer, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    try:
        yield stream, reader
    finally:
        stream.close()
        os.close(reader)


def read_line(reader: int) -> str:
    """One line as the terminal shows it (the terminal turns "\\n" into "\\r\\n")."""
    received = b""
    while not received.endswith(b"\n"):
        ready, _, _ = select.select([reader], [], [], 30)
        assert ready, f"no complete line within 30 s: {received!r}"
        received += os.read(reader, 4096)
    return received.decode().replace("\r\n", "\n")


def test_it_writes_the_process_stdout_even_when_sys_stdout_is_replaced(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a Celery worker does: sys.stdout becomes a proxy that logs each line.
    redirected = io.StringIO()
    monkeypatch.setattr("sys.stdout", redirected)

    result = ConsoleChannel({}, {}).send(
        notification(severity="CRITICAL", comparison=">", threshold=20.0)
    )

    assert result.ok
    assert redirected.getvalue() == ""
    # Not a terminal (captured to a file): the plain line, no colour.
    assert capfd.readouterr().out == LINE + "\n"


def test_it_colours_the_line_by_severity_on_a_terminal() -> None:
    with terminal() as (stream, reader):
        assert (
            ConsoleChannel({}, {}, stream=stream)
            .send(notification(severity="EMERGENCY", comparison=">"))
            .ok
        )
        emergency = read_line(reader)
        assert ConsoleChannel({}, {}, stream=stream).send(notification("resolved")).ok
        resolved = read_line(reader)

    assert emergency.startswith("\033[1;37;41m[Firing] EMERGENCY drawdown on alpha-bot | ")
    assert emergency.endswith("\033[0m\n")
    assert emergency.count(ESCAPE) == 2
    assert resolved.startswith("\033[32m[Resolved] CRITICAL drawdown on alpha-bot")


@pytest.mark.parametrize(
    ("config", "no_color"),
    [({"colour": False}, None), ({}, "1"), ({"colour": True}, "yes")],
    ids=["colour off", "NO_COLOR", "NO_COLOR beats colour on"],
)
def test_it_writes_no_colour_on_a_terminal_when_told_not_to(
    config: dict[str, bool], no_color: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if no_color is not None:
        monkeypatch.setenv("NO_COLOR", no_color)

    with terminal() as (stream, reader):
        assert (
            ConsoleChannel(config, {}, stream=stream)
            .send(notification(severity="CRITICAL", comparison=">"))
            .ok
        )
        line = read_line(reader)

    assert line == LINE + "\n"


def test_it_colours_when_no_color_is_set_but_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    # no-color.org: only a non-empty NO_COLOR turns colour off.
    monkeypatch.setenv("NO_COLOR", "")

    with terminal() as (stream, reader):
        ConsoleChannel({}, {}, stream=stream).send(notification())
        line = read_line(reader)

    assert line.startswith("\033[1;31m[Firing] CRITICAL")


def test_it_says_who_held_back_in_a_digest_line(capfd: pytest.CaptureFixture[str]) -> None:
    held = (alert_payload(rule="win_rate"), alert_payload(rule="daily_loss"))

    ConsoleChannel({}, {}).send(notification("digest", digest=held))

    out = capfd.readouterr().out
    assert out.count("\n") == 1
    assert ESCAPE not in out
    assert out.rstrip("\n").endswith(
        "(+2 held back: CRITICAL win_rate on alpha-bot; CRITICAL daily_loss on alpha-bot)"
    )


def test_it_names_the_series_labels_and_leaves_out_figures_it_lacks(
    capfd: pytest.CaptureFixture[str],
) -> None:
    ConsoleChannel({}, {}).send(
        notification(
            "acknowledged",
            labels={"venue": "kraken", "symbol": "BTC/USDT"},
            value=None,
            threshold=None,
            url="",
        )
    )

    assert capfd.readouterr().out == (
        "[Acknowledged] CRITICAL drawdown on alpha-bot | symbol=BTC/USDT venue=kraken | "
        "Drawdown 21.5 % is past 20 %\n"
    )


def test_it_keeps_each_line_whole_when_threads_and_processes_write_at_once() -> None:
    reader, writer = os.pipe()
    stream = open(writer, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    channel = ConsoleChannel({}, {}, stream=stream)
    # Long lines (near the size a pipe writes atomically) make a torn write visible.
    messages = [f"writer {n} " + str(n) * 3000 for n in range(4)]

    def write(text: str) -> None:
        for _ in range(50):
            assert channel.send(notification(message=text, value=None, url="")).ok

    forked = []
    for text in messages[:2]:
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child)
            status = 1
            try:
                write(text)
                status = 0
            finally:
                os._exit(status)
        forked.append(pid)
    # Started after the forks: a process forked while threads run may inherit held locks.
    received: list[bytes] = []
    draining = threading.Thread(target=lambda: received.extend(iter_read(reader)), daemon=True)
    draining.start()
    threads = [threading.Thread(target=write, args=(text,)) for text in messages[2:]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for pid in forked:
        assert os.waitpid(pid, 0)[1] == 0
    stream.close()
    draining.join(timeout=30)

    lines = b"".join(received).decode().splitlines()
    assert len(lines) == 200
    expected = {
        f"[Firing] CRITICAL drawdown on alpha-bot | {text} | (threshold 20)" for text in messages
    }
    assert set(lines) == expected


def iter_read(descriptor: int) -> Iterator[bytes]:
    """Everything written to a pipe until its last writer closes it."""
    try:
        while chunk := os.read(descriptor, 65536):
            yield chunk
    finally:
        os.close(descriptor)
