"""Evaluating rules on sources: load the data in a few queries, judge, apply.

The number of queries does not grow with the number of rules or sources evaluated
together (`alerts.loading` reads each kind of data once for the whole set of
sources), and only findings that matter (a breach, or an alert already open) touch
alert rows. That is what lets one worker evaluate 1,000 sources x 27 rules (the
trading pack's 26 and a custom one) within a beat cycle (`bench.evaluation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from core.generations import KeptCopy
from metrics import signals
from metrics.models import Source
from metrics.schedules import ScheduleBook, schedule_book, schedule_book_read

from . import engine
from .alert_actions import alert_resolve_obsolete
from .judging import Extremes, Pass, Summary, subjects, worse_values
from .loading import source_data_load, sources_with_data_load
from .models import Rule, Threshold, ThresholdOverride
from .quiet import alerts_touch
from .sessions import expectation_of, gate, timetables_of

# Rules change rarely and are read for every evaluation, most of them in a request
# that is waiting for its answer: each process keeps them until an edit is committed
# (see `core.generations`; one cache round trip per evaluation), so an edit applies
# at the next evaluation in every process. RULES_TTL_SECONDS bounds how long a change
# made straight in the database can go unnoticed.
RULES_GENERATION = "rules-generation"
RULES_TTL_SECONDS = 300.0


@dataclass(frozen=True)
class RuleSet:
    """The enabled rules, and the schedules and expectations they are judged by (kept
    together: one generation read per evaluation)."""

    rules: list[Rule]
    book: ScheduleBook


_rules: KeptCopy[RuleSet] = KeptCopy(RULES_GENERATION, what="rules", ttl_seconds=RULES_TTL_SECONDS)


def forget_rules_cache() -> None:
    """Make this process's next evaluation read rules afresh (tests)."""
    _rules.forget()
    _watched.forget()
    specs_forget()


def rules_changed() -> None:
    """Tell every process that rules, thresholds or overrides changed (on their saves)."""
    forget_rules_cache()
    _rules.changed()


def with_thresholds(rules: QuerySet[Rule]) -> QuerySet[Rule]:
    """`rules` with their tag, thresholds and the thresholds' per-source overrides."""
    return rules.select_related("tag").prefetch_related(
        Prefetch(
            "thresholds",
            queryset=Threshold.objects.prefetch_related(
                Prefetch("overrides", queryset=ThresholdOverride.objects.all())
            ),
        )
    )


def enabled_rules() -> list[Rule]:
    """Every enabled rule with its thresholds and their per-source overrides."""
    return _rules.get(_enabled_rules_read).rules


def rule_set() -> RuleSet:
    """The enabled rules with the schedules and expectations they are judged by."""
    return _rules.get(_enabled_rules_read)


def _enabled_rules_read() -> RuleSet:
    rules = list(with_thresholds(Rule.objects.filter(enabled=True).exclude(kind=Rule.Kind.HEALTH)))
    specs_forget()
    return RuleSet(rules, schedule_book_read())


# Which metric names enabled rules read, for ingestion to skip evaluating batches no rule
# watches (alerts.trigger asks, before it evaluates a source after a batch). Asked for
# every batch: kept like the rules, until an edit is committed (one plain GET of the
# generation per batch, as for API keys), so a rule added for a new metric sees its next
# batch evaluated.
WATCHED_TTL_SECONDS = 5.0
_watched: KeptCopy[frozenset[str]] = KeptCopy(
    RULES_GENERATION, what="watched metric names", ttl_seconds=WATCHED_TTL_SECONDS
)


def watched_metric_names() -> frozenset[str]:
    """Names of the metrics some enabled rule reads (its metric, or its guard metric)."""
    return _watched.get(_watched_metric_names_read)


def _watched_metric_names_read() -> frozenset[str]:
    names: set[str] = set()
    for kind, metric, guard in (
        Rule.objects.filter(enabled=True)
        .exclude(kind=Rule.Kind.HEALTH)
        .values_list("kind", "metric", "guard_metric")
    ):
        names |= metric_names_read(kind, metric, guard)
    return frozenset(names)


def metric_names_read(kind: str, metric: str, guard_metric: str) -> set[str]:
    """The metric names whose batches a rule of `kind` on `metric` (guarded by
    `guard_metric`) judges: what decides which batches are evaluated at all
    (`watched_metric_names`) and which rules judge them (`rules_reading`)."""
    names = {guard_metric} if guard_metric else set()
    # Event rules name an event type, which metric batches never carry.
    if kind != Rule.Kind.EVENT:
        names.add(metric)
    if signals.signal_of_metric(metric) == signals.MARKET_DATA:
        names.add(signals.MARKET_DATA_AGE_METRIC)  # a tick's age speaks of market data
    return names


