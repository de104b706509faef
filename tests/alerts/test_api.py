"""The operator alerts API: filters, cursor pages, acknowledge and resolve, silences, who may."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import include, path
from django.utils import timezone
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from alerts.alert_actions import alert_acknowledge
from alerts.models import Alert, AlertTransition, Rule, Silence
from core.operator_api import SOURCE_KEY_ON_OPERATOR_ENDPOINT
from metrics.models import Source
from tests.alerts.conftest import MakeRule, evaluate, open_alerts, record
from tests.factories import SourceFactory, TagFactory, make_alert, make_user, token_client

pytestmark = pytest.mark.django_db

DEBUG, INFO, WARNING, ERROR, CRITICAL, EMERGENCY = 10, 20, 30, 40, 50, 60
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ALERTS = "/api/v1/alerts"
SILENCES = "/api/v1/silences"
VIEWER = ("alerts.view_alert", "alerts.view_silence")
OPERATOR = (*VIEWER, "alerts.change_alert", "alerts.add_silence", "alerts.change_silence")

NOT_A_TIME = "Must be ISO 8601 with an offset (e.g. 2026-01-31T12:00:00Z) or UNIX seconds."
SEVERITIES = "use one of debug, info, warning, error, critical, emergency."
NO_END = "A silence needs an end time, an alert to last until it resolves, or a schedule."

CURSOR = "Invalid cursor: use the `next` or `previous` link of a page."


@pytest.fixture
def operator() -> User:
    return make_user("olga", *OPERATOR)


@pytest.fixture
def api(operator: User) -> APIClient:
    """A person allowed everything this API does."""
    return token_client(operator)


@pytest.fixture
def viewer() -> APIClient:
    return token_client(make_user("vic", *VIEWER))


@pytest.fixture
def rule() -> Rule:
    return Rule.objects.create(name="api drawdown", metric="drawdown_pct")


def iso(moment: datetime) -> str:
    """A time as the API writes it (DRF: ISO 8601, UTC as Z)."""
    return moment.isoformat().replace("+00:00", "Z")


def error(field: str | None, message: str) -> dict[str, Any]:
    return {"index": None, "field": field, "message": message}


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.json()
    return [item["id"] for item in response.json()["results"]]


# --- listing ------------------------------------------------------------------------------


def test_it_lists_alerts_with_every_field(
    api: APIClient, operator: User, rule: Rule, source: Source
) -> None:
    alert = make_alert(
        rule, source, labels={"symbol": "BTC/USDT"}, severity=CRITICAL,
        at=T0 - timedelta(minutes=5), last_seen=T0, peak_value=14.0, count=3,
    )  # fmt: skip
    until = timezone.now() + timedelta(hours=1)
    alert_acknowledge(alert_id=alert.pk, by=operator, note="on it", until=until)
    alert.refresh_from_db()

    response = api.get(ALERTS)

    assert response.status_code == 200
    assert response.json() == {
        "next": None,
        "previous": None,
        "results": [
            {
                "id": alert.pk,
                "fingerprint": alert.fingerprint,
                "rule": {"id": rule.pk, "name": "api drawdown"},
                "source": {"id": source.pk, "name": "alpha-bot"},
                "labels": {"symbol": "BTC/USDT"},
                "severity": "critical",
                "state": "firing",
                "value": 12.5,
                "peak_value": 14.0,
                "threshold": {"value": 10.0, "comparison": ">"},
                "message": "api drawdown on alpha-bot: 12.5 > 10",
                "count": 3,
                "first_seen": iso(T0 - timedelta(minutes=5)),
                "fired_at": iso(T0 - timedelta(minutes=5)),
                "last_seen": iso(T0),
                "resolved_at": None,
                "resolution": None,
                "acknowledged": {
                    "by": "olga",
                    "at": iso(alert.acknowledged_at),  # type: ignore[arg-type]
                    "until": iso(until),
                    "note": "on it",
                },
                "inhibited": False,
                "url": f"http://testserver/admin/alerts/alert/{alert.pk}/change/",
            }
        ],
    }


def test_it_shows_a_missing_threshold_and_a_resolution(
    api: APIClient, rule: Rule, source: Source
) -> None:
    make_alert(
        rule, source, state=Alert.State.RESOLVED, last_seen=T0, threshold_value=None,
        comparison="", value=None,
    )  # fmt: skip

    [item] = api.get(ALERTS).json()["results"]

    assert (item["threshold"], item["value"]) == (None, None)
    assert (item["state"], item["resolution"], item["resolved_at"]) == (
        "resolved",
        "cleared",
        iso(T0),
    )
    assert item["acknowledged"] is None


def test_it_filters_by_status(api: APIClient, rule: Rule, source: Source) -> None:
    pending = make_alert(rule, source, state=Alert.State.PENDING, last_seen=T0)
    firing = make_alert(rule, source, last_seen=T0 - timedelta(seconds=1))
    resolved = make_alert(rule, source, state=Alert.State.RESOLVED, last_seen=T0 - timedelta(2))

    assert ids(api.get(ALERTS)) == [pending.pk, firing.pk, resolved.pk]
    assert ids(api.get(ALERTS, {"status": "pending"})) == [pending.pk]
    assert ids(api.get(ALERTS, {"status": "firing"})) == [firing.pk]
    assert ids(api.get(ALERTS, {"status": "resolved"})) == [resolved.pk]
    assert ids(api.get(ALERTS, {"status": "open"})) == [pending.pk, firing.pk]
    assert ids(api.get(ALERTS, {"status": "firing, Resolved"})) == [firing.pk, resolved.pk]


def test_it_filters_by_severity_label_or_minimum(
    api: APIClient, rule: Rule, source: Source
) -> None:
    warning = make_alert(rule, source, severity=WARNING, last_seen=T0)
    error_ = make_alert(rule, source, severity=ERROR, last_seen=T0 - timedelta(seconds=1))
    emergency = make_alert(rule, source, severity=EMERGENCY, last_seen=T0 - timedelta(seconds=2))

    assert ids(api.get(ALERTS, {"severity": "warning"})) == [warning.pk]
    assert ids(api.get(ALERTS, {"severity": "Emergency,warning"})) == [warning.pk, emergency.pk]
    assert ids(api.get(ALERTS, {"severity_min": "error"})) == [error_.pk, emergency.pk]
    assert ids(api.get(ALERTS, {"severity_min": "critical"})) == [emergency.pk]


def test_it_filters_by_source_id_or_name(api: APIClient, rule: Rule, source: Source) -> None:
    other = SourceFactory.create(name="beta-bot")
    mine = make_alert(rule, source)
    theirs = make_alert(rule, other)

    assert ids(api.get(ALERTS, {"source": "alpha-bot"})) == [mine.pk]
    assert ids(api.get(ALERTS, {"source": str(other.pk)})) == [theirs.pk]


def test_it_filters_by_rule_id_or_name(api: APIClient, rule: Rule, source: Source) -> None:
    other = Rule.objects.create(name="api win rate", metric="win_rate")
    mine = make_alert(rule, source)
    theirs = make_alert(other, source)

    assert ids(api.get(ALERTS, {"rule": "api drawdown"})) == [mine.pk]
    assert ids(api.get(ALERTS, {"rule": str(other.pk)})) == [theirs.pk]


def test_it_filters_by_last_seen_since_iso_or_unix_seconds(
    api: APIClient, rule: Rule, source: Source
) -> None:
    recent = make_alert(rule, source, last_seen=T0)
    make_alert(rule, source, last_seen=T0 - timedelta(hours=2))

    assert ids(api.get(ALERTS, {"since": "2026-03-02T13:00:00+02:00"})) == [recent.pk]
    assert ids(api.get(ALERTS, {"since": str(int(T0.timestamp()))})) == [recent.pk]
    # A "+" typed by hand in a URL arrives as a space.
    assert ids(api.get(f"{ALERTS}?since=2026-03-02T11:00:00+00:00")) == [recent.pk]


def test_it_filters_by_acknowledged(
    api: APIClient, operator: User, rule: Rule, source: Source
) -> None:
    taken = make_alert(rule, source, last_seen=T0)
    untaken = make_alert(rule, source, last_seen=T0 - timedelta(seconds=1))
    alert_acknowledge(alert_id=taken.pk, by=operator)

    assert ids(api.get(ALERTS, {"acknowledged": "true"})) == [taken.pk]
    assert ids(api.get(ALERTS, {"acknowledged": "false"})) == [untaken.pk]


def test_it_combines_filters(api: APIClient, rule: Rule, source: Source) -> None:
    wanted = make_alert(rule, source, severity=CRITICAL)
    make_alert(rule, source, severity=WARNING)
    make_alert(rule, source, severity=CRITICAL, state=Alert.State.RESOLVED)
    make_alert(rule, SourceFactory.create(), severity=CRITICAL)

    response = api.get(
        ALERTS,
        {"status": "open", "severity_min": "error", "source": "alpha-bot", "rule": str(rule.pk)},
    )

    assert ids(response) == [wanted.pk]


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        (
            {"status": "open,gone"},
            "status",
            "Unknown status 'gone': use pending, firing, resolved, open.",
        ),
        ({"severity": "loud"}, "severity", f"Unknown severity 'loud': {SEVERITIES}"),
        ({"severity_min": "3"}, "severity_min", f"Unknown severity '3': {SEVERITIES}"),
        ({"source": "nobody"}, "source", "No source with id or name 'nobody'."),
        ({"rule": "999999"}, "rule", "No rule with id or name '999999'."),
        ({"since": "yesterday"}, "since", NOT_A_TIME),
        ({"since": "2026-03-02T12:00:00"}, "since", "Needs a UTC offset (e.g. Z or +00:00)."),
        ({"acknowledged": "maybe"}, "acknowledged", "Must be a valid boolean."),
        ({"cursor": "not-a-cursor"}, "cursor", CURSOR),
    ],
)
def test_it_names_the_bad_filter(
    api: APIClient, source: Source, params: dict[str, str], field: str, message: str
) -> None:
    response = api.get(ALERTS, params)

    assert response.status_code == 400
    assert response.json() == {"errors": [error(field, message)]}


def test_it_pages_with_a_cursor_without_overlap(api: APIClient, rule: Rule, source: Source) -> None:
    # Ties on last_seen too: a bulk update stamps many alerts with one instant.
    alerts = [make_alert(rule, source, last_seen=T0 - timedelta(seconds=i // 2)) for i in range(5)]
    expected = [a.pk for a in sorted(alerts, key=lambda a: (a.last_seen, a.pk), reverse=True)]

    first = api.get(ALERTS, {"page_size": 2}).json()
    second = api.get(first["next"]).json()
    third = api.get(second["next"]).json()

    pages = [[item["id"] for item in page["results"]] for page in (first, second, third)]
    assert pages == [expected[:2], expected[2:4], expected[4:]]
    assert first["previous"] is None
    assert third["next"] is None
    assert [item["id"] for item in api.get(third["previous"]).json()["results"]] == expected[2:4]


def test_it_caps_the_page_size_at_500(api: APIClient, rule: Rule, source: Source) -> None:
    Alert.objects.bulk_create(
        make_alert(rule, source, last_seen=T0 - timedelta(seconds=i), save=False)
        for i in range(501)
    )

    page = api.get(ALERTS, {"page_size": 1000}).json()
    default = api.get(ALERTS).json()

    assert len(page["results"]) == 500
    assert page["next"] is not None
    assert len(default["results"]) == 50


def test_it_lists_a_page_of_alerts_in_a_fixed_number_of_queries(
    api: APIClient, rule: Rule, django_assert_max_num_queries: Any
) -> None:
    sources = [SourceFactory.create() for _ in range(10)]
    rules = [rule, *(Rule.objects.create(name=f"api rule {i}", metric="m") for i in range(4))]
    people = [make_user(f"person-{i}") for i in range(3)]
    Alert.objects.bulk_create(
        make_alert(
            rules[i % 5], sources[i % 10], last_seen=T0 - timedelta(seconds=i), save=False,
            acknowledged_by=people[i % 3], acknowledged_at=T0, acknowledgement_note="mine",
        )
        for i in range(100)
    )  # fmt: skip

    # Token and user, the user's permissions and groups' permissions, one page.
    with django_assert_max_num_queries(4):
        response = api.get(ALERTS, {"page_size": 100})

    results = response.json()["results"]
    assert len(results) == 100
    assert {item["acknowledged"]["by"] for item in results} == {"person-0", "person-1", "person-2"}


# --- one alert, acknowledge, resolve ------------------------------------------------------


def test_it_shows_one_alert_with_its_timeline(
    api: APIClient, operator: User, source: Source, make_rule: MakeRule,
    django_assert_max_num_queries: Any,
) -> None:  # fmt: skip
    make_rule(name="api drawdown")
    record(source, "drawdown_pct", 12.5)
    evaluate(source)
    [alert] = open_alerts(source)
    alert_acknowledge(alert_id=alert.pk, by=operator, note="mine")

    # Token and user, two of permissions, the alert, its timeline with the actors.
    with django_assert_max_num_queries(5):
        response = api.get(f"{ALERTS}/{alert.pk}")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["state"], body["severity"]) == (alert.pk, "firing", "warning")
    firing, acknowledged = body["timeline"]
    transition = AlertTransition.objects.get(alert=alert, kind="firing")
    assert firing == {
        "at": iso(transition.at),
        "kind": "firing",
        "severity": "warning",
        "value": 12.5,
        "actor": None,
        "details": transition.details,
        "notify": True,
        "silenced": False,
    }
    assert (acknowledged["kind"], acknowledged["actor"]) == ("acknowledged", "olga")


def test_it_acknowledges_an_alert(
    api: APIClient, operator: User, source: Source, make_rule: MakeRule
) -> None:
    make_rule(name="api drawdown")
    record(source, "drawdown_pct", 12.5)
    evaluate(source)
    [alert] = open_alerts(source)
    until = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)

    response = api.post(
        f"{ALERTS}/{alert.pk}/acknowledge",
        {"note": "restarting the bot", "until": until.isoformat()},
        format="json",
    )

    assert response.status_code == 200
    alert.refresh_from_db()
    assert alert.acknowledged_by == operator
    assert (alert.acknowledged_until, alert.acknowledgement_note) == (until, "restarting the bot")
    body = response.json()
    assert body["acknowledged"] == {
        "by": "olga",
        "at": iso(alert.acknowledged_at),  # type: ignore[arg-type]
        "until": iso(until),
        "note": "restarting the bot",
    }
    assert [entry["kind"] for entry in body["timeline"]] == ["firing", "acknowledged"]
    acknowledged = body["timeline"][-1]
    assert acknowledged["actor"] == "olga"
    assert acknowledged["details"] == {"note": "restarting the bot", "until": until.isoformat()}
    transition = AlertTransition.objects.get(alert=alert, kind="acknowledged")
    assert (transition.actor, transition.details["note"]) == (operator, "restarting the bot")


def test_it_acknowledges_until_unix_seconds_or_until_resolved(
    api: APIClient, rule: Rule, source: Source
) -> None:
    alert = make_alert(rule, source)
    until = timezone.now().replace(microsecond=0) + timedelta(hours=1)

    by_seconds = api.post(
        f"{ALERTS}/{alert.pk}/acknowledge", {"until": until.timestamp()}, format="json"
    )
    open_ended = api.post(f"{ALERTS}/{alert.pk}/acknowledge", {}, format="json")

    assert by_seconds.json()["acknowledged"]["until"] == iso(until)
    assert open_ended.status_code == 200
    assert open_ended.json()["acknowledged"]["until"] is None
    assert open_ended.json()["acknowledged"]["note"] == ""


@pytest.mark.parametrize(
    ("until", "message"),
    [
        ("2020-01-01T00:00:00Z", "The acknowledgement must last beyond now."),
        (1577836800, "The acknowledgement must last beyond now."),
        ("next week", NOT_A_TIME),
        (True, "Must be ISO 8601 with an offset, or UNIX seconds."),
    ],
)
def test_it_refuses_an_acknowledgement_ending_in_the_past_or_unreadable(
    api: APIClient, rule: Rule, source: Source, until: Any, message: str
) -> None:
    alert = make_alert(rule, source)

    response = api.post(f"{ALERTS}/{alert.pk}/acknowledge", {"until": until}, format="json")

    assert response.status_code == 400
    assert response.json() == {"errors": [error("until", message)]}
    alert.refresh_from_db()
    assert alert.acknowledged_at is None
    assert not AlertTransition.objects.filter(alert=alert).exists()


def test_it_resolves_an_alert_by_hand(
    api: APIClient, operator: User, rule: Rule, source: Source
) -> None:
    alert = make_alert(rule, source)

    response = api.post(f"{ALERTS}/{alert.pk}/resolve", {"note": "fixed the feed"}, format="json")

    assert response.status_code == 200
    alert.refresh_from_db()
    assert (alert.state, alert.resolution, alert.resolved_by) == ("resolved", "manual", operator)
    body = response.json()
    assert (body["state"], body["resolution"]) == ("resolved", "manual")
    assert body["resolved_at"] == iso(alert.resolved_at)  # type: ignore[arg-type]
    [resolved] = body["timeline"]
    assert (resolved["kind"], resolved["actor"]) == ("resolved", "olga")
    assert resolved["details"] == {"note": "fixed the feed"}


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_it_answers_409_for_a_resolved_alert(
    api: APIClient, rule: Rule, source: Source, action: str
) -> None:
    alert = make_alert(rule, source, state=Alert.State.RESOLVED)

    response = api.post(f"{ALERTS}/{alert.pk}/{action}", {}, format="json")

    assert response.status_code == 409
    [problem] = response.json()["errors"]
    assert problem["field"] is None
    assert f"Alert {alert.pk} is resolved" in problem["message"]


@pytest.mark.parametrize("action", ["", "/acknowledge", "/resolve"])
def test_it_answers_404_for_an_unknown_alert(api: APIClient, action: str) -> None:
    response = (api.get if not action else api.post)(f"{ALERTS}/999999{action}")

    assert response.status_code == 404
    assert response.json() == {"errors": [error("id", "No alert with id 999999.")]}


def test_it_names_a_note_too_long(api: APIClient, rule: Rule, source: Source) -> None:
    alert = make_alert(rule, source)

    response = api.post(f"{ALERTS}/{alert.pk}/resolve", {"note": "x" * 1001}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "errors": [error("note", "Ensure this field has no more than 1000 characters.")]
    }


# --- who may call -------------------------------------------------------------------------


ENDPOINTS = [
    ("get", ALERTS),
    ("get", f"{ALERTS}/1"),
    ("post", f"{ALERTS}/1/acknowledge"),
    ("post", f"{ALERTS}/1/resolve"),
    ("get", SILENCES),
    ("post", SILENCES),
    ("post", f"{SILENCES}/1/expire"),
]


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_it_never_answers_a_source_api_key(source_client: APIClient, method: str, url: str) -> None:
    response = getattr(source_client, method)(url, {}, format="json")

    # 401, not 403: the key is no credential here; WWW-Authenticate names what is.
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"errors": [error(None, SOURCE_KEY_ON_OPERATOR_ENDPOINT)]}


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_it_refuses_an_anonymous_caller(method: str, url: str) -> None:
    response = getattr(APIClient(), method)(url, {}, format="json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_it_lets_a_viewer_read_but_not_acknowledge_or_resolve(
    viewer: APIClient, rule: Rule, source: Source
) -> None:
    alert = make_alert(rule, source)

    assert ids(viewer.get(ALERTS)) == [alert.pk]
    assert viewer.get(f"{ALERTS}/{alert.pk}").status_code == 200
    for action in ("acknowledge", "resolve"):
        response = viewer.post(f"{ALERTS}/{alert.pk}/{action}", {}, format="json")
        assert response.status_code == 403
        assert response.json() == {
            "errors": [
                error(
                    None,
                    "You need the permission to acknowledge and resolve alerts "
                    "(alerts.change_alert).",
                )
            ]
        }
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_at) == ("firing", None)


def test_it_refuses_a_person_without_the_view_permission(rule: Rule, source: Source) -> None:
    client = token_client(make_user("stranger", "alerts.view_silence"))

    response = client.get(ALERTS)

    assert response.status_code == 403
    assert response.json() == {
        "errors": [error(None, "You need the permission to view alerts (alerts.view_alert).")]
    }


def test_it_accepts_an_admin_session(rule: Rule, source: Source) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(make_user("root", *OPERATOR))
    alert = make_alert(rule, source)

    assert ids(client.get(ALERTS)) == [alert.pk]
    # A session's writes need the CSRF token, as any form of the admin does.
    assert client.post(f"{ALERTS}/{alert.pk}/resolve", {}, format="json").status_code == 403


# --- silences -----------------------------------------------------------------------------


def test_it_creates_a_silence(api: APIClient, operator: User, rule: Rule, source: Source) -> None:
    other = SourceFactory.create(name="beta-bot")
    TagFactory.create(name="paper")
    ends_at = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)

    before = timezone.now()
    response = api.post(
        SILENCES,
        {
            "sources": ["alpha-bot", other.pk],
            "tags": ["paper"],
            "rules": ["api drawdown"],
            "min_severity": "error",
            "ends_at": int(ends_at.timestamp()),
            "reason": "exchange maintenance",
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    silence = Silence.objects.get()
    assert before <= silence.starts_at <= timezone.now()
    assert (silence.ends_at, silence.min_severity, silence.created_by) == (ends_at, ERROR, operator)
    assert response.json() == {
        "id": silence.pk,
        "state": "active",
        "sources": [{"id": source.pk, "name": "alpha-bot"}, {"id": other.pk, "name": "beta-bot"}],
        "tags": ["paper"],
        "rules": [{"id": rule.pk, "name": "api drawdown"}],
        "min_severity": "error",
        "starts_at": iso(silence.starts_at),
        "ends_at": iso(ends_at),
        "until_resolved_alert": None,
        "schedule": None,
        "schedule_open": True,
        "reason": "exchange maintenance",
        "created_by": "olga",
        "created_at": iso(silence.created_at),
        "expired_at": None,
    }


def test_it_creates_a_silence_until_an_alert_resolves_that_mutes_it(
    api: APIClient, source: Source, make_rule: MakeRule
) -> None:
    make_rule(name="api drawdown", thresholds=[(WARNING, ">", 10, None), (CRITICAL, ">", 20, None)])
    record(source, "drawdown_pct", 12)
    evaluate(source)
    [alert] = open_alerts(source)

    response = api.post(
        SILENCES,
        {"sources": [source.pk], "until_resolved_alert": alert.pk, "reason": "known issue"},
        format="json",
    )
    record(source, "drawdown_pct", 25)  # severity raised: held back by the silence
    evaluate(source)

    assert response.status_code == 201, response.json()
    assert (response.json()["until_resolved_alert"], response.json()["ends_at"]) == (alert.pk, None)
    raised = AlertTransition.objects.get(alert=alert, kind="severity_raised")
    assert (raised.notify, raised.silenced) == (True, True)
    api.post(f"{ALERTS}/{alert.pk}/resolve", {}, format="json")
    assert api.get(SILENCES).json()["results"] == []


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"reason": None}, "reason", "This field may not be null."),
        ({"reason": ""}, "reason", "This field may not be blank."),
        ({"reason": "x" * 501}, "reason", "Ensure this field has no more than 500 characters."),
        (
            {"sources": ["alpha-bot", "ghost", "404404"]},
            "sources",
            "No source with id or name 'ghost', '404404'.",
        ),
        ({"tags": ["nope"]}, "tags", "No tag named 'nope'."),
        ({"rules": ["no such rule"]}, "rules", "No rule with id or name 'no such rule'."),
        ({"sources": "alpha-bot"}, "sources", 'Expected a list of items but got type "str".'),
        ({"min_severity": "loud"}, "min_severity", f"Unknown severity 'loud': {SEVERITIES}"),
        ({"ends_at": None}, "ends_at", NO_END),
        ({"ends_at": "soon"}, "ends_at", NOT_A_TIME),
        (
            {"ends_at": "2020-01-01T00:00:00Z", "starts_at": "2019-01-01T00:00:00Z"},
            "ends_at",
            "A silence must end in the future.",
        ),
        ({"starts_at": "2099-01-02T00:00:00Z"}, "ends_at", "A silence must end after it starts."),
        ({"starts_at": 10**12}, "starts_at", "UNIX seconds must be between 1970 and 9999."),
        (
            {"ends_at": None, "until_resolved_alert": 999999},
            "until_resolved_alert",
            "No alert with id 999999.",
        ),
    ],
)
def test_it_names_the_field_of_a_bad_silence(
    api: APIClient, source: Source, rule: Rule, change: dict[str, Any], field: str, message: str
) -> None:
    body = {"sources": ["alpha-bot"], "ends_at": "2099-01-01T00:00:00Z", "reason": "why"}

    response = api.post(SILENCES, body | change, format="json")

    assert response.status_code == 400
    assert response.json() == {"errors": [error(field, message)]}
    assert not Silence.objects.exists()


def test_it_refuses_a_silence_until_a_resolved_alert(
    api: APIClient, rule: Rule, source: Source
) -> None:
    alert = make_alert(rule, source, state=Alert.State.RESOLVED)

    response = api.post(
        SILENCES, {"until_resolved_alert": alert.pk, "reason": "too late"}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "errors": [error("until_resolved_alert", f"Alert {alert.pk} is resolved already.")]
    }


def test_it_lists_silences_by_state(
    api: APIClient, operator: User, rule: Rule, source: Source
) -> None:
    now = timezone.now()
    hour = timedelta(hours=1)
    active = Silence.objects.create(reason="now", starts_at=now - hour, ends_at=now + hour)
    scheduled = Silence.objects.create(reason="later", starts_at=now + hour, ends_at=now + 2 * hour)
    ended = Silence.objects.create(reason="ended", starts_at=now - 2 * hour, ends_at=now - hour)
    by_hand = Silence.objects.create(
        reason="by hand", starts_at=now - 3 * hour, ends_at=now + hour, expired_at=now
    )
    quiet_resolved = make_alert(rule, source, state=Alert.State.RESOLVED)
    with_alert = Silence.objects.create(
        reason="alert gone", starts_at=now - 4 * hour, alert=quiet_resolved
    )

    assert ids(api.get(SILENCES)) == [scheduled.pk, active.pk]
    assert ids(api.get(SILENCES, {"state": "scheduled"})) == [scheduled.pk]
    assert ids(api.get(SILENCES, {"state": "expired"})) == [ended.pk, by_hand.pk, with_alert.pk]
    everything = api.get(SILENCES, {"state": "all"}).json()["results"]
    assert [(s["id"], s["state"]) for s in everything] == [
        (scheduled.pk, "scheduled"),
        (active.pk, "active"),
        (ended.pk, "expired"),
        (by_hand.pk, "expired"),
        (with_alert.pk, "expired"),
    ]
    response = api.get(SILENCES, {"state": "gone"})
    assert response.status_code == 400
    assert response.json() == {"errors": [error("state", '"gone" is not a valid choice.')]}


def test_it_lists_silences_in_a_fixed_number_of_queries(
    api: APIClient, operator: User, rule: Rule, django_assert_max_num_queries: Any
) -> None:
    now = timezone.now()
    for i in range(20):
        silence = Silence.objects.create(
            reason=f"s{i}", starts_at=now, ends_at=now + timedelta(hours=1), created_by=operator
        )
        silence.sources.add(SourceFactory.create())
        silence.tags.add(TagFactory.create())
        silence.rules.add(rule)

    # Token and user, two of permissions, the silences, their sources, tags and rules.
    with django_assert_max_num_queries(7):
        response = api.get(SILENCES)

    assert len(response.json()["results"]) == 20


def test_it_pages_silences_with_a_cursor(api: APIClient) -> None:
    now = timezone.now()
    silences = [
        Silence.objects.create(
            reason=f"s{i}", starts_at=now - timedelta(minutes=i), ends_at=now + timedelta(hours=1)
        )
        for i in range(3)
    ]

    first = api.get(SILENCES, {"page_size": 2}).json()
    second = api.get(first["next"]).json()

    assert [s["id"] for s in first["results"] + second["results"]] == [s.pk for s in silences]
    assert second["next"] is None


def test_it_expires_a_silence(api: APIClient) -> None:
    now = timezone.now()
    silence = Silence.objects.create(
        reason="deploy", starts_at=now - timedelta(minutes=5), ends_at=now + timedelta(hours=1)
    )

    response = api.post(f"{SILENCES}/{silence.pk}/expire")
    again = api.post(f"{SILENCES}/{silence.pk}/expire")

    assert response.status_code == 200
    silence.refresh_from_db()
    assert silence.expired_at is not None
    assert (response.json()["state"], response.json()["expired_at"]) == (
        "expired",
        iso(silence.expired_at),
    )
    assert again.status_code == 409
    assert again.json() == {"errors": [error(None, f"Silence {silence.pk} is over already.")]}
    assert api.post(f"{SILENCES}/999999/expire").json() == {
        "errors": [error("id", "No silence with id 999999.")]
    }


def test_it_lets_a_viewer_list_silences_but_not_create_or_expire_them(
    viewer: APIClient,
) -> None:
    now = timezone.now()
    silence = Silence.objects.create(reason="deploy", starts_at=now, ends_at=now + timedelta(1))

    listed = viewer.get(SILENCES)
    created = viewer.post(
        SILENCES, {"ends_at": "2099-01-01T00:00:00Z", "reason": "x"}, format="json"
    )
    expired = viewer.post(f"{SILENCES}/{silence.pk}/expire")

    assert ids(listed) == [silence.pk]
    assert (created.status_code, expired.status_code) == (403, 403)
    assert created.json() == {
        "errors": [error(None, "You need the permission to create silences (alerts.add_silence).")]
    }
    assert expired.json() == {
        "errors": [
            error(None, "You need the permission to expire silences (alerts.change_silence).")
        ]
    }
    assert Silence.objects.get().expired_at is None


def test_it_needs_the_silence_view_permission_to_list_silences() -> None:
    client = token_client(make_user("alert-reader", "alerts.view_alert"))

    response = client.get(SILENCES)

    assert response.status_code == 403
    assert response.json() == {
        "errors": [error(None, "You need the permission to view silences (alerts.view_silence).")]
    }


# --- the contract -------------------------------------------------------------------------


def test_it_documents_the_endpoints_without_warnings() -> None:
    GENERATOR_STATS.reset()
    generator = SchemaGenerator(patterns=[path("api/v1/", include("alerts.api.urls"))])

    schema = generator.get_schema(request=None, public=True)

    validate_schema(schema)
    assert not GENERATOR_STATS, "drf-spectacular warned; run manage.py spectacular --validate"
    assert set(schema["paths"]) == {
        "/api/v1/alerts",
        "/api/v1/alerts/test",
        "/api/v1/alerts/{alert_id}",
        "/api/v1/alerts/{alert_id}/acknowledge",
        "/api/v1/alerts/{alert_id}/resolve",
        "/api/v1/silences",
        "/api/v1/silences/{silence_id}/expire",
        "/api/v1/sources/{source}/control",
        "/api/v1/rules/{rule_id}/backtest",
        "/api/v1/backtests/{job_id}",
    }
    listing = schema["paths"]["/api/v1/alerts"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {
        "status", "severity", "severity_min", "source", "rule", "since", "acknowledged",
        "cursor", "page_size",
    }  # fmt: skip
    assert set(schema["paths"]["/api/v1/alerts/{alert_id}/acknowledge"]["post"]["responses"]) == {
        "200", "400", "401", "403", "404", "406", "409", "413", "414", "415", "503"
    }  # fmt: skip
