"""A configuration file read into its canonical form, and written back from it.

Pure: YAML text in, plain values out (and back). The canonical form has every field of
every object, in the table's order (`configuration.fields`), each in one spelling:
durations as "1h30m", severities in upper case, numbers as floats, names sorted, times
in UTC. Comparing two canonical forms is the diff; writing one with the fields that
hold their default left out is the export, byte for byte the same every time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any, Final

import yaml

from metrics.calendars import UnknownExchange, exchange_code
from metrics.timetables import window_parse

from .fields import (
    ITEM_KEYS,
    SECTIONS,
    VERSION,
    Field,
    duration_parse,
    duration_text,
    object_key,
    section_fields,
    severity_name,
    severity_value,
)
from .schema import path_text, schema_problems

Problem = tuple[str, str]  # (path, message)
Item = dict[str, Any]

# Policies route to recovery actions as well as to ordinary channels (one table).
_REF_SECTIONS: Final = {"channels": ("channels", "recovery_actions")}


class DocumentInvalid(Exception):
    """The file cannot be applied; `problems` name each place, nothing was changed."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{path}: {message}" for path, message in problems))
        self.problems = problems


@dataclass(frozen=True)
class Document:
    """A file in canonical form: the sections it has, each a list in file order."""

    sections: dict[str, list[Item]] = field(default_factory=dict)

    def names(self, section: str) -> set[str]:
        return {object_key(section, item) for item in self.sections.get(section, [])}


# --- reading ---------------------------------------------------------------------------


def yaml_load(text: str) -> Any:
    """The file's data (safe_load); a DocumentInvalid naming the line if it is not YAML."""
    try:
        data = _plain(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "file"
        reason = getattr(exc, "problem", None) or str(exc)
        raise DocumentInvalid([(where, f"not valid YAML: {reason}")]) from None
    except RecursionError:
        raise DocumentInvalid([("file", "nested too deeply to be a configuration")]) from None
    except ValueError as exc:  # from _plain
        raise DocumentInvalid([("file", str(exc))]) from None
    return data


def _plain(value: Any) -> Any:
    """YAML's own types made JSON's: an unquoted time becomes its ISO 8601 text.

    Text holding a NUL character is refused here: the database cannot store it.
    """
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, str) and "\x00" in value:
        raise ValueError(f"text must not hold a NUL character: {value[:40]!r}")
    if isinstance(value, bytes):
        raise ValueError("binary values (!!binary) are not configuration")
    if isinstance(value, dict):
        return {_plain(str(key)): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, set):
        raise ValueError("sets (!!set) are not configuration: use a list")
    return value


def plain_data(value: Any) -> Any:
    """Data given otherwise than in YAML (the API's JSON) checked as a file's is: text with
    a NUL character is refused (ValueError naming it), before any of it reaches the
    database."""
    return _plain(value)


def document_read(text: str) -> Document:
    """The file checked against the schema and made canonical; DocumentInvalid if not."""
    data = yaml_load(text)
    if data is None:
        data = {"version": VERSION}
    problems = schema_problems(data)
    if problems:
        raise DocumentInvalid(problems)
    return document_from_data(data)


def document_from_data(data: Mapping[str, Any]) -> Document:
    """A schema-valid mapping made canonical, with the checks the schema cannot make."""
    tables = section_fields()
    problems: list[Problem] = []
    sections: dict[str, list[Item]] = {}
    for section in SECTIONS:
        if section not in data:
            continue
        items = []
        for index, raw in enumerate(data[section]):
            items.append(_canonical(tables[section], raw, [section, index], problems))
        sections[section] = items
    document = Document(sections)
    problems += _duplicates(document)
    problems += _scope_problems(document)
    if problems:
        raise DocumentInvalid(problems)
    return document


def _canonical(fields: tuple[Field, ...], raw: Mapping[str, Any], path: list[Any],
               problems: list[Problem]) -> Item:  # fmt: skip
    item: Item = {}
    for spec in fields:
        value = raw.get(spec.name, spec.default)
        item[spec.name] = _value(spec, value, [*path, spec.name], problems)
    return item


def _value(spec: Field, value: Any, path: list[Any], problems: list[Problem]) -> Any:
    if value is None:
        return None
    kind = spec.kind
    if kind == "number":
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            problems.append((path_text(path), "must be a finite number"))
        return number
    if kind == "duration":
        try:
            return duration_text(duration_parse(value))
        except ValueError as exc:
            problems.append((path_text(path), str(exc)))
            return value
    if kind == "severity":
        return severity_name(severity_value(value))
    if kind in ("refs", "tags"):
        return sorted(set(value))
    if kind == "object":
        return _sorted(value)
    if kind == "secrets":
        return dict(sorted(value.items()))
    if kind == "timestamp":
        try:
            return timestamp_text(datetime.fromisoformat(value.replace(" ", "T")))
        except (ValueError, OverflowError):
            problems.append((path_text(path), "is not a time that exists"))
            return value
    if kind == "exchange":
        return exchange_canonical(value)
    if kind == "windows":
        try:
            return [window_parse(text).text() for text in value]
        except ValueError as exc:
            problems.append((path_text(path), str(exc)))
            return value
    if kind == "items":
        items = [
            _canonical(spec.items, entry, [*path, index], problems)
            for index, entry in enumerate(value)
        ]
        return _items_sorted(spec.name, items)
    return value


