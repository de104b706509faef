"""Password guessing is locked out; production cookies are secure."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils.crypto import get_random_string

from tests.monitoring_site.test_settings import PRODUCTION
from tests.processes import BASE_DIR

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db


def log_in(client: Client, username: str, password: str) -> int:
    answer = client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password},
        REMOTE_ADDR="203.0.113.7",
    )
    return int(answer.status_code)


def test_it_locks_out_a_username_after_five_wrong_passwords(operator: User) -> None:
    client = Client()

    tries = [log_in(client, "operator", f"guess-{i}") for i in range(5)]
    locked = log_in(client, "operator", PASSWORD)

    assert tries[:4] == [200] * 4  # the form again, with an error
    assert locked == 429
    # Another address is not locked out by the guesser's attempts.
    other = Client()
    answer = other.post(
        "/admin/login/?next=/admin/",
        {"username": "operator", "password": PASSWORD},
        REMOTE_ADDR="198.51.100.1",
    )
    assert answer.status_code == 302


def test_it_uses_secure_cookies_in_production() -> None:
    env = {**PRODUCTION, "SECRET_KEY": get_random_string(64)}
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, "
        "s.CSRF_COOKIE_HTTPONLY, s.SESSION_EXPIRE_AT_BROWSER_CLOSE, s.SECURE_SSL_REDIRECT, "
        "s.SESSION_COOKIE_SAMESITE, s.AXES_FAILURE_LIMIT, s.AXES_IPWARE_META_PRECEDENCE_ORDER)"
    )

    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "True", "True", "True", "True", "True", "True", "Lax", "5", "['REMOTE_ADDR']",
    ]  # fmt: skip
