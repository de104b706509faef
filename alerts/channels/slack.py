"""Slack channel: an incoming webhook, one attachment coloured by severity."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from alerts.channels import formatting
from alerts.channels.base import NotificationMessage
from alerts.channels.chat import ChatWebhookChannel

# Slack cuts a section's text at 3000 characters and refuses more than 50 blocks.
_SECTION_CHARS = 3000
_DIGEST_LINES = 20


class SlackChannel(ChatWebhookChannel):
    """Posts to a Slack incoming webhook.

    Secret: `webhook_url` (`https://hooks.slack.com/services/T…/B…/…`; the URL is the
    credential, so it is kept encrypted and masked).
    """

    kind = "slack"
    label = "Slack"
    service = "Slack"

    @staticmethod
    def url_prefix() -> str:
        """Every Slack incoming-webhook URL starts with this."""
        return settings.TRADEWATCH_SLACK_BASE_URL.rstrip("/") + "/services/"

    @staticmethod
    def body(message: NotificationMessage) -> dict[str, Any]:
        """The webhook's JSON: fallback text, and an attachment with blocks and colour."""
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
        return {
            # Shown in notifications and by clients that do not render blocks.
            "text": formatting.title(message),
            "attachments": [{"color": formatting.colour(message), "blocks": blocks}],
        }


def _escape(value: str) -> str:
    # Slack's mrkdwn gives &, < and > meaning (links, mentions); an alert message's
    # own characters must stay text.
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
