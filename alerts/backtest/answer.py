"""A backtest's findings as plain JSON values: what the API, the admin and the CLI show."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from alerts.models import Channel, Policy, Severity

from .replay import Replay, RunResult
from .timeline import ReplayedAlert

# What one answer lists in full; the counts always cover everything.
MAX_ALERTS: Final = 1000
MAX_NOTIFICATIONS: Final = 1000


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _severity(value: int) -> str:
    return Severity(value).label.lower()


def threshold_rows(thresholds: Sequence[Any]) -> list[dict[str, Any]]:
    """Thresholds (the engine's, or the rule's rows) as {severity, comparison, value,
    clear_value}, most severe first."""
    rows = []
    for threshold in sorted(thresholds, key=lambda t: int(t.severity), reverse=True):
        comparison = threshold.comparison
        rows.append(
            {
                "severity": _severity(int(threshold.severity)),
                "comparison": getattr(comparison, "value", comparison),
                "value": threshold.value,
                "clear_value": threshold.clear_value,
            }
        )
    return rows


def _alert(alert: ReplayedAlert, names: dict[int, str], end: datetime) -> dict[str, Any]:
    stop = alert.resolved_at or end
    return {
        "source": names.get(alert.source_id, str(alert.source_id)),
        "source_id": alert.source_id,
        "labels": alert.labels,
        "start": _iso(alert.first_seen),
        "fired_at": _iso(alert.fired_at),
        "end": _iso(alert.resolved_at),
        "state_at_end": alert.state,
        "resolution": alert.resolution or None,
        "seconds": round((stop - alert.first_seen).total_seconds(), 3),
        "peak_severity": _severity(alert.peak_severity),
        "peak_value": alert.peak_value,
        "evaluations": alert.count,
        "notifications": alert.notifications,
    }


def _run(
    result: RunResult,
    replay: Replay,
    names: dict[int, str],
    policies: dict[int, str],
    channels: dict[int, str],
) -> dict[str, Any]:
    timeline = result.timeline
    alerts = timeline.alerts
    thresholds = (
        result.run.thresholds
        if result.run.thresholds is not None
        else list(replay.rule.thresholds.all())
    )
    by_policy: dict[int, Counter[str]] = defaultdict(Counter)
    channels_of: dict[int, set[int]] = defaultdict(set)
    for sent in timeline.sent:
        by_policy[sent.policy_id][sent.event] += 1
        channels_of[sent.policy_id].add(sent.channel_id)
    fired = [alert for alert in alerts if alert.fired_at is not None]
    firing_seconds = sum(
        ((alert.resolved_at or replay.end) - alert.fired_at).total_seconds()
        for alert in fired
        if alert.fired_at is not None
    )
    return {
        "label": result.run.label,
        "thresholds": threshold_rows(thresholds),
        "summary": {
            "alerts": len(alerts),
            "fired": len(fired),
            "open_at_end": sum(1 for alert in alerts if alert.is_open),
            "firing_seconds": round(firing_seconds, 3),
            "notifications": len(timeline.sent),
            "judged": result.judged,
        },
        "alerts": [_alert(alert, names, replay.end) for alert in alerts[:MAX_ALERTS]],
        "notifications": {
            "total": len(timeline.sent),
            "by_policy": [
                {
                    "policy_id": policy_id,
                    "policy": policies.get(policy_id, str(policy_id)),
                    "channels": sorted(channels.get(c, str(c)) for c in channels_of[policy_id]),
                    "events": dict(sorted(events.items())),
                    "total": sum(events.values()),
                }
                for policy_id, events in sorted(by_policy.items())
            ],
            "items": [
                {
                    "at": _iso(sent.at),
                    "alert": sent.alert,
                    "event": sent.event,
                    "severity": _severity(sent.severity),
                    "policy": policies.get(sent.policy_id, str(sent.policy_id)),
                    "channel": channels.get(sent.channel_id, str(sent.channel_id)),
                }
                for sent in timeline.sent[:MAX_NOTIFICATIONS]
            ],
        },
    }


def replay_answer(replay: Replay) -> dict[str, Any]:
    """The JSON answer of a backtest (`POST /api/v1/rules/<id>/backtest`)."""
    rule = replay.rule
    names = {source.pk: source.name for source in replay.sources}
    policies = dict(Policy.objects.values_list("pk", "name"))
    channels = dict(Channel.objects.values_list("pk", "name"))
    return {
        "rule": {
            "id": rule.pk,
            "name": rule.name,
            "kind": rule.kind,
            "metric": rule.metric,
            "aggregation": rule.aggregation,
            "window_seconds": rule.window.total_seconds(),
            "for_seconds": rule.for_duration.total_seconds(),
            "keep_firing_for_seconds": rule.keep_firing_for.total_seconds(),
            "m_of_n": (None if rule.m_of_n_m is None else {"m": rule.m_of_n_m, "n": rule.m_of_n_n}),
            "missing_data": rule.missing_data,
        },
        "from": _iso(replay.start),
        "to": _iso(replay.end),
        "sources": [{"id": source.pk, "name": source.name} for source in replay.sources],
        "cadence": {"beat_seconds": replay.beat_seconds, "instants": replay.instants},
        "samples": replay.samples,
        "seconds": round(replay.seconds, 3),
        "runs": [_run(result, replay, names, policies, channels) for result in replay.runs],
        "charts": [
            {
                "source": names.get(chart.source_id, str(chart.source_id)),
                "source_id": chart.source_id,
                "labels": chart.labels,
                "what": chart.what,
                "points": [[_iso(at), low, high] for at, low, high in chart.buckets],
            }
            for chart in replay.charts
        ],
        "notes": replay.notes,
    }
