"""One shape for every API error: `{"errors": [{"index", "field", "message"}]}`."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from django.db import InterfaceError, OperationalError
from rest_framework.response import Response
from rest_framework.views import APIView

logger = logging.getLogger(__name__)

# Django's own, and psycopg's where the ingest path uses the raw cursor (COPY).
DATABASE_AWAY = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)
# What a client is told to wait when the database cannot be reached (a restart or a
# fail-over takes seconds); the client library retries then, with the same
# Idempotency-Key, so the batch is stored once when the database is back.
DATABASE_RETRY_AFTER_SECONDS = 5


def errors_body(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"errors": errors}


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


def database_unavailable(exc: Exception) -> Response:
    """503 with Retry-After for a database that cannot be reached or dropped the
    connection: the request was not at fault and its transaction was rolled back
    whole, so sending it again later is right (a 500 says the opposite)."""
    logger.warning("database unavailable, answered 503: %s", exc)
    return Response(
        single_error(
            "the database is unavailable; nothing of this request was stored, "
            f"send it again in {DATABASE_RETRY_AFTER_SECONDS} seconds"
        ),
        status=503,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )
