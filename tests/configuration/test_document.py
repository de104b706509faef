"""The file's canonical form, its schema and the plan: pure, no database."""

from __future__ import annotations

import json
from datetime import timedelta

import jsonschema
import pytest
import yaml

from configuration.document import (
    Document,
    DocumentInvalid,
    document_from_data,
    document_read,
    document_text,
)
from configuration.fields import duration_parse, duration_text
from configuration.plan import CHANGED, CREATED, DELETED, UNCHANGED, plan_lines, plan_make
from configuration.schema import SCHEMA_FILE, config_schema, config_schema_text


@pytest.mark.parametrize(
    ("text", "seconds", "canonical"),
    [
        ("90s", 90, "1m30s"),
        ("1h30m", 5400, "1h30m"),
        ("1d", 86400, "1d"),
        ("250ms", 0.25, "250ms"),
        ("1.5s", 1.5, "1.5s"),
        ("500ms", 0.5, "500ms"),
        (45, 45, "45s"),
        (0, 0, "0s"),
    ],
)
def test_it_reads_durations_and_writes_them_one_way(
    text: object, seconds: float, canonical: str
) -> None:
    assert duration_parse(text) == timedelta(seconds=seconds)
    assert duration_text(duration_parse(text)) == canonical


@pytest.mark.parametrize("text", ["5 minutes", "-5s", "m", True, "1x"])
def test_it_refuses_what_is_not_a_duration(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        duration_parse(text)


def test_it_ships_the_schema_it_serves() -> None:
    # Regenerate with `manage.py tradewatch config schema -o <the file>`.
    assert SCHEMA_FILE.read_text() == config_schema_text()
    jsonschema.Draft202012Validator.check_schema(config_schema())


def test_it_names_wrong_fields_with_their_paths() -> None:
    text = """
version: 1
rules:
- name: ok
  metric: equity
- name: Drawdown
  metric: drawdown_pct
  window: soon
  enabled: sometimes
  thresholds:
  - severity: SEVERE
    value: ten
  - value: 3
policies:
- name: p
  channels: []
"""
    with pytest.raises(DocumentInvalid) as refused:
        document_read(text)

    assert refused.value.problems == [
        ("policies[0].channels", "must name at least one"),
        ("rules[1].enabled", "must be true or false"),
        ("rules[1].thresholds[0].severity",
         "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, EMERGENCY"),
        ("rules[1].thresholds[0].value", "must be a number"),
        ("rules[1].thresholds[1].severity", "is required"),
        ("rules[1].window", "must be a duration such as 30s, 5m, 1h30m, 1d or a number of seconds"),
    ]  # fmt: skip


def test_it_says_where_a_file_is_not_yaml() -> None:
    with pytest.raises(DocumentInvalid) as refused:
        document_read("version: 1\nrules: [\n")

    [(where, message)] = refused.value.problems
    assert where.startswith("line 3")
    assert message.startswith("not valid YAML")


def test_it_refuses_names_given_twice_and_a_rule_with_two_scopes() -> None:
    data = {
        "version": 1,
        "channels": [{"name": "ops", "kind": "console"}],
        "recovery_actions": [{"name": "ops"}],
        "rules": [{"name": "r", "metric": "m", "source": "a", "tag": "b",
                   "thresholds": [{"severity": "warning", "value": 1},
                                  {"severity": "WARNING", "value": 2}]}],
    }  # fmt: skip
    with pytest.raises(DocumentInvalid) as refused:
        document_from_data(data)

    assert refused.value.problems == [
        ("recovery_actions[0].name", "'ops' is already channels[0]"),
        ("rules[0].thresholds", "severity WARNING is given 2 times"),
        ("rules[0]", "A rule watches one source or the sources of one tag: give `source` or "
         "`tag`, not both."),
    ]  # fmt: skip


def test_it_writes_the_same_bytes_whatever_order_and_spelling_it_read() -> None:
    one = document_read(
        "version: 1\nsources:\n- {name: b, tags: [z, a], heartbeat_period: 60}\n- name: a\n"
    )
    other = document_read(
        "version: 1\nsources:\n- name: a\n- name: b\n  heartbeat_period: 1m\n  tags: [a, z, a]\n"
    )

    assert document_text(one) == document_text(other)
    assert document_text(one) == "version: 1\nsources:\n- name: a\n- name: b\n  tags: [a, z]\n"
    jsonschema.validate(yaml.safe_load(document_text(one)), config_schema())  # raises if not


def test_it_plans_created_changed_unchanged_and_deleted_by_field() -> None:
    current = document_read(
        "version: 1\nrules:\n- {name: a, metric: x, thresholds: [{severity: WARNING, value: 1}]}\n"
        "- {name: b, metric: y}\n- {name: c, metric: z}\n"
    )
    desired = document_read(
        "version: 1\nrules:\n- {name: a, metric: x, thresholds: [{severity: WARNING, value: 2}]}\n"
        "- {name: b, metric: y}\n- {name: d, metric: w}\n"
    )

    plan = plan_make(current, desired, prune=True)

    assert [(p.key, p.action) for p in plan.objects] == [
        ("a", CHANGED), ("b", UNCHANGED), ("d", CREATED), ("c", DELETED),
    ]  # fmt: skip
    assert plan_lines(plan) == [
        "~ rule a: changed",
        "    thresholds[WARNING].value: 1.0 -> 2.0",
        "+ rule d: created",
        "- rule c: deleted",
        "1 to create, 1 to change, 1 to delete, 1 unchanged.",
    ]
    assert not plan_make(current, Document({}), prune=True).objects  # no section, no prune
    assert json.dumps(config_schema())  # plain JSON
