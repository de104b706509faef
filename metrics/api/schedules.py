"""`GET /api/v1/schedules`: every schedule, whether it is open and its next open and close.

Editing schedules is the configuration API's (`/api/v1/config/schedules`); this answers
what they say at an instant (`?at=`, default now), for people with
`metrics.view_schedule` (Viewer group and up).
"""

from __future__ import annotations

from typing import Any, Final

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from core.api_errors import OPERATOR_ERRORS_SCHEMA, ErrorsView, errors_body
from core.operator_api import OPERATOR_AUTHENTICATION, HasModelPermission
from core.query_params import ParamError, parse_time
from metrics.models import Schedule
from metrics.schedules import schedule_state, timetable_of

VIEW_PERMISSION: Final = "metrics.view_schedule"


class CanViewSchedules(HasModelPermission):
    permission = VIEW_PERMISSION
    message = f"You need the permission to view schedules ({VIEW_PERMISSION})."


SCHEDULE_STATE_SCHEMA = inline_serializer(
    "ScheduleState",
    many=True,
    fields={
        "name": serializers.CharField(),
        "kind": serializers.ChoiceField(choices=Schedule.Kind.values),
        "describe": serializers.CharField(help_text='e.g. "XNYS sessions", "sun 02:00-04:00 UTC"'),
        "open": serializers.BooleanField(help_text="Open at `at`."),
        "next_open": serializers.DateTimeField(
            allow_null=True, help_text="The next opening after `at` (null: none known)."
        ),
        "next_close": serializers.DateTimeField(
            allow_null=True, help_text="The next close after `at` (null: never, or not known)."
        ),
    },
)
AT = OpenApiParameter(
    "at", str, description="The instant asked about (ISO 8601 or UNIX seconds); default now."
)


def schedule_row(schedule: Schedule, at: Any) -> dict[str, Any]:
    state = schedule_state(timetable_of(schedule, now=at), at)
    return {"name": schedule.name, "kind": schedule.kind, **state.as_dict()}


class SchedulesView(ErrorsView):
    """Each schedule's state at an instant."""

    authentication_classes = OPERATOR_AUTHENTICATION
    permission_classes = [IsAuthenticated, CanViewSchedules]

    @extend_schema(
        operation_id="schedules_list",
        summary="Every schedule: open or not, and its next open and close",
        parameters=[AT],
        responses={
            200: inline_serializer(
                "ScheduleStates",
                {"at": serializers.DateTimeField(), "schedules": SCHEDULE_STATE_SCHEMA},
            ),
            400: OPERATOR_ERRORS_SCHEMA,
            401: OPERATOR_ERRORS_SCHEMA,
            403: OPERATOR_ERRORS_SCHEMA,
        },
    )
    def get(self, request: Request) -> Response:
        raw = request.query_params.get("at")
        try:
            at = timezone.now() if raw in (None, "") else parse_time(raw, "at")
        except ParamError as exc:
            return Response(errors_body([exc.as_dict()]), status=400)
        rows = [schedule_row(schedule, at) for schedule in Schedule.objects.all()]
        return Response({"at": at, "schedules": rows})
