"""Which alert changes of the demo's sources the database shows, against what the demo
announced: for the demo's own lines (`seen: ...`) and for the tests.

Only reads. An alert that fires at WARNING and is raised to EMERGENCY is one row whose
timeline has both, so changes are read from the timeline (`AlertTransition`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from alerts.models import AlertTransition

from .scenario import Expect

Kind = AlertTransition.Kind
# The changes worth a line: an alert starting to fire, changing severity, resolving.
WATCHED = (Kind.FIRING, Kind.SEVERITY_RAISED, Kind.SEVERITY_LOWERED, Kind.RESOLVED)


@dataclass(frozen=True)
class Seen:
    """One change of an alert of a demo source."""

    id: int
    at: datetime
    source: str
    rule: str
    severity: int
    kind: str

    @property
    def fires(self) -> bool:
        """Firing at `severity` from this change on (not a lowering or resolve)."""
        return self.kind in (Kind.FIRING, Kind.SEVERITY_RAISED)


def changes_since(last_id: int, source_names: Sequence[str]) -> list[Seen]:
    """Changes of the named sources' alerts with an id above `last_id`, oldest first."""
    rows = (
        AlertTransition.objects.filter(
            id__gt=last_id, alert__source__name__in=source_names, kind__in=WATCHED
        )
        .order_by("id")
        .values_list("id", "at", "alert__source__name", "alert__rule__name", "severity", "kind")
    )
    return [Seen(*row) for row in rows]


def meets(expect: Expect, source: str, seen: Seen) -> bool:
    """Whether `seen` is the change `expect` announced on `source`."""
    if seen.source != source or seen.rule != expect.rule:
        return False
    if expect.change == "resolved":
        return seen.kind == Kind.RESOLVED
    return seen.fires and seen.severity == expect.severity


def first_meeting(expect: Expect, source: str, seen: Iterable[Seen]) -> Seen | None:
    return next((change for change in seen if meets(expect, source, change)), None)
