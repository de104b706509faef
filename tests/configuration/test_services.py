"""Configuration as code: export, apply, round trips, and what a bad file changes (nothing)."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
import yaml
from django.utils import timezone

from alerts.models import Channel, Policy, Rule, Silence, Threshold, ThresholdOverride
from audit.models import ChannelEvent, RuleEvent, ThresholdEvent
from configuration.document import DocumentInvalid
from configuration.models import ChannelSecretReferences
from configuration.plan import CHANGED, CREATED, DELETED, UNCHANGED
from configuration.services import config_apply, config_export
from core.audit_history import object_history
from health.models import HealthCheck
from metrics.models import HEARTBEAT_PERIOD_TOO_SHORT, Expectation, Schedule, Source, Tag
from tests.configuration.conftest import CONTROL_SECRET, DESK_ENV, SLACK_URL
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def configuration_wiped() -> None:
    """An empty Tradewatch: no configuration at all (not even the built-in packs)."""
    for model in (Silence, HealthCheck, Policy, Rule, Channel, Source, Tag, Schedule):
        model.objects.all().delete()


def configured_by_hand() -> None:
    """Configuration as the admin makes it, with every kind of object and field."""
    live = Tag.objects.create(name="live")
    bot = Source.objects.create(name="eth-maker", heartbeat_period=timedelta(seconds=30))
    bot.tags.add(live, Tag.objects.create(name="binance"))
    model = Source.objects.create(name="llm-trader", kind="model", description="An LLM")
    rule = Rule.objects.create(
        name="Drawdown tight", metric="drawdown_pct", scope="tag", tag=live,
        window=timedelta(minutes=90), for_duration=timedelta(seconds=30), m_of_n_m=2,
        m_of_n_n=3, labels={"symbol": "BTC/USDT"}, guard_metric="trade_count",
        guard_minimum=10, message_template="{source}: {value}",
    )  # fmt: skip
    warning = Threshold.objects.create(rule=rule, severity=30, value=5.5, clear_value=4)
    Threshold.objects.create(rule=rule, severity=50, value=9)
    ThresholdOverride.objects.create(threshold=warning, source=model, value=7, enabled=False)
    nyse = Schedule.objects.create(name="nyse", kind="exchange", exchange="XNYS")
    maintenance = Schedule.objects.create(
        name="maintenance", kind="weekly", windows=["sun 02:00-04:00"], invert=True,
        description="The exchange's Sunday maintenance",
    )  # fmt: skip
    Rule.objects.create(name="Model silent", kind="absence", metric="heartbeat",
                        scope="source", source=model, missing_data="alert",
                        schedule=nyse)  # fmt: skip
    equities = Source.objects.create(name="spy-bot", schedule=nyse)
    Expectation.objects.create(source=equities, signal="order", grace=timedelta(minutes=20))
    Expectation.objects.create(
        source=equities, signal="market_data", schedule=maintenance, enabled=False
    )
    slack = Channel(name="ops-slack", kind="slack", min_severity=30)
    slack.secrets = {"webhook_url": SLACK_URL}
    slack.save()
    ChannelSecretReferences.objects.create(
        channel=slack, references={"webhook_url": "SLACK_WEBHOOK_URL"}
    )
    console = Channel.objects.create(name="console", kind="console", config={"colour": False})
    action = Channel(name="pause-eth", kind="recovery", config={
        "url": "http://10.20.0.15:8080/control", "command": "pause_trading",
        "parameters": {"reason": "tradewatch"},
    })  # fmt: skip
    action.secrets = {"signing_secret": CONTROL_SECRET}
    action.save()
    ChannelSecretReferences.objects.create(
        channel=action, references={"signing_secret": "ETH_MAKER_CONTROL_SECRET"}
    )
    policy = Policy.objects.create(
        name="desk", min_severity=40, escalate_after=timedelta(minutes=15),
        fallback_channel=console, repeat_seconds={"CRITICAL": 30, "WARNING": 600},
        digest_daily=True, digest_weekly_day=0, digest_time=time(7, 30),
        digest_timezone="Europe/London",
    )  # fmt: skip
    policy.channels.set([slack])
    policy.escalation_channels.set([console])
    policy.tags.set([live])
    policy.rules.set([rule])
    HealthCheck.objects.create(name="eth heartbeat", kind="heartbeat", source=bot,
                               recovery_action=action, interval=timedelta(seconds=15))  # fmt: skip
    HealthCheck.objects.create(name="disk", kind="host", config={"disk_path": "/"})
    now = timezone.now().replace(microsecond=0)
    silence = Silence.objects.create(
        reason="exchange maintenance", starts_at=now, ends_at=now + timedelta(hours=2)
    )
    silence.sources.set([bot])
    Silence.objects.create(reason="every Sunday", starts_at=now, schedule=maintenance)
    Silence.objects.create(reason="over", starts_at=now - timedelta(hours=3),
                           ends_at=now - timedelta(hours=1))  # fmt: skip


def test_it_exports_applies_to_an_empty_tradewatch_and_exports_the_same_bytes() -> None:
    configured_by_hand()
    first = config_export()

    configuration_wiped()
    result = config_apply(text=first, environ=DESK_ENV)
    second = config_export()

    assert result.applied
    assert second == first
    assert "reason: over" not in first  # a silence that ended is history, not configuration
    assert Channel.objects.get(name="ops-slack").secrets == {"webhook_url": SLACK_URL}


def test_it_writes_the_trading_pack_and_applies_it_back_edited() -> None:
    exported = yaml.safe_load(config_export(sections=["rules"]))
    drawdown = next(rule for rule in exported["rules"] if rule["name"] == "Drawdown")
    drawdown["thresholds"][-1]["value"] = 12.0
    drawdown["enabled"] = False

    result = config_apply(text=yaml.safe_dump(exported), environ={})

    [changed] = [p for p in result.plan.objects if p.action != UNCHANGED]
    assert (changed.section, changed.key, changed.action) == ("rules", "Drawdown", CHANGED)
    assert {(c.path, c.old, c.new) for c in changed.changes} == {
        ("enabled", True, False),
        ("thresholds[WARNING].value", 10.0, 12.0),
    }
    rule = Rule.objects.get(name="Drawdown")
    assert not rule.enabled
    assert rule.thresholds.get(severity=30).value == 12.0


def test_it_applies_the_desk_file_and_changes_nothing_the_second_time(desk_text: str) -> None:
    first = config_apply(text=desk_text, environ=DESK_ENV)
    events = RuleEvent.objects.count(), ThresholdEvent.objects.count(), ChannelEvent.objects.count()

    again = config_apply(text=desk_text, environ=DESK_ENV)

    assert first.plan.counts()[CREATED] == 8
    assert not again.plan.changes_anything
    after = RuleEvent.objects.count(), ThresholdEvent.objects.count(), ChannelEvent.objects.count()
    assert after == events
    rule = Rule.objects.get(name="Desk drawdown")
    assert (rule.scope, rule.tag.name if rule.tag else None) == ("tag", "live")
    assert ThresholdOverride.objects.get(threshold__rule=rule).value == 12.0
    action = Channel.objects.get(name="pause-eth-maker")
    assert action.secrets == {"signing_secret": CONTROL_SECRET}
    check = HealthCheck.objects.get(name="eth-maker heartbeat")
    assert check.recovery_action == action


def test_it_shows_a_dry_run_field_by_field_and_applies_nothing(desk_text: str) -> None:
    config_apply(text=desk_text, environ=DESK_ENV)
    edited = desk_text.replace("value: 15\n", "value: 18\n").replace("escalate_after: 15m", "")

    result = config_apply(text=edited, environ=DESK_ENV, dry_run=True)

    assert not result.applied
    changed = {(p.section, p.key): p for p in result.plan.objects if p.action == CHANGED}
    assert set(changed) == {("rules", "Desk drawdown"), ("policies", "desk")}
    assert [(c.path, c.old, c.new) for c in changed[("rules", "Desk drawdown")].changes] == [
        ("thresholds[EMERGENCY].value", 15.0, 18.0)
    ]
    assert [(c.path, c.old, c.new) for c in changed[("policies", "desk")].changes] == [
        ("escalate_after", "15m", None)
    ]
    assert Threshold.objects.get(rule__name="Desk drawdown", severity=60).value == 15.0


def test_it_deletes_what_the_file_leaves_out_only_with_prune(desk_text: str) -> None:
    config_apply(text=desk_text, environ=DESK_ENV)
    Rule.objects.create(name="Made in the admin", metric="equity")

    kept = config_apply(text=desk_text, environ=DESK_ENV)
    pruned = config_apply(text=desk_text, environ=DESK_ENV, prune=True)

    assert kept.plan.counts()[DELETED] == 0
    deleted = {(p.section, p.key) for p in pruned.plan.objects if p.action == DELETED}
    assert ("rules", "Made in the admin") in deleted
    assert ("rules", "Drawdown") in deleted  # the trading pack is not in the desk's file
    assert set(Rule.objects.values_list("name", flat=True)) == {"Desk drawdown"}
    # Sections the file leaves out are not touched, and Tradewatch's own source stays.
    assert "silences" not in {section for section, _ in deleted}


def test_it_names_every_wrong_field_with_its_path_and_applies_nothing(desk_text: str) -> None:
    data = yaml.safe_load(desk_text)
    data["rules"][0]["thresholds"][1]["value"] = "eight"
    data["rules"][0]["windw"] = "5m"
    data["sources"][1]["heartbeat_period"] = "0.5s"
    data["policies"][0]["channels"] = ["desk-slack", "nowhere"]

    with pytest.raises(DocumentInvalid) as schema_refused:
        config_apply(text=yaml.safe_dump(data), environ=DESK_ENV)
    del data["rules"][0]["windw"]
    data["rules"][0]["thresholds"][1]["value"] = 8
    with pytest.raises(DocumentInvalid) as references_refused:
        config_apply(text=yaml.safe_dump(data), environ=DESK_ENV)
    data["policies"][0]["channels"] = ["desk-slack"]
    with pytest.raises(DocumentInvalid) as models_refused:
        config_apply(text=yaml.safe_dump(data), environ=DESK_ENV)

    assert schema_refused.value.problems == [
        ("rules[0].thresholds[1].value", "must be a number"),
        ("rules[0].windw", "is not a field here; the fields are aggregation, change_percent, "
         "description, enabled, for_duration, guard_metric, guard_minimum, inhibited_by, "
         "keep_firing_for, kind, labels, m_of_n_m, m_of_n_n, message_template, metric, "
         "min_samples, missing_data, name, schedule, source, tag, thresholds, trading_actions, "
         "window"),
    ]  # fmt: skip
    assert references_refused.value.problems == [
        ("policies[0].channels[1]",
         "no channel or recovery action named 'nowhere', in the file or in Tradewatch"),
    ]  # fmt: skip
    # The model's own message, as the admin shows it.
    assert models_refused.value.problems == [
        ("sources[1].heartbeat_period", HEARTBEAT_PERIOD_TOO_SHORT)
    ]
    assert not Source.objects.filter(name="eth-maker").exists()
    assert not Rule.objects.filter(name="Desk drawdown").exists()


def test_it_refuses_thresholds_the_admin_refuses_with_its_words(desk_text: str) -> None:
    text = desk_text.replace("value: 15\n", "value: 7\n").replace("clear_value: 13", "")

    with pytest.raises(DocumentInvalid) as refused:
        config_apply(text=text, environ=DESK_ENV)

    [(path, message)] = refused.value.problems
    assert path == "rules[0].thresholds"
    assert message.startswith("Threshold ")
    assert "could never show" in message
    assert not Rule.objects.filter(name="Desk drawdown").exists()


def test_it_refuses_a_channel_config_the_kind_refuses(desk_text: str) -> None:
    text = desk_text.replace("command: pause_trading", "command: test")

    with pytest.raises(DocumentInvalid) as refused:
        config_apply(text=text, environ=DESK_ENV)

    [(path, message)] = refused.value.problems
    assert path == "recovery_actions[0].config.command"
    assert "not 'test'" in message
    assert not Channel.objects.filter(name="desk-slack").exists()


def test_it_names_a_missing_environment_variable_and_applies_nothing(desk_text: str) -> None:
    environ = {"SLACK_WEBHOOK_URL": SLACK_URL}

    with pytest.raises(DocumentInvalid) as refused:
        config_apply(text=desk_text, environ=environ)

    assert refused.value.problems == [
        ("recovery_actions[0].secrets.signing_secret",
         "the environment variable ETH_MAKER_CONTROL_SECRET is not set (or empty)"),
    ]  # fmt: skip
    assert not Channel.objects.filter(name="desk-slack").exists()


def test_it_refuses_a_secret_written_in_the_file(desk_text: str) -> None:
    text = desk_text.replace("${SLACK_WEBHOOK_URL}", SLACK_URL)

    with pytest.raises(DocumentInvalid) as refused:
        config_apply(text=text, environ=DESK_ENV)

    [(path, message)] = refused.value.problems
    assert path == "channels[0].secrets.webhook_url"
    assert "never goes in the file" in message
    assert SLACK_URL not in str(refused.value)


def test_it_never_exports_a_secret_and_leaves_out_those_typed_in_the_admin(
    desk_text: str,
) -> None:
    config_apply(text=desk_text, environ=DESK_ENV)
    typed = Channel(name="pager", kind="discord")
    typed.secrets = {"webhook_url": "https://discord.com/api/webhooks/1/typed-secret-xyz"}
    typed.save()

    text = config_export()

    assert "${SLACK_WEBHOOK_URL}" in text
    assert "${ETH_MAKER_CONTROL_SECRET}" in text
    for secret in (SLACK_URL, CONTROL_SECRET, "typed-secret-xyz", "whsec_"):
        assert secret not in text
    pager = next(c for c in yaml.safe_load(text)["channels"] if c["name"] == "pager")
    assert "secrets" not in pager
    # Applying the export keeps the typed secret: left out means "keep what is stored".
    assert not config_apply(text=text, environ=DESK_ENV).plan.changes_anything
    assert Channel.objects.get(name="pager").secrets["webhook_url"].endswith("typed-secret-xyz")


def test_it_replaces_a_secret_whose_environment_value_changed_without_showing_it(
    desk_text: str,
) -> None:
    config_apply(text=desk_text, environ=DESK_ENV)
    rotated = {**DESK_ENV, "SLACK_WEBHOOK_URL": SLACK_URL + "-rotated"}

    result = config_apply(text=desk_text, environ=rotated)

    [changed] = [p for p in result.plan.objects if p.action == CHANGED]
    assert changed.key == "desk-slack"
    assert [c.path for c in changed.changes] == ["secrets.webhook_url"]
    assert SLACK_URL not in repr(result)
    assert Channel.objects.get(name="desk-slack").secrets["webhook_url"].endswith("-rotated")


def test_it_records_history_as_config_apply_by_the_user(desk_text: str) -> None:
    admin = make_user("risk-owner")
    config_apply(text=desk_text, environ=DESK_ENV, actor=admin)

    rule = Rule.objects.get(name="Desk drawdown")
    [created] = object_history(rule)[-1:]
    assert created.who == "risk-owner via config apply"
    events = ChannelEvent.objects.filter(name="desk-slack")
    for event in events.select_related("pgh_context"):
        assert event.pgh_context.metadata["via"] == "config apply"
        assert SLACK_URL not in str(event.pgh_context.metadata)


def test_it_takes_unquoted_times_and_any_case_and_writes_them_one_way() -> None:
    text = """
