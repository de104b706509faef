"""Shapes of the operator alerts API: alerts, their timelines and silences, as JSON.

Output serializers here are shared by several operations (list, detail, acknowledge,
resolve); each view keeps its own input serializer. Severities, states and kinds are
plain strings, not OpenAPI enums: enum components are named after the field, and
`severity` or `state` mean other sets elsewhere in the API.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from alerts import selectors
from alerts.models import Alert, AlertTransition, Silence
from alerts.silences import schedule_open
from core.query_params import ParamError, parse_time

_OLDEST, _NEWEST = 0, datetime(9999, 1, 1, tzinfo=UTC).timestamp()
SEVERITY_HELP = f"One of {', '.join(selectors.SEVERITY_LABELS)} (least to most urgent)."


@extend_schema_field(
    {
        "oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
        "description": "ISO 8601 with a UTC offset, or UNIX seconds.",
        "example": "2026-03-02T12:00:00Z",
    }
)
class TimestampField(serializers.Field[datetime, Any, str, Any]):
    """An instant read as ISO 8601 with an offset, or UNIX seconds (a number or digits)."""

    def to_internal_value(self, data: Any) -> datetime:
        if isinstance(data, int | float) and not isinstance(data, bool):
            if not math.isfinite(data) or not _OLDEST <= data < _NEWEST:
                raise serializers.ValidationError("UNIX seconds must be between 1970 and 9999.")
            return datetime.fromtimestamp(data, tz=UTC)
        if not isinstance(data, str):
            raise serializers.ValidationError("Must be ISO 8601 with an offset, or UNIX seconds.")
        try:
            return parse_time(data, self.field_name or "time")
        except ParamError as exc:
            raise serializers.ValidationError(
                exc.message[:1].upper() + exc.message[1:] + "."
            ) from None

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


@extend_schema_field({"type": "string", "description": SEVERITY_HELP, "example": "warning"})
class SeverityField(serializers.Field[int, Any, str, Any]):
    """A severity shown as its lower-case label (`warning`)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, value: int) -> str:
        return selectors.severity_label(value)


@extend_schema_serializer(component_name="NamedRef")
class NamedRefSerializer(serializers.Serializer[Any]):
    """A rule or source: its id and name."""

    id = serializers.IntegerField()
    name = serializers.CharField()


@extend_schema_serializer(component_name="AlertThreshold")
class ThresholdSerializer(serializers.Serializer[Any]):
    """The threshold the alert's value crossed."""

    value = serializers.FloatField()
    comparison = serializers.CharField(help_text="One of >, >=, <, <=, ==, !=.")


@extend_schema_serializer(component_name="AlertAcknowledgement")
class AcknowledgementSerializer(serializers.Serializer[Any]):
    """Who took the alert, when, for how long, and why."""

    by = serializers.CharField(allow_null=True, help_text="Username; null if since deleted.")
    at = serializers.DateTimeField()
    until = serializers.DateTimeField(
        allow_null=True, help_text="Repeats resume after this; null: until it resolves."
    )
    note = serializers.CharField(allow_blank=True)


