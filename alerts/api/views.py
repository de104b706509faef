"""The operator alerts API: list and read alerts, acknowledge or resolve them, silences.

People call these with a DRF token or their admin session; sources' API keys are
never accepted. What a person may do follows Django's model permissions (the admin's
groups): `alerts.view_alert` to read alerts, `alerts.change_alert` to acknowledge or
resolve, `alerts.view_silence` / `add_silence` / `change_silence` for silences.
Views parse with an input serializer, call a selector (`alerts.selectors`) or a
service (`alerts.lifecycle`, `alerts.silences`) and shape the answer; every error is
`{"errors": [{"index": null, "field": ..., "message": ...}]}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from alerts import selectors
from alerts.lifecycle import AlertClosed, alert_acknowledge, alert_resolve
from alerts.models import Alert, Rule, Silence
from alerts.silences import SilenceOver, silence_create, silence_expire
from metrics.api.errors import ErrorsView, errors_body, single_error
from metrics.api.reads import ERRORS_SCHEMA
from metrics.authentication import OPERATOR_AUTHENTICATION
from metrics.models import Source, Tag

from .serializers import (
    SEVERITY_HELP,
    AlertDetailSerializer,
    AlertSerializer,
    SilenceSerializer,
    TimestampField,
)

# --- who may call ------------------------------------------------------------------------


class HasModelPermission(BasePermission):
    """A signed-in person holding one Django model permission."""

    permission: ClassVar[str]
    message: ClassVar[str]

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(self.permission))


class CanViewAlerts(HasModelPermission):
    permission = "alerts.view_alert"
    message = "You need the permission to view alerts (alerts.view_alert)."


class CanChangeAlerts(HasModelPermission):
    permission = "alerts.change_alert"
    message = "You need the permission to acknowledge and resolve alerts (alerts.change_alert)."


class CanViewSilences(HasModelPermission):
    permission = "alerts.view_silence"
    message = "You need the permission to view silences (alerts.view_silence)."


class CanAddSilences(HasModelPermission):
    permission = "alerts.add_silence"
    message = "You need the permission to create silences (alerts.add_silence)."


class CanChangeSilences(HasModelPermission):
    permission = "alerts.change_silence"
    message = "You need the permission to expire silences (alerts.change_silence)."


class OperatorApi(ErrorsView):
    """Base of the alerts API: people only."""

    # People only: a source's API key is refused, with a message saying so.
    authentication_classes = OPERATOR_AUTHENTICATION
    permission_classes = [IsAuthenticated, CanViewAlerts]


def _person(request: Request) -> AbstractBaseUser:
    user = request.user
    assert isinstance(user, AbstractBaseUser), "the permission classes let people only"
    return user


# --- pages and errors --------------------------------------------------------------------


class AlertPagination(CursorPagination):
    """Pages of alerts, newest activity first; stable while alerts keep changing."""

    # Ties on last_seen are common (one bulk update touches many alerts at one instant):
    # the id breaks them, and the cursor's offset steps over the ones already shown.
    ordering = ("-last_seen", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class SilencePagination(AlertPagination):
    """Pages of silences, latest start first."""

    ordering = ("-starts_at", "-id")


def _paginate(paginator: CursorPagination, queryset: Any, request: Request, view: Any) -> Any:
    """The page's rows; a `ValueError` for a cursor this API did not hand out."""
    try:
        return paginator.paginate_queryset(queryset, request, view=view)
    except NotFound as exc:
        raise ValueError(f"{exc.detail}: use the `next` or `previous` link of a page.") from None


