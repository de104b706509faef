"""The JSON Schema of the configuration file, and its errors in the operator's words.

Editors validate the file against it while typing (the repository ships it as
`configuration/tradewatch-config.schema.json`, Tradewatch serves it at
`/api/schema/config.json`); `config apply` checks a file against it first, so a wrong
type is named with its path (`rules[3].thresholds[0].value: must be a number`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError

from .fields import (
    DURATION_PATTERN,
    SECRET_REFERENCE_PATTERN,
    SECTIONS,
    SEVERITY_NAMES,
    VERSION,
    WINDOW_PATTERN,
    Field,
    section_fields,
)

SCHEMA_FILE: Final = Path(__file__).resolve().parent / "tradewatch-config.schema.json"
SCHEMA_ID: Final = "https://tradewatch.invalid/api/schema/config.json"
SECTION_HELP: Final = {
    "schedules": "When things are expected to run: always, an exchange's trading sessions "
    "(holidays, early closes, breaks), or weekly windows in a time zone.",
    "sources": "Monitored things, by name (their API keys are never in the file).",
    "channels": "Where notifications go. Secrets are references to environment variables.",
    "recovery_actions": "Signed commands to a trading system (channels of kind recovery).",
    "rules": "What to watch and when it is a problem, with thresholds per severity.",
    "policies": "Which alerts go to which channels.",
    "health_checks": "Periodic probes.",
    "silences": "Maintenance windows that have not ended, known by reason and start.",
}
# A message for the failures the schema's own wording says badly.
_MESSAGES: Final = {
    "duration": "must be a duration such as 30s, 5m, 1h30m, 1d or a number of seconds",
    "secret": "must be a reference to an environment variable such as ${SLACK_WEBHOOK_URL}: "
    "a secret's value never goes in the file",
    "timestamp": "must be a time such as 2026-12-24T18:00:00Z (ISO 8601 with an offset)",
    "window": "must be a weekly window such as mon-fri 09:30-16:00 or sun 02:00-04:00",
}
_TYPE_WORDS: Final = {
    "number": "a number",
    "integer": "a whole number",
    "string": "text",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping of names to values",
    "null": "empty (null)",
}


def _field_schema(field: Field) -> dict[str, Any]:
    schema: dict[str, Any]
    if field.kind in ("text", "exchange"):
        schema = {"type": "string"}
        if field.max_length:
            schema["maxLength"] = field.max_length
    elif field.kind == "bool":
        schema = {"type": "boolean"}
    elif field.kind == "int":
        schema = {"type": "integer"}
    elif field.kind == "number":
        schema = {"type": "number"}
    elif field.kind == "duration":
        schema = {
            "type": ["string", "number"],
            "pattern": DURATION_PATTERN,
            "minimum": 0,
            "x-message": _MESSAGES["duration"],
        }
    elif field.kind == "severity":
        # Any case is read; exports write upper case.
        schema = {"type": "string", "pattern": "(?i)^(" + "|".join(SEVERITY_NAMES) + ")$"}
        schema["x-message"] = f"must be one of {', '.join(SEVERITY_NAMES)}"
    elif field.kind == "choice":
        schema = {"enum": list(field.choices)}
    elif field.kind == "object":
        schema = {"type": "object"}
    elif field.kind in ("ref",):
        schema = {"type": "string", "minLength": 1}
    elif field.kind in ("refs", "tags"):
        schema = {"type": "array", "items": {"type": "string", "minLength": 1}}
        if field.required:
            schema["minItems"] = 1
    elif field.kind == "timestamp":
        schema = {
            "type": "string",
            "pattern": r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)$",
            "x-message": _MESSAGES["timestamp"],
        }
    elif field.kind == "secrets":
        schema = {
            "type": "object",
            "additionalProperties": {
                "type": "string",
                "pattern": SECRET_REFERENCE_PATTERN,
                "x-message": _MESSAGES["secret"],
            },
        }
    elif field.kind == "items":
        schema = {"type": "array", "items": _object_schema(field.items)}
    elif field.kind == "windows":
        schema = {
            "type": "array",
            "items": {
                "type": "string",
                "pattern": WINDOW_PATTERN,
                "x-message": _MESSAGES["window"],
            },
        }
    else:  # pragma: no cover - a table mistake
        raise AssertionError(field.kind)
    if field.minimum is not None and field.kind in ("int", "number"):
        schema["minimum"] = field.minimum
    if field.nullable:
        schema = {"anyOf": [schema, {"type": "null"}]} if "anyOf" not in schema else schema
        schema["x-nullable"] = True
    if field.help:
        schema["description"] = field.help
    if not field.required:
        schema["default"] = field.default
    return schema


def _object_schema(fields: Iterable[Field]) -> dict[str, Any]:
    fields = list(fields)
    return {
        "type": "object",
        "properties": {field.name: _field_schema(field) for field in fields},
        "required": [field.name for field in fields if field.required],
        "additionalProperties": False,
    }


def config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a configuration file."""
    sections = section_fields()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Tradewatch configuration",
        "description": "Schedules, rules, channels, policies, sources, health checks and "
        "silences, keyed by name (`tradewatch config export` writes it, `config apply` reads it).",
        "type": "object",
        "properties": {
            "version": {"const": VERSION, "description": "The file format's version."},
            **{
                name: {
                    "type": "array",
                    "description": SECTION_HELP[name],
                    "items": _object_schema(sections[name]),
                }
                for name in SECTIONS
            },
        },
        "required": ["version"],
        "additionalProperties": False,
    }


