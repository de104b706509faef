"""The audit history: every change to configuration, bulk ones included, never a secret."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from pghistory.core import event_models
from pghistory.models import Events

from alerts.models import Alert, Channel, Notification, Rule, Threshold
from audit.models import ChannelEvent, HealthCheckEvent, RuleEvent, SourceEvent, ThresholdEvent
from health.models import HealthCheck
from metrics.models import MetricSample, MetricSeries, Source, SourceHeartbeat
from tests.admin.conftest import signed_in

pytestmark = pytest.mark.django_db

SECRET = "https://hooks.slack.com/services/T000/B000/super-secret-token-123"


def test_it_records_a_bulk_admin_action_with_who_did_it(risk_admin: User) -> None:
    sources = [Source.objects.create(name=f"bot-{i}") for i in range(3)]

    answer = signed_in(risk_admin).post(
        "/admin/metrics/source/",
        {"action": "disable", "_selected_action": [source.pk for source in sources]},
    )

    assert answer.status_code == 302
    events = SourceEvent.objects.filter(pgh_label="update", enabled=False)
    assert sorted(events.values_list("pgh_obj_id", flat=True)) == [s.pk for s in sources]
    contexts = {
        event.pgh_context.metadata["user"] for event in events.select_related("pgh_context")
    }
    assert contexts == {risk_admin.pk}


def test_it_records_queryset_updates_made_outside_the_admin() -> None:
    before = RuleEvent.objects.count()

    changed = Rule.objects.filter(pack="trading").update(enabled=False)
    Threshold.objects.filter(rule__name="Drawdown", severity=30).update(value=11)

    assert RuleEvent.objects.count() - before == changed > 0
    assert ThresholdEvent.objects.filter(pgh_label="update", value=11).count() == 1


def test_it_never_records_channel_secrets(risk_admin: User) -> None:
    client = signed_in(risk_admin)
    answer = client.post(
        "/admin/alerts/channel/add/",
        {
            "name": "ops-slack", "kind": "slack", "enabled": "on", "min_severity": 30,
            "config": "{}", "secrets": json.dumps({"webhook_url": SECRET}),
            "rate_limit": 30, "rate_window": "00:01:00",
        },
    )  # fmt: skip
    assert answer.status_code == 302, answer.content.decode()[:2000]
    channel = Channel.objects.get(name="ops-slack")
    channel.secrets = {"webhook_url": SECRET + "-rotated"}
    channel.save()

    assert "secrets_encrypted" not in {field.name for field in ChannelEvent._meta.fields}
    labels = list(ChannelEvent.objects.filter(pgh_obj=channel).values_list("pgh_label", flat=True))
    assert "insert" in labels
    assert "secrets_changed" in labels
    recorded = json.dumps(list(Events.objects.tracks(channel).values("pgh_data", "pgh_diff")))
    assert "super-secret-token" not in recorded
    assert channel.secrets_encrypted[:20] not in recorded
    history = client.get(f"/admin/alerts/channel/{channel.pk}/history/").content.decode()
    assert "secrets replaced (not recorded)" in history
    assert "super-secret-token" not in history


def test_it_leaves_out_what_workers_write() -> None:
    channel = Channel.objects.create(name="console", kind="console")
    check = HealthCheck.objects.create(name="db", kind="postgres")
    channels, checks = ChannelEvent.objects.count(), HealthCheckEvent.objects.count()

    Channel.objects.filter(pk=channel.pk).update(sent_count=10, last_error="timeout")
    HealthCheck.objects.filter(pk=check.pk).update(status="unhealthy", consecutive_failures=3)

    assert (ChannelEvent.objects.count(), HealthCheckEvent.objects.count()) == (channels, checks)


def test_it_tracks_configuration_only_never_the_high_volume_tables() -> None:
    tracked = {model.pgh_tracked_model for model in event_models()}  # type: ignore[attr-defined]

    assert {Rule, Threshold, Channel, Source, HealthCheck} <= tracked
    for busy in (MetricSample, MetricSeries, Alert, Notification, SourceHeartbeat):
        assert busy not in tracked


def test_it_shows_who_changed_a_rule_on_its_history_page(risk_admin: User) -> None:
    rule = Rule.objects.get(name="Drawdown")
    client = signed_in(risk_admin)
    source = Source.objects.create(name="riskier-bot")

    answer = client.post(
        "/admin/alerts/thresholdoverride/add/",
        {"threshold": rule.thresholds.get(severity=30).pk, "source": source.pk,
         "value": 15, "enabled": "on"},
    )  # fmt: skip
    page = client.get(f"/admin/alerts/rule/{rule.pk}/history/").content.decode()

    assert answer.status_code == 302
    assert "threshold override created" in page
    assert "risk-admin" in page
