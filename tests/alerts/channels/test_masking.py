"""The logging filter keeps webhook URLs and bot tokens out of logs."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from pytest_django.fixtures import Settings

from alerts.channels.masking import SecretURLFilter, mask_text
from alerts.channels.telegram import TelegramChannel
from tests.alerts.channels.receivers import Receiver, notification

SLACK = "https://hooks.slack.com/services/T0001/B0002/abcdefghijklmnopqrstuvwx"
DISCORD = "https://discord.com/api/webhooks/1234567890/Zx-abcdefghijklmnopqrstuvwxyz"
BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
TELEGRAM = f"https://api.telegram.org/bot{BOT_TOKEN}/sendMessage"


@pytest.fixture
def log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.addFilter(SecretURLFilter())
    logger = logging.getLogger("tests.channels.masking")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, output
    logger.removeHandler(handler)
    logger.propagate = True


def test_it_masks_secrets_in_the_message(log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, output = log

    logger.warning(f"posting to {SLACK} and {DISCORD} and {TELEGRAM}")

    text = output.getvalue()
    assert "abcdefghijklmnopqrstuvwx" not in text
    assert "Zx-abcdefghijklmnopqrstuvwxyz" not in text
    assert BOT_TOKEN not in text
    assert "hooks.slack.com/services/…" in text
    assert "discord.com/api/webhooks/…" in text
    assert "api.telegram.org/bot…/sendMessage" in text


def test_it_masks_secrets_in_the_arguments(log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, output = log

    logger.info("HTTP Request: %s %s %d", "POST", SLACK, 200)
    logger.info("retrying %(url)s in %(seconds).1f s", {"url": TELEGRAM, "seconds": 2.5})

    text = output.getvalue()
    assert "abcdefghijklmnopqrstuvwx" not in text
    assert BOT_TOKEN not in text
    assert "POST https://hooks.slack.com/services/… 200" in text
    assert "in 2.5 s" in text


def test_it_masks_secrets_in_a_traceback(log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, output = log

    try:
        raise RuntimeError(f"could not reach {DISCORD}")
    except RuntimeError:
        logger.exception("delivery failed")

    text = output.getvalue()
    assert "RuntimeError: could not reach https://discord.com/api/webhooks/…" in text
    assert "Zx-abcdefghijklmnopqrstuvwxyz" not in text


def test_it_masks_the_configured_base_urls(settings: Settings) -> None:
    settings.TRADEWATCH_SLACK_BASE_URL = "http://slack-proxy.internal:8080"
    settings.TRADEWATCH_TELEGRAM_BASE_URL = "http://127.0.0.1:9000"

    masked = mask_text(
        "to http://slack-proxy.internal:8080/services/T/B/secretsecret and "
        "http://127.0.0.1:9000/botsecret-token/sendMessage"
    )

    assert "secretsecret" not in masked
    assert "secret-token" not in masked
    assert "http://127.0.0.1:9000/bot…/sendMessage" in masked


def test_it_masks_signing_secrets_and_bare_bot_tokens() -> None:
    masked = mask_text(f"secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw token {BOT_TOKEN}")

    assert masked == "secret whsec_… token 123456789:…"


def test_it_leaves_other_text_alone() -> None:
    text = "drawdown 12.5 % on alpha-bot, see https://tradewatch.example/admin/alerts/alert/4/"

    assert mask_text(text) == text


def test_it_masks_the_request_line_httpx_logs(
    receiver: Receiver, settings: Settings, log: tuple[logging.Logger, io.StringIO]
) -> None:
    settings.TRADEWATCH_TELEGRAM_BASE_URL = receiver.url
    _, output = log
    handler = logging.StreamHandler(output)
    handler.addFilter(SecretURLFilter())
    httpx_logger = logging.getLogger("httpx")
    httpx_logger.addHandler(handler)
    level = httpx_logger.level
    httpx_logger.setLevel(logging.INFO)
    try:
        TelegramChannel({"chat_id": "42"}, {"bot_token": BOT_TOKEN}).send(notification())
    finally:
        httpx_logger.removeHandler(handler)
        httpx_logger.setLevel(level)

    text = output.getvalue()
    assert f"{receiver.url}/bot…/sendMessage" in text
    assert BOT_TOKEN not in text
