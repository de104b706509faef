"""One id per piece of work, carried from the API call through evaluation to delivery.

A request id is taken from the caller's `X-Request-ID` header (or made up) when a
request comes in, kept in a context variable while the request runs, written into the
headers of every Celery task the request queues, and restored in the worker while that
task runs; the tasks that task queues carry it on again. Every log line gets it (and
the Celery task id and name, inside a worker) from `ContextFilter`, so one alert can be
followed across the web process, the evaluating worker and the delivering worker with
a single search.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

REQUEST_ID_HEADER = "X-Request-ID"
# The task message header; Celery exposes custom headers on `task.request`.
TASK_HEADER = "tradewatch_request_id"
# What a caller may send: an id from a proxy or a client, never a log injection.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")

request_id_var: ContextVar[str | None] = ContextVar("tradewatch_request_id", default=None)
task_var: ContextVar[tuple[str, str] | None] = ContextVar("tradewatch_task", default=None)


def new_request_id() -> str:
    """A fresh id: 32 hex digits."""
    return uuid.uuid4().hex


def request_id_from(value: str | None) -> str:
    """The caller's id when it is a sensible token, else a fresh one."""
    if value and _VALID_REQUEST_ID.match(value):
        return value
    return new_request_id()


def current_request_id() -> str | None:
    """The id of the work this code runs for, if any."""
    return request_id_var.get()


class RequestIdMiddleware:
    """Give every request an id, log with it, and answer with it in `X-Request-ID`."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


class ContextFilter(logging.Filter):
    """Add `request_id`, `task_id` and `task_name` to every record (None outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        task = task_var.get()
        record.task_id, record.task_name = task if task is not None else (None, None)
        return True


# --- Celery: the id travels in the task message's headers ------------------------------


def on_before_task_publish(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """Stamp the current id on a task being queued (from a request or another task)."""
    request_id = request_id_var.get()
    if headers is not None and request_id is not None:
        headers.setdefault(TASK_HEADER, request_id)


_tokens: dict[str, tuple[Any, Any]] = {}


def on_task_prerun(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    """Restore the id the task was queued with (a fresh one for beat's and others')."""
    if task_id is None or task is None:
        return
    carried = getattr(task.request, TASK_HEADER, None)
    request_id = carried if isinstance(carried, str) else new_request_id()
    _tokens[task_id] = (request_id_var.set(request_id), task_var.set((task_id, task.name)))


def on_task_postrun(task_id: str | None = None, **kwargs: Any) -> None:
    """Forget the id once the task is over, so the next task starts clean."""
    tokens = _tokens.pop(task_id or "", None)
    if tokens is None:
        return
    request_token, task_token = tokens
    try:
        request_id_var.reset(request_token)
        task_var.reset(task_token)
    except ValueError:
        # Reset from another context (a pool that switches contexts): clear instead.
        request_id_var.set(None)
        task_var.set(None)


def connect_celery_signals() -> None:
    """Wire the handlers above (the Celery app module calls this once)."""
    from celery import signals

    signals.before_task_publish.connect(on_before_task_publish, weak=False)
    signals.task_prerun.connect(on_task_prerun, weak=False)
    signals.task_postrun.connect(on_task_postrun, weak=False)