def config_schema_text() -> str:
    """The schema as the repository ships it (stable key order, a final newline)."""
    return json.dumps(config_schema(), indent=2, ensure_ascii=False) + "\n"


def path_text(parts: Iterable[Any]) -> str:
    """`["rules", 3, "thresholds", 0, "value"]` -> "rules[3].thresholds[0].value"."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def schema_problems(document: Any) -> list[tuple[str, str]]:
    """(path, message) for each place `document` breaks the schema, in file order."""
    validator = Draft202012Validator(config_schema())
    problems: list[tuple[tuple[Any, ...], str]] = []
    for error in validator.iter_errors(document):
        problems += _explained(error)
    problems.sort(key=lambda problem: tuple((isinstance(p, str), p) for p in problem[0]))
    seen: set[tuple[str, str]] = set()
    unique = []
    for parts, message in problems:
        item = (path_text(parts), message)
        if item not in seen:
            seen.add(item)
            unique.append(item)
    return unique


def _explained(error: SchemaError) -> list[tuple[tuple[Any, ...], str]]:
    path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    validator = error.validator
    if validator == "anyOf" and schema.get("x-nullable"):
        # A nullable field: explain against the non-null form.
        inner = [e for e in error.context or [] if e.schema_path and e.schema_path[0] == 0]
        explained = [item for sub in inner for item in _explained(sub)]
        return [(parts, f"{message}, or null") for parts, message in explained] or [
            (path, "has the wrong type")
        ]
    if "x-message" in schema and validator in ("pattern", "type", "minimum"):
        return [(path, schema["x-message"])]
    if validator == "type":
        wanted = error.validator_value
        wanted = wanted if isinstance(wanted, list) else [wanted]
        return [(path, "must be " + " or ".join(_TYPE_WORDS.get(str(w), str(w)) for w in wanted))]
    if validator == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else "?"
        return [((*path, missing), "is required")]
    if validator == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(known)) if isinstance(error.instance, dict) else []
        return [
            ((*path, name), f"is not a field here; the fields are {', '.join(known)}")
            for name in extra
        ]
    if validator == "enum":
        allowed = error.validator_value
        choices = allowed if isinstance(allowed, list) else [allowed]
        return [(path, f"must be one of {', '.join(map(str, choices))}")]
    if validator == "const":
        return [(path, f"must be {error.validator_value}")]
    if validator == "minimum":
        return [(path, f"must be at least {error.validator_value}")]
    if validator == "maxLength":
        return [(path, f"must be at most {error.validator_value} characters")]
    if validator == "minLength":
        return [(path, "must not be empty")]
    if validator == "minItems":
        return [(path, "must name at least one")]
    return [(path, str(error.message))]
