"""The built-in trading pack: installed once, every rule fires on realistic data and clears."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.core.management import call_command

from alerts.models import Alert, Rule, RulePackInstall
from alerts.rulepacks.trading import install_trading_pack, pack_rules
from metrics.models import Source
from tests.alerts.conftest import beat, evaluate, later, open_alerts, record, send_event

pytestmark = pytest.mark.django_db

INFO, WARNING, ERROR, CRITICAL, EMERGENCY = 20, 30, 40, 50, 60


def test_it_installs_the_whole_pack_at_migrate_time() -> None:
    names = set(Rule.objects.filter(pack="trading").values_list("name", flat=True))

    assert names == {rule.name for rule in pack_rules()}
    assert len(names) == 30
    drawdown = Rule.objects.get(name="Drawdown")
    assert [(t.severity, t.comparison, t.value) for t in drawdown.thresholds.all()] == [
        (EMERGENCY, ">", 20.0),
        (WARNING, ">", 10.0),
    ]


def test_it_never_overwrites_edits_nor_brings_back_deleted_rules() -> None:
    drawdown = Rule.objects.get(name="Drawdown")
    drawdown.thresholds.filter(severity=WARNING).update(value=12)
    Rule.objects.filter(name="Losing streak").delete()

    assert install_trading_pack() == 0
    call_command("migrate", verbosity=0)

    assert drawdown.thresholds.get(severity=WARNING).value == 12
    assert not Rule.objects.filter(name="Losing streak").exists()
    assert RulePackInstall.objects.filter(pack="trading").count() == 30


def threshold_case(metric: str, bad: float, good: float) -> Callable[[Source, float], None]:
    def feed(source: Source, at: float) -> None:
        record(source, metric, bad if at < 100 else good, ts=later(at))

    return feed


def samples_case(
    metric: str, bad: list[float], good: list[float]
) -> Callable[[Source, float], None]:
    def feed(source: Source, at: float) -> None:
        values = bad if at < 100 else good
        for i, value in enumerate(values):
            record(source, metric, value, ts=later(at - len(values) + i + 1))

    return feed


def event_case(kind: str, count: int = 1) -> Callable[[Source, float], None]:
    def feed(source: Source, at: float) -> None:
        if at < 100:
            for i in range(count):
                send_event(source, kind, ts=later(at - i - 1))

    return feed


# rule name -> (feed, severity, seconds after the breach when it has cleared)
CASES: dict[str, tuple[Callable[[Source, float], None], int, float]] = {
    "Drawdown": (threshold_case("drawdown_pct", 21, 5), EMERGENCY, 200),
    "Daily drawdown": (threshold_case("daily_drawdown_pct", 6, 1), WARNING, 200),
    "Weekly drawdown": (threshold_case("weekly_drawdown_pct", 11, 1), ERROR, 200),
    "Daily loss limit": (threshold_case("daily_pnl", -1500, 20), CRITICAL, 200),
    "High error rate": (threshold_case("error_rate_pct", 15, 2), WARNING, 200),
    "Position concentration": (threshold_case("largest_position_pct", 55, 20), WARNING, 200),
    "Unusual trading activity": (threshold_case("trades_last_5m", 14, 2), WARNING, 200),
    "Losing streak": (threshold_case("consecutive_losses", 10, 0), WARNING, 200),
    "Leverage": (threshold_case("leverage", 4.2, 1.5), CRITICAL, 200),
    "Open positions limit": (threshold_case("open_positions", 12, 4), ERROR, 200),
    "API rate limit nearly used up": (threshold_case("rate_limit_remaining", 3, 500), WARNING, 200),
    "Exchange latency p99": (
        samples_case("exchange_latency_ms", [80, 90, 7000], [80, 90, 100]), WARNING, 500,
    ),
    "Host cpu usage": (samples_case("host_cpu_pct", [95, 97, 99], [20, 25, 30]), WARNING, 500),
    "Host memory usage": (samples_case("host_memory_pct", [92, 93], [50, 50]), WARNING, 500),
    "Host disk usage": (samples_case("host_disk_pct", [96], [40]), WARNING, 500),
    "Circuit breaker tripped": (event_case("circuit_breaker_tripped"), CRITICAL, 15 * 60 + 1),
    "Kill switch activated": (event_case("kill_switch_activated"), CRITICAL, 15 * 60 + 1),
    "Model crashed": (event_case("model_crashed"), CRITICAL, 15 * 60 + 1),
    "Model recovered": (event_case("model_recovered"), INFO, 5 * 60 + 1),
    "Provider failures": (event_case("provider_failure", 6), WARNING, 3600 + 1),
    "Exchange connectivity lost": (event_case("connectivity_lost"), ERROR, 15 * 60 + 1),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_it_fires_each_rule_at_its_severity_and_resolves_when_the_data_recovers(
    source: Source, name: str
) -> None:
    feed, severity, clears_after = CASES[name]

    feed(source, 0)
    evaluate(source)
    fired = [a for a in open_alerts(source) if a.rule.name == name]
    assert [a.severity for a in fired] == [severity]

    feed(source, clears_after)
    evaluate(source, now=later(clears_after))
    assert not [a for a in open_alerts(source) if a.rule.name == name]
    alert = Alert.objects.get(pk=fired[0].pk)
    assert alert.state == Alert.State.RESOLVED


def test_it_fires_low_win_rate_only_after_ten_trades(source: Source) -> None:
    record(source, "win_rate_pct", 30)
    record(source, "trade_count", 9)
    evaluate(source)
    assert not [a for a in open_alerts(source) if a.rule.name == "Low win rate"]

    record(source, "trade_count", 12, ts=later(1))
    evaluate(source, now=later(1))
    [alert] = [a for a in open_alerts(source) if a.rule.name == "Low win rate"]
    assert alert.severity == WARNING

    record(source, "win_rate_pct", 50, ts=later(2))
    evaluate(source, now=later(2))
    assert not [a for a in open_alerts(source) if a.rule.name == "Low win rate"]


def test_it_fires_when_the_heartbeat_lapses_and_resolves_when_it_returns(source: Source) -> None:
    Source.objects.filter(pk=source.pk).update(
        heartbeat_period=timedelta(seconds=30), heartbeat_grace=timedelta(seconds=30)
    )
    beat(source)
    evaluate(source, now=later(59))
    assert not open_alerts(source)

    evaluate(source, now=later(75))
    [alert] = open_alerts(source)
    assert (alert.rule.name, alert.severity) == ("Heartbeat lapsed", CRITICAL)
    assert alert.value == pytest.approx(15, abs=1)  # seconds overdue

    beat(source, ts=later(80))
    evaluate(source, now=later(81))
    assert not open_alerts(source)


def test_it_fires_when_the_model_artifact_is_a_day_old(source: Source) -> None:
    send_event(source, "artifact_updated", ts=later(-25 * 3600), artifact="model-v7.onnx")
    beat(source)

    evaluate(source)
    [alert] = open_alerts(source)
    assert (alert.rule.name, alert.severity) == ("Model artifact stale", WARNING)

    send_event(source, "artifact_updated", ts=later(1), artifact="model-v8.onnx")
    evaluate(source, now=later(2))
    assert not open_alerts(source)


def test_it_stays_quiet_for_a_source_that_sends_no_heartbeats_or_artifacts(source: Source) -> None:
    record(source, "equity", 1000)

    evaluate(source, now=later(7 * 24 * 3600))

    assert not open_alerts(source)
