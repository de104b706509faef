"""The operator alerts API: list and read alerts, acknowledge or resolve them.

People call these with a DRF token or their admin session (see `alerts.api.common`):
`alerts.view_alert` to read alerts, `alerts.change_alert` to acknowledge or resolve;
silences have their own views (`alerts.api.silences`). Views parse with an input
serializer, call a selector (`alerts.selectors`) or a service (`alerts.lifecycle`) and
shape the answer.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from alerts import selectors
from alerts.alert_actions import AlertClosed, alert_acknowledge, alert_resolve
from alerts.models import Alert, Rule
from core.api_errors import OPERATOR_ERRORS_SCHEMA
from metrics.models import Source

from .common import (
    ALERT_ID,
    COMMON_ERRORS,
    PAGE_PARAMETERS,
    AlertPagination,
    CanChangeAlerts,
    OperatorApi,
    bad_request,
    conflict,
    field_errors,
    found_one,
    not_found,
    page_schema,
    paginate,
    person,
)
from .serializers import SEVERITY_HELP, AlertDetailSerializer, AlertSerializer, TimestampField

# --- alerts ------------------------------------------------------------------------------


class AlertListApi(OperatorApi):
    """`GET /api/v1/alerts`: alerts by status, severity, source, rule, time, acknowledged."""

    class FilterSerializer(serializers.Serializer[Any]):
        status = serializers.CharField(required=False, source="states")
        severity = serializers.CharField(required=False, source="severities")
        severity_min = serializers.CharField(required=False)
        source = serializers.CharField(required=False)  # type: ignore[assignment]
        rule = serializers.CharField(required=False)
        since = TimestampField(required=False)
        acknowledged = serializers.BooleanField(required=False)

        def validate_status(self, value: str) -> frozenset[str]:
            states: set[str] = set()
            for part in filter(None, (p.strip().lower() for p in value.split(","))):
                if part not in selectors.ALERT_STATUSES:
                    raise serializers.ValidationError(
                        f"Unknown status {part!r}: use {', '.join(selectors.ALERT_STATUSES)}."
                    )
                states |= selectors.ALERT_STATUSES[part]
            return frozenset(states)

        def validate_severity(self, value: str) -> frozenset[int]:
            try:
                return frozenset(
                    selectors.severity_parse(part) for part in value.split(",") if part.strip()
                )
            except ValueError as exc:
                raise serializers.ValidationError(str(exc)) from None

        def validate_severity_min(self, value: str) -> int:
            try:
                return selectors.severity_parse(value)
            except ValueError as exc:
                raise serializers.ValidationError(str(exc)) from None

        def validate_source(self, value: str) -> Source:
            return found_one(selectors.sources_find([value]), "source", value)

        def validate_rule(self, value: str) -> Rule:
            return found_one(selectors.rules_find([value]), "rule", value)

    @extend_schema(
        operation_id="alerts_list",
        summary="Alerts, newest activity first, a page at a time",
        parameters=[
            OpenApiParameter(
                "status",
                str,
                description="pending, firing, resolved or open (pending and firing); "
                "several comma-separated.",
            ),
            OpenApiParameter(
                "severity", str, description=f"Exactly these, comma-separated. {SEVERITY_HELP}"
            ),
            OpenApiParameter("severity_min", str, description="This severity and above."),
            OpenApiParameter("source", str, description="Source id or name."),
            OpenApiParameter("rule", str, description="Rule id or name."),
            OpenApiParameter(
                "since",
                OpenApiTypes.STR,
                description="Seen at or after (last_seen): ISO 8601 with offset or UNIX seconds.",
            ),
            OpenApiParameter("acknowledged", bool, description="Acknowledged or not."),
            *PAGE_PARAMETERS,
        ],
        responses={
            200: page_schema("AlertPage", AlertSerializer(many=True)),
            400: OPERATOR_ERRORS_SCHEMA,
            **COMMON_ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params.dict())
        if not filters.is_valid():
            return bad_request(field_errors(filters.errors))
        paginator = AlertPagination()
        try:
            page = paginate(
                paginator, selectors.alert_list(**filters.validated_data), request, self
            )
        except ValueError as exc:
            return bad_request([{"index": None, "field": "cursor", "message": str(exc)}])
        data = AlertSerializer(page, many=True, context={"request": request}).data
        return paginator.get_paginated_response(data)


def _alert_answer(request: Request, alert_id: int) -> Response:
    alert = selectors.alert_get(alert_id=alert_id)
    if alert is None:
        return not_found("alert", alert_id)
    return Response(AlertDetailSerializer(alert, context={"request": request}).data)


class AlertDetailApi(OperatorApi):
    """`GET /api/v1/alerts/<id>`: one alert with its timeline."""

    @extend_schema(
        operation_id="alert_detail",
        summary="One alert with its timeline",
        parameters=[ALERT_ID],
        responses={200: AlertDetailSerializer, 404: OPERATOR_ERRORS_SCHEMA, **COMMON_ERRORS},
    )
    def get(self, request: Request, alert_id: int) -> Response:
        return _alert_answer(request, alert_id)


class AlertAcknowledgeApi(OperatorApi):
    """`POST /api/v1/alerts/<id>/acknowledge`: take the alert; repeats stop meanwhile."""

    permission_classes = [IsAuthenticated, CanChangeAlerts]

    @extend_schema_serializer(component_name="AlertAcknowledgeRequest")
    class InputSerializer(serializers.Serializer[Any]):
        note = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)
        until = TimestampField(
            required=False,
            allow_null=True,
            default=None,
            help_text="When repeats resume; null or left out: until the alert resolves.",
        )

    @extend_schema(
        operation_id="alert_acknowledge",
        summary="Acknowledge an open alert",
        parameters=[ALERT_ID],
        request=InputSerializer,
        responses={
            200: AlertDetailSerializer,
            400: OPERATOR_ERRORS_SCHEMA,
            404: OPERATOR_ERRORS_SCHEMA,
            409: OPERATOR_ERRORS_SCHEMA,
            **COMMON_ERRORS,
        },
    )
    def post(self, request: Request, alert_id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        if not serializer.is_valid():
            return bad_request(field_errors(serializer.errors))
        try:
            alert_acknowledge(alert_id=alert_id, by=person(request), **serializer.validated_data)
        except Alert.DoesNotExist:
            return not_found("alert", alert_id)
        except AlertClosed as exc:
            return conflict(str(exc))
        except ValueError as exc:  # the acknowledgement would end in the past
            return bad_request([{"index": None, "field": "until", "message": str(exc)}])
        return _alert_answer(request, alert_id)


class AlertResolveApi(OperatorApi):
    """`POST /api/v1/alerts/<id>/resolve`: close the alert by hand."""

    permission_classes = [IsAuthenticated, CanChangeAlerts]

    @extend_schema_serializer(component_name="AlertResolveRequest")
    class InputSerializer(serializers.Serializer[Any]):
        note = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)

    @extend_schema(
        operation_id="alert_resolve",
        summary="Resolve an open alert by hand",
        description="If the condition still holds, the next evaluation opens a new alert.",
        parameters=[ALERT_ID],
        request=InputSerializer,
        responses={
            200: AlertDetailSerializer,
            400: OPERATOR_ERRORS_SCHEMA,
            404: OPERATOR_ERRORS_SCHEMA,
            409: OPERATOR_ERRORS_SCHEMA,
            **COMMON_ERRORS,
        },
    )
    def post(self, request: Request, alert_id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        if not serializer.is_valid():
            return bad_request(field_errors(serializer.errors))
        try:
            alert_resolve(alert_id=alert_id, by=person(request), **serializer.validated_data)
        except Alert.DoesNotExist:
            return not_found("alert", alert_id)
        except AlertClosed as exc:
            return conflict(str(exc))
        return _alert_answer(request, alert_id)
