"""Size limits of API requests, refused before any view runs, in the API's error shape.

The HTTP server has limits of its own (a request line over 64 KiB gets its 414, a
request head over about 400 KiB its 431, both without a body); these are far below
them, so a caller of the API learns what is wrong in JSON, with the limit named.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from core.api_errors import single_error

API_PREFIX = "/api/"
# Methods whose body a view may read; a body sent with GET is never read.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _error(status: int, message: str, field: str) -> HttpResponse:
    return HttpResponse(
        json.dumps(single_error(message, field)), status=status, content_type="application/json"
    )


class RequestLimitsMiddleware:
    """414 for a URL longer than TRADEWATCH_MAX_URL_BYTES, 413 for a declared body over
    DATA_UPLOAD_MAX_MEMORY_SIZE, on the API's paths."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        url_bytes = len(request.get_full_path().encode())
        limit = settings.TRADEWATCH_MAX_URL_BYTES
        if url_bytes > limit:
            return _error(414, f"The URL is {url_bytes} bytes long; at most {limit}.", "url")
        if request.method in BODY_METHODS:
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:  # the HTTP server refuses such a request before Django
                length = 0
            body_limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            if length > body_limit:
                return _error(
                    413,
                    f"The request body is larger than {body_limit} bytes ({length}).",
                    "body",
                )
        return self.get_response(request)
