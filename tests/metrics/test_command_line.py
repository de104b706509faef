"""`manage.py tradewatch source ...`: create sources and keys from the command line."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from metrics.models import Source, SourceAPIKey
from metrics.services import SYSTEM_SOURCE_NAME

pytestmark = pytest.mark.django_db


def tradewatch(*args: str) -> str:
    out = io.StringIO()
    call_command("tradewatch", *args, stdout=out)
    return out.getvalue()


def key_in(output: str) -> str:
    return output.rsplit(": ", 1)[1].strip()


def test_it_adds_a_source_with_tags_and_prints_a_working_key() -> None:
    output = tradewatch("source", "add", "eth-maker", "--kind", "strategy", "--tag", "live")

    source = Source.objects.get(name="eth-maker")
    assert source.kind == "strategy"
    assert [tag.name for tag in source.tags.all()] == ["live"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key_in(output)}")
    assert client.get("/api/v1/whoami").json()["source"] == "eth-maker"


def test_it_refuses_a_bad_name_naming_the_field() -> None:
    with pytest.raises(CommandError, match="name: Use letters"):
        tradewatch("source", "add", "bad name!")

    assert not Source.objects.exclude(name=SYSTEM_SOURCE_NAME).exists()


def test_it_refuses_a_duplicate_name() -> None:
    tradewatch("source", "add", "alpha")

    with pytest.raises(CommandError, match="name: Source with this Name already exists"):
        tradewatch("source", "add", "alpha")


def test_it_refuses_a_bad_tag_and_stores_nothing() -> None:
    with pytest.raises(CommandError, match="name: Use lower-case"):
        tradewatch("source", "add", "alpha", "--tag", "Not OK")

    assert not Source.objects.exclude(name=SYSTEM_SOURCE_NAME).exists()


def test_it_issues_another_key_and_revokes_them_all() -> None:
    tradewatch("source", "add", "alpha")
    second = key_in(tradewatch("source", "key", "alpha"))

    assert SourceAPIKey.objects.filter(source__name="alpha", revoked=False).count() == 2
    assert "Revoked 2 key(s) of alpha." in tradewatch("source", "revoke-keys", "alpha")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {second}")
    assert client.get("/api/v1/whoami").status_code == 401


def test_it_names_an_unknown_source() -> None:
    with pytest.raises(CommandError, match="No source named 'ghost'"):
        tradewatch("source", "key", "ghost")


def test_it_lists_sources() -> None:
    tradewatch("source", "add", "alpha", "--tag", "live")

    # Tradewatch's own source (its self-monitoring reports there) is listed too.
    assert (
        tradewatch("source", "list")
        == "alpha\tbot\tenabled\tlive\ntradewatch\tservice\tenabled\t\n"
    )
