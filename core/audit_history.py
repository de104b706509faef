"""Reads of the audit history: who changed what, when, for one object or everything."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Model

HISTORY_LIMIT: Final = 200
# Bookkeeping columns every snapshot carries: not what anyone changed.
_HIDDEN: Final = frozenset({"id", "created_at", "updated_at"})
LABELS: Final = {
    "insert": "created",
    "update": "changed",
    "delete": "deleted",
    "added": "linked",
    "removed": "unlinked",
    "secrets_changed": "secrets replaced (not recorded)",
    "secret_changed": "secret replaced (not recorded)",
}


@dataclass(frozen=True)
class Change:
    """One audited event, ready to show."""

    at: datetime
    what: str
    action: str
    who: str
    url: str
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)
    values: list[tuple[str, Any]] = field(default_factory=list)


def audit_available() -> bool:
    """Triggers exist on PostgreSQL only; the embedded SQLite mode has no audit history."""
    return connection.vendor == "postgresql"


def _model_name(label: str) -> str:
    # "audit.ThresholdOverrideEvent" -> "threshold override"
    name = label.split(".", 1)[-1].removesuffix("Event")
    words = "".join(f" {c.lower()}" if c.isupper() else c for c in name).strip()
    return words


def object_history(
    obj: Model, *, related: Sequence[Model] = (), limit: int = HISTORY_LIMIT
) -> list[Change]:
    """Changes of `obj` and of the rows pointing at it or at `related` (a rule's
    thresholds and their overrides), newest first."""
    if not audit_available():
        return []
    from pghistory.models import Events

    columns = (
        "pgh_slug", "pgh_created_at", "pgh_model", "pgh_label", "pgh_data", "pgh_diff",
        "pgh_context",
    )  # fmt: skip
    by_type: dict[type[Model], list[Model]] = {type(obj): [obj]}
    for item in related:
        by_type.setdefault(type(item), []).append(item)
    rows: list[dict[str, Any]] = []
    # pghistory asks for objects of one model per query: one query per model.
    for objs in by_type.values():
        rows += list(
            Events.objects.references(*objs)
            .order_by("-pgh_created_at", "-pgh_id")
            .values(*columns)[:limit]
        )
    # A threshold's own events point at its rule too: keep each event once.
    unique = {row["pgh_slug"]: row for row in rows}.values()
    rows = sorted(unique, key=lambda row: row["pgh_created_at"], reverse=True)[:limit]
    user_ids = {
        (row["pgh_context"] or {}).get("user") for row in rows if row["pgh_context"] is not None
    }
    names = dict(
        get_user_model()
        .objects.filter(pk__in=[pk for pk in user_ids if pk is not None])
        .values_list("pk", "username")
    )
    changes = []
    for row in rows:
        context = row["pgh_context"] or {}
        user_id = context.get("user")
        who = (names.get(user_id) if user_id is not None else None) or context.get("username")
        if context.get("via"):  # made through a tool, not a form: `config apply`
            who = f"{who or 'someone'} via {context['via']}"
        diff = row["pgh_diff"] or {}
        data = row["pgh_data"] or {}
        changes.append(
            Change(
                at=row["pgh_created_at"],
                what=_model_name(row["pgh_model"]),
                action=LABELS.get(row["pgh_label"], row["pgh_label"]),
                who=who or "system",
                url=context.get("url") or "",
                changes=[
                    (name, values[0], values[1])
                    for name, values in sorted(diff.items())
                    if name not in _HIDDEN
                ],
                values=[]
                if diff
                else [(name, value) for name, value in sorted(data.items()) if name not in _HIDDEN],
            )
        )
    return changes
