"""An alert's own page: read-only, a summary first, and the operator's buttons (acknowledge,
resolve, silence) with the permissions of the list's bulk actions."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts.alert_actions import alert_acknowledge, alert_resolve
from alerts.alert_page import figure
from alerts.models import Alert, AlertTransition, Channel, Notification, Rule, Silence
from alerts.silences import is_silenced
from metrics.models import Source

pytestmark = pytest.mark.django_db

WARNING, CRITICAL = 30, 50


@pytest.fixture
def firing(source: Source) -> Alert:
    now = timezone.now()
    return Alert.objects.create(
        fingerprint="f" * 64, rule=Rule.objects.get(name="Leverage"), source=source,
        state=Alert.State.FIRING, severity=CRITICAL, value=4.5, peak_value=4.75,
        threshold_value=3, comparison=">", message="alpha-bot: leverage 4.50x", count=7,
        first_seen=now - timedelta(minutes=20), fired_at=now - timedelta(minutes=19),
        last_seen=now,
    )  # fmt: skip


def page_url(alert: Alert) -> str:
    return f"/admin/alerts/alert/{alert.pk}/change/"


def button_url(alert: Alert, button: str) -> str:
    return f"/admin/alerts/alert/{alert.pk}/{button}/"


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def said(answer: Any) -> list[str]:
    """The messages shown on the page the button led back to."""
    return [str(message) for message in answer.context["messages"]]


def buttons_on(client: Client, alert: Alert) -> set[str]:
    page = client.get(page_url(alert))
    assert page.status_code == 200
    html = page.content.decode()
    names = ["acknowledge", "resolve", "silence-1h", "silence-24h", "silence-resolved"]
    return {name for name in names if f'data-testid="alert-{name}"' in html}


def test_it_acknowledges_from_the_page_and_goes_back_to_it(operator: User, firing: Alert) -> None:
    client = signed_in(operator)
    assert buttons_on(client, firing) == {
        "acknowledge", "resolve", "silence-1h", "silence-24h", "silence-resolved",
    }  # fmt: skip

    answer = client.post(button_url(firing, "acknowledge"), {"note": "on it"}, follow=True)

    assert answer.redirect_chain == [(page_url(firing), 302)]
    assert said(answer) == [f"Acknowledged: {Alert.objects.get(pk=firing.pk)}."]
    firing.refresh_from_db()
    assert (firing.acknowledged_by, firing.acknowledgement_note) == (operator, "on it")
    transition = AlertTransition.objects.get(alert=firing, kind="acknowledged")
    assert transition.actor == operator
    assert "by operator at" in answer.content.decode()
    assert buttons_on(client, firing) == {
        "resolve",
        "silence-1h",
        "silence-24h",
        "silence-resolved",
    }


def test_it_resolves_from_the_page(operator: User, firing: Alert) -> None:
    client = signed_in(operator)

    answer = client.post(button_url(firing, "resolve"), follow=True)

    assert answer.redirect_chain == [(page_url(firing), 302)]
    firing.refresh_from_db()
    assert (firing.state, firing.resolution, firing.resolved_by) == ("resolved", "manual", operator)
    assert said(answer) == [f"Resolved: {firing}."]
    assert "Resolved by a person (operator) at" in answer.content.decode()
    # Nothing left to acknowledge or resolve; a silence of its rule on its source still helps.
    assert buttons_on(client, firing) == {"silence-1h", "silence-24h"}


@pytest.mark.parametrize(("span", "hours"), [("1h", 1), ("24h", 24), ("resolved", None)])
def test_it_silences_from_the_page_what_the_list_action_silences(
    operator: User, firing: Alert, span: str, hours: int | None
) -> None:
    answer = signed_in(operator).post(button_url(firing, "silence"), {"span": span}, follow=True)

    silence = Silence.objects.get()
    assert list(silence.sources.all()) == [firing.source]
    assert list(silence.rules.all()) == [firing.rule]
    assert silence.created_by == operator
    if hours is None:
        assert (silence.alert, silence.ends_at) == (firing, None)
    else:
        assert silence.alert is None
        assert silence.ends_at is not None
        assert silence.ends_at - silence.starts_at == timedelta(hours=hours)
    # What the lifecycle asks before sending anything about the alert.
    assert is_silenced(firing, timezone.now())
    assert said(answer)[0].startswith("Silenced until")
    assert f'href="/admin/alerts/silence/{silence.pk}/change/"' in answer.content.decode()


def test_it_shows_a_viewer_the_summary_but_no_button_and_refuses_their_posts(
    viewer: User, firing: Alert
) -> None:
    client = signed_in(viewer)

    page = client.get(page_url(firing)).content.decode()

    assert 'data-testid="alert-summary"' in page
    assert 'data-testid="alert-actions"' not in page
    assert buttons_on(client, firing) == set()
    for button, data in (
        ("acknowledge", {"note": "mine"}),
        ("resolve", {}),
        ("silence", {"span": "1h"}),
        ("silence", {"span": "resolved"}),
    ):
        assert client.post(button_url(firing, button), data).status_code == 403
    firing.refresh_from_db()
    assert (firing.state, firing.acknowledged_at) == (Alert.State.FIRING, None)
    assert not Silence.objects.exists()
    assert not AlertTransition.objects.filter(alert=firing).exists()


def test_it_lets_an_admin_use_the_buttons_too(risk_admin: User, firing: Alert) -> None:
    client = signed_in(risk_admin)

    client.post(button_url(firing, "silence"), {"span": "24h"})
    client.post(button_url(firing, "acknowledge"))

    firing.refresh_from_db()
    assert firing.acknowledged_by == risk_admin
    assert Silence.objects.get().created_by == risk_admin


def test_it_refuses_a_button_posted_without_the_csrf_token(operator: User, firing: Alert) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    client.get(page_url(firing))  # sets the CSRF cookie, as a browser would have it
    token = client.cookies["csrftoken"].value

    refused = client.post(button_url(firing, "acknowledge"))
    firing.refresh_from_db()
    assert refused.status_code == 403
    assert firing.acknowledged_at is None

    accepted = client.post(button_url(firing, "acknowledge"), {"csrfmiddlewaretoken": token})
    firing.refresh_from_db()
    assert accepted.status_code == 302
    assert firing.acknowledged_by == operator


def test_it_takes_the_buttons_by_post_only(operator: User, firing: Alert) -> None:
    client = signed_in(operator)

    for button in ("acknowledge", "resolve", "silence"):
        assert client.get(button_url(firing, button)).status_code == 405
    assert client.post(button_url(firing, "silence"), {"span": "forever"}).status_code == 400
    assert client.post("/admin/alerts/alert/999999/resolve/").status_code == 404
    firing.refresh_from_db()
    assert (firing.state, firing.acknowledged_at) == (Alert.State.FIRING, None)
    assert not Silence.objects.exists()


def fields_on(html: str) -> set[str]:
    """The names of what a person could type into or choose on a page."""
    return set(re.findall(r'<(?:input|select|textarea)\b[^>]*\bname="([^"]+)"', html))


def test_it_lets_no_group_edit_the_alert_by_hand(
    viewer: User, operator: User, risk_admin: User, admin_user: User, firing: Alert
) -> None:
    for person in (viewer, operator, risk_admin, admin_user):
        client = signed_in(person)

        page = client.get(page_url(firing))
        edited = client.post(page_url(firing), {"state": "resolved", "severity": WARNING})

        assert page.context["title"] == "View alert"
        assert page.context["adminform"].form.fields == {}
        # The CSRF token, and the acknowledgement's note for those who may acknowledge.
        assert fields_on(page.content.decode()) <= {"csrfmiddlewaretoken", "note"}, person
        assert 'name="_save"' not in page.content.decode()
        assert edited.status_code == 403
        firing.refresh_from_db()
        assert (firing.state, firing.severity) == (Alert.State.FIRING, CRITICAL)


def test_it_keeps_the_acknowledgement_of_whoever_came_first(
    operator: User, risk_admin: User, firing: Alert
) -> None:
    client = signed_in(operator)
    client.get(page_url(firing))  # the operator's page still offers Acknowledge...
    alert_acknowledge(alert_id=firing.pk, by=risk_admin)  # ...when someone else takes it

    answer = client.post(button_url(firing, "acknowledge"), {"note": "mine"}, follow=True)

    firing.refresh_from_db()
    assert firing.acknowledged_by == risk_admin
    assert AlertTransition.objects.filter(alert=firing, kind="acknowledged").count() == 1
    assert said(answer)[0].startswith("Already acknowledged by risk-admin at ")


def test_it_says_why_a_resolved_alert_was_not_resolved_again(operator: User, firing: Alert) -> None:
    client = signed_in(operator)
    alert_resolve(alert_id=firing.pk, by=operator)

    resolved = client.post(button_url(firing, "resolve"), follow=True)
    silenced = client.post(button_url(firing, "silence"), {"span": "resolved"}, follow=True)

    assert said(resolved) == [f"Not resolved: Alert {firing.pk} is resolved already."]
    assert said(silenced) == [f"Not silenced: Alert {firing.pk} is resolved already."]
    assert not Silence.objects.exists()


def test_it_shows_what_matters_in_the_summary(
    operator: User, risk_admin: User, firing: Alert
) -> None:
    alert_acknowledge(alert_id=firing.pk, by=risk_admin, note="looking")
    client = signed_in(operator)
    client.post(button_url(firing, "silence"), {"span": "1h"})

    page = client.get(page_url(firing)).content.decode()
    summary = page.split('data-testid="alert-summary"')[1].split('data-testid="alert-chart"')[0]

    for expected in (
        '<span class="tw-sev-badge tw-sev-50" data-testid="alert-severity">Critical</span>',
        '<strong data-testid="alert-state">Firing</strong>, acknowledged, silenced',
        f'href="/admin/metrics/source/{firing.source_id}/change/" data-testid="alert-source">'
        "alpha-bot</a>",
        f'href="/admin/alerts/rule/{firing.rule_id}/change/" data-testid="alert-rule">Leverage</a>',
        "alpha-bot: leverage 4.50x",
        'data-testid="alert-value">4.5<',
        'data-testid="alert-threshold">&gt; 3<',
        'data-testid="alert-peak">4.75<',
        'data-testid="alert-count">7 times<',
        'data-testid="alert-resolved">no, open<',
        "by risk-admin at",
        "“looking”",
        firing.first_seen.strftime("%Y-%m-%d %H:%M:%S"),
        firing.last_seen.strftime("%Y-%m-%d %H:%M:%S"),
    ):
        assert expected in summary, expected
    silenced = summary.split('data-testid="alert-silenced">')[1].split("</dd>")[0]
    assert silenced.startswith('<a href="/admin/alerts/silence/')
    assert "until " in silenced


def test_it_renders_the_page_in_the_same_few_queries_however_long_its_timeline(
    operator: User, firing: Alert
) -> None:
    client = signed_in(operator)
    client.post(button_url(firing, "silence"), {"span": "24h"})
    now = timezone.now()

    def grow(start: int, entries: int) -> None:
        # Each entry by another person, each notification to another channel: a query
        # per row would show as a count that grows with them.
        for i in range(start, start + entries):
            person = User.objects.create_user(f"person-{i}")
            transition = AlertTransition.objects.create(
                alert=firing, at=now - timedelta(seconds=i), kind="acknowledged",
                severity=CRITICAL, actor=person, details={"note": f"n{i}"},
            )  # fmt: skip
            Notification.objects.create(
                alert=firing, transition=transition, event="acknowledged", severity=CRITICAL,
                channel=Channel.objects.create(name=f"channel-{i}", kind=Channel.Kind.CONSOLE),
                state="sent", attempts=1, next_attempt_at=now, created_at=now, sent_at=now,
            )  # fmt: skip

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            page = client.get(page_url(firing))
        assert page.status_code == 200
        return len(captured)

    grow(0, 2)
    client.get(page_url(firing))  # content types and the like, once per process
    few = queries()
    grow(2, 40)
    many = queries()

    assert many == few, (few, many)
    # Session and person 2, their permissions 2, the alert 1, the chart 1 or 2, timeline 1,
    # notifications 1, the silences in force with what they match 4, the source's tags 1.
    assert many <= 14


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, "—"), (3.0, "3"), (4.5, "4.5"), (0.0123, "0.0123"), (12.345678, "12.3457"),
     (1_234_567.0, "1234567"), (-2_500_000.5, "-2500000"), (0.0000123, "1.23e-05")],
)  # fmt: skip
def test_it_writes_figures_as_a_person_reads_them(value: float | None, shown: str) -> None:
    assert figure(value) == shown
