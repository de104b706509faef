"""Fixtures of the configuration-as-code tests: a desk's file and its environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

DESK_FILE = Path(__file__).with_name("desk.yaml")
SLACK_URL = "https://hooks.slack.com/services/T000/B000/desk-secret-token-123"
CONTROL_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
DESK_ENV = {"SLACK_WEBHOOK_URL": SLACK_URL, "ETH_MAKER_CONTROL_SECRET": CONTROL_SECRET}


@pytest.fixture
def desk_text() -> str:
    return DESK_FILE.read_text()


@pytest.fixture(autouse=True)
def _bot_network_allowed(settings: Any) -> None:
    """The desk's bots listen on a private network its operator allows deliveries to."""
    settings.TRADEWATCH_DELIVERY_ALLOWED_NETWORKS = ["127.0.0.0/8", "10.20.0.0/16"]
