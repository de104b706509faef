"""Slack buttons: Block Kit actions on notifications, signed presses, the message replaced."""

from __future__ import annotations

import time

import orjson
import pytest

from alerts.channels.slack import SlackChannel
from alerts.models import Alert, AlertTransition, Channel
from chat.linking import link_code_issue
from chat.models import ChatIdentity
from metrics.control import trading_state
from metrics.models import TradingControl
from tests.alerts.channels.receivers import notification
from tests.chat.conftest import (
    SIGNING_SECRET,
    SLACK_WEBHOOK_PATH,
    linked,
    slack_post,
    slack_posts,
    slack_press,
    slack_sign,
)
from tests.factories import make_user
from tests.receivers import Receiver

pytestmark = pytest.mark.django_db

Kind = AlertTransition.Kind


def test_the_notification_carries_the_buttons_once_the_app_signs(services: Receiver) -> None:
    url = services.url + SLACK_WEBHOOK_PATH
    SlackChannel({}, {"webhook_url": url}).send(notification())
    SlackChannel({}, {"webhook_url": url, "signing_secret": SIGNING_SECRET}).send(notification())

    plain, with_buttons = (r.json()["attachments"][0]["blocks"] for r in services.requests)
    assert all(block["type"] != "actions" for block in plain)
    [actions] = [block for block in with_buttons if block["type"] == "actions"]
    values = [button["value"] for button in actions["elements"]]
    assert values == [
        "tw1:ack1h:42",
        "tw1:ack:42",
        "tw1:resolve:42",
        "tw1:silence1h:42",
        "tw1:halt:42",
    ]
    halt = actions["elements"][-1]
    assert halt["style"] == "danger"
    assert halt["confirm"]["title"]["text"] == "Halt trading?"


def test_a_signed_press_acknowledges_and_replaces_the_message(
    slack: Channel, alert: Alert, services: Receiver
) -> None:
    olga = linked("olga", "Operator", service="slack", account_id="U0OLGA", name="olga")

    answer = slack_press(slack, services, f"tw1:ack1h:{alert.pk}")

    assert answer.status_code == 200
    alert.refresh_from_db()
    assert alert.acknowledged_by == olga
    assert alert.timeline.get(kind=Kind.ACKNOWLEDGED).details["note"] == (
        "via Slack @olga (U0OLGA)"
    )
    [update] = slack_posts(services)
    assert update.path == "/actions/T0001/1234/resp-token"
    body = update.json()
    assert body["replace_original"] is True
    assert body["text"] == "[Acknowledged] CRITICAL Deep drawdown on alpha-bot"
    rendered = orjson.dumps(body["attachments"]).decode()
    assert "Acknowledged by olga via Slack @olga (U0OLGA) at " in rendered
    [actions] = [b for b in body["attachments"][0]["blocks"] if b["type"] == "actions"]
    assert [b["action_id"] for b in actions["elements"]] == ["resolve", "silence1h", "halt"]


def test_a_bad_signature_is_refused_and_changes_nothing(
    slack: Channel, alert: Alert, services: Receiver
) -> None:
    linked("olga", "Operator", service="slack", account_id="U0OLGA")

    forged = slack_press(slack, services, f"tw1:resolve:{alert.pk}", signature="v0=" + "0" * 64)
    other_key = slack_sign(b"payload=x", int(time.time()), secret="another-secret-0123456789")
    wrong = slack_press(slack, services, f"tw1:resolve:{alert.pk}", signature=other_key)

    for answer in (forged, wrong):
        assert answer.status_code == 403
        assert "does not match" in answer.json()["errors"][0]["message"]
    alert.refresh_from_db()
    assert alert.is_open
    assert services.requests == []


def test_a_replayed_press_is_refused_even_correctly_signed(
    slack: Channel, alert: Alert, services: Receiver
) -> None:
    linked("olga", "Operator", service="slack", account_id="U0OLGA")

    old = slack_press(slack, services, f"tw1:resolve:{alert.pk}", timestamp=int(time.time()) - 360)

    assert old.status_code == 403
    assert "more than 5 minutes" in old.json()["errors"][0]["message"]
    alert.refresh_from_db()
    assert alert.is_open
    assert services.requests == []


