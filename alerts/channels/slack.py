"""Slack channel: an incoming webhook, one attachment coloured by severity, with buttons."""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings

from alerts.channels import formatting
from alerts.channels.base import NotificationMessage
from alerts.channels.buttons import Action, actions_for, press_data
from alerts.channels.chat import ChatWebhookChannel

# Slack cuts a section's text at 3000 characters and refuses more than 50 blocks.
_SECTION_CHARS = 3000
_DIGEST_LINES = 20


class SlackChannel(ChatWebhookChannel):
    """Posts to a Slack incoming webhook.

    Secret: `webhook_url` (`https://hooks.slack.com/services/T…/B…/…`; the URL is the
    credential, so it is kept encrypted and masked). With `signing_secret` (the Slack
    app's, from Basic Information) the messages carry buttons, whose presses Slack
    sends, signed with it, to `/api/v1/chat/slack/<channel id>/` (the app's
    interactivity request URL).
    """

    kind = "slack"
    label = "Slack"
    service = "Slack"
    secret_fields: ClassVar[tuple[str, ...]] = ("webhook_url", "signing_secret")

    @staticmethod
    def url_prefix() -> str:
        """Every Slack incoming-webhook URL starts with this."""
        return settings.TRADEWATCH_SLACK_BASE_URL.rstrip("/") + "/services/"

    @classmethod
    def validate(cls, config: dict[str, Any], secrets: dict[str, str]) -> None:
        """The webhook URL is Slack's; a signing secret is the app's (hex)."""
        super().validate(config, secrets)
        secret = secrets.get("signing_secret", "")
        if secret and not (16 <= len(secret) <= 128 and secret.isalnum()):
            raise cls.invalid(
                {"signing_secret": "Must be the Slack app's signing secret (letters and digits)."}
            )

    def body(self, message: NotificationMessage, done: tuple[str, ...] = ()) -> dict[str, Any]:
        """The webhook's JSON: fallback text, and an attachment with blocks and colour.

        With a signing secret, buttons for the open alert; `done` are lines saying who
        did what from chat (shown after an action).
        """
        alert = message.alert
        heading = f"{formatting.emoji(message)} *{_escape(formatting.title(message))}*"
        lines = [heading]
        if alert.get("message"):
            lines.append(_escape(str(alert["message"])))
        blocks: list[dict[str, Any]] = [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": formatting.truncated("\n".join(lines), _SECTION_CHARS),
                },
            }
        ]
        facts = formatting.facts(alert)
        if facts:
            blocks.append(
                {
                    "type": "section",
                    "fields": [
                        {"type": "mrkdwn", "text": f"*{_escape(f.label)}*\n{_escape(f.value)}"}
                        for f in facts[:10]
                    ],
                }
            )
        url = formatting.link(alert)
        if url:
            blocks.append(
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": f"<{url}|Open the alert>"}],
                }
            )
        if message.digest:
            shown = message.digest[:_DIGEST_LINES]
            digest = [f"*{_escape(formatting.digest_heading(message))}*"]
            digest.extend(f"• {_escape(formatting.digest_line(held))}" for held in shown)
            if len(message.digest) > len(shown):
                digest.append(f"… and {len(message.digest) - len(shown)} more")
            blocks.append(
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": formatting.truncated("\n".join(digest), _SECTION_CHARS),
                    },
                }
            )
        if done:
            blocks.append(
                {
                    "type": "context",
                    "elements": [
                        {
                            "type": "mrkdwn",
                            "text": formatting.truncated(_escape("\n".join(done)), _SECTION_CHARS),
                        }
                    ],
                }
            )
        actions = actions_for(message) if self.secrets.get("signing_secret") else []
        if actions:
            blocks.append({"type": "actions", "elements": [_button(a, alert) for a in actions]})
        return {
            # Shown in notifications and by clients that do not render blocks.
            "text": formatting.title(message),
            "attachments": [{"color": formatting.colour(message), "blocks": blocks}],
        }


def _button(action: Action, alert: dict[str, Any]) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action.value,
        "text": {"type": "plain_text", "text": action.label},
        "value": press_data(action, int(alert["id"])),
    }
    if action == Action.HALT:
        # Stopping a bot is one click too easy to make by mistake: Slack asks first.
        source = formatting.name_of(alert.get("source"))
        button["style"] = "danger"
        button["confirm"] = {
            "title": {"type": "plain_text", "text": "Halt trading?"},
            "text": {
                "type": "plain_text",
                "text": f"{source} is halted: it stops trading until an Admin re-arms it.",
            },
            "confirm": {"type": "plain_text", "text": "Halt"},
            "deny": {"type": "plain_text", "text": "Cancel"},
            "style": "danger",
        }
    return button


def _escape(value: str) -> str:
    # Slack's mrkdwn gives &, < and > meaning (links, mentions); an alert message's
    # own characters must stay text.
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
