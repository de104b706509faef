"""The first administrator is created once, with a password shown only then."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import override_settings

pytestmark = pytest.mark.django_db


def run() -> str:
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    return out.getvalue()


def test_it_generates_and_prints_a_password_once() -> None:
    first = run()
    second = run()

    password = first.split("password: ")[1].split()[0]
    user = User.objects.get(username="admin")
    assert user.is_superuser
    assert user.check_password(password)
    assert password not in second
    assert "nothing to do" in second
    assert User.objects.count() == 1


@override_settings(TRADEWATCH_ADMIN_USERNAME="ops", TRADEWATCH_ADMIN_PASSWORD="from-env-42")
def test_it_takes_credentials_from_the_environment() -> None:
    output = run()

    assert "from-env-42" not in output
    assert User.objects.get(username="ops").check_password("from-env-42")
