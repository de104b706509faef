"""Event models of the audit history: one per tracked configuration table.

PostgreSQL triggers (django-pghistory) write a row here for every insert, update and
delete of the tracked tables, so bulk admin actions and `queryset.update()` are
recorded as well as form saves. Who and from where come from the request context
(`audit.middleware`).

Only configuration is tracked. The high-volume tables (samples, series, alerts,
notifications, heartbeats, events) are not: a trigger there would tax every ingest.
Columns the workers rewrite on their own (delivery counters, a check's state) are
left out of the snapshot and do not fire the update trigger, and secrets are never
copied: a change of a channel's secrets is recorded as a `secrets_changed` event with
the other columns only.
"""

from __future__ import annotations

from typing import Any

import pghistory
from django.db import models

from alerts.models import Channel, Policy, Rule, Silence, Threshold, ThresholdOverride
from chat.models import ChatIdentity
from health.models import HealthCheck
from metrics.models import Source, Tag, TradingControl


def _row_events() -> tuple[Any, ...]:
    """Fresh trackers for one model: a tracker learns its model's fields when set up."""
    return (pghistory.InsertEvent(), pghistory.UpdateEvent(), pghistory.DeleteEvent())


def _fields(model: type[models.Model], *, exclude: tuple[str, ...] = ()) -> list[str]:
    """The concrete columns of `model` to snapshot, without `exclude` and `updated_at`."""
    skip = {"updated_at", *exclude}
    return [field.name for field in model._meta.local_fields if field.name not in skip]


def _event_model(
    model: type[models.Model],
    name: str,
    *,
    exclude: tuple[str, ...] = (),
    trackers: tuple[Any, ...] = (),
) -> Any:  # a model class made at run time: typed Any so its manager type-checks
    return pghistory.create_event_model(
        model,
        *_row_events(),
        *trackers,
        fields=_fields(model, exclude=exclude),
        model_name=name,
        app_label="audit",
        abstract=False,
        obj_field=pghistory.ObjForeignKey(related_name="audit_events", db_index=True),
    )


RuleEvent = _event_model(Rule, "RuleEvent")
ThresholdEvent = _event_model(Threshold, "ThresholdEvent")
ThresholdOverrideEvent = _event_model(ThresholdOverride, "ThresholdOverrideEvent")
SilenceEvent = _event_model(Silence, "SilenceEvent")
PolicyEvent = _event_model(Policy, "PolicyEvent")
SourceEvent = _event_model(Source, "SourceEvent")
TagEvent = _event_model(Tag, "TagEvent")
# Every change of a trading state: who or which rule, why, when, from which alert.
TradingControlEvent = _event_model(TradingControl, "TradingControlEvent")
# Who in Telegram or Slack acts as whom: linked with a code, or by an Admin.
ChatIdentityEvent = _event_model(ChatIdentity, "ChatIdentityEvent")

# Delivery bookkeeping the workers write after every send: not configuration.
CHANNEL_STATISTICS = (
    "sent_count",
    "failed_count",
    "last_success_at",
    "last_error",
    "last_error_at",
)
ChannelEvent = _event_model(
    Channel,
    "ChannelEvent",
    exclude=("secrets_encrypted", *CHANNEL_STATISTICS),
    trackers=(
        pghistory.UpdateEvent(
            "secrets_changed", condition=pghistory.AnyChange("secrets_encrypted")
        ),
    ),
)

# A check's state (status, counters, breaker, schedule) is the runner's, rewritten on
# every run: only what a person configures is history.
HEALTH_CHECK_STATE = (
    "status", "observed_status", "status_changed_at", "consecutive_failures",
    "consecutive_successes", "breaker", "breaker_failures", "breaker_opened_at",
    "next_run_at", "lease_until", "last_run_at", "last_score", "last_latency_ms",
    "last_summary",
)  # fmt: skip
HealthCheckEvent = _event_model(HealthCheck, "HealthCheckEvent", exclude=HEALTH_CHECK_STATE)


def _link_event_model(through: type[models.Model], name: str) -> Any:
    """Events of a many-to-many link table (a tag added to a source, a channel to a policy).

    Links are only ever added or removed, never updated.
    """
    return pghistory.create_event_model(
        through,
        pghistory.InsertEvent("added"),
        pghistory.DeleteEvent("removed"),
        model_name=name,
        app_label="audit",
        abstract=False,
        # Link rows have no lasting identity: the event keeps both ends instead.
        obj_field=None,  # type: ignore[arg-type]
    )


# Their triggers are installed by migration 0002 (the migration autodetector does not
# see the link tables Django creates on its own).
SourceTagsEvent = _link_event_model(Source.tags.through, "SourceTagsEvent")
SilenceSourcesEvent = _link_event_model(Silence.sources.through, "SilenceSourcesEvent")
SilenceTagsEvent = _link_event_model(Silence.tags.through, "SilenceTagsEvent")
SilenceRulesEvent = _link_event_model(Silence.rules.through, "SilenceRulesEvent")
PolicyChannelsEvent = _link_event_model(Policy.channels.through, "PolicyChannelsEvent")
PolicyEscalationChannelsEvent = _link_event_model(
    Policy.escalation_channels.through, "PolicyEscalationChannelsEvent"
)
PolicySourcesEvent = _link_event_model(Policy.sources.through, "PolicySourcesEvent")
PolicyTagsEvent = _link_event_model(Policy.tags.through, "PolicyTagsEvent")
PolicyRulesEvent = _link_event_model(Policy.rules.through, "PolicyRulesEvent")

LINK_EVENT_MODELS: tuple[Any, ...] = (
    SourceTagsEvent, SilenceSourcesEvent, SilenceTagsEvent, SilenceRulesEvent,
    PolicyChannelsEvent, PolicyEscalationChannelsEvent, PolicySourcesEvent, PolicyTagsEvent,
    PolicyRulesEvent,
)  # fmt: skip
