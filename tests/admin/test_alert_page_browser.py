"""An alert's page in headless Chromium: an operator acknowledges, silences and resolves it
from there; a viewer reads it and may do none of that."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from alerts.models import Alert, Silence
from alerts.silences import is_silenced

from .test_browser import leverage_alert, log_in

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# A laptop's browser window: what an operator sees of the page before scrolling.
LAPTOP = {"width": 1280, "height": 800}


@pytest.fixture
def laptop(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=LAPTOP)
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


def alert_page(live_server: Any, alert: Alert) -> str:
    return f"{live_server.url}/admin/alerts/alert/{alert.pk}/change/"


def press(page: Any, testid: str) -> str:
    """Click one of the page's buttons; the text of the message on the page it leads to."""
    with page.expect_navigation():
        page.click(f"[data-testid={testid}]")
    return str(page.inner_text("ul.messagelist"))


def in_first_screenful(page: Any, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    return (
        box is not None
        and box["y"] >= 0
        and box["y"] + box["height"] <= LAPTOP["height"]
        and box["x"] + box["width"] <= LAPTOP["width"]
    )


def test_it_shows_the_summary_and_the_buttons_before_any_scrolling(
    live_server: Any, laptop: Any, operator: User, artifacts: Path
) -> None:
    _, alert = leverage_alert()
    log_in(laptop, live_server, operator)

    laptop.goto(alert_page(live_server, alert))

    assert laptop.evaluate("window.scrollY") == 0
    for testid in (
        "alert-severity", "alert-state", "alert-source", "alert-rule", "alert-value",
        "alert-threshold", "alert-peak", "alert-acknowledge", "alert-resolve", "alert-silence-1h",
    ):  # fmt: skip
        assert in_first_screenful(laptop, f"[data-testid={testid}]"), testid
    assert laptop.inner_text("[data-testid=alert-severity]") == "Critical"
    assert laptop.inner_text("[data-testid=alert-source]") == "lev-bot"
    assert laptop.inner_text("[data-testid=alert-value]") == "4.5"
    assert laptop.inner_text("[data-testid=alert-threshold]") == "> 3"
    # Nothing to type into: the alert's fields are text, not inputs.
    assert laptop.locator("#alert_form input:not([type=hidden]):not([name=note])").count() == 0
    assert laptop.locator("a.historylink").count() == 1
    assert "Alerts" in laptop.inner_text("div.breadcrumbs")
    laptop.screenshot(path=str(artifacts / "alert-first-screenful.png"))


def test_it_lets_an_operator_acknowledge_silence_and_resolve_from_the_alert_page(
    live_server: Any, page: Any, operator: User, artifacts: Path
) -> None:
    source, alert = leverage_alert()
    log_in(page, live_server, operator)
    page.goto(alert_page(live_server, alert))
    assert page.inner_text("[data-testid=alert-state]") == "Firing"

    page.fill("[data-testid=alert-summary] input[name=note]", "reducing the position")
    said = press(page, "alert-acknowledge")

    assert "Acknowledged: Leverage on lev-bot" in said
    alert.refresh_from_db()
    assert alert.acknowledged_by == operator
    assert alert.acknowledgement_note == "reducing the position"
    assert "by operator at" in page.inner_text("[data-testid=alert-acknowledged]")
    assert page.locator("[data-testid=alert-acknowledge]").count() == 0
    assert "Acknowledged" in page.inner_text("[data-testid=alert-timeline]")

    said = press(page, "alert-silence-1h")

    assert "Silenced until" in said
    silence = Silence.objects.get()
    assert (list(silence.sources.all()), list(silence.rules.all())) == ([source], [alert.rule])
    assert is_silenced(alert, timezone.now())
    assert "until" in page.inner_text("[data-testid=alert-silenced]")
    page.screenshot(path=str(artifacts / "alert.png"), full_page=True)

    said = press(page, "alert-resolve")

    assert "Resolved: Leverage on lev-bot" in said
    alert.refresh_from_db()
    assert (alert.state, alert.resolution, alert.resolved_by) == ("resolved", "manual", operator)
    assert page.inner_text("[data-testid=alert-state]") == "Resolved"
    for gone in ("alert-acknowledge", "alert-resolve", "alert-silence-resolved"):
        assert page.locator(f"[data-testid={gone}]").count() == 0, gone


def test_it_shows_a_viewer_the_summary_without_buttons_and_refuses_a_crafted_post(
    live_server: Any, laptop: Any, viewer: User
) -> None:
    _, alert = leverage_alert()
    log_in(laptop, live_server, viewer)

    laptop.goto(alert_page(live_server, alert))

    assert in_first_screenful(laptop, "[data-testid=alert-value]")
    assert laptop.inner_text("[data-testid=alert-threshold]") == "> 3"
    assert laptop.locator("[data-testid=alert-actions]").count() == 0
    assert laptop.locator("[data-testid=alert-summary] button").count() == 0
    assert laptop.locator("[data-testid=alert-view-only]").is_visible()
    # Asked directly from the viewer's session, with a valid CSRF token, the server refuses.
    token = laptop.input_value("#alert_form input[name=csrfmiddlewaretoken]")
    base = f"{live_server.url}/admin/alerts/alert/{alert.pk}"
    for button, form in (
        ("acknowledge", {"note": "mine"}),
        ("resolve", {}),
        ("silence", {"span": "1h"}),
    ):
        answer = laptop.request.post(
            f"{base}/{button}/",
            form={"csrfmiddlewaretoken": token, **form},
            headers={"Referer": alert_page(live_server, alert)},
        )
        assert answer.status == 403, button
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_at) == (Alert.State.FIRING, None)
    assert not Silence.objects.exists()
