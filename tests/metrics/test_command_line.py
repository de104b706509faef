"""`manage.py tradewatch source ...`: create sources and keys from the command line."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from metrics.models import HEARTBEAT_PERIOD_TOO_SHORT, Source, SourceAPIKey, SourceHeartbeat
from metrics.services import SYSTEM_SOURCE_NAME, source_create
from tests.processes import BASE_DIR, process_environment

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


def test_it_adds_a_source_with_its_heartbeat_expectation() -> None:
    output = tradewatch(
        "source", "add", "fast-bot", "--heartbeat-period", "1.5", "--heartbeat-grace", "0"
    )

    source = Source.objects.get(name="fast-bot")
    assert (source.heartbeat_period, source.heartbeat_grace) == (
        timedelta(seconds=1.5),
        timedelta(0),
    )
    assert output.startswith(f"Created source fast-bot (bot, id {source.pk}).\n")


def test_it_keeps_the_default_heartbeat_expectation_when_not_given() -> None:
    tradewatch("source", "add", "alpha", "--heartbeat-grace", "300")

    source = Source.objects.get(name="alpha")
    assert (source.heartbeat_period, source.heartbeat_grace) == (
        timedelta(seconds=60),
        timedelta(seconds=300),
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--heartbeat-period", "0.1"],
            "argument --heartbeat-period: '0.1': must be at least 1 second: heartbeats travel "
            "over HTTP",
        ),
        (["--heartbeat-period", "0"], "argument --heartbeat-period: '0': must be at least 1"),
        (["--heartbeat-period", "soon"], "argument --heartbeat-period: 'soon' is not a number"),
        (["--heartbeat-period", "nan"], "'nan' is not a number of seconds of 0 or more"),
        (["--heartbeat-grace", "-5"], "argument --heartbeat-grace: '-5' is not a number of "),
        (["--heartbeat-grace", "1e300"], "'1e300' seconds is longer than can be kept"),
    ],
)
def test_it_refuses_a_heartbeat_expectation_it_cannot_keep(args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as error:
        tradewatch("source", "add", "alpha", *args)

    assert message in str(error.value)
    assert not Source.objects.filter(name="alpha").exists()


def test_it_refuses_a_short_period_in_the_service_too() -> None:
    with pytest.raises(ValidationError) as error:
        source_create(name="alpha", heartbeat_period=timedelta(seconds=0.5))

    assert error.value.message_dict == {"heartbeat_period": [HEARTBEAT_PERIOD_TOO_SHORT]}


def test_it_lists_sources_with_ids_keys_and_heartbeats() -> None:
    tradewatch("source", "add", "alpha", "--tag", "live", "--tag", "binance",
               "--heartbeat-grace", "3600")  # fmt: skip
    tradewatch("source", "add", "beta", "--kind", "model", "--heartbeat-period", "10",
               "--heartbeat-grace", "2.5")  # fmt: skip
    tradewatch("source", "key", "beta")
    alpha, beta = Source.objects.get(name="alpha"), Source.objects.get(name="beta")
    system = Source.objects.get(name=SYSTEM_SOURCE_NAME)
    now = timezone.now()
    SourceHeartbeat.objects.create(source=alpha, last_seen=now - timedelta(minutes=10),
                                   first_seen=now - timedelta(hours=1))  # fmt: skip
    SourceHeartbeat.objects.create(source=beta, last_seen=now - timedelta(minutes=5),
                                   first_seen=now - timedelta(hours=1))  # fmt: skip
    tradewatch("source", "revoke-keys", "alpha")
    Source.objects.filter(pk=alpha.pk).update(enabled=False)

    lines = tradewatch("source", "list").splitlines()

    # Tradewatch's own source (its self-monitoring reports there) is listed too.
    assert [line.split() for line in lines] == [
        ["ID", "NAME", "KIND", "STATE", "TAGS", "KEYS", "HEARTBEAT", "EXPECTED", "LAST",
         "HEARTBEAT"],
        [str(alpha.pk), "alpha", "bot", "disabled", "binance,live", "0", "every", "1m,", "1h",
         "grace", "10m", "ago"],
        [str(beta.pk), "beta", "model", "enabled", "-", "2", "every", "10s,", "2.5s", "grace",
         "5m", "ago", "(overdue)"],
        [str(system.pk), SYSTEM_SOURCE_NAME, "service", "enabled", "-", "0", "every", "1m,",
         "1m", "grace", "never"],
    ]  # fmt: skip
    assert lines[0].index("NAME") == lines[1].index("alpha")  # aligned columns


# --- as the operator runs it --------------------------------------------------------------


def manage(*args: str) -> subprocess.CompletedProcess[str]:
    """`manage.py <args>` in its own process, on the test database, as a person runs it."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env=process_environment(LOG_FORMAT="plain"), cwd=BASE_DIR, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_its_output_is_the_command_s_own_without_library_banners() -> None:
    status = manage("tradewatch", "status", "--no-color")
    unknown = manage("tradewatch", "source", "key", "ghost")

    assert status.returncode == 0, status.stderr
    assert status.stderr == ""
    assert "AXES" not in status.stdout
    # An error is still said, and alone.
    assert unknown.returncode == 1
    assert unknown.stderr == "CommandError: No source named 'ghost'.\n"
