"""The alerts list, its filters and bulk actions, and the statistics page, as staff."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from django.utils.http import urlencode

from alerts.models import Alert, AlertTransition, Rule, Silence
from alerts.statistics import alert_statistics
from metrics.models import Source
from tests.factories import SourceFactory, make_alert, make_user

pytestmark = pytest.mark.django_db

LIST = "/admin/alerts/alert/"
WARNING, ERROR, CRITICAL, EMERGENCY = 30, 40, 50, 60


@pytest.fixture
def alerts(source: Source) -> dict[str, Alert]:
    other = SourceFactory.create(name="beta-bot")
    drawdown, leverage = Rule.objects.get(name="Drawdown"), Rule.objects.get(name="Leverage")
    old = timezone.now() - timedelta(days=10)
    return {
        "warning": make_alert(drawdown, source, message="Drawdown on alpha-bot"),
        "critical": make_alert(leverage, other, severity=CRITICAL),
        "pending": make_alert(leverage, source, state=Alert.State.PENDING),
        "resolved": make_alert(
            drawdown, other, state=Alert.State.RESOLVED, at=old, resolved_at=old
        ),
    }


def listed(client: Client, query: str = "") -> set[int]:
    response = client.get(LIST + query)
    assert response.status_code == 200
    return {alert.pk for alert in response.context["cl"].result_list}


def test_it_lists_open_alerts_by_default(admin_client: Client, alerts: dict[str, Alert]) -> None:
    assert listed(admin_client) == {alerts[k].pk for k in ("warning", "critical", "pending")}
    assert listed(admin_client, "?state=all") == {a.pk for a in alerts.values()}
    assert listed(admin_client, "?state=resolved") == {alerts["resolved"].pk}
    assert listed(admin_client, "?state=pending") == {alerts["pending"].pk}


def test_it_filters_by_severity_source_rule_and_date(
    admin_client: Client, alerts: dict[str, Alert], source: Source
) -> None:
    leverage = Rule.objects.get(name="Leverage")
    week_ago = urlencode(
        {"first_seen__gte": str(timezone.now().replace(microsecond=0) - timedelta(days=7))}
    )

    assert listed(admin_client, f"?severity__exact={CRITICAL}") == {alerts["critical"].pk}
    assert listed(admin_client, f"?source__id__exact={source.pk}") == {
        alerts["warning"].pk, alerts["pending"].pk,
    }  # fmt: skip
    assert listed(admin_client, f"?rule__id__exact={leverage.pk}") == {
        alerts["critical"].pk, alerts["pending"].pk,
    }  # fmt: skip
    assert alerts["resolved"].pk not in listed(admin_client, f"?state=all&{week_ago}")
    assert listed(admin_client, "?state=all&q=beta-bot") == {
        alerts["critical"].pk, alerts["resolved"].pk,
    }  # fmt: skip


def post_action(client: Client, action: str, ids: list[int], **extra: str) -> Any:
    return client.post(LIST, {"action": action, "_selected_action": ids, **extra}, follow=True)


def test_it_acknowledges_with_a_note_through_an_intermediate_page(
    admin_client: Client, admin_user: User, alerts: dict[str, Alert]
) -> None:
    ids = [alerts["warning"].pk, alerts["critical"].pk]
    form = post_action(admin_client, "acknowledge", ids)
    assert "Acknowledge alerts" in form.content.decode()

    done = post_action(admin_client, "acknowledge", ids, apply="1", note="on it")

    assert "2 alert(s) acknowledged." in done.content.decode()
    for key in ("warning", "critical"):
        alerts[key].refresh_from_db()
        assert alerts[key].acknowledged_by == admin_user
        assert alerts[key].acknowledgement_note == "on it"
        transition = AlertTransition.objects.get(alert=alerts[key], kind="acknowledged")
        assert transition.actor == admin_user


def test_it_resolves_selected_alerts(admin_client: Client, alerts: dict[str, Alert]) -> None:
    response = post_action(admin_client, "resolve", [alerts["warning"].pk, alerts["resolved"].pk])

    assert "1 alert(s) resolved." in response.content.decode()
    alerts["warning"].refresh_from_db()
    assert (alerts["warning"].state, alerts["warning"].resolution) == ("resolved", "manual")


@pytest.mark.parametrize(
    ("action", "hours"),
    [("silence_hour", 1), ("silence_day", 24), ("silence_until_resolved", None)],
)
def test_it_silences_selected_alerts(
    admin_client: Client, alerts: dict[str, Alert], action: str, hours: int | None
) -> None:
    alert = alerts["critical"]

    post_action(admin_client, action, [alert.pk])

    silence = Silence.objects.get()
    assert list(silence.sources.all()) == [alert.source]
    assert list(silence.rules.all()) == [alert.rule]
    if hours is None:
        assert (silence.alert, silence.ends_at) == (alert, None)
    else:
        assert silence.ends_at is not None
        assert silence.ends_at - silence.starts_at == timedelta(hours=hours)


def test_it_offers_actions_by_permission(client: Client, alerts: dict[str, Alert]) -> None:
    viewer = make_user("viewer", "alerts.view_alert", password="pw", is_staff=True)
    client.force_login(viewer)

    page = client.get(LIST)
    assert page.status_code == 200
    # No action this user may take: no action menu at all.
    assert page.context["action_form"] is None

    post_action(client, "resolve", [alerts["warning"].pk])
    alerts["warning"].refresh_from_db()
    assert alerts["warning"].state == Alert.State.FIRING


def test_it_shows_the_alert_page_with_its_timeline(
    admin_client: Client, alerts: dict[str, Alert]
) -> None:
    alert = alerts["warning"]
    AlertTransition.objects.create(alert=alert, at=timezone.now(), kind="firing", severity=WARNING)

    page = admin_client.get(f"{LIST}{alert.pk}/change/").content.decode()

    assert "Firing" in page
    assert alert.message in page


def test_it_lists_200_alerts_in_a_bounded_number_of_queries(
    admin_client: Client, source: Source, django_assert_max_num_queries: Any
) -> None:
    rules = list(Rule.objects.all()[:5])
    sources = [source, *(SourceFactory.create(name=f"s-{i}") for i in range(9))]
    now = timezone.now()
    Alert.objects.bulk_create(
        Alert(
            fingerprint=f"fp-{i}",
            rule=rules[i % 5],
            source=sources[i % 10],
            severity=WARNING,
            state=Alert.State.FIRING,
            first_seen=now,
            last_seen=now - timedelta(seconds=i),
        )
        for i in range(400)
    )

    with django_assert_max_num_queries(20):
        response = admin_client.get(LIST)
    assert len(response.context["cl"].result_list) == 200
    assert response.status_code == 200


# --- statistics ----------------------------------------------------------------------------


def test_it_computes_statistics_on_a_hand_built_set(source: Source) -> None:
    now = timezone.now()
    drawdown, leverage = Rule.objects.get(name="Drawdown"), Rule.objects.get(name="Leverage")
    beta = SourceFactory.create(name="beta-bot")
    # acknowledged after 60 s and 180 s: mean 120 s; resolved after 600 s and 1200 s: 900 s
    two_hours, three_hours, two_days = (now - timedelta(hours=h) for h in (2, 3, 48))
    make_alert(drawdown, source, at=two_hours, acknowledged_at=two_hours + timedelta(seconds=60))
    make_alert(
        drawdown, source, at=three_hours, state=Alert.State.RESOLVED,
        acknowledged_at=three_hours + timedelta(seconds=180),
        resolved_at=three_hours + timedelta(seconds=600),
    )  # fmt: skip
    make_alert(leverage, beta, severity=CRITICAL, at=now - timedelta(minutes=30))
    make_alert(
        leverage, beta, severity=EMERGENCY, at=two_days, state=Alert.State.RESOLVED,
        resolved_at=two_days + timedelta(seconds=1200),
    )  # fmt: skip
    make_alert(leverage, beta, at=now - timedelta(days=40))  # outside the 30 days

    stats = alert_statistics(now=now)

    assert stats.by_severity == [
        {"severity": "Emergency", "count": 1},
        {"severity": "Critical", "count": 1},
        {"severity": "Warning", "count": 2},
    ]
    assert stats.by_source == [
        {"source__name": "alpha-bot", "count": 2},
        {"source__name": "beta-bot", "count": 2},
    ] or stats.by_source == [
        {"source__name": "beta-bot", "count": 2},
        {"source__name": "alpha-bot", "count": 2},
    ]
    assert stats.unresolved_critical == 1  # the open CRITICAL; the 40-day-old one is a warning
    assert stats.last_hour == 1
    assert stats.mean_time_to_acknowledge == timedelta(seconds=120)
    assert stats.mean_time_to_resolve == timedelta(seconds=900)
    assert sum(row["count"] for row in stats.by_day) == 4
    assert stats.noisiest_rules[0]["fired"] == 2


def test_it_shows_the_statistics_page(admin_client: Client, alerts: dict[str, Alert]) -> None:
    response = admin_client.get("/admin/alerts/alert/statistics/?days=30")

    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="unresolved-critical">1<' in page
    assert "Statistics" in admin_client.get(LIST).content.decode()
