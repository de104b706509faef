"""Sources and keys in the admin: a new key is shown exactly once; keys can be revoked."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client

from metrics.models import HEARTBEAT_PERIOD_TOO_SHORT, Source, SourceAPIKey

pytestmark = pytest.mark.django_db

KEY_PATTERN = re.compile(r"New API key for alpha-bot: (\S+\.\S+) ")
# The source form's inline of expectations, left empty.
NO_EXPECTATIONS = {
    "expectations-TOTAL_FORMS": "0", "expectations-INITIAL_FORMS": "0",
    "expectations-MIN_NUM_FORMS": "0", "expectations-MAX_NUM_FORMS": "1000",
}  # fmt: skip


def test_it_shows_a_new_key_once_and_the_key_works(admin_client: Client, source: Source) -> None:
    response = admin_client.post(
        "/admin/metrics/source/",
        {"action": "issue_api_key", "_selected_action": [source.pk]},
        follow=True,
    )
    page = response.content.decode()
    match = KEY_PATTERN.search(page)
    assert match, page
    key = match.group(1)

    # Shown once: the message is gone on the next page, and the key is not stored.
    again = admin_client.get(f"/admin/metrics/source/{source.pk}/change/").content.decode()
    assert key not in again
    assert not SourceAPIKey.objects.filter(hashed_key__contains=key).exists()

    # A person's session is no source key.
    assert admin_client.get("/api/v1/whoami").status_code == 401
    response = Client(HTTP_AUTHORIZATION=f"Api-Key {key}").get("/api/v1/whoami")
    assert response.status_code == 200


def test_it_creates_a_key_from_the_key_admin_and_shows_it_once(
    admin_client: Client, source: Source
) -> None:
    response = admin_client.post(
        "/admin/metrics/sourceapikey/add/",
        {"name": "ci", "source": source.pk, "expiry_date_0": "", "expiry_date_1": ""},
        follow=True,
    )

    assert "you will not be able to see it again" in response.content.decode()
    assert SourceAPIKey.objects.filter(source=source, name="ci").exists()


def test_it_revokes_keys_with_the_bulk_action(admin_client: Client, source: Source) -> None:
    api_key, key = source.issue_api_key(name="to-revoke")

    admin_client.post(
        "/admin/metrics/sourceapikey/",
        {"action": "revoke", "_selected_action": [api_key.pk]},
    )

    api_key.refresh_from_db()
    assert api_key.revoked
    assert Client(HTTP_AUTHORIZATION=f"Api-Key {key}").get("/api/v1/whoami").status_code == 401


def test_it_disables_a_source_with_the_bulk_action(
    admin_client: Client, source: Source, source_key: str
) -> None:
    admin_client.post(
        "/admin/metrics/source/", {"action": "disable", "_selected_action": [source.pk]}
    )

    source.refresh_from_db()
    assert not source.enabled
    response = Client(HTTP_AUTHORIZATION=f"Api-Key {source_key}").get("/api/v1/whoami")
    assert response.status_code == 401


def test_it_lists_sources_with_their_tags(admin_client: Client, admin_user: User) -> None:
    from tests.factories import SourceFactory, TagFactory

    SourceFactory.create(
        name="eth-maker", tags=[TagFactory.create(name="live"), TagFactory.create(name="binance")]
    )

    page = admin_client.get("/admin/metrics/source/").content.decode()

    assert "eth-maker" in page
    assert "binance, live" in page


@pytest.mark.parametrize(("period", "grace"), [("0.1", "0"), ("0", "60"), ("0.999", "5")])
def test_it_refuses_a_heartbeat_period_under_a_second_saying_why(
    admin_client: Client, period: str, grace: str
) -> None:
    response = admin_client.post(
        "/admin/metrics/source/add/",
        {"name": "too-eager", "kind": "bot", "enabled": "on", "heartbeat_period": period,
         "heartbeat_grace": grace},
    )  # fmt: skip

    assert response.status_code == 200  # the form again, with the error
    errors = response.context["adminform"].form.errors
    assert errors["heartbeat_period"] == [HEARTBEAT_PERIOD_TOO_SHORT]
    assert not Source.objects.filter(name="too-eager").exists()


def test_it_accepts_a_heartbeat_period_of_one_second(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/metrics/source/add/",
        {"name": "fast-bot", "kind": "bot", "enabled": "on", "heartbeat_period": "1",
         "heartbeat_grace": "0.5", **NO_EXPECTATIONS},
    )  # fmt: skip

    assert response.status_code == 302
    source = Source.objects.get(name="fast-bot")
    assert (source.heartbeat_period, source.heartbeat_grace) == (
        timedelta(seconds=1),
        timedelta(seconds=0.5),
    )


def test_the_schedules_list_shows_each_ones_next_open_and_close(admin_client: Client) -> None:
    from metrics.models import Schedule

    Schedule.objects.create(name="nyse", kind="exchange", exchange="XNYS")
    Schedule.objects.create(name="maintenance", kind="weekly", windows=["sun 02:00-04:00"])

    page = admin_client.get("/admin/metrics/schedule/").content.decode()

    for text in ("XNYS sessions", "sun 02:00-04:00 UTC", "Next open", "Next close", " UTC (in "):
        assert text in page


def test_a_schedules_page_lists_its_sessions_of_the_coming_week(admin_client: Client) -> None:
    from metrics.models import Schedule

    every_day = Schedule.objects.create(
        name="desk-hours", kind="weekly", windows=["daily 08:00-18:00"], timezone="Europe/London"
    )

    page = admin_client.get(f"/admin/metrics/schedule/{every_day.pk}/change/").content.decode()

    assert "Next open:" in page
    assert "Next close:" in page
    assert page.count(" to ") >= 7  # one span a day


def test_a_sources_page_edits_its_schedule_and_expectations(admin_client: Client) -> None:
    from metrics.models import Expectation, Schedule

    nyse = Schedule.objects.create(name="nyse", kind="exchange", exchange="XNYS")
    response = admin_client.post(
        "/admin/metrics/source/add/",
        {
            "name": "spy-bot", "kind": "bot", "enabled": "on", "heartbeat_period": "60",
            "heartbeat_grace": "60", "schedule": nyse.pk,
            "expectations-TOTAL_FORMS": "1", "expectations-INITIAL_FORMS": "0",
            "expectations-MIN_NUM_FORMS": "0", "expectations-MAX_NUM_FORMS": "1000",
            "expectations-0-signal": "order", "expectations-0-grace": "00:20:00",
            "expectations-0-enabled": "on",
        },
    )  # fmt: skip

    assert response.status_code == 302, response.content.decode()[:3000]
    source = Source.objects.get(name="spy-bot")
    assert source.schedule == nyse
    order = Expectation.objects.get(source=source)
    assert (order.signal, order.grace) == ("order", timedelta(minutes=20))
