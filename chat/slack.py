"""Slack's side of the buttons: verifying requests, reading presses, updating the message.

Slack signs each request of the app's interactivity (button presses) and slash commands
with the app's signing secret. The check is the official SDK's `SignatureVerifier`
(`v0=` HMAC-SHA256 of `v0:{timestamp}:{body}`, compared in constant time, refused more
than 5 minutes from now): Slack's own reference code rather than a copy of it, as the
signed webhooks use the Standard Webhooks library. A press acts as the linked person; the
message is then replaced through the press's `response_url` (a Slack URL, valid 30
minutes), and a refusal is said to the presser alone (an ephemeral message).
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import parse_qs

import orjson
from django.conf import settings
from slack_sdk.signature import SignatureVerifier

from alerts.channels import http
from alerts.channels.buttons import press_read
from alerts.channels.slack import SlackChannel
from alerts.models import Channel

from .actions import alert_message, done_lines, press_act
from .linking import LinkRefused, identity_find, link_code_redeem, linked_words
from .models import Service

logger = logging.getLogger(__name__)

# Slack's replay window: a request signed longer ago than this is refused.
REPLAY_SECONDS = 5 * 60


def slack_channel(channel_id: int) -> Channel | None:
    """The Slack channel with this id, or None."""
    return Channel.objects.filter(pk=channel_id, kind=Channel.Kind.SLACK).first()


def signature_refusal(
    channel: Channel, *, body: bytes, timestamp: str | None, signature: str | None
) -> str | None:
    """Why the request is not Slack's for this channel, or None when it is."""
    secret = channel.secrets.get("signing_secret", "")
    if not secret:
        return "This channel has no signing_secret: it takes no button presses."
    if not timestamp or not signature:
        return "X-Slack-Request-Timestamp and X-Slack-Signature are required."
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        return "X-Slack-Request-Timestamp must be UNIX seconds."
    if age > REPLAY_SECONDS:
        return "X-Slack-Request-Timestamp is more than 5 minutes from now (a replay?)."
    if not SignatureVerifier(secret).is_valid(body=body, timestamp=timestamp, signature=signature):
        return "X-Slack-Signature does not match the body and the channel's signing secret."
    return None


def form_read(body: bytes) -> dict[str, str]:
    """The form Slack posts (`application/x-www-form-urlencoded`), one value per field."""
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        return {}
    return {key: values[0] for key, values in fields.items()}


def interaction_handle(channel: Channel, payload: Any) -> None:
    """Act on a `block_actions` payload (a button press) and update the message."""
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return
    actions = payload.get("actions")
    user, team = payload.get("user"), payload.get("team")
    if not isinstance(actions, list) or not actions or not isinstance(user, dict):
        return
    press = press_read(actions[0].get("value") if isinstance(actions[0], dict) else None)
    if press is None or not isinstance(user.get("id"), str):
        return
    workspace = _workspace(user, team)
    identity = identity_find(service=Service.SLACK, workspace=workspace, account_id=user["id"])
    outcome = press_act(press=press, identity=identity, service=Service.SLACK)
    response_url = payload.get("response_url")
    if not isinstance(response_url, str) or not _is_slack_url(response_url):
        return
    if outcome.alert is None or not outcome.changed:
        # Said to the presser alone; the message stays as it is.
        _respond(response_url, {"response_type": "ephemeral", "replace_original": False,
                                "text": outcome.text})  # fmt: skip
        return
    kind = SlackChannel(channel.config, channel.secrets)
    body = kind.body(alert_message(outcome.alert), done_lines(outcome.alert))
    _respond(response_url, {"replace_original": True, **body})


def command_handle(form: dict[str, str]) -> dict[str, str]:
    """A slash command (`/tradewatch link CODE`): link the account; the reply, ephemeral."""
    words = form.get("text", "").split()
    if len(words) != 2 or words[0].lower() != "link":
        return _ephemeral(
            f"Send {form.get('command') or '/tradewatch'} link CODE, with the code from "
            "Tradewatch's admin (Chat accounts → Link my chat account)."
        )
    account_id = form.get("user_id", "")
    if not account_id:
        return _ephemeral("Slack sent no user id.")
    try:
        identity = link_code_redeem(
            code=words[1], service=Service.SLACK, workspace=form.get("team_id", ""),
            account_id=account_id, account_name=form.get("user_name", ""),
        )  # fmt: skip
    except LinkRefused as exc:
        return _ephemeral(str(exc))
    return _ephemeral(linked_words(identity))


def _workspace(user: dict[str, Any], team: Any) -> str:
    if isinstance(team, dict) and isinstance(team.get("id"), str):
        return str(team["id"])
    return str(user.get("team_id") or "")


def _ephemeral(text: str) -> dict[str, str]:
    return {"response_type": "ephemeral", "text": text}


def _is_slack_url(url: str) -> bool:
    # The payload is signed, but only Slack's own address is ever posted to.
    return url.startswith(settings.TRADEWATCH_SLACK_BASE_URL.rstrip("/") + "/actions/")


def _respond(url: str, body: dict[str, Any]) -> None:
    result = http.post(
        url, content=orjson.dumps(body), headers={"Content-Type": "application/json"}
    )
    if not result.ok:
        logger.warning("Slack response_url failed: %s %s", result.error, result.answer[:200])
