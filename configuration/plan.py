"""What applying a file would do: created, changed (field by field), unchanged, deleted.

Pure: two canonical documents in (what Tradewatch has, what the file says), the plan
out. The command line prints it, the API answers it, and the writer follows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from metrics.services import SYSTEM_SOURCE_NAME

from .document import Document, Item
from .fields import ITEM_KEYS, SECTIONS, object_key

CREATED: Final = "created"
CHANGED: Final = "changed"
UNCHANGED: Final = "unchanged"
DELETED: Final = "deleted"
SECRET_VALUE_CHANGED: Final = "(a new value)"  # noqa: S105 (a placeholder)
# Never pruned: Tradewatch reports its own problems under this source.
_KEPT: Final = {("sources", SYSTEM_SOURCE_NAME)}


@dataclass(frozen=True)
class FieldChange:
    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class ObjectPlan:
    """One object's fate; `desired` is the file's canonical object (None if deleted)."""

    section: str
    key: str
    action: str
    changes: tuple[FieldChange, ...] = ()
    desired: Item | None = None
    index: int | None = None


@dataclass(frozen=True)
class Plan:
    objects: tuple[ObjectPlan, ...] = field(default_factory=tuple)

    def counts(self) -> dict[str, int]:
        counts = {CREATED: 0, CHANGED: 0, UNCHANGED: 0, DELETED: 0}
        for planned in self.objects:
            counts[planned.action] += 1
        return counts

    @property
    def changes_anything(self) -> bool:
        return any(planned.action != UNCHANGED for planned in self.objects)

    def of(self, section: str, *actions: str) -> list[ObjectPlan]:
        return [p for p in self.objects if p.section == section and p.action in actions]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """An object's values by path: nested mappings by key, thresholds by severity,
    overrides by source; lists of plain values whole."""
    if isinstance(value, dict):
        if not value:
            return {prefix: {}} if prefix else {}
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat |= flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return flat
    name = prefix.rsplit(".", 1)[-1]
    if isinstance(value, list) and name in ITEM_KEYS and all(isinstance(i, dict) for i in value):
        if not value:
            return {prefix: []}
        flat = {}
        for item in value:
            identity = item.get(ITEM_KEYS[name])
            rest = {key: entry for key, entry in item.items() if key != ITEM_KEYS[name]}
            flat[f"{prefix}[{identity}]"] = "present"
            flat |= flatten(rest, f"{prefix}[{identity}]")
        return flat
    return {prefix: value}


def field_changes(old: Item, new: Item) -> tuple[FieldChange, ...]:
    """The paths whose values differ between two canonical objects, in the object's order."""
    before, after = flatten(old), flatten(new)
    paths = list(before) + [path for path in after if path not in before]
    return tuple(
        FieldChange(path, before.get(path), after.get(path))
        for path in paths
        if before.get(path) != after.get(path)
    )


def _kept_secrets(current: Item | None, desired: Item) -> Item:
    """A secret the file leaves out keeps the stored one (it is not removed)."""
    if current is None or "secrets" not in desired:
        return desired
    return {
        **desired,
        "secrets": dict(sorted({**current["secrets"], **desired["secrets"]}.items())),
    }


def plan_make(
    current: Document,
    desired: Document,
    *,
    prune: bool = False,
    secret_values_changed: Mapping[str, set[str]] | None = None,
) -> Plan:
    """The plan turning `current` into `desired`.

    Only the sections the file has are compared; with `prune`, what such a section of
    Tradewatch has and the file does not is deleted. `secret_values_changed` names,
    per channel, the secrets whose referenced value differs from the stored one.
    """
    secret_values_changed = secret_values_changed or {}
    objects: list[ObjectPlan] = []
    for section in SECTIONS:
        if section not in desired.sections:
            continue
        existing = {object_key(section, item): item for item in current.sections.get(section, [])}
        wanted_keys = set()
        for index, wanted in enumerate(desired.sections[section]):
            key = object_key(section, wanted)
            wanted_keys.add(key)
            now = existing.get(key)
            wanted = _kept_secrets(now, wanted)
            if now is None:
                objects.append(ObjectPlan(section, key, CREATED, (), wanted, index))
                continue
            changes = field_changes(now, wanted)
            changes += tuple(
                FieldChange(f"secrets.{name}", SECRET_VALUE_CHANGED, SECRET_VALUE_CHANGED)
                for name in sorted(secret_values_changed.get(key, set()))
                if section in ("channels", "recovery_actions")
            )
            action = CHANGED if changes else UNCHANGED
            objects.append(ObjectPlan(section, key, action, changes, wanted, index))
        if prune:
            objects += [
                ObjectPlan(section, key, DELETED)
                for key in sorted(existing)
                if key not in wanted_keys and (section, key) not in _KEPT
            ]
    return Plan(tuple(objects))


def plan_lines(plan: Plan, *, show_unchanged: bool = False) -> list[str]:
    """The plan for a person: one line per object, one more per changed field."""
    lines = []
    marks = {CREATED: "+", CHANGED: "~", UNCHANGED: "=", DELETED: "-"}
    for planned in plan.objects:
        if planned.action == UNCHANGED and not show_unchanged:
            continue
        what = planned.section.removesuffix("s").replace("_", " ")
        lines.append(f"{marks[planned.action]} {what} {planned.key}: {planned.action}")
        for change in planned.changes:
            if change.old == SECRET_VALUE_CHANGED:
                lines.append(f"    {change.path}: the referenced value changed (not shown)")
            else:
                lines.append(f"    {change.path}: {_shown(change.old)} -> {_shown(change.new)}")
    counts = plan.counts()
    lines.append(
        f"{counts[CREATED]} to create, {counts[CHANGED]} to change, "
        f"{counts[DELETED]} to delete, {counts[UNCHANGED]} unchanged."
    )
    return lines


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return repr(value)
    return str(value)