def _errors(detail: Mapping[str, Any], rename: Mapping[str, str] | None = None) -> list[Any]:
    """Serializer or model validation errors as the API's error items, field named."""
    rename = rename or {}
    errors: list[dict[str, Any]] = []
    for key, messages in detail.items():
        field = None if key in ("non_field_errors", "__all__") else rename.get(key, key)
        if isinstance(messages, Mapping):  # a list's items: {index: [messages]}
            for index, item in messages.items():
                for message in item if isinstance(item, list) else [item]:
                    errors.append(
                        {"index": None, "field": field, "message": f"Item {index}: {message}"}
                    )
            continue
        for message in messages if isinstance(messages, list) else [messages]:
            errors.append({"index": None, "field": field, "message": str(message)})
    return errors


def _one(found: tuple[list[Any], list[str]], kind: str, ref: str) -> Any:
    rows, _ = found
    if not rows:
        raise serializers.ValidationError(f"No {kind} with id or name {ref!r}.")
    return rows[0]


def _all(found: tuple[list[Any], list[str]], what: str) -> list[Any]:
    rows, missing = found
    if missing:
        raise serializers.ValidationError(f"No {what} {', '.join(map(repr, missing))}.")
    return rows


def _bad_request(errors: list[Any]) -> Response:
    return Response(errors_body(errors), status=status.HTTP_400_BAD_REQUEST)


def _not_found(kind: str, object_id: int) -> Response:
    return Response(single_error(f"No {kind} with id {object_id}.", "id"), status=404)


def _conflict(message: str) -> Response:
    return Response(single_error(message), status=status.HTTP_409_CONFLICT)


def _page_schema(name: str, item: serializers.Serializer[Any]) -> Any:
    return inline_serializer(
        name,
        {
            "next": serializers.URLField(allow_null=True, help_text="The next page, if any."),
            "previous": serializers.URLField(allow_null=True, help_text="The previous page."),
            "results": item,
        },
    )


PAGE_PARAMETERS = [
    OpenApiParameter("cursor", str, description="From `next` or `previous` of a page."),
    OpenApiParameter(
        "page_size",
        int,
        description=f"Items per page, default {AlertPagination.page_size}, "
        f"at most {AlertPagination.max_page_size}.",
    ),
]
ALERT_ID = OpenApiParameter("alert_id", int, OpenApiParameter.PATH)
SILENCE_ID = OpenApiParameter("silence_id", int, OpenApiParameter.PATH)
COMMON_ERRORS = {401: ERRORS_SCHEMA, 403: ERRORS_SCHEMA}


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
            return _one(selectors.sources_find([value]), "source", value)

        def validate_rule(self, value: str) -> Rule:
            return _one(selectors.rules_find([value]), "rule", value)

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
            200: _page_schema("AlertPage", AlertSerializer(many=True)),
            400: ERRORS_SCHEMA,
            **COMMON_ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params.dict())
        if not filters.is_valid():
            return _bad_request(_errors(filters.errors))
        paginator = AlertPagination()
        try:
            page = _paginate(
                paginator, selectors.alert_list(**filters.validated_data), request, self
            )
        except ValueError as exc:
            return _bad_request([{"index": None, "field": "cursor", "message": str(exc)}])
        data = AlertSerializer(page, many=True, context={"request": request}).data
        return paginator.get_paginated_response(data)


def _alert_answer(request: Request, alert_id: int) -> Response:
    alert = selectors.alert_get(alert_id=alert_id)
    if alert is None:
        return _not_found("alert", alert_id)
    return Response(AlertDetailSerializer(alert, context={"request": request}).data)


