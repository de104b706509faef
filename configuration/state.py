"""Tradewatch's configuration as it stands, read into the file's canonical form.

The reads behind `config export` and behind the diff of `config apply`: a handful of
queries (one per table, related rows prefetched), whatever the number of objects.
Secrets are never read into the document: a channel's secrets appear as the
`${NAME}` references they were applied from; their values stay in `Secrets`, for
comparing only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from alerts.models import Channel, Policy, Rule, Silence
from health.models import HealthCheck
from metrics.models import Schedule, Source
from metrics.schedules import windows_read

from .document import Document, Item, timestamp_text
from .fields import SECTIONS, WEEKDAY_NAMES, duration_text, section_fields, severity_name
from .models import ChannelSecretReferences
from .secrets import reference_text

# A secret stored without a reference: kept, never written to a file.
STORED = "(stored, no reference)"


@dataclass(frozen=True)
class Secrets:
    """The channels' stored secrets: values (for comparing) and references, by name."""

    values: dict[str, dict[str, str]] = field(default_factory=dict)
    references: dict[str, dict[str, str]] = field(default_factory=dict)


def _duration(value: timedelta | None) -> str | None:
    return None if value is None else duration_text(value)


def _names(objects: Any) -> list[str]:
    return sorted(obj.name for obj in objects)


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def schedule_item(schedule: Schedule) -> Item:
    return {
        "name": schedule.name,
        "kind": schedule.kind,
        "exchange": schedule.exchange,
        "timezone": schedule.timezone,
        "windows": _windows(schedule.windows),
        "invert": schedule.invert,
        "description": schedule.description,
    }


def _windows(stored: Any) -> list[str]:
    try:
        return [window.text() for window in windows_read(stored)]
    except ValueError:
        return [str(item) for item in stored] if isinstance(stored, list) else []


def _schedule(obj: Any) -> str | None:
    return obj.schedule.name if obj.schedule_id is not None and obj.schedule else None


def source_item(source: Source) -> Item:
    return {
        "name": source.name,
        "kind": source.kind,
        "description": source.description,
        "enabled": source.enabled,
        "tags": _names(source.tags.all()),
        "heartbeat_period": duration_text(source.heartbeat_period),
        "heartbeat_grace": duration_text(source.heartbeat_grace),
        "schedule": _schedule(source),
        "expectations": [
            {
                "signal": expectation.signal,
                "grace": _duration(expectation.grace),
                "schedule": _schedule(expectation),
                "enabled": expectation.enabled,
            }
            for expectation in sorted(source.expectations.all(), key=lambda e: e.signal)
        ],
    }


def channel_item(channel: Channel, secrets: Secrets, *, recovery: bool) -> Item:
    stored = secrets.values.get(channel.name, {})
    references = secrets.references.get(channel.name, {})
    item: Item = {"name": channel.name}
    if not recovery:
        item["kind"] = channel.kind
    item |= {
        "enabled": channel.enabled,
        "min_severity": severity_name(channel.min_severity),
        "rate_limit": channel.rate_limit,
        "rate_window": duration_text(channel.rate_window),
        "config": _sorted(channel.config),
        "secrets": {
            key: reference_text(references[key]) if key in references else STORED
            for key in sorted(stored)
        },
    }
    return item


def rule_item(rule: Rule) -> Item:
    thresholds = sorted(rule.thresholds.all(), key=lambda threshold: -threshold.severity)
    return {
        "name": rule.name,
        "description": rule.description,
        "enabled": rule.enabled,
        "kind": rule.kind,
        "metric": rule.metric,
        "labels": _sorted(rule.labels),
        "aggregation": rule.aggregation,
        "window": duration_text(rule.window),
        "change_percent": rule.change_percent,
        "source": rule.source.name if rule.source else None,
        "tag": rule.tag.name if rule.tag else None,
        "for_duration": duration_text(rule.for_duration),
        "keep_firing_for": duration_text(rule.keep_firing_for),
        "min_samples": rule.min_samples,
        "guard_metric": rule.guard_metric,
        "guard_minimum": _float(rule.guard_minimum),
        "m_of_n_m": rule.m_of_n_m,
        "m_of_n_n": rule.m_of_n_n,
        "missing_data": rule.missing_data,
        "inhibited_by": rule.inhibited_by,
        "message_template": rule.message_template,
        "trading_actions": rule.trading_actions,
        "schedule": _schedule(rule),
        "thresholds": [
            {
                "severity": severity_name(threshold.severity),
                "comparison": threshold.comparison,
                "value": float(threshold.value),
                "clear_value": _float(threshold.clear_value),
                "action": threshold.action,
                "overrides": sorted(
                    (
                        {
                            "source": override.source.name,
                            "value": float(override.value),
                            "clear_value": _float(override.clear_value),
                            "enabled": override.enabled,
                        }
                        for override in threshold.overrides.all()
                    ),
                    key=lambda item: item["source"],
                ),
            }
            for threshold in thresholds
        ],
    }