# (rule, source) -> spec, valid as long as the rules cache that built it.
_spec_cache: dict[tuple[int, int], engine.RuleSpec | None] = {}
# rule -> the sources with an override of one of its thresholds
_overrides_cache: dict[int, frozenset[int]] = {}


def specs_forget() -> None:
    """Drop the specs built from rule objects read before (on every fresh read of rules,
    the evaluated ones here or the health rules in `health.alerting`)."""
    _spec_cache.clear()
    _overrides_cache.clear()


def _overridden_sources(rule: Rule) -> frozenset[int]:
    return frozenset(
        override.source_id
        for threshold in rule.thresholds.all()
        for override in threshold.overrides.all()
    )


def rule_spec(rule: Rule, source_id: int) -> engine.RuleSpec | None:
    """The engine's view of `rule` for one source: overrides applied; None if no threshold.

    Sources without an override of the rule share one spec (key: source 0), so a cycle
    over 1,000 sources builds one spec per rule, not one per source.
    """
    overridden = _overrides_cache.get(rule.pk)
    if overridden is None:
        overridden = _overrides_cache[rule.pk] = _overridden_sources(rule)
    if source_id not in overridden:
        source_id = 0
    key = (rule.pk, source_id)
    if key in _spec_cache:
        return _spec_cache[key]
    spec = spec_build(rule, source_id)
    if len(_spec_cache) > 100_000:
        _spec_cache.clear()
    _spec_cache[key] = spec
    return spec


def spec_build(
    rule: Rule, source_id: int, thresholds: Sequence[engine.Threshold] | None = None
) -> engine.RuleSpec | None:
    """The engine's view of `rule` for one source (its per-source overrides applied), or,
    given `thresholds`, of the rule judged by those instead (an edit not saved yet: the
    backtest's). None without a threshold. Not kept: `rule_spec` keeps them."""
    if thresholds is None:
        thresholds = _thresholds_for(rule, source_id)
    if not thresholds:
        return None
    if rule.kind == Rule.Kind.HEALTH:
        # A health rule compares one value, the check's status level, with its thresholds.
        return engine.RuleSpec(kind=engine.RuleKind.THRESHOLD, thresholds=tuple(thresholds))
    return engine.RuleSpec(
        kind=engine.RuleKind(rule.kind),
        thresholds=tuple(thresholds),
        aggregation=engine.Aggregation(rule.aggregation),
        window=rule.window,
        min_samples=rule.min_samples,
        change_percent=rule.change_percent,
    )


def _thresholds_for(rule: Rule, source_id: int) -> list[engine.Threshold]:
    thresholds = []
    for threshold in rule.thresholds.all():
        value, clear = threshold.value, threshold.clear_value
        for override in threshold.overrides.all():
            if override.source_id == source_id:
                if not override.enabled:
                    value = None  # type: ignore[assignment]
                else:
                    value, clear = override.value, override.clear_value
        if value is None:
            continue
        thresholds.append(
            engine.Threshold(
                severity=engine.Severity(threshold.severity),
                comparison=engine.Comparison(threshold.comparison),
                value=value,
                clear_value=clear,
            )
        )
    return thresholds


def rules_reading(rules: Sequence[Rule], names: frozenset[str]) -> list[Rule]:
    """The rules whose judgement a batch of metrics `names` can change: those reading one
    of them as their metric or their guard. Event rules read events, never metric names."""
    return [
        rule
        for rule in rules
        if not names.isdisjoint(metric_names_read(rule.kind, rule.metric, rule.guard_metric))
    ]


