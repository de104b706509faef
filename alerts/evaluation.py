"""Evaluating rules on sources: load the data in a few queries, judge, apply.

The number of queries does not grow with the number of rules or sources evaluated
together (`alerts.loading` reads each kind of data once for the whole set of
sources), and only findings that matter (a breach, or an alert already open) touch
alert rows. That is what lets one worker evaluate 1,000
sources x 25 rules within a beat cycle.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection
from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from metrics.models import Source

from . import engine
from .generations import KeptCopy
from .lifecycle import (
    Finding,
    OpenAlert,
    QuietUpdate,
    SilenceMatcher,
    active_silences,
    alert_resolve_obsolete,
    alerts_touch,
    apply_finding,
    fingerprint,
    quiet_update,
)
from .loading import EVENT_PREFIX, HEARTBEAT, SourceData, aggregated_in_sql, source_data_load
from .models import Alert, Rule, RuleSourceState, Threshold, ThresholdOverride

# Rules change rarely and are read for every evaluation, most of them in a request
# that is waiting for its answer: each process keeps them until an edit is committed
# (see `alerts.generations`; one cache round trip per evaluation), so an edit applies
# at the next evaluation in every process. RULES_TTL_SECONDS bounds how long a change
# made straight in the database can go unnoticed.
RULES_GENERATION = "rules-generation"
RULES_TTL_SECONDS = 300.0
_rules: KeptCopy[list[Rule]] = KeptCopy(
    RULES_GENERATION, what="rules", ttl_seconds=RULES_TTL_SECONDS
)


@dataclass
class Summary:
    """What one evaluation pass did, for logs and benchmarks."""

    sources: int = 0
    evaluations: int = 0
    applied: int = 0
    by_status: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def forget_rules_cache() -> None:
    """Make this process's next evaluation read rules afresh (tests)."""
    global _watched_cache
    _rules.forget()
    _watched_cache = None
    _spec_cache.clear()
    _overrides_cache.clear()


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
    return _rules.get(_enabled_rules_read)


def _enabled_rules_read() -> list[Rule]:
    rules = list(with_thresholds(Rule.objects.filter(enabled=True).exclude(kind=Rule.Kind.HEALTH)))
    # Specs are built from these rule objects (and their overrides): rebuild them too.
    _spec_cache.clear()
    _overrides_cache.clear()
    return rules


# Which metric names enabled rules read, for ingestion to skip evaluating batches no rule
# watches (settings.TRADEWATCH_WATCHED_METRICS_FUNCTION names this function). Asked for
# every batch, so it is one light query kept a few seconds, without even a cache round
# trip: a rule added for a new metric sees its data evaluated within WATCHED_TTL_SECONDS
# (and on beat meanwhile).
WATCHED_TTL_SECONDS = 5.0
_watched_cache: tuple[float, frozenset[str]] | None = None


def watched_metric_names() -> frozenset[str]:
    """Names of the metrics some enabled rule reads (its metric, or its guard metric)."""
    global _watched_cache
    if _watched_cache is not None and time.monotonic() - _watched_cache[0] < WATCHED_TTL_SECONDS:
        return _watched_cache[1]
    names: set[str] = set()
    for kind, metric, guard in (
        Rule.objects.filter(enabled=True)
        .exclude(kind=Rule.Kind.HEALTH)
        .values_list("kind", "metric", "guard_metric")
    ):
        # Event rules name an event type, which metric batches never carry.
        if kind != Rule.Kind.EVENT:
            names.add(metric)
        if guard:
            names.add(guard)
    watched = frozenset(names)
    _watched_cache = (time.monotonic(), watched)
    return watched


# (rule, source) -> spec, valid as long as the rules cache that built it.
_spec_cache: dict[tuple[int, int], engine.RuleSpec | None] = {}
# rule -> the sources with an override of one of its thresholds
_overrides_cache: dict[int, frozenset[int]] = {}


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
    spec = None
    if thresholds:
        spec = engine.RuleSpec(
            kind=engine.RuleKind(rule.kind),
            thresholds=tuple(thresholds),
            aggregation=engine.Aggregation(rule.aggregation),
            window=rule.window,
            min_samples=rule.min_samples,
            change_percent=rule.change_percent,
        )
    if len(_spec_cache) > 100_000:
        _spec_cache.clear()
    _spec_cache[key] = spec
    return spec


def _labels_match(wanted: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in wanted.items())


@dataclass(frozen=True)
class Subject:
    """One series a rule judges: its points, or the database's aggregate of its window."""

    labels: dict[str, str]
    labels_key: str
    points: list[engine.Point]
    aggregate: tuple[float | None, int] | None = None

    def judge(
        self, spec: engine.RuleSpec, now: datetime, firing: engine.Threshold | None
    ) -> engine.Evaluation:
        if self.aggregate is not None:
            value, samples = self.aggregate
            return engine.evaluate_aggregate(spec, value, samples, firing=firing)
        return engine.evaluate(spec, self.points, now=now, firing=firing)


def _subjects(rule: Rule, data: SourceData, now: datetime) -> Iterable[Subject]:
    """Each series the rule judges on this source."""
    if rule.kind == Rule.Kind.EVENT:
        yield Subject({}, "{}", data.events.get(rule.metric, []))
        return
    if rule.kind == Rule.Kind.ABSENCE:
        if rule.metric == HEARTBEAT:
            newest = data.heartbeat
        elif rule.metric.startswith(EVENT_PREFIX):
            newest = data.newest_event.get(rule.metric.removeprefix(EVENT_PREFIX))
        else:
            stamps = [
                row["last_ts"]
                for row in data.series
                if row["name"] == rule.metric
                and row["last_ts"] is not None
                and _labels_match(rule.labels, row["labels"])
            ]
            newest = max(stamps, default=None)
        yield Subject({}, "{}", [engine.Point(min(newest, now), 0.0)] if newest is not None else [])
        return
    in_sql = connection.vendor == "postgresql" and aggregated_in_sql(rule)
    for row in data.series:
        if row["name"] != rule.metric or not _labels_match(rule.labels, row["labels"]):
            continue
        if rule.kind == Rule.Kind.THRESHOLD and rule.aggregation == Rule.Aggregation.LAST:
            points = (
                [engine.Point(min(row["last_ts"], now), row["last_value"])]
                if row["last_ts"] is not None and row["last_value"] is not None
                else []
            )
        elif in_sql:
            key = (row["id"], rule.aggregation, rule.window)
            yield Subject(row["labels"], row["labels_key"], [], data.aggregates.get(key, (None, 0)))
            continue
        else:
            points = data.samples.get(row["id"], [])
        yield Subject(row["labels"], row["labels_key"], points)


def _firing_threshold(
    open_alert: OpenAlert | None, spec: engine.RuleSpec
) -> engine.Threshold | None:
    """The threshold an alert fires on, so hysteresis keeps it until its clear value."""
    if open_alert is None or open_alert.state != Alert.State.FIRING:
        return None
    return next((t for t in spec.thresholds if int(t.severity) == open_alert.severity), None)


def _m_of_n(rule: Rule, source_id: int, labels_key: str, held: bool, now: datetime) -> bool:
    state, _ = RuleSourceState.objects.get_or_create(
        rule=rule, source_id=source_id, labels_key=labels_key, defaults={"evaluated_at": now}
    )
    assert rule.m_of_n_m is not None
    assert rule.m_of_n_n is not None
    state.history = (state.history + ("1" if held else "0"))[-rule.m_of_n_n :]
    state.evaluated_at = now
    state.save(update_fields=["history", "evaluated_at"])
    return engine.condition_held([c == "1" for c in state.history], rule.m_of_n_m, rule.m_of_n_n)


def _guard_passes(rule: Rule, data: SourceData) -> bool:
    """Whether the rule's guard metric (e.g. trade_count >= 10) allows judging now."""
    if not rule.guard_metric:
        return True
    minimum = rule.guard_minimum if rule.guard_minimum is not None else 0.0
    for row in data.series:
        if row["name"] == rule.guard_metric and row["labels_key"] == "{}":
            return row["last_value"] is not None and row["last_value"] >= minimum
    return False


def _inhibited(rule: Rule, data: SourceData) -> bool:
    if rule.inhibited_by == Rule.InhibitedBy.KILL_SWITCH:
        return data.kill_switch_active
    if rule.inhibited_by == Rule.InhibitedBy.HEARTBEAT:
        return data.heartbeat_firing
    return False


