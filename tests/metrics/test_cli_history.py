"""`manage.py tradewatch metrics`: drawing (pure), then the verb on the database."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from core import cli_text
from metrics.cli.history import auto_step, bucket_values, format_history, sparkline
from metrics.models import Source
from metrics.queries import QueryResult, SeriesPoints
from tests.factories import make_series

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


# --- pure: sparklines and steps -----------------------------------------------------------


def test_it_scales_a_sparkline_from_lowest_to_highest() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([-10, 10]) == "▁█"


def test_it_draws_a_flat_line_in_the_middle_and_gaps_as_spaces() -> None:
    assert sparkline([5, 5, None, 5]) == "▄▄ ▄"
    assert sparkline([None, None]) == "  "
    assert sparkline([]) == ""


def test_it_ignores_values_that_are_not_finite() -> None:
    assert sparkline([0, float("nan"), 7, float("inf")]) == "▁ █ "


def test_it_averages_a_long_series_into_the_width() -> None:
    line = sparkline([float(i) for i in range(600)], width=60)

    assert len(line) == 60
    assert line[0] == "▁"
    assert line[-1] == "█"
    assert list(line) == sorted(line)


def test_it_places_points_in_their_buckets_leaving_gaps() -> None:
    points = [(T0, 1.0), (T0 + 2 * MINUTE, 3.0)]

    assert bucket_values(points, T0, T0 + 3 * MINUTE, MINUTE) == [1.0, None, 3.0, None]


@pytest.mark.parametrize(
    ("span", "step"),
    [
        (timedelta(minutes=1), timedelta(seconds=1)),
        (timedelta(minutes=15), timedelta(seconds=15)),
        (timedelta(hours=1), timedelta(minutes=1)),
        (timedelta(hours=6), timedelta(minutes=10)),
        (timedelta(days=1), timedelta(minutes=30)),
        (timedelta(days=30), timedelta(hours=12)),
        (timedelta(days=31), timedelta(days=1)),
        (timedelta(days=366), timedelta(days=7)),
    ],
)
def test_it_picks_a_round_step_for_about_sixty_buckets(span: timedelta, step: timedelta) -> None:
    assert auto_step(span) == step


def test_it_formats_each_series_with_its_sparkline_and_points() -> None:
    result = QueryResult(
        series=[
            SeriesPoints({"symbol": "BTC/USDT"}, [(T0, 1.0), (T0 + MINUTE, 8.0)]),
            SeriesPoints({"symbol": "ETH/USDT"}, []),
        ],
        truncated=False,
        limit=100_000,
    )

    lines = format_history(
        source="alpha-bot", name="drawdown_pct", result=result, start=T0, end=T0 + MINUTE,
        step=MINUTE, aggregation="max",
    )  # fmt: skip

    assert lines == [
        "alpha-bot drawdown_pct: max per 1m, 2026-03-02 12:00:00Z to 2026-03-02 12:01:00Z",
        "",
        '{symbol="BTC/USDT"}  ▁█  min 1  max 8  last 8  (2 points)',
        "  2026-03-02 12:00:00Z  1",
        "  2026-03-02 12:01:00Z  8",
        "",
        '{symbol="ETH/USDT"}  no samples in this range',
    ]


def test_it_says_raw_samples_and_truncation() -> None:
    result = QueryResult(series=[SeriesPoints({}, [(T0, 0.5)])], truncated=True, limit=1)

    lines = format_history(
        source="a", name="m", result=result, start=T0, end=T0, step=None, aggregation="avg"
    )

    assert lines[0].startswith("a m: raw samples, ")
    # A series without labels says so, not `{}`.
    assert lines[2] == "(no labels)  ▄  min 0.5  max 0.5  last 0.5  (1 point)"
    assert lines[-1] == "(cut at 1 point: use a shorter --since or a larger --step)"


# --- pure: shared text helpers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-3, "0s"),
        (45, "45s"),
        (720, "12m"),
        (3 * 3600 + 300, "3h05m"),
        (2 * 86400 + 4 * 3600, "2d04h"),
    ],
)
def test_it_shows_ages_in_two_units_at_most(seconds: int, shown: str) -> None:
    assert cli_text.format_age(timedelta(seconds=seconds)) == shown


def test_it_aligns_tables_and_colours_after_padding() -> None:
    lines = cli_text.render_table(
        ["A", "LONG HEADER"],
        [["x", "1"], ["wide cell", "2"]],
        painter=lambda row, column, cell: f"<{cell}>" if row == 0 and column == 0 else cell,
    )

    assert lines == ["A          LONG HEADER", "<x        >  1", "wide cell  2"]


class _Stream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_it_colours_a_terminal_unless_told_otherwise() -> None:
    assert cli_text.use_color("auto", _Stream(True), environ={})
    assert not cli_text.use_color("auto", _Stream(False), environ={})
    assert not cli_text.use_color("auto", _Stream(True), environ={"NO_COLOR": "1"})
    assert not cli_text.use_color("auto", _Stream(True), environ={"TERM": "dumb"})
    assert cli_text.use_color("always", _Stream(False), environ={"NO_COLOR": "1"})
    assert not cli_text.use_color("never", _Stream(True), environ={})


def test_it_explains_a_bad_duration_or_time() -> None:
    assert cli_text.duration("10m") == timedelta(minutes=10)
    with pytest.raises(argparse.ArgumentTypeError, match=r"number with s, m, h, d or w \(e.g. 10m"):
        cli_text.duration("ten minutes")
    with pytest.raises(argparse.ArgumentTypeError, match="needs a UTC offset"):
        cli_text.timestamp("2026-03-02T12:00:00")
    with pytest.raises(argparse.ArgumentTypeError, match=r"between 0\.05 and 10 seconds"):
        cli_text.seconds_between(0.05, 10)("0")


# --- the verb -----------------------------------------------------------------------------


def tradewatch(*args: str) -> str:
    out = io.StringIO()
    call_command("tradewatch", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def drawdown(source: Source) -> datetime:
    """Two series of drawdown_pct over the last half hour; returns the newest time."""
    # On a 5-minute boundary, so a 5m bucket is stamped with its sample's time.
    now = timezone.now() - MINUTE
    newest = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
    make_series(
        source, "drawdown_pct", {"symbol": "BTC/USDT"},
        [(newest - (5 - i) * 5 * MINUTE, float(i)) for i in range(6)],
    )  # fmt: skip
    make_series(source, "drawdown_pct", {"symbol": "ETH/USDT"}, [(newest, 2.5)])
    make_series(source, "equity", {}, [(newest, 1000.0)])
    return newest


@pytest.mark.django_db
def test_it_prints_every_series_of_a_metric_per_step(source: Source, drawdown: datetime) -> None:
    output = tradewatch("metrics", "alpha-bot", "drawdown_pct", "--step", "5m", "--since", "1h")

    lines = output.splitlines()
    assert lines[0].startswith("alpha-bot drawdown_pct: avg per 5m, ")
    btc = lines.index(next(line for line in lines if line.startswith('{symbol="BTC/USDT"}')))
    assert "min 0  max 5  last 5  (6 points)" in lines[btc]
    # The hour touches 13 five-minute buckets: the older ones empty, then one step up
    # per bucket, and the current one (after the newest sample) empty again.
    spark = lines[btc][len('{symbol="BTC/USDT"}  ') : lines[btc].index("  min ")]
    assert spark.rstrip().endswith("▁▂▄▅▇█")
    assert len(spark) == 13
    assert f"  {cli_text.format_time(drawdown)}  5" in lines
    eth = next(line for line in lines if line.startswith('{symbol="ETH/USDT"}'))
    assert eth.endswith("  min 2.5  max 2.5  last 2.5  (1 point)")
    assert eth.count("▄") == 1
    assert "equity" not in output


@pytest.mark.django_db
def test_it_picks_one_series_by_labels_and_an_aggregation(
    source: Source, drawdown: datetime
) -> None:
    output = tradewatch(
        "metrics", str(source.pk), "drawdown_pct", "--labels", "symbol=BTC/USDT",
        "--since", "2h", "--step", "1h", "--aggregation", "max",
    )  # fmt: skip

    assert "max per 1h" in output
    assert "ETH/USDT" not in output
    assert output.splitlines()[-1].endswith("  5")


@pytest.mark.django_db
def test_it_prints_raw_samples(source: Source, drawdown: datetime) -> None:
    output = tradewatch("metrics", "alpha-bot", "equity", "--step", "raw")

    assert "raw samples" in output
    assert output.splitlines()[2].startswith("(no labels)  ")
    assert "{}" not in output
    assert output.splitlines()[-1] == f"  {cli_text.format_time(drawdown)}  1000"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ghost", "equity"], "SOURCE: no source with id or name 'ghost'"),
        (
            ["alpha-bot", "pnl"],
            "NAME: alpha-bot has no metric 'pnl'; its metrics: drawdown_pct, equity",
        ),
        (
            ["alpha-bot", "drawdown_pct", "--labels", "symbol=DOGE"],
            "--labels: alpha-bot has no series of 'drawdown_pct' labelled {symbol=\"DOGE\"}; "
            'it has {symbol="BTC/USDT"}, {symbol="ETH/USDT"}',
        ),
        (
            ["alpha-bot", "drawdown_pct", "--labels", ""],
            "--labels: alpha-bot has no series of 'drawdown_pct' without labels; "
            'it has {symbol="BTC/USDT"}, {symbol="ETH/USDT"}',
        ),
        (
            ["alpha-bot", "equity", "--labels", "symbol=BTC/USDT"],
            "--labels: alpha-bot has no series of 'equity' labelled {symbol=\"BTC/USDT\"}; "
            "it has (no labels)",
        ),
        (["alpha-bot", "equity", "--labels", "a"], "argument --labels: 'a' is not of the form"),
        (["alpha-bot", "equity", "--since", "soon"], "argument --since: must be whole seconds"),
        (["alpha-bot", "equity", "--step", "often"], "(e.g. 5m), `auto` or `raw`."),
        (["alpha-bot", "equity", "--since", "7d", "--step", "1s"], "--step: cuts the range into"),
        (
            ["alpha-bot", "equity", "--aggregation", "median"],
            "argument --aggregation: invalid choice",
        ),
    ],
)
def test_it_names_the_bad_argument(
    source: Source, drawdown: datetime, args: list[str], message: str
) -> None:
    with pytest.raises(CommandError) as error:
        tradewatch("metrics", *args)

    assert message in str(error.value)
