"""`tradewatch health`: checks run now, results printed, a Nagios exit code."""

from __future__ import annotations

from io import StringIO

import pytest

from health.models import HealthReport
from tests.health.conftest import MakeCheck, unused_port

pytestmark = pytest.mark.django_db


def run_verb(*args: str) -> tuple[int, str, str]:
    """`manage.py tradewatch health ARGS`: exit code, output and errors."""
    from monitoring_site.management.commands.tradewatch import Command

    command = Command(stdout=StringIO(), stderr=StringIO())
    parser = command.create_parser("manage.py", "tradewatch")
    options = vars(parser.parse_args(["health", *args]))
    command.execute(**options)
    return command.exit_code, command.stdout._out.getvalue(), command.stderr._out.getvalue()  # type: ignore[attr-defined]


def test_it_runs_the_checks_now_and_prints_them(make_check: MakeCheck, tcp_listener: int) -> None:
    make_check(config={"host": "127.0.0.1", "port": tcp_listener}, name="gateway")
    code, out, _ = run_verb()
    assert code == 0
    assert HealthReport.objects.count() == 1
    lines = out.splitlines()
    assert lines[0].split() == ["STATUS", "CHECK", "KIND", "SCORE", "LATENCY", "BREAKER", "DETAILS"]
    assert lines[1].split()[:4] == ["HEALTHY", "gateway", "tcp", "100"]
    assert lines[-1] == "System: HEALTHY"


def test_it_exits_2_when_a_check_fails(make_check: MakeCheck) -> None:
    make_check(config={"host": "127.0.0.1", "port": unused_port()}, name="feed")
    code, out, _ = run_verb("--check", "feed")
    assert code == 2
    assert "CRITICAL  feed" in out
    assert "refused" in out


def test_it_prints_without_probing_and_names_an_unknown_check(make_check: MakeCheck) -> None:
    make_check(config={"host": "127.0.0.1", "port": unused_port()}, name="feed")
    code, out, _ = run_verb("--no-run")
    assert (code, HealthReport.objects.count()) == (0, 0)
    assert "UNKNOWN" in out
    code, _, err = run_verb("--check", "nope")
    assert code == 3
    assert "No health check named nope" in err
