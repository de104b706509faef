"""What the chat services reached by one secret webhook URL share (Slack, Discord)."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from alerts.channels import http
from alerts.channels.base import ChannelKind, DeliveryResult, NotificationMessage


class ChatWebhookChannel(ChannelKind):
    """Posts a service-shaped JSON body to the service's webhook URL (the credential).

    Subclasses give `service` (for messages), `url_prefix()` (every valid URL starts
    with it, so a URL of another host is refused on save) and `body()`.
    """

    service: ClassVar[str]
    secret_fields: ClassVar[tuple[str, ...]] = ("webhook_url",)

    @staticmethod
    def url_prefix() -> str:
        raise NotImplementedError

    def body(self, message: NotificationMessage) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def validate(cls, config: dict[str, Any], secrets: dict[str, str]) -> None:
        """The webhook URL is one of the service's webhook URLs."""
        url = secrets.get("webhook_url", "")
        prefix = cls.url_prefix()
        if not url:
            raise cls.invalid({"webhook_url": f"The {cls.service} webhook URL is required."})
        if not url.startswith(prefix) or len(url) == len(prefix) or any(c.isspace() for c in url):
            raise cls.invalid(
                {"webhook_url": f"Must be a {cls.service} webhook URL starting with {prefix}"}
            )

    def send(self, message: NotificationMessage) -> DeliveryResult:
        """POST the body; the services answer 2xx when they took the message."""
        return http.post(
            self.secrets["webhook_url"],
            content=orjson.dumps(self.body(message)),
            headers={"Content-Type": "application/json"},
        )
