"""Fixtures for the admin's tests: people in each group, and a headless Chromium."""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.db import DEFAULT_DB_ALIAS
from django.test import Client

from alerts.evaluation import forget_rules_cache
from tests.factories import make_user

# Playwright's synchronous API runs an event loop in the test's thread; Django refuses
# database calls from such a thread unless told the code is synchronous, which it is.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path(os.environ.get("TRADEWATCH_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "admin"
PASSWORD = "correct-horse-battery-staple-7"


@pytest.fixture(autouse=True)
def _fresh_rules() -> Iterator[None]:
    """Rules are read afresh: each test has its own, and a process keeps them a while."""
    forget_rules_cache()
    yield
    forget_rules_cache()


@pytest.fixture
def groups(db: None) -> None:
    """The Viewer, Operator and Admin groups as the migration makes them.

    Transactional tests empty every table after each test, groups included, so the
    migration's grant is run again here (idempotent: a no-op when they exist).
    """
    migration = importlib.import_module("monitoring_site.migrations.0001_groups")
    migration.groups_grant(apps, DEFAULT_DB_ALIAS)
    control = importlib.import_module("monitoring_site.migrations.0002_trading_control_permissions")
    control.control_permissions_grant(apps, DEFAULT_DB_ALIAS)
    schedules = importlib.import_module("monitoring_site.migrations.0003_schedule_permissions")
    schedules.schedule_permissions_grant(apps, DEFAULT_DB_ALIAS)


def person(username: str, group: str) -> User:
    """A staff member (admin access) in one group, with `PASSWORD`."""
    return make_user(username, groups=[group], password=PASSWORD, is_staff=True)


def signed_in(user: User) -> Client:
    """A browser session of `user`, signed in without the login form."""
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer(groups: None) -> User:
    return person("viewer", "Viewer")


@pytest.fixture
def operator(groups: None) -> User:
    return person("operator", "Operator")


@pytest.fixture
def risk_admin(groups: None) -> User:
    return person("risk-admin", "Admin")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless (Playwright never downloads a browser here)."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (make test does) "
            "or point TRADEWATCH_CHROMIUM at a Chromium binary."
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1440, "height": 1100})  # type: ignore[attr-defined]
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (git-ignored); emptied once per run."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
