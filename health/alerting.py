"""Health status changes as alerts, through the alerts lifecycle.

Rules of kind `health` are judged here, not by metric evaluation. A rule applies to a
check when its `metric` is the check's name, `kind:<kind>` (e.g. `kind:http`) or `*`,
and its scope (all, one source, a tag) takes in the check's source. The value
compared with the rule's thresholds is the check's status level after flap damping:
0 healthy, 1 degraded, 2 unhealthy, 3 critical. A breach opens or updates the alert of
(rule, source, check) by fingerprint; a healthy status resolves it.

Infrastructure checks (HTTP, TCP, PostgreSQL, broker, host) without a source raise
their alerts on Tradewatch's own system source, created on first need.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Final

import orjson
from django.db import IntegrityError, transaction

from alerts import engine
from alerts.evaluation import with_thresholds
from alerts.lifecycle import Finding, apply_finding
from alerts.models import Alert, Rule
from metrics.models import Source
from metrics.services import SYSTEM_SOURCE_NAME
from metrics.services import system_source as metrics_system_source

from .checks import CheckResult
from .models import HealthCheck, HealthReport
from .scoring import Status

RULES_TTL_SECONDS: Final = 5.0
_rules_cache: tuple[float, list[Rule]] | None = None
_system_source_id: int | None = None


def system_source_name() -> str:
    return SYSTEM_SOURCE_NAME


def system_source() -> Source:
    """Tradewatch's own source: where alerts of checks without a source belong."""
    global _system_source_id
    if _system_source_id is not None:
        found = Source.objects.filter(pk=_system_source_id).first()
        if found is not None:
            return found
    try:
        with transaction.atomic():
            source = metrics_system_source()
    except IntegrityError:  # another runner created it a moment ago
        source = Source.objects.get(name=SYSTEM_SOURCE_NAME)
    _system_source_id = source.pk
    return source


def forget_caches() -> None:
    """Read health rules and the system source afresh (tests, or after an edit)."""
    global _rules_cache, _system_source_id
    _rules_cache = None
    _system_source_id = None


def health_rules() -> list[Rule]:
    """The enabled health rules with their thresholds and overrides (cached a few seconds)."""
    global _rules_cache
    if _rules_cache is not None and time.monotonic() - _rules_cache[0] < RULES_TTL_SECONDS:
        return _rules_cache[1]
    rules = list(with_thresholds(Rule.objects.filter(enabled=True, kind=Rule.Kind.HEALTH)))
    _rules_cache = (time.monotonic(), rules)
    return rules


def rule_applies(rule: Rule, check: HealthCheck, source_id: int, tag_ids: set[int]) -> bool:
    """Whether `rule` judges `check`, whose alerts belong to source `source_id`."""
    if rule.metric not in ("*", check.name, f"kind:{check.kind}"):
        return False
    return rule.applies_to(source_id, tag_ids)


def rule_spec(rule: Rule, source_id: int) -> engine.RuleSpec | None:
    """The engine's view of a health rule for one source (overrides applied)."""
    thresholds = []
    for threshold in rule.thresholds.all():
        value: float | None = threshold.value
        clear = threshold.clear_value
        for override in threshold.overrides.all():
            if override.source_id == source_id:
                if override.enabled:
                    value, clear = override.value, override.clear_value
                else:
                    value, clear = None, None
        if value is not None:
            thresholds.append(
                engine.Threshold(
                    engine.Severity(threshold.severity),
                    engine.Comparison(threshold.comparison),
                    value,
                    clear,
                )
            )
    if not thresholds:
        return None
    return engine.RuleSpec(kind=engine.RuleKind.THRESHOLD, thresholds=tuple(thresholds))


def check_labels(check: HealthCheck) -> tuple[dict[str, str], str]:
    """The alert's labels (the check's name) and their canonical key."""
    labels = {"check": check.name}
    return labels, orjson.dumps(labels, option=orjson.OPT_SORT_KEYS).decode()


def health_alerts_apply(
    *, check: HealthCheck, status: Status, result: CheckResult, now: datetime, changed: bool
) -> list[Alert]:
    """Open, update or resolve the alerts of the health rules that judge `check`.

    A healthy check that did not change has nothing to say: it is skipped, so the
    many checks that stay green cost no alert queries.
    """
    if status is Status.UNKNOWN or (status is Status.HEALTHY and not changed):
        return []
    rules = health_rules()
    if not rules:
        return []
    source = check.source if check.source_id is not None else system_source()
    assert source is not None
    tag_ids: set[int] = set()
    if any(rule.scope == Rule.Scope.TAG for rule in rules):
        tag_ids = set(source.tags.values_list("id", flat=True))
    labels, labels_key = check_labels(check)
    explanation = ""
    alerts = []
    for rule in rules:
        if not rule_applies(rule, check, source.pk, tag_ids):
            continue
        spec = rule_spec(rule, source.pk)
        if spec is None:
            continue
        evaluation = engine.evaluate_aggregate(spec, float(status.level), 1)
        finding = Finding(
            rule=rule, source_id=source.pk, labels=labels, labels_key=labels_key,
            evaluation=evaluation, now=now,
        )  # fmt: skip
        alert = apply_finding(finding)
        if alert is None:
            continue
        if alert.is_open and not rule.message_template:
            # The lifecycle's default message says "2 >= 2"; say what is wrong instead.
            if not explanation:  # read once, however many rules judge the check
                explanation = what_is_wrong(check, result)
            alert.message = f"{check.name} on {source.name}: {status.label}: {explanation}"[:1000]
            Alert.objects.filter(pk=alert.pk).update(message=alert.message)
        alerts.append(alert)
    return alerts


def what_is_wrong(check: HealthCheck, result: CheckResult) -> str:
    """Why the check's status is bad, in words, for its alert's message.

    Mostly the probe's own summary. But a healthy probe while flap damping still holds
    the status bad (recovering) says nothing of the failure: then it is the newest
    report that found one, and how far the recovery has come.
    """
    if result.status is not Status.HEALTHY:
        return result.summary()
    failed = (
        HealthReport.objects.filter(health_check_id=check.pk)
        .exclude(status=Status.HEALTHY.value)
        .order_by("-created_at", "-id")
        .values_list("issues", "warnings", "status")
        .first()
    )
    failure = ("; ".join(failed[0] or failed[1]) or Status(failed[2]).label) if failed else ""
    progress = (
        f"recovering: {check.consecutive_successes} of {check.successes_to_recover} healthy results"
    )
    return f"{failure} ({progress})" if failure else progress
