"""Channel secrets at rest: encryption with key rotation, and masking for display."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pytest_django.fixtures import Settings

from alerts.crypto import SecretUnreadable, decrypt_text, encrypt_text, masked

SLACK_URL = "https://hooks.slack.com/services/T0001/B0002/abcdefghijklmnopqrstXyZ9"


def test_it_round_trips_a_secret() -> None:
    token = encrypt_text(SLACK_URL)

    assert decrypt_text(token) == SLACK_URL


def test_it_never_stores_the_plaintext() -> None:
    token = encrypt_text(SLACK_URL)

    assert SLACK_URL not in token
    assert "abcdefghijklmnopqrst" not in token
    assert encrypt_text(SLACK_URL) != token  # a fresh IV each time


def test_it_derives_a_key_from_the_secret_key_when_none_is_configured(
    settings: Settings,
) -> None:
    settings.TRADEWATCH_ENCRYPTION_KEYS = []
    token = encrypt_text("pa55word")

    settings.SECRET_KEY = "another-secret-key-entirely-0123456789-abcdefghijklmnop"

    with pytest.raises(SecretUnreadable):
        decrypt_text(token)


def test_it_decrypts_with_an_older_key_after_rotation(settings: Settings) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.TRADEWATCH_ENCRYPTION_KEYS = [old]
    token = encrypt_text("pa55word")

    settings.TRADEWATCH_ENCRYPTION_KEYS = [new, old]

    assert decrypt_text(token) == "pa55word"
    assert Fernet(new.encode()).decrypt(encrypt_text("fresh").encode()) == b"fresh"


def test_it_says_when_no_key_decrypts(settings: Settings) -> None:
    settings.TRADEWATCH_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    token = encrypt_text("pa55word")
    settings.TRADEWATCH_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(SecretUnreadable, match="TRADEWATCH_ENCRYPTION_KEYS"):
        decrypt_text(token)
    with pytest.raises(SecretUnreadable):
        decrypt_text("not a token at all")


@pytest.mark.parametrize(
    ("secret", "shown"),
    [
        (SLACK_URL, "https://hooks.slack.com/…XyZ9"),
        ("https://user:pw@example.com:8443/path/with/token1234", "https://example.com:8443/…1234"),
        ("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "••••Dsaw"),
        ("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/987", "tgram://…/987"),
        ("short", "••••"),
        ("", ""),
    ],
)
def test_it_masks_secrets_for_display(secret: str, shown: str) -> None:
    assert masked(secret) == shown
