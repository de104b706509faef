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

from datetime import datetime

import orjson

from alerts import engine
from alerts.evaluation import (
    RULES_GENERATION,
    RULES_TTL_SECONDS,
    rule_spec,
    specs_forget,
    with_thresholds,
)
from alerts.lifecycle import Finding, apply_finding
from alerts.models import Alert, Rule
from core.generations import KeptCopy
from metrics.services import system_source

from .checks import CheckResult
from .models import HealthCheck, HealthReport
from .scoring import Status

# Kept like the evaluated rules (`alerts.evaluation`): until an edit of rules,
# thresholds or overrides is committed, so an edit applies at the next check run.
_health_rules: KeptCopy[list[Rule]] = KeptCopy(
    RULES_GENERATION, what="health rules", ttl_seconds=RULES_TTL_SECONDS
)


def forget_caches() -> None:
    """Read health rules afresh (tests, or after an edit)."""
    _health_rules.forget()


def health_rules() -> list[Rule]:
    """The enabled health rules with their thresholds and overrides."""
    return _health_rules.get(_health_rules_read)


def _health_rules_read() -> list[Rule]:
    rules = list(with_thresholds(Rule.objects.filter(enabled=True, kind=Rule.Kind.HEALTH)))
    specs_forget()  # specs of the rule objects read before would outlive an edit
    return rules


def rule_applies(rule: Rule, check: HealthCheck, source_id: int, tag_ids: set[int]) -> bool:
    """Whether `rule` judges `check`, whose alerts belong to source `source_id`."""
    if rule.metric not in ("*", check.name, f"kind:{check.kind}"):
        return False
    return rule.applies_to(source_id, tag_ids)


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
