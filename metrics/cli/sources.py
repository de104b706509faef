"""Sources named on the command line, found by name or id."""

from __future__ import annotations

from collections.abc import Sequence

from django.core.management.base import CommandError

from metrics.queries import source_find


def source_ids(
    refs: Sequence[str], *, argument: str = "--source", returncode: int = 1
) -> list[int]:
    """The ids of the sources `refs` name; an unknown one is an error, never an empty result
    (a typo in `tail --source` would otherwise look like a quiet night)."""
    ids = []
    for ref in refs:
        source = source_find(ref)
        if source is None:
            raise CommandError(
                f"{argument}: no source with id or name {ref!r}.", returncode=returncode
            )
        ids.append(source.pk)
    return ids