@extend_schema_serializer(component_name="Alert")
class AlertSerializer(serializers.Serializer[Alert]):
    """One alert as the list shows it (no timeline)."""

    id = serializers.IntegerField()
    fingerprint = serializers.CharField(help_text="Rule, source and series labels, hashed.")
    rule = NamedRefSerializer()
    # The stubs type `Field.source` (the attribute path); this field is the alert's source.
    source = NamedRefSerializer()  # type: ignore[assignment]
    labels = serializers.DictField(child=serializers.CharField())
    severity = SeverityField()
    state = serializers.CharField(help_text="pending, firing or resolved.")
    value = serializers.FloatField(allow_null=True)
    peak_value = serializers.FloatField(allow_null=True)
    threshold = serializers.SerializerMethodField()
    message = serializers.CharField()
    count = serializers.IntegerField(help_text="Evaluations that found it.")
    first_seen = serializers.DateTimeField()
    fired_at = serializers.DateTimeField(allow_null=True)
    last_seen = serializers.DateTimeField()
    resolved_at = serializers.DateTimeField(allow_null=True)
    resolution = serializers.SerializerMethodField(
        help_text="cleared, manual, missing_data or rule_changed; null while open."
    )
    acknowledged = serializers.SerializerMethodField()
    inhibited = serializers.BooleanField(help_text="Muted by another alert (a kill switch).")
    url = serializers.SerializerMethodField(help_text="The alert's page in the admin.")

    @extend_schema_field(ThresholdSerializer(allow_null=True))
    def get_threshold(self, alert: Alert) -> dict[str, Any] | None:
        if alert.threshold_value is None:
            return None
        return {"value": alert.threshold_value, "comparison": alert.comparison}

    def get_resolution(self, alert: Alert) -> str | None:
        return alert.resolution or None

    @extend_schema_field(AcknowledgementSerializer(allow_null=True))
    def get_acknowledged(self, alert: Alert) -> dict[str, Any] | None:
        if alert.acknowledged_at is None:
            return None
        by = alert.acknowledged_by
        return AcknowledgementSerializer(
            {
                "by": by.get_username() if by is not None else None,
                "at": alert.acknowledged_at,
                "until": alert.acknowledged_until,
                "note": alert.acknowledgement_note,
            }
        ).data

    def get_url(self, alert: Alert) -> str:
        path = reverse("admin:alerts_alert_change", args=[alert.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


@extend_schema_serializer(component_name="AlertTimelineEntry")
class TimelineEntrySerializer(serializers.Serializer[AlertTransition]):
    """One step of an alert's life: firing, severity change, acknowledged, resolved..."""

    at = serializers.DateTimeField()
    kind = serializers.CharField(help_text=f"One of {', '.join(AlertTransition.Kind.values)}.")
    severity = SeverityField()
    value = serializers.FloatField(allow_null=True)
    actor = serializers.SerializerMethodField(help_text="Username of the person; null: Tradewatch.")
    details = serializers.DictField(help_text="e.g. the note of an acknowledgement.")
    notify = serializers.BooleanField(help_text="Whether this step was for people to hear.")
    silenced = serializers.BooleanField(help_text="A silence held its notification back.")

    def get_actor(self, transition: AlertTransition) -> str | None:
        actor = transition.actor
        return actor.get_username() if actor is not None else None


@extend_schema_serializer(component_name="AlertDetail")
class AlertDetailSerializer(AlertSerializer):
    """One alert with its timeline, oldest step first."""

    timeline = TimelineEntrySerializer(many=True, source="timeline.all")


@extend_schema_serializer(component_name="Silence")
class SilenceSerializer(serializers.Serializer[Silence]):
    """A silence: what it matches, from when, until when, and why."""

    id = serializers.IntegerField()
    state = serializers.SerializerMethodField(
        help_text="active (in force), scheduled (starts later) or expired."
    )
    sources = NamedRefSerializer(many=True, source="sources.all")
    tags = serializers.SerializerMethodField()
    rules = NamedRefSerializer(many=True, source="rules.all")
    min_severity = SeverityField()
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField(
        allow_null=True,
        help_text="Null: until `until_resolved_alert` resolves, or (with a schedule) until "
        "expired by hand.",
    )
    until_resolved_alert = serializers.IntegerField(source="alert_id", allow_null=True)
    schedule = serializers.SerializerMethodField(
        help_text="The schedule it is in force during (null: all the time)."
    )
    schedule_open = serializers.SerializerMethodField(
        help_text="Whether its schedule is open now (true without a schedule)."
    )
    reason = serializers.CharField()
    created_by = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    expired_at = serializers.DateTimeField(allow_null=True, help_text="Ended early by hand.")

    def get_state(self, silence: Silence) -> str:
        return selectors.silence_state(silence, self.context["now"])

    def get_tags(self, silence: Silence) -> list[str]:
        return [tag.name for tag in silence.tags.all()]

    def get_schedule(self, silence: Silence) -> str | None:
        return silence.schedule.name if silence.schedule is not None else None

    def get_schedule_open(self, silence: Silence) -> bool:
        return schedule_open(silence, self.context["now"])

    def get_created_by(self, silence: Silence) -> str | None:
        user = silence.created_by
        return user.get_username() if user is not None else None