def exchange_canonical(value: str) -> str:
    """An exchange calendar's code for `value` (an alias read as its code); an unknown
    one is left as written, for the model to name."""
    if not value:
        return value
    try:
        return exchange_code(value)
    except UnknownExchange:
        return value


def _items_sorted(name: str, items: list[Item]) -> list[Item]:
    if name == "thresholds":
        # The admin's order: the most severe first.
        return sorted(items, key=lambda item: -severity_value(item["severity"]))
    key = ITEM_KEYS.get(name)
    return sorted(items, key=lambda item: str(item.get(key))) if key else items


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def timestamp_text(value: datetime) -> str:
    """A time as the file writes it: UTC, seconds (and fractions only when there are)."""
    value = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def _duplicates(document: Document) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for section, items in document.sections.items():
        # Channels and recovery actions share one table, hence one set of names.
        group = "channels" if section == "recovery_actions" else section
        for index, item in enumerate(items):
            key = f"{group}:{object_key(section, item)}"
            where = path_text([section, index])
            if key in seen:
                at = f"{where}.name" if section != "silences" else where
                problems.append((at, f"{object_key(section, item)!r} is already {seen[key]}"))
            else:
                seen[key] = where
            for nested, value in item.items():
                if nested in ITEM_KEYS and isinstance(value, list):
                    problems += _nested_duplicates(value, [section, index, nested])
    return problems


def _nested_duplicates(items: list[Item], path: list[Any]) -> list[Problem]:
    key = ITEM_KEYS[str(path[-1])]
    problems: list[Problem] = []
    counts: dict[Any, int] = {}
    for item in items:
        counts[item.get(key)] = counts.get(item.get(key), 0) + 1
        for nested, value in item.items():
            if nested in ITEM_KEYS and isinstance(value, list):
                problems += _nested_duplicates(value, [*path, 0, nested])
    for value, count in counts.items():
        if count > 1:
            problems.append((path_text(path), f"{key} {value} is given {count} times"))
    return problems


def _scope_problems(document: Document) -> list[Problem]:
    return [
        (path_text(["rules", index]), "A rule watches one source or the sources of one tag: "
         "give `source` or `tag`, not both.")
        for index, rule in enumerate(document.sections.get("rules", []))
        if rule["source"] and rule["tag"]
    ]  # fmt: skip


def reference_problems(
    document: Document, known: Mapping[str, set[str]], *, prune: bool
) -> list[Problem]:
    """Names the file refers to that neither it nor the database (after `prune`) has.

    `known` is the database's names per section.
    """
    tables = section_fields()
    problems: list[Problem] = []

    def available(section: str) -> set[str]:
        names = set()
        for name in _REF_SECTIONS.get(section, (section,)):
            names |= document.names(name)
            if not (prune and name in document.sections):
                names |= known.get(name, set())
        return names

    def check(fields: tuple[Field, ...], item: Item, path: list[Any]) -> None:
        for spec in fields:
            value = item.get(spec.name)
            if spec.kind == "ref" and value is not None and value not in available(spec.ref):
                problems.append((path_text([*path, spec.name]), _unknown(spec.ref, value)))
            elif spec.kind == "refs":
                for position, name in enumerate(value or []):
                    if name not in available(spec.ref):
                        problems.append(
                            (path_text([*path, spec.name, position]), _unknown(spec.ref, name))
                        )
            elif spec.kind == "items":
                for position, entry in enumerate(value or []):
                    check(spec.items, entry, [*path, spec.name, position])

    for section, items in document.sections.items():
        for index, item in enumerate(items):
            check(tables[section], item, [section, index])
    return problems


def _unknown(section: str, name: str) -> str:
    what = section.removesuffix("s").replace("_", " ")
    if section == "channels":
        what = "channel or recovery action"
    return f"no {what} named {name!r}, in the file or in Tradewatch"


# --- writing ---------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Safe YAML, lists of plain values on one line (`tags: [binance, live]`)."""


def _list_represent(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    flow = bool(value) and all(not isinstance(item, dict | list) for item in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(list, _list_represent)


def document_text(document: Document) -> str:
    """The file for `document`: fields at their default left out, stable order."""
    tables = section_fields()
    data: dict[str, Any] = {"version": VERSION}
    for section in SECTIONS:
        if section in document.sections:
            data[section] = [
                _without_defaults(tables[section], item)
                for item in sorted(document.sections[section], key=_order_key(section))
            ]
    return yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False,
        width=100_000,
    )  # fmt: skip


def _order_key(section: str) -> Any:
    if section == "silences":
        return lambda item: (item["starts_at"], item["reason"])
    return lambda item: item["name"]


def _without_defaults(fields: tuple[Field, ...], item: Item) -> Item:
    kept: Item = {}
    for spec in fields:
        value = item.get(spec.name)
        if spec.kind == "items":
            value = [_without_defaults(spec.items, entry) for entry in value or []]
        if spec.required or value != spec.default:
            kept[spec.name] = value
    return kept
