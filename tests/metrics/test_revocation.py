"""A revoked key, or a disabled source's, is refused by every web process at once.

Two real web servers (each its own process, with its own remembered keys) take a
source's key; it is revoked through the admin or the command line, in a third process;
the very next request to each server is refused.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator

import httpx
import pytest
from django.test import Client
from django.urls import reverse

from metrics.models import Source, SourceAPIKey
from metrics.services import source_create
from tests.processes import BASE_DIR, free_port, process_environment, web_server

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

HEARTBEAT = {"status": "ok"}


@pytest.fixture(scope="module")
def servers(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Two web processes on one database and one cache, as two machines behind a proxy."""
    bases = []
    with (
        web_server(
            process_environment(
                PROMETHEUS_MULTIPROC_DIR=str(tmp_path_factory.mktemp("prometheus-a"))
            ),
            port_a := free_port(),
        ),
        web_server(
            process_environment(
                PROMETHEUS_MULTIPROC_DIR=str(tmp_path_factory.mktemp("prometheus-b"))
            ),
            port_b := free_port(),
        ),
    ):
        bases = [f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"]
        yield bases


def heartbeat(base: str, key: str, *, hook: bool = False) -> int:
    if hook:
        url = f"{base}/api/v1/hooks/heartbeat/{key}/"
        return httpx.post(url, json=HEARTBEAT, timeout=10).status_code
    headers = {"Authorization": f"Api-Key {key}"}
    return httpx.post(
        f"{base}/api/v1/heartbeat", json=HEARTBEAT, headers=headers, timeout=10
    ).status_code


def revoke_on_the_command_line(source: Source, admin: Client) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "tradewatch", "source", "revoke-keys", source.name],
        env=process_environment(), cwd=BASE_DIR, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Revoked 1 key(s)" in result.stdout


def revoke_with_the_admin_action(source: Source, admin: Client) -> None:
    key = SourceAPIKey.objects.get(source=source)
    response = admin.post(
        reverse("admin:metrics_sourceapikey_changelist"),
        {"action": "revoke", "_selected_action": [key.pk]},
        follow=True,
    )
    assert "1 key(s) revoked" in response.content.decode()


def revoke_with_the_button_on_the_source_page(source: Source, admin: Client) -> None:
    key = SourceAPIKey.objects.get(source=source)
    response = admin.post(
        reverse("admin:metrics_source_key_revoke", args=[source.pk, key.prefix]), follow=True
    )
    assert "The key is revoked" in response.content.decode()


def revoke_in_the_key_form(source: Source, admin: Client) -> None:
    key = SourceAPIKey.objects.get(source=source)
    response = admin.post(
        reverse("admin:metrics_sourceapikey_change", args=[key.pk]),
        {"name": key.name, "revoked": "on", "expiry_date_0": "", "expiry_date_1": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert SourceAPIKey.objects.get(pk=key.pk).revoked


def disable_the_source_with_the_admin_action(source: Source, admin: Client) -> None:
    response = admin.post(
        reverse("admin:metrics_source_changelist"),
        {"action": "disable", "_selected_action": [source.pk]},
        follow=True,
    )
    assert "1 source(s) disabled" in response.content.decode()


@pytest.mark.parametrize(
    "revoke",
    [
        revoke_on_the_command_line,
        revoke_with_the_admin_action,
        revoke_with_the_button_on_the_source_page,
        revoke_in_the_key_form,
        disable_the_source_with_the_admin_action,
    ],
)
@pytest.mark.parametrize("hook", [False, True], ids=["header", "hook-url"])
def test_the_next_request_to_every_web_process_is_refused(
    servers: list[str],
    admin_client: Client,
    revoke: Callable[[Source, Client], None],
    hook: bool,
) -> None:
    source, key = source_create(name="revoked-bot")
    # Each process checks the key once and remembers it.
    for base in servers:
        assert heartbeat(base, key, hook=hook) == 202
        assert heartbeat(base, key, hook=hook) == 202

    revoke(source, admin_client)

    assert [heartbeat(base, key, hook=hook) for base in servers] == [401, 401]


def test_a_key_issued_after_a_revocation_works_everywhere(
    servers: list[str], admin_client: Client
) -> None:
    source, old = source_create(name="rotating-bot")
    for base in servers:
        assert heartbeat(base, old) == 202

    revoke_with_the_admin_action(source, admin_client)
    _, new = source.issue_api_key(name="rotated")

    assert [heartbeat(base, old) for base in servers] == [401, 401]
    assert [heartbeat(base, new) for base in servers] == [202, 202]
