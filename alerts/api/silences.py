"""The operator API's silences: list them, create one, end one now.

`alerts.view_silence` to list, `alerts.add_silence` to create, `alerts.change_silence`
to expire (see `alerts.api.common`); the work is `alerts.silences`'.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from alerts import selectors
from alerts.models import Alert, Rule, Silence
from alerts.silences import SilenceOver, silence_create, silence_expire
from core.api_errors import OPERATOR_ERRORS_SCHEMA
from metrics.models import Schedule, Source, Tag

from .common import (
    COMMON_ERRORS,
    PAGE_PARAMETERS,
    SILENCE_ID,
    CanAddSilences,
    CanChangeSilences,
    CanViewSilences,
    OperatorApi,
    SilencePagination,
    bad_request,
    conflict,
    field_errors,
    found_all,
    not_found,
    page_schema,
    paginate,
    person,
)
from .serializers import SEVERITY_HELP, SilenceSerializer, TimestampField


def _silence_answer(request: Request, silence: Silence, code: int = 200) -> Response:
    found = selectors.silence_get(silence_id=silence.pk)
    context = {"request": request, "now": timezone.now()}
    return Response(SilenceSerializer(found, context=context).data, status=code)


class SilencesApi(OperatorApi):
    """`GET /api/v1/silences` lists, `POST` creates: one class for the one URL they share."""

    def get_permissions(self) -> list[BasePermission]:
        can = CanAddSilences if self.request.method == "POST" else CanViewSilences
        return [IsAuthenticated(), can()]

    class FilterSerializer(serializers.Serializer[Any]):
        state = serializers.ChoiceField(
            choices=list(selectors.SILENCE_FILTERS), required=False, default="active"
        )

    @extend_schema_serializer(component_name="SilenceCreateRequest")
    class InputSerializer(serializers.Serializer[Any]):
        sources = serializers.ListField(
            child=serializers.CharField(), required=False, default=list,
            help_text="Source ids or names; empty: every source.",
        )  # fmt: skip
        tags = serializers.ListField(
            child=serializers.CharField(), required=False, default=list,
            help_text="Tag names: sources with any of them; empty: any tag.",
        )  # fmt: skip
        rules = serializers.ListField(
            child=serializers.CharField(), required=False, default=list,
            help_text="Rule ids or names; empty: every rule.",
        )  # fmt: skip
        min_severity = serializers.CharField(
            required=False, default="debug", help_text=f"This severity and above. {SEVERITY_HELP}"
        )
        starts_at = TimestampField(
            required=False, allow_null=True, default=None, help_text="Default: now."
        )
        ends_at = TimestampField(
            required=False, allow_null=True, default=None,
            help_text="Needed unless `until_resolved_alert` or `schedule` is given.",
        )  # fmt: skip
        until_resolved_alert = serializers.IntegerField(
            required=False, allow_null=True, default=None, source="alert",
            help_text="Id of an open alert: the silence ends when it resolves.",
        )  # fmt: skip
        schedule = serializers.CharField(
            required=False, allow_null=True, default=None,
            help_text="Id or name of a schedule: in force only while it is open (e.g. "
            "maintenance Sundays 02:00-04:00 UTC); then no end is needed.",
        )  # fmt: skip
        reason = serializers.CharField(max_length=500)

        def validate_schedule(self, value: str | None) -> Schedule | None:
            if value is None:
                return None
            found = selectors.schedule_find(value)
            if found is None:
                raise serializers.ValidationError(f"No schedule with id or name {value!r}.")
            return found

        def validate_sources(self, value: list[str]) -> list[Source]:
            return found_all(selectors.sources_find(value), "source with id or name")

        def validate_tags(self, value: list[str]) -> list[Tag]:
            return found_all(selectors.tags_find(value), "tag named")

        def validate_rules(self, value: list[str]) -> list[Rule]:
            return found_all(selectors.rules_find(value), "rule with id or name")

        def validate_min_severity(self, value: str) -> int:
            try:
                return selectors.severity_parse(value)
            except ValueError as exc:
                raise serializers.ValidationError(str(exc)) from None

        def validate_until_resolved_alert(self, value: int | None) -> Alert | None:
            if value is None:
                return None
            alert = Alert.objects.filter(pk=value).first()
            if alert is None:
                raise serializers.ValidationError(f"No alert with id {value}.")
            return alert

    @extend_schema(
        operation_id="silences_list",
        summary="Silences, latest start first, a page at a time",
        parameters=[
            OpenApiParameter(
                "state",
                str,
                enum=list(selectors.SILENCE_FILTERS),
                default="active",
                description="active: not over (in force or scheduled); scheduled: starts "
                "later; expired: ended, expired by hand or its alert resolved; all.",
            ),
            *PAGE_PARAMETERS,
        ],
        responses={
            200: page_schema("SilencePage", SilenceSerializer(many=True)),
            400: OPERATOR_ERRORS_SCHEMA,
            **COMMON_ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params.dict())
        if not filters.is_valid():
            return bad_request(field_errors(filters.errors))
        now = timezone.now()
        paginator = SilencePagination()
        silences = selectors.silence_list(state=filters.validated_data["state"], now=now)
        try:
            page = paginate(paginator, silences, request, self)
        except ValueError as exc:
            return bad_request([{"index": None, "field": "cursor", "message": str(exc)}])
        data = SilenceSerializer(page, many=True, context={"request": request, "now": now}).data
        return paginator.get_paginated_response(data)

    @extend_schema(
        operation_id="silence_create",
        summary="Silence matching alerts for a while, or until an alert resolves",
        request=InputSerializer,
        responses={201: SilenceSerializer, 400: OPERATOR_ERRORS_SCHEMA, **COMMON_ERRORS},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        if not serializer.is_valid():
            return bad_request(field_errors(serializer.errors))
        try:
            silence = silence_create(created_by=person(request), **serializer.validated_data)
        except DjangoValidationError as exc:
            detail = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
            return bad_request(field_errors(detail, rename={"alert": "until_resolved_alert"}))
        return _silence_answer(request, silence, status.HTTP_201_CREATED)


class SilenceExpireApi(OperatorApi):
    """`POST /api/v1/silences/<id>/expire`: end a silence now."""

    permission_classes = [IsAuthenticated, CanChangeSilences]

    @extend_schema(
        operation_id="silence_expire",
        summary="End a silence now",
        parameters=[SILENCE_ID],
        request=None,
        responses={
            200: SilenceSerializer,
            404: OPERATOR_ERRORS_SCHEMA,
            409: OPERATOR_ERRORS_SCHEMA,
            **COMMON_ERRORS,
        },
    )
    def post(self, request: Request, silence_id: int) -> Response:
        try:
            silence = silence_expire(silence_id=silence_id, by=person(request))
        except Silence.DoesNotExist:
            return not_found("silence", silence_id)
        except SilenceOver as exc:
            return conflict(str(exc))
        return _silence_answer(request, silence)
