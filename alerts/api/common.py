"""What the operator alerts API's views share: who may call, pages, errors, schema parts.

People call the API with a DRF token or their admin session; sources' API keys are
never accepted. What a person may do follows Django's model permissions (the admin's
groups). Every error is `{"errors": [{"index": null, "field": ..., "message": ...}]}`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from core.api_errors import OPERATOR_ERRORS_SCHEMA, ErrorsView, errors_body, single_error
from core.api_errors import field_errors as field_errors  # shared with metrics
from core.operator_api import OPERATOR_AUTHENTICATION, HasModelPermission

# --- who may call ------------------------------------------------------------------------


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


def person(request: Request) -> AbstractBaseUser:
    """The person calling (the permission classes let no one else through)."""
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


def paginate(paginator: CursorPagination, queryset: Any, request: Request, view: Any) -> Any:
    """The page's rows; a `ValueError` for a cursor this API did not hand out."""
    try:
        return paginator.paginate_queryset(queryset, request, view=view)
    except NotFound as exc:
        raise ValueError(f"{exc.detail}: use the `next` or `previous` link of a page.") from None


#: A row a selector found (a Source, a Rule, a Tag...).
_Row = TypeVar("_Row")


def found_one(found: tuple[list[_Row], list[str]], kind: str, ref: str) -> _Row:
    """The row a selector's `<kind>s_find` found for `ref`, or the field's error."""
    rows, _ = found
    if not rows:
        raise serializers.ValidationError(f"No {kind} with id or name {ref!r}.")
    return rows[0]


def found_all(found: tuple[list[_Row], list[str]], what: str) -> list[_Row]:
    """The rows a selector's `<kind>s_find` found, or the field's error naming the missing."""
    rows, missing = found
    if missing:
        raise serializers.ValidationError(f"No {what} {', '.join(map(repr, missing))}.")
    return rows


def bad_request(errors: list[Any]) -> Response:
    return Response(errors_body(errors), status=status.HTTP_400_BAD_REQUEST)


def not_found(kind: str, object_id: int) -> Response:
    return Response(single_error(f"No {kind} with id {object_id}.", "id"), status=404)


def conflict(message: str) -> Response:
    return Response(single_error(message), status=status.HTTP_409_CONFLICT)


def page_schema(name: str, item: serializers.Serializer[Any]) -> Any:
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
COMMON_ERRORS = {401: OPERATOR_ERRORS_SCHEMA, 403: OPERATOR_ERRORS_SCHEMA}