def policy_item(policy: Policy) -> Item:
    return {
        "name": policy.name,
        "enabled": policy.enabled,
        "min_severity": severity_name(policy.min_severity),
        "sources": _names(policy.sources.all()),
        "tags": _names(policy.tags.all()),
        "rules": _names(policy.rules.all()),
        "channels": _names(policy.channels.all()),
        "notify_resolved": policy.notify_resolved,
        "notify_acknowledged": policy.notify_acknowledged,
        "repeat_seconds": _sorted(policy.repeat_seconds),
        "escalate_after": _duration(policy.escalate_after),
        "escalation_channels": _names(policy.escalation_channels.all()),
        "fallback_channel": policy.fallback_channel.name if policy.fallback_channel else None,
        "digest_daily": policy.digest_daily,
        "digest_weekly_day": None
        if policy.digest_weekly_day is None
        else WEEKDAY_NAMES[policy.digest_weekly_day],
        "digest_time": policy.digest_time.strftime("%H:%M"),
        "digest_timezone": policy.digest_timezone,
    }


def health_check_item(check: HealthCheck) -> Item:
    return {
        "name": check.name,
        "kind": check.kind,
        "source": check.source.name if check.source else None,
        "config": _sorted(check.config),
        "enabled": check.enabled,
        "interval": duration_text(check.interval),
        "timeout": duration_text(check.timeout),
        "failures_to_unhealthy": check.failures_to_unhealthy,
        "successes_to_recover": check.successes_to_recover,
        "breaker_threshold": check.breaker_threshold,
        "breaker_retry": duration_text(check.breaker_retry),
        "recovery_action": check.recovery_action.name if check.recovery_action else None,
        "recover_when": check.recover_when,
    }


def silence_item(silence: Silence) -> Item:
    # Silences until an alert resolves are not in files: each has an end or a schedule.
    assert silence.ends_at is not None or silence.schedule_id is not None
    return {
        "reason": silence.reason,
        "starts_at": timestamp_text(silence.starts_at),
        "ends_at": None if silence.ends_at is None else timestamp_text(silence.ends_at),
        "min_severity": severity_name(silence.min_severity),
        "sources": _names(silence.sources.all()),
        "tags": _names(silence.tags.all()),
        "rules": _names(silence.rules.all()),
        "schedule": _schedule(silence),
    }


def silences_current(now: datetime) -> Any:
    """Silences a file holds: not ended, with an end time or a schedule (not "until an
    alert resolves")."""
    return (
        Silence.objects.filter(
            Q(ends_at__gt=now) | Q(ends_at__isnull=True, schedule__isnull=False),
            expired_at__isnull=True,
            alert__isnull=True,
        )
        .select_related("schedule")
        .prefetch_related("sources", "tags", "rules")
    )


def secrets_stored() -> Secrets:
    """Every channel's decrypted secrets and their references (for comparing only)."""
    references = {
        row.channel.name: dict(row.references)
        for row in ChannelSecretReferences.objects.select_related("channel")
    }
    values = {
        channel.name: channel.secrets
        for channel in Channel.objects.exclude(secrets_encrypted="").only(
            "name", "secrets_encrypted"
        )
    }
    return Secrets(values=values, references=references)


def state_read(
    *, sections: tuple[str, ...] = SECTIONS, now: datetime | None = None
) -> tuple[Document, Secrets]:
    """The configuration now, as a document of `sections`, and the stored secrets."""
    now = now or timezone.now()
    secrets = secrets_stored()
    read: dict[str, list[Item]] = {}
    for section in sections:
        read[section] = _section_items(section, secrets, now)
    assert set(read) <= set(section_fields())
    return Document(read), secrets


def _section_items(section: str, secrets: Secrets, now: datetime) -> list[Item]:
    if section == "schedules":
        return [schedule_item(schedule) for schedule in Schedule.objects.all()]
    if section == "sources":
        sources = Source.objects.select_related("schedule").prefetch_related(
            "tags", "expectations__schedule"
        )
        return [source_item(s) for s in sources]
    if section in ("channels", "recovery_actions"):
        recovery = section == "recovery_actions"
        channels = Channel.objects.all()
        channels = (
            channels.filter(kind=Channel.Kind.RECOVERY)
            if recovery
            else channels.exclude(kind=Channel.Kind.RECOVERY)
        )
        return [channel_item(c, secrets, recovery=recovery) for c in channels]
    if section == "rules":
        rules = Rule.objects.select_related("source", "tag", "schedule").prefetch_related(
            "thresholds__overrides__source"
        )
        return [rule_item(rule) for rule in rules]
    if section == "policies":
        policies = Policy.objects.select_related("fallback_channel").prefetch_related(
            "sources", "tags", "rules", "channels", "escalation_channels"
        )
        return [policy_item(policy) for policy in policies]
    if section == "health_checks":
        checks = HealthCheck.objects.select_related("source", "recovery_action")
        return [health_check_item(check) for check in checks]
    if section == "silences":
        return [silence_item(silence) for silence in silences_current(now)]
    raise ValueError(f"Unknown section {section!r}; the sections are {', '.join(SECTIONS)}.")


def exported(document: Document) -> Document:
    """`document` as a file may show it: secrets without a reference left out."""
    sections: dict[str, list[Item]] = {}
    for section, items in document.sections.items():
        if section in ("channels", "recovery_actions"):
            items = [
                {**item, "secrets": {k: v for k, v in item["secrets"].items() if v != STORED}}
                for item in items
            ]
        sections[section] = items
    return Document(sections)
