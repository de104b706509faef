"""People halting and re-arming: the operator API, the command line and the admin page."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from alerts.models import Rule
from metrics.control import trading_state
from metrics.models import Source, TradingControl
from tests.factories import TagFactory, make_alert, make_user, token_client

pytestmark = pytest.mark.django_db

State = TradingControl.State


def test_an_operator_halts_through_the_api_and_cannot_rearm(source: Source) -> None:
    operator = token_client(make_user("olga", groups=["Operator"]))
    url = f"/api/v1/sources/{source.name}/control"
    answer = operator.post(url, {"state": "halted", "note": "odd fills"}, format="json")
    assert answer.status_code == 200
    assert answer.json()["state"] == "halted"
    assert answer.json()["set_by"] == "olga"
    refused = operator.post(url, {"state": "active", "note": "fine"}, format="json")
    assert refused.status_code == 403
    assert "metrics.rearm" in refused.json()["errors"][0]["message"]
    admin = token_client(make_user("adam", groups=["Admin"]))
    answer = admin.post(f"/api/v1/sources/{source.pk}/control", {"state": "active",
                        "note": "reviewed"}, format="json")  # fmt: skip
    assert answer.status_code == 200
    assert trading_state(source.pk).state == State.ACTIVE


def test_the_api_wants_a_note_a_known_source_and_the_permission(source: Source) -> None:
    operator = token_client(make_user("olga", groups=["Operator"]))
    url = f"/api/v1/sources/{source.name}/control"
    answer = operator.post(url, {"state": "halted"}, format="json")
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["field"] == "note"
    assert operator.post("/api/v1/sources/nope/control", {"state": "halted", "note": "x"},
                         format="json").status_code == 404  # fmt: skip
    viewer = token_client(make_user("vic", groups=["Viewer"]))
    assert viewer.post(url, {"state": "halted", "note": "x"}, format="json").status_code == 403


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("tradewatch", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_the_command_line_halts_reduces_and_rearms(source: Source) -> None:
    tag = TagFactory.create(name="live")
    source.tags.add(tag)
    assert "active -> halted" in run("halt", source.name, "--note", "exchange outage")
    assert trading_state(source.pk).state == State.HALTED
    run("rearm", source.name, "--note", "back")
    run("reduce", "--tag", "live", "--note", "risk off", "--for", "30")
    state = trading_state(source.pk)
    assert state.state == State.REDUCE_ONLY
    assert state.decided_by is not None
    assert state.decided_by.expires_at is not None
    out = run("halt", "--all", "--note", "stop everything")
    assert "alpha-bot: halted" in out
    out = run("rearm", source.name, "--note", "only this one")
    assert "held by the all control" in out


def test_the_command_line_wants_a_note_and_applies_a_named_persons_permissions(
    source: Source,
) -> None:
    with pytest.raises(CommandError):
        run("halt", source.name, "--note", " ")
    make_user("olga", groups=["Operator"])
    run("halt", source.name, "--note", "x", "--user", "olga")
    with pytest.raises(CommandError, match=r"metrics\.rearm"):
        run("rearm", source.name, "--note", "y", "--user", "olga")


def test_the_admin_page_halts_from_an_alert_and_it_is_on_its_timeline(source: Source) -> None:
    from django.utils import timezone

    alert = make_alert(Rule.objects.get(name="Drawdown"), source, fingerprint="d" * 64,
                       severity=60, value=21, threshold_value=20, at=timezone.now())  # fmt: skip
    client = Client()
    client.force_login(make_user("olga", groups=["Operator"], is_staff=True))
    page = client.get(f"/admin/alerts/alert/{alert.pk}/change/")
    assert b'data-testid="alert-halt"' in page.content
    assert b'data-testid="alert-rearm"' not in page.content
    params = f"state=halted&scope=source&target={source.pk}&alert={alert.pk}"
    form = client.get(f"/admin/trading/control?{params}")
    assert form.status_code == 200
    done = client.post(
        "/admin/trading/control",
        {"state": "halted", "scope": "source", "target": source.pk, "alert": alert.pk,
         "note": "looks wrong", "next": "/admin/"},
    )  # fmt: skip
    assert done.status_code == 302
    assert trading_state(source.pk).state == State.HALTED
    entry = alert.timeline.get(kind="trading_state")
    assert entry.details["note"] == "looks wrong"
    assert entry.details["via"] == "admin"


def test_the_admin_page_needs_a_note(source: Source) -> None:
    client = Client()
    client.force_login(make_user("adam", groups=["Admin"], is_staff=True))
    page = client.post("/admin/trading/control", {"state": "halted", "scope": "all", "note": ""})
    assert page.status_code == 200
    assert trading_state(source.pk).state == State.ACTIVE
    listing = client.get("/admin/metrics/source/")
    assert b"Trading" in listing.content
    source_page = client.get(f"/admin/metrics/source/{source.pk}/change/")
    assert b'data-testid="source-trading"' in source_page.content


def test_the_admin_lists_controls_read_only_with_their_history(source: Source) -> None:
    run("halt", source.name, "--note", "outage")
    control = TradingControl.objects.get(source=source)
    client = Client()
    client.force_login(make_user("vic", groups=["Viewer"], is_staff=True))
    listing = client.get("/admin/metrics/tradingcontrol/")
    assert listing.status_code == 200
    assert b"outage" in listing.content
    history = client.get(f"/admin/metrics/tradingcontrol/{control.pk}/history/")
    assert history.status_code == 200
    assert b"halted" in history.content