class AlertDetailApi(OperatorApi):
    """`GET /api/v1/alerts/<id>`: one alert with its timeline."""

    @extend_schema(
        operation_id="alert_detail",
        summary="One alert with its timeline",
        parameters=[ALERT_ID],
        responses={200: AlertDetailSerializer, 404: ERRORS_SCHEMA, **COMMON_ERRORS},
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
            400: ERRORS_SCHEMA,
            404: ERRORS_SCHEMA,
            409: ERRORS_SCHEMA,
            **COMMON_ERRORS,
        },
    )
    def post(self, request: Request, alert_id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        if not serializer.is_valid():
            return _bad_request(_errors(serializer.errors))
        try:
            alert_acknowledge(alert_id=alert_id, by=_person(request), **serializer.validated_data)
        except Alert.DoesNotExist:
            return _not_found("alert", alert_id)
        except AlertClosed as exc:
            return _conflict(str(exc))
        except ValueError as exc:  # the acknowledgement would end in the past
            return _bad_request([{"index": None, "field": "until", "message": str(exc)}])
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
            400: ERRORS_SCHEMA,
            404: ERRORS_SCHEMA,
            409: ERRORS_SCHEMA,
            **COMMON_ERRORS,
        },
    )
    def post(self, request: Request, alert_id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        if not serializer.is_valid():
            return _bad_request(_errors(serializer.errors))
        try:
            alert_resolve(alert_id=alert_id, by=_person(request), **serializer.validated_data)
        except Alert.DoesNotExist:
            return _not_found("alert", alert_id)
        except AlertClosed as exc:
            return _conflict(str(exc))
        return _alert_answer(request, alert_id)


# --- silences ----------------------------------------------------------------------------


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
            help_text="Needed unless `until_resolved_alert` is given.",
        )  # fmt: skip
        until_resolved_alert = serializers.IntegerField(
            required=False, allow_null=True, default=None, source="alert",
            help_text="Id of an open alert: the silence ends when it resolves.",
        )  # fmt: skip
        reason = serializers.CharField(max_length=500)

        def validate_sources(self, value: list[str]) -> list[Source]:
            return _all(selectors.sources_find(value), "source with id or name")

        def validate_tags(self, value: list[str]) -> list[Tag]:
            return _all(selectors.tags_find(value), "tag named")

        def validate_rules(self, value: list[str]) -> list[Rule]:
            return _all(selectors.rules_find(value), "rule with id or name")

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
            200: _page_schema("SilencePage", SilenceSerializer(many=True)),
            400: ERRORS_SCHEMA,
            **COMMON_ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params.dict())
        if not filters.is_valid():
            return _bad_request(_errors(filters.errors))
        now = timezone.now()
        paginator = SilencePagination()
        silences = selectors.silence_list(state=filters.validated_data["state"], now=now)
        try:
            page = _paginate(paginator, silences, request, self)
        except ValueError as exc:
            return _bad_request([{"index": None, "field": "cursor", "message": str(exc)}])
        data = SilenceSerializer(page, many=True, context={"request": request, "now": now}).data
        return paginator.get_paginated_response(data)

    @extend_schema(
        operation_id="silence_create",
        summary="Silence matching alerts for a while, or until an alert resolves",
        request=InputSerializer,
        responses={201: SilenceSerializer, 400: ERRORS_SCHEMA, **COMMON_ERRORS},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        if not serializer.is_valid():
            return _bad_request(_errors(serializer.errors))
        try:
            silence = silence_create(created_by=_person(request), **serializer.validated_data)
        except DjangoValidationError as exc:
            detail = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
            return _bad_request(_errors(detail, rename={"alert": "until_resolved_alert"}))
        return _silence_answer(request, silence, status.HTTP_201_CREATED)


class SilenceExpireApi(OperatorApi):
    """`POST /api/v1/silences/<id>/expire`: end a silence now."""

    permission_classes = [IsAuthenticated, CanChangeSilences]

    @extend_schema(
        operation_id="silence_expire",
        summary="End a silence now",
        parameters=[SILENCE_ID],
        request=None,
        responses={200: SilenceSerializer, 404: ERRORS_SCHEMA, 409: ERRORS_SCHEMA, **COMMON_ERRORS},
    )
    def post(self, request: Request, silence_id: int) -> Response:
        try:
            silence = silence_expire(silence_id=silence_id, by=_person(request))
        except Silence.DoesNotExist:
            return _not_found("silence", silence_id)
        except SilenceOver as exc:
            return _conflict(str(exc))
        return _silence_answer(request, silence)