def test_unlinked_and_viewers_are_told_alone_and_nothing_changes(
    slack: Channel, alert: Alert, services: Receiver
) -> None:
    linked("vic", "Viewer", service="slack", account_id="U0VIC")

    slack_press(slack, services, f"tw1:resolve:{alert.pk}", user_id="U0NOBODY")
    slack_press(slack, services, f"tw1:halt:{alert.pk}", user_id="U0VIC")

    alert.refresh_from_db()
    assert alert.is_open
    assert list(alert.timeline.values_list("kind", flat=True)) == [Kind.FIRING]
    assert trading_state(alert.source_id).state == TradingControl.State.ACTIVE
    unlinked, viewer = (r.json() for r in slack_posts(services))
    assert unlinked["response_type"] == "ephemeral"
    assert unlinked["replace_original"] is False
    assert "Slack account is not linked" in unlinked["text"]
    assert (
        viewer["text"] == "vic, you need the permission to halt trading (metrics.halt): "
        "nothing was done."
    )


def test_an_operator_halts_from_slack(slack: Channel, alert: Alert, services: Receiver) -> None:
    olga = linked("olga", "Operator", service="slack", account_id="U0OLGA")

    slack_press(slack, services, f"tw1:halt:{alert.pk}")

    assert trading_state(alert.source_id).state == TradingControl.State.HALTED
    control = TradingControl.objects.get(source=alert.source)
    assert (control.set_by, control.set_via) == (olga, "slack")


def test_a_response_url_outside_slack_is_never_called(
    slack: Channel, alert: Alert, services: Receiver
) -> None:
    linked("olga", "Operator", service="slack", account_id="U0OLGA")
    payload = {
        "type": "block_actions",
        "user": {"id": "U0OLGA", "team_id": "T0001"},
        "team": {"id": "T0001"},
        "response_url": services.url + "/elsewhere/",
        "actions": [{"action_id": "resolve", "value": f"tw1:resolve:{alert.pk}"}],
    }

    answer = slack_post(slack, {"payload": orjson.dumps(payload).decode()})

    assert answer.status_code == 200
    alert.refresh_from_db()
    assert not alert.is_open  # the signed press acted; only the reply went nowhere
    assert services.requests == []


def test_the_slash_command_links_the_account_once(slack: Channel, services: Receiver) -> None:
    olga = make_user("olga", groups=["Operator"])
    code = link_code_issue(user=olga)
    form = {
        "command": "/tradewatch",
        "text": f"link {code.lower()}",
        "user_id": "U0OLGA",
        "user_name": "olga",
        "team_id": "T0001",
    }

    linked_now = slack_post(slack, form)
    again = slack_post(slack, {**form, "user_id": "U0MALLORY"})
    wrong = slack_post(slack, {**form, "text": "hello"})

    assert linked_now.json() == {
        "response_type": "ephemeral",
        "text": "Linked: buttons you press act as olga in Tradewatch, with that user's "
        "permissions.",
    }
    assert "used already" in again.json()["text"]
    assert "link CODE" in wrong.json()["text"]
    [identity] = ChatIdentity.objects.all()
    assert (identity.user, identity.workspace, identity.account_id) == (olga, "T0001", "U0OLGA")


def test_a_body_that_is_neither_press_nor_command_is_400(slack: Channel) -> None:
    assert slack_post(slack, {"something": "else"}).status_code == 400
    assert slack_post(slack, {"payload": "{not json"}).status_code == 400


def test_a_second_press_in_slack_changes_nothing_and_is_said_to_the_presser(
    slack: Channel, alert: Alert, services: Receiver
) -> None:
    linked("olga", "Operator", service="slack", account_id="U0OLGA")

    slack_press(slack, services, f"tw1:resolve:{alert.pk}")
    slack_press(slack, services, f"tw1:resolve:{alert.pk}")

    assert alert.timeline.filter(kind=Kind.RESOLVED).count() == 1
    replaced, told = (r.json() for r in slack_posts(services))
    assert replaced["replace_original"] is True
    assert all(b["type"] != "actions" for b in replaced["attachments"][0]["blocks"])
    assert told == {"response_type": "ephemeral", "replace_original": False,
                    "text": f"Alert {alert.pk} is resolved already: nothing to do."}  # fmt: skip
