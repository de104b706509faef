"""One shape for every API error: `{"errors": [{"index", "field", "message"}]}`."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

logger = logging.getLogger(__name__)

# Seconds a client is asked to wait when the database is unavailable: about what a
# PostgreSQL restart or fail-over takes.
UNAVAILABLE_RETRY_AFTER_SECONDS = 5

ERRORS_SCHEMA = inline_serializer(
    "Errors",
    {
        "errors": serializers.ListField(
            child=inline_serializer(
                "Error",
                {
                    "index": serializers.IntegerField(
                        allow_null=True, help_text="The item of a batch, when one is at fault."
                    ),
                    "field": serializers.CharField(
                        allow_null=True, help_text="The field, parameter or header at fault."
                    ),
                    "message": serializers.CharField(),
                },
            )
        ),
        "total_errors": serializers.IntegerField(
            required=False, help_text="When more errors were found than listed."
        ),
    },
)


def errors_body(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"errors": errors}


def single_error(message: str, field: str | None = None) -> dict[str, Any]:
    return errors_body([{"index": None, "field": field, "message": message}])


def unavailable_response() -> Response:
    """503 for a database that cannot be reached: the client should retry, not give up."""
    return Response(
        single_error("The database is unavailable; retry later."),
        status=503,
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)},
    )


class ErrorsView(APIView):
    """An API view whose framework errors (401, 403, 404, 415, 429...) use that shape."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, OperationalError | InterfaceError):
            # Connection refused, the server restarting, a connection dropped: the
            # request's transaction did not commit, so the client should send it again.
            logger.warning("API request refused: the database is unavailable (%s)", exc)
            return unavailable_response()
        response = super().handle_exception(exc)
        detail = response.data.get("detail") if isinstance(response.data, dict) else None
        if detail is not None:
            response.data = single_error(str(detail))
        return response


@csrf_exempt  # nothing to protect, and a POST must get the same JSON 404
def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """404 in the API's shape for any URL under `/api/v1/` that names nothing."""
    return HttpResponse(
        json.dumps(single_error(f"No API endpoint at {request.path}.", "url")),
        status=404,
        content_type="application/json",
    )
