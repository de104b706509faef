"""Each process keeps the enabled rules until an edit, made in any process, is committed."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache

from alerts.evaluation import RULES_GENERATION, enabled_rules
from alerts.models import Rule, Threshold, ThresholdOverride
from metrics.models import Source

from .conftest import MakeRule


def _values(rules: list[Rule]) -> list[float]:
    return [threshold.value for rule in rules for threshold in rule.thresholds.all()]


def test_it_reads_rules_once_while_nothing_changes(
    make_rule: MakeRule, django_assert_num_queries: Any
) -> None:
    make_rule()
    first = enabled_rules()

    with django_assert_num_queries(0):
        again = enabled_rules()

    assert again is first


def test_a_generation_written_by_another_process_makes_this_one_read_rules_again(
    make_rule: MakeRule,
) -> None:
    rule = make_rule(thresholds=[(30, ">", 10, None)])
    assert _values(enabled_rules()) == [10]
    # Another process's edit: the row changes, and no signal runs in this process...
    Threshold.objects.filter(rule=rule).update(value=20)
    assert _values(enabled_rules()) == [10]
    # ...until that process's commit writes a new generation (see the next test).
    cache.set(RULES_GENERATION, "another process's edit", timeout=None)

    assert _values(enabled_rules()) == [20]


def test_the_generation_changes_only_when_the_edit_is_committed(
    make_rule: MakeRule, django_capture_on_commit_callbacks: Any
) -> None:
    rule = make_rule()
    enabled_rules()
    before = cache.get(RULES_GENERATION)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        threshold = rule.thresholds.get()
        threshold.value = 50
        threshold.save()
    assert cache.get(RULES_GENERATION) == before
    assert callbacks, "the save queued the bump for its commit"

    for callback in callbacks:
        callback()
    assert cache.get(RULES_GENERATION) not in (None, before)


def test_overrides_and_deletions_change_the_rules_too(
    make_rule: MakeRule, source: Source, django_capture_on_commit_callbacks: Any
) -> None:
    rule = make_rule(thresholds=[(30, ">", 10, None)])
    threshold = rule.thresholds.get()
    generations = [cache.get(RULES_GENERATION)]

    for change in (
        lambda: ThresholdOverride.objects.create(threshold=threshold, source=source, value=5),
        lambda: ThresholdOverride.objects.filter(threshold=threshold).get().delete(),
        lambda: threshold.delete(),
        lambda: rule.delete(),
    ):
        with django_capture_on_commit_callbacks(execute=True):
            change()
        generations.append(cache.get(RULES_GENERATION))

    assert len(set(generations)) == len(generations), generations
    assert enabled_rules() == []
