"""What every channel kind shares: the message it is given and the result it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.core.exceptions import ValidationError


@dataclass(frozen=True)
class NotificationMessage:
    """One notification, as a channel kind sees it: plain values, no model instances.

    `alert` is the SPEC's webhook payload of the alert (id, fingerprint, rule, source,
    severity, status, value, threshold, message, first_seen, last_seen, count, url).
    `event` is one of firing, repeat, escalated, resolved, acknowledged, test, digest,
    operations_digest.
    `digest` holds further alerts' payloads when a rate limit held them back and they
    go out together in this one message. `channel` is the channel's name and
    `created_at` when the change it tells of happened (ISO 8601), the same on every
    attempt.
    """

    webhook_id: str
    event: str
    alert: dict[str, Any]
    digest: tuple[dict[str, Any], ...] = ()
    channel: str = ""
    created_at: str = ""
    # An operations digest (`monitoring_site.digest`): its title, text, HTML and figures.
    # `alert` then carries the title and the text, so a kind showing only those says it.
    report: dict[str, Any] | None = None

    @property
    def severity(self) -> str:
        return str(self.alert.get("severity", "INFO"))


@dataclass(frozen=True)
class DeliveryResult:
    """What an attempt came to, kept on the notification's delivery log.

    `permanent` stops retrying (bad configuration, a 4xx other than 429); `disable_channel`
    is a 410 Gone; `retry_after` is the endpoint's `Retry-After`, in seconds.
    """

    ok: bool
    status: int | None = None
    duration_ms: float = 0.0
    answer: str = ""
    error: str = ""
    permanent: bool = False
    disable_channel: bool = False
    retry_after: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


class ChannelKind:
    """One kind of destination. Subclasses set `kind` and implement `send`.

    `config` holds the plain settings, `secrets` the decrypted secret ones (URLs with
    tokens, passwords, signing secrets); `secret_fields` names the latter so the admin
    and the API can mask them.
    """

    kind: ClassVar[str]
    label: ClassVar[str]
    config_fields: ClassVar[tuple[str, ...]] = ()
    secret_fields: ClassVar[tuple[str, ...]] = ()
    # A kind whose receiver acts on what it gets (a trading system told to pause) rather
    # than a person who reads it: it hears of an alert once, when the alert fires or
    # escalates, and is never rate limited into a digest (routing and delivery read this).
    acts_once: ClassVar[bool] = False

    def __init__(self, config: dict[str, Any], secrets: dict[str, str]) -> None:
        self.config = config
        self.secrets = secrets

    @classmethod
    def validate(cls, config: dict[str, Any], secrets: dict[str, str]) -> None:
        """Raise ValidationError naming each wrong field; the default accepts anything."""

    @classmethod
    def secrets_completed(cls, secrets: dict[str, str]) -> dict[str, str]:
        """`secrets` with what the kind makes by itself when left empty; the default none."""
        return secrets

    def send(self, message: NotificationMessage) -> DeliveryResult:
        raise NotImplementedError

    @staticmethod
    def invalid(errors: dict[str, str]) -> ValidationError:
        return ValidationError(errors)
