"""`tradewatch config export|apply|schema` from the command line."""

from __future__ import annotations

import io
from pathlib import Path

import jsonschema
import pytest
import yaml
from django.core.management import CommandError, call_command
from django.test import Client

from alerts.models import Rule
from configuration.schema import SCHEMA_FILE, config_schema
from core.audit_history import object_history
from monitoring_site.management.commands.tradewatch import Command
from tests.configuration.conftest import DESK_ENV, DESK_FILE, SLACK_URL
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def tradewatch(*args: str) -> tuple[str, str, int]:
    """Run a verb in this process: (its output, its errors, its exit code)."""
    out, err = io.StringIO(), io.StringIO()
    command = Command()
    call_command(command, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue(), command.exit_code


@pytest.fixture(autouse=True)
def _desk_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in DESK_ENV.items():
        monkeypatch.setenv(name, value)


def test_it_applies_a_file_shows_what_changed_and_then_nothing_to_change() -> None:
    admin = make_user("risk-owner", groups=["Admin"])

    output, _, code = tradewatch("config", "apply", str(DESK_FILE), "--as", admin.username)
    again, _, second_code = tradewatch("config", "apply", str(DESK_FILE))

    assert code == second_code == 0
    assert "+ rule Desk drawdown: created" in output
    assert output.splitlines()[-2:] == [
        "8 to create, 0 to change, 0 to delete, 0 unchanged.", "Applied.",
    ]  # fmt: skip
    assert again.splitlines()[-2:] == [
        "0 to create, 0 to change, 0 to delete, 8 unchanged.", "Nothing to change.",
    ]  # fmt: skip
    [created] = object_history(Rule.objects.get(name="Desk drawdown"))[-1:]
    assert created.who == "risk-owner via config apply"


def test_it_shows_a_dry_run_and_applies_nothing() -> None:
    output, _, code = tradewatch("config", "apply", str(DESK_FILE), "--dry-run")

    assert code == 0
    assert output.splitlines()[-1] == "Dry run: nothing was applied."
    assert not Rule.objects.filter(name="Desk drawdown").exists()


def test_it_lists_the_problems_of_a_bad_file_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(DESK_FILE.read_text().replace("value: 8\n", "value: eight\n"))

    output, errors, code = tradewatch("config", "apply", str(bad))

    assert code == 1
    assert output == ""
    assert errors.splitlines() == [
        f"{bad}: not applied, nothing changed:",
        "  rules[0].thresholds[1].value: must be a number",
    ]


def test_it_refuses_to_apply_as_a_user_who_may_not_change_configuration() -> None:
    operator = make_user("night-operator", groups=["Operator"])

    with pytest.raises(CommandError, match="may not change configuration"):
        tradewatch("config", "apply", str(DESK_FILE), "--as", operator.username)
    assert not Rule.objects.filter(name="Desk drawdown").exists()


def test_it_exports_the_sections_asked_for_to_a_file_valid_against_the_schema(
    tmp_path: Path,
) -> None:
    tradewatch("config", "apply", str(DESK_FILE))
    target = tmp_path / "tradewatch.yaml"

    output, _, code = tradewatch("config", "export", "--output", str(target))
    rules_only, _, _ = tradewatch("config", "export", "--only", "rules,policies")

    assert (code, output) == (0, "")
    exported = yaml.safe_load(target.read_text())
    jsonschema.validate(exported, config_schema())
    assert SLACK_URL not in target.read_text()
    assert list(yaml.safe_load(rules_only)) == ["version", "rules", "policies"]


def test_it_prints_the_schema() -> None:
    output, _, _ = tradewatch("config", "schema")

    assert yaml.safe_load(output)["title"] == "Tradewatch configuration"


def test_it_serves_the_schema_the_repository_ships(client: Client) -> None:
    answer = client.get("/api/schema/config.json")

    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/schema+json"
    assert answer.content.decode() == SCHEMA_FILE.read_text()
