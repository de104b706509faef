"""Encryption of channel secrets at rest, and masking of secrets for display.

Secrets (webhook URLs with tokens, SMTP passwords, signing secrets) are stored encrypted
with Fernet under `TRADEWATCH_ENCRYPTION_KEYS`. The first key encrypts; every key
decrypts, so a new key is put first and the old one kept until secrets are re-encrypted.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

MASK = "••••"
# Fewer characters than this and even the last four say too much about the secret.
_SHOWN_TAIL_MIN_LENGTH = 12


class SecretUnreadable(ValueError):
    """A stored secret that none of the configured keys decrypts."""


def encrypt_text(plain: str) -> str:
    """The Fernet token of `plain` under the first configured key, as text."""
    return _fernet().encrypt(plain.encode()).decode("ascii")


def decrypt_text(token: str) -> str:
    """The plain text of a token made by `encrypt_text` with any configured key."""
    try:
        return _fernet().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeEncodeError) as exc:
        raise SecretUnreadable(
            "A stored secret cannot be decrypted with TRADEWATCH_ENCRYPTION_KEYS; "
            "was a key removed before the secrets were re-encrypted?"
        ) from exc


def masked(value: str) -> str:
    """Enough of a secret to recognise it, never the whole of it.

    An http(s) URL keeps its scheme and host (`https://hooks.slack.com/…XyZ9`); anything
    else, including other URL schemes whose "host" is often a token, keeps at most its
    last four characters (`••••1234`).
    """
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.hostname:
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        rest = value.split(parts.netloc, 1)[1]
        return f"{parts.scheme}://{host}/…{_tail(rest)}"
    if parts.scheme and "://" in value:
        return f"{parts.scheme}://…{_tail(value.split('://', 1)[1])}"
    return MASK + _tail(value)


def _tail(secret: str) -> str:
    return secret[-4:] if len(secret) >= _SHOWN_TAIL_MIN_LENGTH else ""


def _fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.TRADEWATCH_ENCRYPTION_KEYS), settings.SECRET_KEY)


@lru_cache(maxsize=4)
def _fernet_for(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    # Keyed on the settings' values, so a test overriding them gets its own instance.
    if not keys:
        derived = base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode()).digest())
        keys = (derived.decode("ascii"),)
    return MultiFernet([Fernet(key) for key in keys])
