"""Channel kinds by name: what a Channel row's `kind` field chooses among."""

from __future__ import annotations

from alerts.channels.apprise import AppriseChannel
from alerts.channels.base import ChannelKind
from alerts.channels.console import ConsoleChannel
from alerts.channels.discord import DiscordChannel
from alerts.channels.email import EmailChannel
from alerts.channels.jsonl import JsonlChannel
from alerts.channels.recovery import RecoveryChannel
from alerts.channels.slack import SlackChannel
from alerts.channels.telegram import TelegramChannel
from alerts.channels.webhook import WebhookChannel

KINDS: dict[str, type[ChannelKind]] = {
    kind.kind: kind
    for kind in (
        ConsoleChannel,
        JsonlChannel,
        EmailChannel,
        SlackChannel,
        DiscordChannel,
        TelegramChannel,
        WebhookChannel,
        AppriseChannel,
        RecoveryChannel,
    )
}


def channel_kind(kind: str) -> type[ChannelKind]:
    """The class for `kind`; a LookupError names the kinds there are."""
    try:
        return KINDS[kind]
    except KeyError:
        raise LookupError(
            f"Unknown channel kind {kind!r}; the kinds are {', '.join(sorted(KINDS))}."
        ) from None


def acts_once(kind: str) -> bool:
    """Whether channels of `kind` act on what they get (see `ChannelKind.acts_once`)."""
    found = KINDS.get(kind)
    return found is not None and found.acts_once


def kind_choices() -> list[tuple[str, str]]:
    """(kind, label) pairs for a model field's or a form's choices."""
    return [(name, kind.label) for name, kind in KINDS.items()]
