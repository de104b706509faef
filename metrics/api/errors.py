"""One shape for every API error: `{"errors": [{"index", "field", "message"}]}`."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response
from rest_framework.views import APIView


def errors_body(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"errors": errors}


def single_error(message: str, field: str | None = None) -> dict[str, Any]:
    return errors_body([{"index": None, "field": field, "message": message}])


class ErrorsView(APIView):
    """An API view whose framework errors (401, 403, 404, 415, 429...) use that shape."""

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        detail = response.data.get("detail") if isinstance(response.data, dict) else None
        if detail is not None:
            response.data = single_error(str(detail))
        return response
