"""One shape for every API error: `{"errors": [{"index", "field", "message"}]}`.

The views' side: DRF's own errors and a database gone away, in that shape. What
Django answers before or around the views (an unknown URL, an escaped exception, a bad
Host) is put in the same shape by `monitoring_site.api_errors`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

logger = logging.getLogger(__name__)

# Django's own, and psycopg's where the ingest path uses the raw cursor (COPY).
DATABASE_AWAY = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)
# What a client is told to wait when the database cannot be reached (a restart or a
# fail-over takes seconds); the client library retries then, with the same
# Idempotency-Key, so the batch is stored once when the database is back.
DATABASE_RETRY_AFTER_SECONDS = 5

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

# The same shape as the operator endpoints document it (alerts, health, metric reads).
OPERATOR_ERRORS_SCHEMA = inline_serializer(
    "OperatorErrors",
    {
        "errors": serializers.ListField(
            child=inline_serializer(
                "OperatorError",
                {
                    "index": serializers.IntegerField(allow_null=True),
                    "field": serializers.CharField(allow_null=True),
                    "message": serializers.CharField(),
                },
            )
        )
    },
)


def errors_body(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"errors": errors}


def field_errors(detail: Mapping[str, Any], rename: Mapping[str, str] | None = None) -> list[Any]:
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


def single_error(message: str, field: str | None = None) -> dict[str, Any]:
    return errors_body([{"index": None, "field": field, "message": message}])


class ErrorsView(APIView):
    """An API view whose framework errors (401, 403, 404, 415, 429...) use that shape."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, DATABASE_AWAY):
            return database_unavailable(exc)
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


def database_unavailable(exc: Exception) -> Response:
    """503 with Retry-After for a database that cannot be reached or dropped the
    connection: the request was not at fault and its transaction was rolled back
    whole, so sending it again later is right (a 500 says the opposite)."""
    logger.warning("database unavailable, answered 503: %s", exc)
    return Response(
        single_error(
            "The database is unavailable; nothing of this request was stored: "
            f"send it again in {DATABASE_RETRY_AFTER_SECONDS} seconds."
        ),
        status=503,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )
