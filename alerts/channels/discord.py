"""Discord channel: a webhook, one embed coloured by severity."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from alerts.channels import formatting
from alerts.channels.base import NotificationMessage
from alerts.channels.chat import ChatWebhookChannel

# Discord's limits for one embed.
_TITLE_CHARS = 256
_DESCRIPTION_CHARS = 4096
_FIELDS = 25
_FIELD_VALUE_CHARS = 1024


class DiscordChannel(ChatWebhookChannel):
    """Posts to a Discord channel webhook.

    Secret: `webhook_url` (`https://discord.com/api/webhooks/<id>/<token>`).
    """

    kind = "discord"
    label = "Discord"
    service = "Discord"

    @staticmethod
    def url_prefix() -> str:
        """Every Discord webhook URL starts with this."""
        return settings.TRADEWATCH_DISCORD_BASE_URL.rstrip("/") + "/api/webhooks/"

    @staticmethod
    def body(message: NotificationMessage) -> dict[str, Any]:
        """The webhook's JSON: one embed, and no mentions whatever the text says."""
        alert = message.alert
        embed: dict[str, Any] = {
            "title": formatting.truncated(
                f"{formatting.emoji(message)} {formatting.title(message)}", _TITLE_CHARS
            ),
            "color": formatting.colour_int(message),
            "fields": [
                {
                    "name": fact.label,
                    "value": formatting.truncated(fact.value, _FIELD_VALUE_CHARS),
                    "inline": True,
                }
                for fact in formatting.facts(alert)
            ],
        }
        description = str(alert.get("message") or "")
        if message.digest:
            held = "\n".join(f"• {formatting.digest_line(a)}" for a in message.digest)
            description = f"{description}\n\n**{formatting.digest_heading(message)}**\n{held}"
        if description.strip():
            embed["description"] = formatting.truncated(description.strip(), _DESCRIPTION_CHARS)
        url = formatting.link(alert)
        if url:
            embed["url"] = url
        embed["fields"] = embed["fields"][:_FIELDS]
        return {
            "username": "Tradewatch",
            "embeds": [embed],
            # An alert message saying "@everyone" must not page a whole server.
            "allowed_mentions": {"parse": []},
        }
