"""Linking a chat account to a person: one-time codes, and finding who pressed a button."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Final

import pghistory
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from .models import ChatIdentity, LinkCode, Service

# No 0/O or 1/I: a code read off a screen and typed on a phone.
CODE_ALPHABET: Final = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH: Final = 8
CODE_MINUTES: Final = 15


class LinkRefused(Exception):
    """The code is unknown, used already or expired (the message says so, for the chat)."""


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _normalised(code: str) -> str:
    return "".join(c for c in code.upper() if c.isalnum())


def link_code_issue(*, user: User, now: datetime | None = None) -> str:
    """A new code for `user` to send to the bot; earlier unused codes of theirs stop working."""
    now = now or timezone.now()
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    with transaction.atomic():
        LinkCode.objects.filter(user=user, used_at__isnull=True).delete()
        LinkCode.objects.create(
            user=user,
            code_hash=_hash(code),
            created_at=now,
            expires_at=now + timedelta(minutes=CODE_MINUTES),
        )
    return code


def link_code_redeem(
    *,
    code: str,
    service: str,
    workspace: str,
    account_id: str,
    account_name: str,
    now: datetime | None = None,
) -> ChatIdentity:
    """Link the chat account that sent `code` to the code's person (once per code).

    An account linked before is linked to the code's person from now on.
    """
    now = now or timezone.now()
    with transaction.atomic():
        found = (
            LinkCode.objects.select_for_update()
            .select_related("user")
            .filter(code_hash=_hash(_normalised(code)))
            .first()
        )
        if found is None or found.used_at is not None:
            raise LinkRefused("That code is unknown or was used already: ask for a new one.")
        if found.expires_at <= now:
            raise LinkRefused(
                f"That code expired (codes last {CODE_MINUTES} minutes): ask for a new one."
            )
        found.used_at = now
        found.save(update_fields=["used_at"])
        user = found.user
        label = Service(service).label
        # The audit history says who linked, and from which account.
        with pghistory.context(user=user.pk, username=user.get_username(),
                               via=f"{label} account {account_id} with a code"):  # fmt: skip
            identity, _ = ChatIdentity.objects.update_or_create(
                service=service,
                workspace=workspace,
                account_id=account_id,
                defaults={"user": user, "account_name": account_name, "linked_with_code": True},
            )
    return identity


def linked_words(identity: ChatIdentity) -> str:
    """What the chat says once an account is linked."""
    return (
        f"Linked: buttons you press act as {identity.user.get_username()} in Tradewatch, "
        "with that user's permissions."
    )


def identity_find(*, service: str, workspace: str, account_id: str) -> ChatIdentity | None:
    """The person behind a chat account, or None when the account is not linked."""
    return (
        ChatIdentity.objects.select_related("user")
        .filter(service=service, workspace=workspace, account_id=account_id)
        .first()
    )
