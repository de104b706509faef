"""`POST /api/v1/sources/<id or name>/control`: a person halts, reduces or re-arms a source."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from alerts.control import Target, trading_control_by_person
from core.api_errors import OPERATOR_ERRORS_SCHEMA, single_error
from core.operator_api import HasModelPermission
from metrics.control import ControlRefused
from metrics.models import SOURCE_NAME_PATTERN, TradingControl
from metrics.queries import source_find

from .common import COMMON_ERRORS, OperatorApi, bad_request, field_errors, person
from .serializers import TimestampField


class CanHalt(HasModelPermission):
    permission = "metrics.halt"
    message = "You need the permission to halt trading (metrics.halt)."


TRADING_STATE_SCHEMA = inline_serializer(
    "SourceTradingState",
    {
        "source": serializers.CharField(),
        "source_id": serializers.IntegerField(),
        "state": serializers.ChoiceField(TradingControl.State.choices),
        "may_open_positions": serializers.BooleanField(),
        "scope": serializers.ChoiceField(TradingControl.Scope.choices, allow_null=True),
        "tag": serializers.CharField(allow_null=True),
        "reason": serializers.CharField(allow_blank=True),
        "set_by": serializers.CharField(allow_null=True, help_text="A person's or a rule's name."),
        "alert_id": serializers.IntegerField(allow_null=True),
        "since": serializers.DateTimeField(allow_null=True),
        "expires_at": serializers.DateTimeField(allow_null=True),
    },
)


class SourceControlApi(OperatorApi):
    """`POST /api/v1/sources/<id or name>/control`: set a source's trading state."""

    permission_classes = [IsAuthenticated, CanHalt]

    @extend_schema_serializer(component_name="SourceControlRequest")
    class InputSerializer(serializers.Serializer[Any]):
        state = serializers.ChoiceField(
            TradingControl.State.choices,
            help_text="`halted`, `reduce_only` (close positions, open none) or `active` "
            "(re-arm: needs metrics.rearm, the Admin group's).",
        )
        note = serializers.CharField(max_length=1000, help_text="Why (required).")
        expires_at = TimestampField(
            required=False,
            allow_null=True,
            default=None,
            help_text="`reduce_only` only: back to active at this time.",
        )

    @extend_schema(
        operation_id="source_control",
        summary="Halt, reduce or re-arm one source's trading",
        description="A re-arm (or any loosening) needs `metrics.rearm`; halting and "
        "reduce only need `metrics.halt`. A wider control (a tag's, or a global one) "
        "still holds: the answer is the state the source must obey now.",
        parameters=[
            OpenApiParameter(
                "source",
                str,
                OpenApiParameter.PATH,
                required=True,
                pattern=SOURCE_NAME_PATTERN,
                description="The source's id or name.",
            )
        ],
        request=InputSerializer,
        responses={
            200: TRADING_STATE_SCHEMA,
            400: OPERATOR_ERRORS_SCHEMA,
            404: OPERATOR_ERRORS_SCHEMA,
            **COMMON_ERRORS,
        },
    )
    def post(self, request: Request, source: str) -> Response:
        found = source_find(source)
        if found is None:
            return Response(
                single_error(f"No source with id or name {source!r}.", "source"),
                status=status.HTTP_404_NOT_FOUND,
            )
        serializer = self.InputSerializer(data=request.data)
        if not serializer.is_valid():
            return bad_request(field_errors(serializer.errors))
        data = serializer.validated_data
        try:
            change = trading_control_by_person(
                target=Target.of_source(found), state=data["state"], by=person(request),
                note=data["note"], via="api", expires_at=data["expires_at"],
            )  # fmt: skip
        except PermissionDenied as exc:
            return Response(single_error(str(exc)), status=status.HTTP_403_FORBIDDEN)
        except ControlRefused as exc:
            field = "expires_at" if "expir" in str(exc) else "note"
            return bad_request([{"index": None, "field": field, "message": str(exc)}])
        [after] = [c.after for c in change.sources]
        return Response({"source": found.name, "source_id": found.pk, **after.as_dict()})
