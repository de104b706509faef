"""The check a rule's thresholds pass before they are saved, wherever they are edited.

The admin's threshold inline and configuration files (`configuration`) both call it,
so both refuse the same thresholds with the same words.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import engine


def thresholds_problem(tiers: Iterable[tuple[int, str, float, float | None]]) -> str | None:
    """Why these (severity, comparison, value, clear value) tiers contradict each other,
    or None when they do not."""
    thresholds = []
    for severity, comparison, value, clear_value in tiers:
        try:
            thresholds.append(
                engine.Threshold(
                    severity=engine.Severity(severity),
                    comparison=engine.Comparison(comparison),
                    value=value,
                    clear_value=clear_value,
                )
            )
        except ValueError as exc:
            return f"Threshold {severity}: {exc}"
    if not thresholds:
        return None
    try:
        engine.check_monotonic(
            engine.RuleSpec(kind=engine.RuleKind.THRESHOLD, thresholds=tuple(thresholds))
        )
    except ValueError as exc:
        return str(exc)[:1].upper() + str(exc)[1:] + "."
    return None
