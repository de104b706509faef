"""Source API keys: `Authorization: Api-Key <key>` maps to its source, or 401."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from metrics.authentication import (
    KEY_CACHE_SECONDS,
    KEYS_GENERATION,
    SourceAPIKeyAuthentication,
)
from metrics.models import Source, SourceAPIKey
from metrics.services import api_keys_revoke, source_keys_revoke, sources_enabled_set

WHOAMI = "/api/v1/whoami"

pytestmark = pytest.mark.django_db


def client_with(header: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    return client


def test_it_maps_a_valid_key_to_its_source(source: Source, source_key: str) -> None:
    response = client_with(f"Api-Key {source_key}").get(WHOAMI)

    assert response.status_code == 200
    assert response.json() == {
        "source": "alpha-bot",
        "source_id": source.pk,
        "kind": "bot",
        "key_name": "test",
    }


def test_it_stores_only_the_hash_of_a_key(source: Source, source_key: str) -> None:
    stored = SourceAPIKey.objects.get(source=source)

    assert source_key not in stored.hashed_key
    assert source_key not in stored.id
    assert stored.hashed_key.startswith("sha512$$")


def test_it_refuses_a_missing_key() -> None:
    response = APIClient().get(WHOAMI)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Api-Key"


@pytest.mark.parametrize(
    "header",
    [
        "Api-Key wrong.key",
        "Api-Key ",
        "Api-Key nodot",
        "Bearer something",
    ],
)
def test_it_refuses_a_wrong_key(source_key: str, header: str) -> None:
    response = client_with(header).get(WHOAMI)

    assert response.status_code == 401


def test_it_refuses_a_right_prefix_with_a_wrong_secret(source_key: str) -> None:
    prefix = source_key.partition(".")[0]

    response = client_with(f"Api-Key {prefix}.not-the-secret").get(WHOAMI)

    assert response.status_code == 401
    assert response.json() == {
        "errors": [{"index": None, "field": None, "message": "Invalid API key."}]
    }


def test_it_refuses_a_revoked_key(source: Source, source_key: str) -> None:
    SourceAPIKey.objects.filter(source=source).update(revoked=True)

    response = client_with(f"Api-Key {source_key}").get(WHOAMI)

    assert response.status_code == 401


def test_it_refuses_an_expired_key(source: Source, source_key: str) -> None:
    SourceAPIKey.objects.filter(source=source).update(
        expiry_date=timezone.now() - timedelta(seconds=1)
    )

    response = client_with(f"Api-Key {source_key}").get(WHOAMI)

    assert response.status_code == 401


def test_it_refuses_the_key_of_a_disabled_source(source: Source, source_key: str) -> None:
    Source.objects.filter(pk=source.pk).update(enabled=False)

    response = client_with(f"Api-Key {source_key}").get(WHOAMI)

    assert response.status_code == 401


def test_it_keeps_other_keys_of_the_source_working_when_one_is_revoked(source: Source) -> None:
    revoked, revoked_key = source.issue_api_key(name="old")
    _, kept_key = source.issue_api_key(name="new")
    revoked.revoked = True
    revoked.save()

    assert client_with(f"Api-Key {revoked_key}").get(WHOAMI).status_code == 401
    assert client_with(f"Api-Key {kept_key}").get(WHOAMI).status_code == 200


def test_it_refuses_a_person_on_a_source_endpoint(admin_user: User) -> None:
    client = APIClient()
    client.force_login(admin_user)

    response = client.get(WHOAMI)

    assert response.status_code == 401


def test_it_checks_a_key_in_the_database_once_per_few_seconds(
    source: Source, source_key: str, django_assert_num_queries: Any
) -> None:
    authentication = SourceAPIKeyAuthentication()
    authentication.authenticate_key(source_key)

    with django_assert_num_queries(0):
        principal, _ = authentication.authenticate_key(source_key)

    assert principal.source == source


def test_it_refuses_a_key_revoked_straight_in_the_database_once_the_check_is_stale(
    source: Source, source_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client_with(f"Api-Key {source_key}").get(WHOAMI).status_code == 200
    # SQL that bypasses Tradewatch tells no process: a bound, not the way to revoke.
    SourceAPIKey.objects.filter(source=source).update(revoked=True)
    # Within KEY_CACHE_SECONDS the process still trusts its last check...
    assert client_with(f"Api-Key {source_key}").get(WHOAMI).status_code == 200

    now = time.monotonic()
    monkeypatch.setattr(
        "metrics.authentication.time.monotonic", lambda: now + KEY_CACHE_SECONDS + 0.1
    )

    # ...and no longer after it.
    assert client_with(f"Api-Key {source_key}").get(WHOAMI).status_code == 401


def test_it_refuses_a_wrong_secret_even_when_the_prefix_was_just_accepted(
    source_key: str,
) -> None:
    assert client_with(f"Api-Key {source_key}").get(WHOAMI).status_code == 200
    prefix = source_key.partition(".")[0]

    assert client_with(f"Api-Key {prefix}.not-the-secret").get(WHOAMI).status_code == 401


def test_it_refuses_a_remembered_key_as_soon_as_it_expires(
    source: Source, source_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    expiry = timezone.now() + timedelta(minutes=1)
    SourceAPIKey.objects.filter(source=source).update(expiry_date=expiry)
    assert client_with(f"Api-Key {source_key}").get(WHOAMI).status_code == 200

    monkeypatch.setattr(
        "metrics.authentication.timezone.now", lambda: expiry + timedelta(seconds=1)
    )

    assert client_with(f"Api-Key {source_key}").get(WHOAMI).status_code == 401


def test_it_refuses_a_remembered_key_as_soon_as_another_process_revokes_it(
    source: Source, source_key: str
) -> None:
    assert client_with(f"Api-Key {source_key}").get(WHOAMI).status_code == 200
    # What another process's revocation leaves: the row, and a new generation.
    SourceAPIKey.objects.filter(source=source).update(revoked=True)
    cache.set(KEYS_GENERATION, "revoked elsewhere", timeout=None)

    assert client_with(f"Api-Key {source_key}").get(WHOAMI).status_code == 401


def test_it_checks_every_request_in_the_database_while_the_cache_is_away(
    source: Source, source_key: str, cache_away: None, django_assert_num_queries: Any
) -> None:
    authentication = SourceAPIKeyAuthentication()
    authentication.authenticate_key(source_key)
    with django_assert_num_queries(1):
        principal, _ = authentication.authenticate_key(source_key)
    assert principal.source == source

    # No generation can be bumped, and none is needed: nothing remembered is trusted.
    SourceAPIKey.objects.filter(source=source).update(revoked=True)

    assert client_with(f"Api-Key {source_key}").get(WHOAMI).status_code == 401


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda source: source_keys_revoke(source=source), id="revoke-keys"),
        pytest.param(
            lambda source: api_keys_revoke(keys=SourceAPIKey.objects.filter(source=source)),
            id="revoke-selected",
        ),
        pytest.param(
            lambda source: sources_enabled_set(
                sources=Source.objects.filter(pk=source.pk), enabled=False
            ),
            id="disable",
        ),
        pytest.param(
            lambda source: SourceAPIKey.objects.filter(source=source).first().save(),  # type: ignore[union-attr]
            id="key-saved",
        ),
        pytest.param(lambda source: source.save(), id="source-saved"),
        pytest.param(
            lambda source: SourceAPIKey.objects.filter(source=source).delete(), id="key-deleted"
        ),
        pytest.param(lambda source: source.delete(), id="source-deleted"),
    ],
)
def test_a_change_to_keys_or_sources_gives_every_process_a_new_generation_once_committed(
    source: Source,
    source_key: str,
    change: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    before = cache.get(KEYS_GENERATION)

    with django_capture_on_commit_callbacks() as callbacks:
        change(source)
        # Not before the commit: another process could read the old rows under it.
        assert cache.get(KEYS_GENERATION) == before
    for callback in callbacks:
        callback()

    assert cache.get(KEYS_GENERATION) not in (before, None)


def test_a_new_key_leaves_every_process_its_remembered_keys(
    source: Source, source_key: str, django_capture_on_commit_callbacks: Any
) -> None:
    before = cache.get(KEYS_GENERATION)

    with django_capture_on_commit_callbacks(execute=True):
        source.issue_api_key(name="another")

    assert cache.get(KEYS_GENERATION) == before
