"""Who a chat account is in Tradewatch, the one-time codes that link one, and polling."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Service(models.TextChoices):
    TELEGRAM = "telegram", "Telegram"
    SLACK = "slack", "Slack"


class ChatIdentity(models.Model):
    """A chat account (a Telegram user, a Slack user of one workspace) acting as a person.

    A button pressed by this account acts with the person's permissions, exactly as the
    operator API would for them; an account without a row here changes nothing.
    """

    service = models.CharField(max_length=10, choices=Service.choices)
    workspace = models.CharField(
        max_length=40,
        blank=True,
        help_text="Slack: the workspace (team) id, T…; Telegram: empty (user ids are global).",
    )
    account_id = models.CharField(
        max_length=40, help_text="Telegram: the numeric user id; Slack: the user id, U…."
    )
    account_name = models.CharField(
        max_length=150, blank=True, help_text="The @name seen when it was linked (for people)."
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_identities"
    )
    linked_at = models.DateTimeField(auto_now_add=True)
    linked_with_code = models.BooleanField(
        default=False, help_text="Linked by the person with a one-time code (not in the admin)."
    )

    class Meta:
        verbose_name = "chat account"
        constraints = [
            models.UniqueConstraint(
                fields=["service", "workspace", "account_id"], name="chat_identity_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_service_display()} {self.shown} → {self.user}"

    @property
    def shown(self) -> str:
        """How the account is named on timelines: `@olga (12345)`."""
        name = self.account_name.lstrip("@")
        return f"@{name} ({self.account_id})" if name else self.account_id


class LinkCode(models.Model):
    """A one-time code a person sends to the bot (`/link CODE`) to link their account.

    Only its hash is kept; it expires after minutes and works once.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    code_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"link code of {self.user} (until {self.expires_at:%H:%M})"


class TelegramPoll(models.Model):
    """Where polling of one bot's updates stands (channels with `buttons: poll`).

    Claimed by a conditional update of `lease_until`, so two workers never ask Telegram
    for the same bot's updates at once (Telegram refuses concurrent getUpdates calls).
    """

    bot_id = models.BigIntegerField(unique=True, help_text="The number before the token's colon.")
    offset = models.BigIntegerField(default=0, help_text="The next update id to ask for.")
    lease_until = models.DateTimeField(null=True, blank=True)
    polled_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return f"bot {self.bot_id} at update {self.offset}"