def sources_evaluate(
    *,
    source_ids: Sequence[int],
    now: datetime | None = None,
    loaded: Sequence[Source] | None = None,
    extremes: Extremes | None = None,
    names: frozenset[str] | None = None,
) -> Summary:
    """Evaluate every enabled rule that applies to each enabled source of `source_ids`.

    `loaded`: those sources, read by the caller a moment ago (one query less).
    `extremes` (one source only): a rule on a metric's newest value first judges the
    worst of these values, if worse than the newest, so a trough inside a batch is seen.
    `names`: only the rules reading these metrics (`rules_reading`): what a batch of
    them can change. The others' data did not change; what time does to them (absence,
    `for`, expiry) is beat's full evaluation, every 15 s.
    """
    now = now or timezone.now()
    kept = rule_set()
    rules, book = kept.rules, kept.book
    if names is not None:
        rules = rules_reading(rules, names)
        if not rules:
            return Pass(now).summary
    run = Pass(now)
    if loaded is None:
        # The source rows come in the same round trip as their data.
        sources, data = sources_with_data_load(source_ids, rules, now, book=book)
    else:
        sources = [source for source in loaded if source.enabled]
        if not sources:
            return run.summary
        data = source_data_load(sources, rules, now, book=book)
    if not sources:
        return run.summary
    run.summary.sources = len(sources)
    for source in sources:
        source_data = data[source.pk]
        judging: set[int] = set()
        for rule in rules:
            if not rule.applies_to(source.pk, source_data.tag_ids):
                continue
            spec = rule_spec(rule, source.pk)
            if spec is None:
                continue
            expectation = expectation_of(rule, source, book)
            if expectation is not None and not expectation.enabled:
                continue  # the source's expectation of this signal is switched off
            judging.add(rule.pk)
            session = gate(timetables_of(rule, source, book), now)
            if not session.open:
                run.out_of_session(source, source_data, rule, session.closed_at)
                continue
            for subject in subjects(
                rule, source_data, now, opened_at=session.opened_at, expectation=expectation
            ):
                for worse in worse_values(rule, spec, subject, extremes):
                    run.judge(source, source_data, rule, spec, subject, worse=worse)
                run.judge(source, source_data, rule, spec, subject)
        if names is not None:
            continue  # other rules were not judged: their alerts are not obsolete
        # Alerts of rules that were disabled, rescoped or switched off for this source
        # would otherwise stay open for ever: nothing judges them any more.
        for open_alert in source_data.open_alerts.values():
            if open_alert.rule_id not in judging:
                alert_resolve_obsolete(alert_id=open_alert.id, now=now)
                run.summary.applied += 1
    alerts_touch(run.quiet, now)
    return run.summary


def source_evaluate(
    *,
    source_id: int,
    now: datetime | None = None,
    source: Source | None = None,
    extremes: Extremes | None = None,
    names: frozenset[str] | None = None,
) -> Summary:
    """Evaluate one source (right after its data arrived); `source`: its row, if read;
    `extremes`: what its derivation just found; `names`: only the rules reading these
    metrics (see `sources_evaluate`)."""
    loaded = None if source is None else [source]
    return sources_evaluate(
        source_ids=[source_id], now=now, loaded=loaded, extremes=extremes, names=names
    )


def enabled_source_ids() -> list[int]:
    """Every enabled source's id, in order."""
    return list(Source.objects.filter(enabled=True).order_by("pk").values_list("pk", flat=True))


def all_sources_evaluate(*, now: datetime | None = None, chunk: int = 500) -> Summary:
    """Evaluate every enabled source in this process (beat's run shares them out instead:
    `alerts.tasks.evaluate_all_sources`)."""
    total = Summary()
    ids = enabled_source_ids()
    for start in range(0, len(ids), chunk):
        part = sources_evaluate(source_ids=ids[start : start + chunk], now=now)
        total.sources += part.sources
        total.evaluations += part.evaluations
        total.applied += part.applied
        for status, count in part.by_status.items():
            total.by_status[status] += count
    return total


@dataclass(frozen=True)
class PreviewRow:
    """What a rule would say now about one series of one source (nothing is stored)."""

    source: Source
    labels: dict[str, str]
    evaluation: engine.Evaluation


def rule_preview(*, rule: Rule, limit: int = 25, now: datetime | None = None) -> list[PreviewRow]:
    """The rule's current value and verdict per source, for tuning thresholds in the admin."""
    now = now or timezone.now()
    sources = [
        source
        for source in Source.objects.filter(enabled=True).prefetch_related("tags").order_by("name")
        if rule.applies_to(source.pk, {tag.pk for tag in source.tags.all()})
    ][:limit]
    if not sources:
        return []
    book = schedule_book()
    data = source_data_load(sources, [rule], now, book=book)
    rows = []
    for source in sources:
        spec = rule_spec(rule, source.pk)
        if spec is None:
            continue
        session = gate(timetables_of(rule, source, book), now)
        if not session.open:
            continue  # resting: nothing to say until its schedule opens
        expectation = expectation_of(rule, source, book)
        for subject in subjects(
            rule, data[source.pk], now, opened_at=session.opened_at, expectation=expectation
        ):
            rows.append(PreviewRow(source, subject.labels, subject.judge(spec, now, None)))
    return rows
