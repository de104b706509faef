"""Retention of alerts, notifications and health reports: in chunks, and by hand."""

from __future__ import annotations

import io
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from alerts.models import Alert, AlertTransition, Channel, DeliveryAttempt, Notification, Rule
from alerts.retention import notifications_prune, resolved_alerts_prune
from core.chunks import delete_in_chunks
from health.models import HealthCheck, HealthReport
from health.services import health_reports_prune
from metrics.models import Source
from monitoring_site.schedule import PERIODIC_WORK
from tests.factories import SourceFactory, make_alert

DAY = timedelta(days=1)


def alert(source: Source, rule: Rule, *, age: timedelta, state: str = "resolved") -> Alert:
    return make_alert(
        rule, source, state=state, severity=30, at=timezone.now() - age, timeline=True
    )


def notification(
    channel: Channel, *, age: timedelta, state: str = "sent", of: Alert | None = None
) -> Notification:
    created = timezone.now() - age
    made = Notification.objects.create(
        alert=of, channel=channel, event="firing", severity=30, payload={}, state=state,
        created_at=created, next_attempt_at=created,
    )  # fmt: skip
    DeliveryAttempt.objects.create(notification=made, at=created, ok=True, duration_ms=1.0)
    return made


@pytest.fixture
def world(db: None) -> dict[str, Any]:
    source = SourceFactory.create(name="retention-bot")
    rule = Rule.objects.create(name="Retention rule", metric="x")
    channel = Channel.objects.create(name="console", kind=Channel.Kind.CONSOLE)
    return {"source": source, "rule": rule, "channel": channel}


def test_it_prunes_alerts_and_notifications_past_90_days_in_chunks(world: dict[str, Any]) -> None:
    source, rule, channel = world["source"], world["rule"], world["channel"]
    old_resolved = [alert(source, rule, age=91 * DAY) for _ in range(5)]
    for old in old_resolved:
        notification(channel, age=91 * DAY, of=old)
    recent = alert(source, rule, age=89 * DAY)
    still_open = alert(source, rule, age=120 * DAY, state="firing")
    kept_notification = notification(channel, age=91 * DAY, state="pending", of=still_open)
    lone_old = [notification(channel, age=100 * DAY) for _ in range(3)]
    lone_new = notification(channel, age=10 * DAY)
    chunks: list[int] = []

    notifications = notifications_prune(chunk=2, progress=chunks.append)
    alerts = resolved_alerts_prune(chunk=2, progress=chunks.append)

    assert (notifications, alerts) == (8, 5)
    assert chunks == [2, 2, 2, 2, 2, 2, 1]  # never more than a chunk per transaction
    assert set(Alert.objects.values_list("pk", flat=True)) == {recent.pk, still_open.pk}
    assert set(Notification.objects.values_list("pk", flat=True)) == {
        kept_notification.pk, lone_new.pk,
    }  # fmt: skip
    assert not AlertTransition.objects.filter(alert_id__in=[a.pk for a in old_resolved]).exists()
    assert DeliveryAttempt.objects.count() == 2
    assert not Notification.objects.filter(pk__in=[n.pk for n in lone_old]).exists()


def test_it_prunes_alerts_on_beat_hourly() -> None:
    [work] = [work for work in PERIODIC_WORK if work.task == "alerts.tasks.prune"]
    assert work.every_seconds == 3600


def health_reports(count: int, *, age: timedelta) -> None:
    check = HealthCheck.objects.get_or_create(
        name="tcp", kind="tcp", config={"host": "127.0.0.1", "port": 1}
    )[0]
    at = timezone.now() - age
    HealthReport.objects.bulk_create(
        HealthReport(
            health_check=check, created_at=at, status="healthy", check_status="ok", score=100
        )
        for _ in range(count)
    )


@pytest.mark.django_db
def test_it_prunes_health_reports_past_30_days_in_chunks() -> None:
    health_reports(7, age=31 * DAY)
    health_reports(2, age=29 * DAY)
    chunks: list[int] = []

    assert health_reports_prune(chunk=3, progress=chunks.append) == 7

    assert chunks == [3, 3, 1]
    assert HealthReport.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_it_lets_two_pruners_share_the_work_without_waiting(world: dict[str, Any]) -> None:
    channel = world["channel"]
    for _ in range(6):
        notification(channel, age=91 * DAY)
    held_ids = list(Notification.objects.order_by("pk").values_list("pk", flat=True)[:2])
    locked, done = threading.Event(), threading.Event()

    def another_pruner_holds_two() -> None:
        try:
            with transaction.atomic():
                list(Notification.objects.select_for_update().filter(pk__in=held_ids))
                locked.set()
                done.wait(10)
        finally:
            connection.close()

    other = threading.Thread(target=another_pruner_holds_two)
    other.start()
    try:
        assert locked.wait(10)
        deleted = delete_in_chunks(Notification.objects.exclude(state="pending"), chunk=10)
    finally:
        done.set()
        other.join()

    # The rows the other run holds are its own to delete: skipped, not waited for.
    assert deleted == 4
    assert set(Notification.objects.values_list("pk", flat=True)) == set(held_ids)


@pytest.mark.django_db
def test_it_reports_table_sizes_and_prunes_by_hand_with_a_progress_bar(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    source, rule = world["source"], world["rule"]
    for _ in range(3):
        alert(source, rule, age=100 * DAY)
    alert(source, rule, age=1 * DAY)
    health_reports(2, age=40 * DAY)

    report = io.StringIO()
    call_command("retention", "report", stdout=report)
    lines = {line.split("  ")[0].strip(): line for line in report.getvalue().splitlines()}

    assert "alerts_alert" in lines["alerts"]
    assert lines["alerts"].split()[-1] == "3"  # expired
    assert lines["health reports"].split()[-1] == "2"

    call_command("retention", "prune", "--only", "alerts", "--only", "health reports")
    out = capsys.readouterr().out

    assert "[##############################] 100%  3/3 alerts" in out
    assert "deleted 3 alerts" in out
    assert "deleted 2 health reports" in out
    assert Alert.objects.count() == 1
    assert HealthReport.objects.count() == 0
