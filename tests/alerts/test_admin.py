"""Rules in the admin: thresholds that contradict each other are refused, by name."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from alerts.models import Rule

pytestmark = pytest.mark.django_db


def rule_form(thresholds: list[tuple[int, str, float, float | None]]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Drawdown (custom)", "enabled": "on", "kind": "threshold",
        "metric": "drawdown_pct", "labels": "{}", "aggregation": "last", "window": "00:05:00",
        "min_samples": 1, "scope": "all", "for_duration": "0", "keep_firing_for": "0",
        "missing_data": "keep", "inhibited_by": "", "message_template": "",
        "thresholds-TOTAL_FORMS": len(thresholds), "thresholds-INITIAL_FORMS": 0,
        "thresholds-MIN_NUM_FORMS": 0, "thresholds-MAX_NUM_FORMS": 1000,
    }  # fmt: skip
    for i, (severity, comparison, value, clear) in enumerate(thresholds):
        data[f"thresholds-{i}-severity"] = severity
        data[f"thresholds-{i}-comparison"] = comparison
        data[f"thresholds-{i}-value"] = value
        data[f"thresholds-{i}-clear_value"] = "" if clear is None else clear
    return data


def test_it_saves_a_rule_with_ordered_thresholds(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/alerts/rule/add/", rule_form([(30, ">", 10, 8), (60, ">", 20, 18)])
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    rule = Rule.objects.get(name="Drawdown (custom)")
    assert rule.thresholds.count() == 2


def test_it_refuses_a_more_severe_threshold_that_is_less_extreme(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/alerts/rule/add/", rule_form([(30, ">", 10, None), (60, ">", 5, None)])
    )

    assert response.status_code == 200
    assert "is more severe than warning &gt; 10 but not more extreme" in response.content.decode()
    assert not Rule.objects.filter(name="Drawdown (custom)").exists()


def test_it_refuses_a_clear_value_on_the_wrong_side(admin_client: Client) -> None:
    response = admin_client.post("/admin/alerts/rule/add/", rule_form([(30, ">", 10, 12)]))

    assert response.status_code == 200
    assert "clear_value 12.0 must be &lt;= value 10.0 for &gt;" in response.content.decode()
    assert not Rule.objects.filter(name="Drawdown (custom)").exists()


def test_it_previews_the_rule_on_each_source(admin_client: Client) -> None:
    from tests.alerts.conftest import record
    from tests.factories import SourceFactory

    rule = Rule.objects.get(name="Leverage")
    record(SourceFactory.create(name="calm-bot"), "leverage", 1.5)
    record(SourceFactory.create(name="wild-bot"), "leverage", 4.25)

    page = admin_client.get(f"/admin/alerts/rule/{rule.pk}/change/").content.decode()

    assert "<td>calm-bot</td><td>—</td><td>1.5</td><td>ok</td>" in page
    assert "<td>wild-bot</td><td>—</td><td>4.25</td><td>CRITICAL</td>" in page


def test_it_shows_the_open_alerts_a_silence_mutes(admin_client: Client) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from alerts.models import Alert, Silence
    from tests.factories import SourceFactory

    rule = Rule.objects.get(name="Leverage")
    muted, loud = SourceFactory.create(name="muted-bot"), SourceFactory.create(name="loud-bot")
    now = timezone.now()
    for i, source in enumerate((muted, loud)):
        Alert.objects.create(
            fingerprint=str(i), rule=rule, source=source, severity=50, state="firing",
            first_seen=now, last_seen=now,
        )  # fmt: skip
    silence = Silence.objects.create(reason="x", starts_at=now, ends_at=now + timedelta(hours=1))
    silence.sources.add(muted)

    page = admin_client.get(f"/admin/alerts/silence/{silence.pk}/change/").content.decode()

    assert "Leverage on muted-bot" in page
    assert "Leverage on loud-bot" not in page