def sources_evaluate(
    *,
    source_ids: Sequence[int],
    now: datetime | None = None,
    loaded: Sequence[Source] | None = None,
) -> Summary:
    """Evaluate every enabled rule that applies to each enabled source of `source_ids`.

    `loaded`: those sources, read by the caller a moment ago (one query less).
    """
    now = now or timezone.now()
    summary = Summary()
    rules = enabled_rules()
    if loaded is None:
        sources = list(Source.objects.filter(pk__in=source_ids, enabled=True))
    else:
        sources = [source for source in loaded if source.enabled]
    if not sources:
        return summary
    data = source_data_load(sources, rules, now)
    # Read when a first finding needs them: most evaluations find nothing to apply.
    silences: list[SilenceMatcher] | None = None
    quiet: list[QuietUpdate] = []
    summary.sources = len(sources)
    for source in sources:
        source_data = data[source.pk]
        judging: set[int] = set()
        for rule in rules:
            if not rule.applies_to(source.pk, source_data.tag_ids):
                continue
            spec = rule_spec(rule, source.pk)
            if spec is None:
                continue
            judging.add(rule.pk)
            for subject in _subjects(rule, source_data, now):
                labels, labels_key = subject.labels, subject.labels_key
                fp = fingerprint(rule.pk, source.pk, labels_key)
                open_alert = source_data.open_alerts.get(fp)
                evaluation = subject.judge(spec, now, _firing_threshold(open_alert, spec))
                if not _guard_passes(rule, source_data):
                    evaluation = engine.Evaluation(
                        status="insufficient_data", value=None, threshold=None,
                        severity=None, samples=evaluation.samples,
                    )  # fmt: skip
                summary.evaluations += 1
                summary.by_status[evaluation.status] += 1
                if rule.m_of_n_m is not None and evaluation.status in ("breach", "ok"):
                    held = _m_of_n(rule, source.pk, labels_key, evaluation.status == "breach", now)
                    if not held and evaluation.status == "breach":
                        evaluation = engine.Evaluation(
                            status="ok", value=evaluation.value, threshold=None,
                            severity=None, samples=evaluation.samples,
                        )  # fmt: skip
                # Nothing open and nothing wrong: no row to touch.
                if (
                    open_alert is None
                    and evaluation.status != "breach"
                    and not (
                        evaluation.status == "no_data"
                        and rule.missing_data == Rule.MissingData.ALERT
                    )
                ):
                    continue
                if silences is None:
                    silences = active_silences(now)
                finding = Finding(
                    rule=rule,
                    source_id=source.pk,
                    labels=labels,
                    labels_key=labels_key,
                    evaluation=evaluation,
                    now=now,
                    inhibited=_inhibited(rule, source_data),
                    silences=silences,
                    source=source,
                    tag_ids=frozenset(source_data.tag_ids),
                    known_closed=open_alert is None,
                )
                update = quiet_update(finding, open_alert, source.name) if open_alert else None
                if update is not None:
                    quiet.append(update)
                else:
                    apply_finding(finding)
                summary.applied += 1
        # Alerts of rules that were disabled, rescoped or switched off for this source
        # would otherwise stay open for ever: nothing judges them any more.
        for open_alert in source_data.open_alerts.values():
            if open_alert.rule_id not in judging:
                alert_resolve_obsolete(alert_id=open_alert.id, now=now)
                summary.applied += 1
    alerts_touch(quiet, now)
    return summary


def source_evaluate(
    *, source_id: int, now: datetime | None = None, source: Source | None = None
) -> Summary:
    """Evaluate one source (right after its data arrived); `source`: its row, if read."""
    loaded = None if source is None else [source]
    return sources_evaluate(source_ids=[source_id], now=now, loaded=loaded)


def all_sources_evaluate(*, now: datetime | None = None, chunk: int = 500) -> Summary:
    """Evaluate every enabled source (on beat: absence, staleness, `for` durations)."""
    total = Summary()
    ids = list(Source.objects.filter(enabled=True).order_by("pk").values_list("pk", flat=True))
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
    data = source_data_load(sources, [rule], now)
    rows = []
    for source in sources:
        spec = rule_spec(rule, source.pk)
        if spec is None:
            continue
        for subject in _subjects(rule, data[source.pk], now):
            rows.append(PreviewRow(source, subject.labels, subject.judge(spec, now, None)))
    return rows
