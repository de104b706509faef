"""`tradewatch schedule ...` and `source add --schedule`: schedules from the command line."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from metrics.models import Schedule, Source

pytestmark = pytest.mark.django_db


def tradewatch(*args: str) -> str:
    out = io.StringIO()
    call_command("tradewatch", *args, stdout=out)
    return out.getvalue()


def test_it_adds_exchange_and_weekly_schedules_and_lists_their_next_open_and_close() -> None:
    added = tradewatch("schedule", "add", "nyse", "--exchange", "nyse")
    tradewatch(
        "schedule", "add", "maintenance", "--window", "sun 02:00-04:00", "--window",
        "wed 22:00-23:00", "--timezone", "UTC",
    )  # fmt: skip

    assert added.startswith("Created schedule nyse (XNYS sessions): ")
    assert Schedule.objects.get(name="nyse").exchange == "XNYS"
    assert Schedule.objects.get(name="maintenance").windows == [
        "sun 02:00-04:00",
        "wed 22:00-23:00",
    ]
    listed = tradewatch("schedule", "list", "--at", "2025-11-27T17:00:00Z").splitlines()
    assert listed[0].split() == ["NAME", "KIND", "WHEN", "NOW", "NEXT", "OPEN", "NEXT", "CLOSE"]
    nyse = next(line for line in listed if line.startswith("nyse"))
    assert "closed" in nyse
    assert "Fri 2025-11-28 14:30 UTC" in nyse  # Thanksgiving: the next open is Friday's
    assert "Fri 2025-11-28 18:00 UTC" in nyse  # ...which closes early, at 13:00 in New York


def test_it_shows_one_schedule_with_its_sessions() -> None:
    Schedule.objects.create(name="nyse", kind="exchange", exchange="XNYS")

    shown = tradewatch("schedule", "show", "nyse", "--at", "2025-11-26T20:00:00Z", "--days", "3")

    assert shown.splitlines() == [
        "nyse: XNYS sessions",
        "At 2025-11-26 20:00:00Z: open",
        "Next open:  Fri 2025-11-28 14:30 UTC (in 1d18h)",
        "Next close: Wed 2025-11-26 21:00 UTC (in 1h00m)",
        "Open in the next 3 days:",
        "  2025-11-26 20:00:00Z - 2025-11-26 21:00:00Z",
        "  2025-11-28 14:30:00Z - 2025-11-28 18:00:00Z",
    ]


def test_it_refuses_a_wrong_schedule_naming_the_field() -> None:
    with pytest.raises(CommandError, match="exchange: 'XNYZ' is not an exchange calendar"):
        tradewatch("schedule", "add", "odd", "--exchange", "XNYZ")
    with pytest.raises(CommandError, match="windows: window 1: "):
        tradewatch("schedule", "add", "odd", "--window", "someday 10:00-11:00")
    with pytest.raises(CommandError, match="No schedule named 'lse'"):
        tradewatch("schedule", "show", "lse")
    assert "XNYS" in tradewatch("schedule", "exchanges").split()


def test_a_source_is_added_on_a_schedule() -> None:
    Schedule.objects.create(name="nyse", kind="exchange", exchange="XNYS")

    tradewatch("source", "add", "spy-bot", "--schedule", "nyse")

    assert Source.objects.get(name="spy-bot").schedule == Schedule.objects.get(name="nyse")
    with pytest.raises(CommandError, match="No schedule named 'lse'"):
        tradewatch("source", "add", "ftse-bot", "--schedule", "lse")
