"""API errors are JSON, whatever produced them and whether DEBUG is on or off.

DRF answers its own errors in JSON, but a URL no route matches, an exception escaping a
view, or a request Django refuses before any view (a bad Host) is answered by Django's
HTML pages, and with DEBUG on by its debug pages, which list every URL pattern and
the settings. Clients of the API (trading bots, scripts) read the API's one error shape
(`{"errors": [{"index", "field", "message"}]}`, `core.api_errors`); none of them
should ever be handed a page of HTML, let alone that one.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse, JsonResponse

from core.api_errors import single_error

from .logcontext import current_request_id

API_PREFIX = "/api/"
# Headers of the original answer that still mean something on the JSON one.
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "Vary")


def error_detail(status: int) -> str:
    """The message for an error answer Django (not the API's own code) produced."""
    if status == HTTPStatus.NOT_FOUND:
        return "Not found: no API endpoint or object at this URL."
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        request_id = current_request_id()
        reference = f" (request id {request_id})" if request_id else ""
        return f"Internal server error: it was logged{reference}; please retry later."
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return f"{phrase}."


def is_json(response: HttpResponse) -> bool:
    return "json" in response.get("Content-Type", "").lower()


class JSONAPIErrorsMiddleware:
    """Turn any non-JSON error answer under /api/ into the API's error shape, same status.

    Placed near the top of MIDDLEWARE, it sees the answer Django built for an exception
    raised anywhere below it (including the debug pages), and leaves the log record
    Django wrote for that exception as it was.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code < HTTPStatus.BAD_REQUEST
            or not request.path.startswith(API_PREFIX)
            or is_json(response)
        ):
            return response
        replacement = JsonResponse(
            single_error(error_detail(response.status_code)), status=response.status_code
        )
        for header in _KEPT_HEADERS:
            if header in response:
                replacement[header] = response[header]
        return replacement