version: 1
silences:
- reason: upgrade
  starts_at: 2099-01-01 10:00:00+02:00
  ends_at: 2099-01-01T12:00:00Z
  min_severity: warning
"""
    config_apply(text=text, environ={})

    exported = config_export(sections=["silences"])

    assert exported == (
        "version: 1\nsilences:\n- reason: upgrade\n  starts_at: '2099-01-01T08:00:00Z'\n"
        "  ends_at: '2099-01-01T12:00:00Z'\n  min_severity: WARNING\n"
    )
    assert not config_apply(text=exported, environ={}).plan.changes_anything


def test_it_keeps_a_channel_moved_to_recovery_actions_when_pruning() -> None:
    Channel.objects.create(name="bot-control", kind="console")
    text = """
version: 1
channels: []
recovery_actions:
- name: bot-control
  config: {url: "http://10.20.0.15:8080/control", command: reconnect}
  secrets: {signing_secret: "${CONTROL}"}
"""
    config_apply(text=text, environ={"CONTROL": CONTROL_SECRET}, prune=True)

    assert Channel.objects.get(name="bot-control").kind == "recovery"


def test_it_carries_the_pack_actions_and_switches_a_rules_trading_actions_on() -> None:
    exported = yaml.safe_load(config_export(sections=["rules"]))
    drawdown = next(rule for rule in exported["rules"] if rule["name"] == "Drawdown")
    assert "trading_actions" not in drawdown  # off: the default, left out
    assert [t.get("action", "") for t in drawdown["thresholds"]] == ["halt", ""]
    drawdown["trading_actions"] = True
    drawdown["thresholds"][1]["action"] = "reduce_only"

    config_apply(text=yaml.safe_dump(exported), environ={})

    rule = Rule.objects.get(name="Drawdown")
    assert rule.trading_actions
    assert dict(rule.thresholds.values_list("severity", "action")) == {
        60: "halt", 30: "reduce_only",
    }  # fmt: skip


def test_it_carries_a_policys_operations_digest_and_names_a_wrong_time_or_zone() -> None:
    configured_by_hand()
    exported = yaml.safe_load(config_export(sections=["policies"]))
    (desk,) = exported["policies"]
    assert (desk["digest_daily"], desk["digest_weekly_day"], desk["digest_time"]) == (
        True, "monday", "07:30",
    )  # fmt: skip
    assert desk["digest_timezone"] == "Europe/London"
    desk.update(digest_weekly_day="friday", digest_time="18:00", digest_timezone="UTC")
    config_apply(text=yaml.safe_dump(exported), environ=DESK_ENV)
    policy = Policy.objects.get(name="desk")
    assert (policy.digest_weekly_day, policy.digest_time, policy.digest_timezone) == (
        4, time(18, 0), "UTC",
    )  # fmt: skip

    desk.update(digest_time="25:99", digest_timezone="Mars/Olympus")
    with pytest.raises(DocumentInvalid) as refused:
        config_apply(text=yaml.safe_dump(exported), environ=DESK_ENV)
    assert [path for path, _ in refused.value.problems] == [
        "policies[0].digest_time", "policies[0].digest_timezone",
    ]  # fmt: skip
    assert "Mars/Olympus" in refused.value.problems[1][1]
