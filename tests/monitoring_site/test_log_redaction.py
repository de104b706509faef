"""No log line holds a hook URL's API key: a real web server's output, grepped."""

from __future__ import annotations

import json
import logging
import secrets
import sys
from pathlib import Path

import httpx
import pytest
from django.test import RequestFactory

from metrics.services import source_create
from monitoring_site.error_reports import RedactingExceptionReporter
from monitoring_site.log_redaction import (
    REDACTED,
    HookKeyFilter,
    RedactingJsonFormatter,
    redact,
)
from tests.processes import free_port, process_environment, web_server

KEY = "AbCd1234.s3cretS3cretS3cretS3cretS3cretXy"
SECRET = KEY.partition(".")[2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"/api/v1/hooks/events/{KEY}/", f"/api/v1/hooks/events/AbCd1234.{REDACTED}/"),
        (f"POST /api/v1/hooks/trades/{KEY} HTTP/1.1",
         f"POST /api/v1/hooks/trades/AbCd1234.{REDACTED} HTTP/1.1"),
        (f"/api/v1/hooks/events/{SECRET}/", f"/api/v1/hooks/events/{REDACTED}/"),
        (f"/api/v1//hooks//nope/{KEY}/", f"/api/v1//hooks//nope/AbCd1234.{REDACTED}/"),
        (f"<WSGIRequest: POST '/api/v1/HOOKS/events/{KEY}/'>",
         f"<WSGIRequest: POST '/api/v1/HOOKS/events/AbCd1234.{REDACTED}/'>"),
        (f"/api/v1/hooks%2Fevents%2F{KEY}/", f"/api/v1/hooks%2Fevents%2FAbCd1234.{REDACTED}/"),
        (f"/api/v1/%68ooks/events/{KEY}/", f"/api/v1/hooks/events/AbCd1234.{REDACTED}/"),
        (f"/api/v1/hooks/ev%65nts/{KEY}/", f"/api/v1/hooks/events/AbCd1234.{REDACTED}/"),
        (f"/api/v1/whoami?key={KEY}&x=1", f"/api/v1/whoami?key=AbCd1234.{REDACTED}&x=1"),
        (f"/x?a=1&api_key={SECRET}", f"/x?a=1&api_key={REDACTED}"),
        (f"/x?token={KEY}", f"/x?token=AbCd1234.{REDACTED}"),
        (f"QUERY_STRING = 'key={KEY}'", f"QUERY_STRING = 'key=AbCd1234.{REDACTED}'"),
        (f"api_key = '{KEY}'", f"api_key = 'AbCd1234.{REDACTED}'"),
        ("/api/v1/metrics 202 in 3 ms (100%)", "/api/v1/metrics 202 in 3 ms (100%)"),
        ("idempotency_key=abc keyboard=1 monkey=2", "idempotency_key=abc keyboard=1 monkey=2"),
        ("/api/v1/hooks/events/", "/api/v1/hooks/events/"),
    ],
)  # fmt: skip
def test_it_redacts_a_key_in_any_spelling_of_a_hook_path(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected


def test_it_redacts_the_message_arguments_extras_and_traceback_of_a_record() -> None:
    request = RequestFactory().post(f"/api/v1/hooks/events/{KEY}/")
    try:
        raise ValueError(f"no route for /api/v1/hooks/events/{KEY}/")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "django.request", logging.ERROR, __file__, 1, "Internal Server Error: %s",
        (request.path,), exc_info,
    )  # fmt: skip
    record.__dict__.update(request=request, status_code=500)  # as `extra=` does

    assert HookKeyFilter().filter(record)
    line = RedactingJsonFormatter("%(message)s %(request)s").format(record)

    assert SECRET not in line, line
    fields = json.loads(line)
    assert fields["message"] == f"Internal Server Error: /api/v1/hooks/events/AbCd1234.{REDACTED}/"
    assert REDACTED in fields["request"]
    assert REDACTED in fields["exc_info"]
    assert fields["status_code"] == 500
    # Handlers that need the request itself (the admins' e-mail) still read it.
    assert record.__dict__["request"].method == "POST"
    assert SECRET not in logging.Formatter("%(message)s").format(record)


def test_it_redacts_the_error_report() -> None:
    request = RequestFactory().post(f"/api/v1/hooks/events/{KEY}/?api_key={KEY}")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        reporter = RedactingExceptionReporter(request, *sys.exc_info())

    text, html = reporter.get_traceback_text(), reporter.get_traceback_html()

    assert SECRET not in text
    assert SECRET not in html
    assert "/api/v1/hooks/events/AbCd1234.&lt;redacted&gt;/" in html
    assert f"/api/v1/hooks/events/AbCd1234.{REDACTED}/" in text


@pytest.fixture
def hook_source(transactional_db: None) -> str:
    _, key = source_create(name="webhook-sender")
    return key


@pytest.mark.slow
@pytest.mark.parametrize(("log_format", "debug"), [("json", "False"), ("plain", "True")])
def test_a_live_server_logs_hook_paths_without_their_key(
    hook_source: str, tmp_path: Path, log_format: str, debug: str
) -> None:
    key = hook_source
    prefix, _, secret = key.partition(".")
    wrong = f"{prefix}.{secrets.token_urlsafe(24)}"
    unknown = secrets.token_hex(20)
    env = process_environment(
        DEBUG=debug,
        SECRET_KEY=secrets.token_urlsafe(50),
        SECURE_SSL_REDIRECT="False",
        LOG_FORMAT=log_format,
        LOG_LEVEL="INFO",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    event = {"events": [{"type": "custom", "message": "hello"}]}
    output = tmp_path / "web.log"
    with output.open("wb") as log, web_server(env, port, output=log), httpx.Client() as client:
        answers = {
            "valid": client.post(f"{base}/api/v1/hooks/events/{key}/", json=event),
            "malformed": client.post(f"{base}/api/v1/hooks/events/{key}/", json={"events": 3}),
            "wrong secret": client.post(f"{base}/api/v1/hooks/events/{wrong}/", json=event),
            "unknown key": client.post(f"{base}/api/v1/hooks/heartbeat/{unknown}/", json={}),
            "unknown kind": client.post(f"{base}/api/v1/hooks/nope/{key}/", json=event),
            "no slash": client.post(f"{base}/api/v1/hooks/events/{key}", json=event),
            "encoded": client.post(f"{base}/api/v1/hooks%2Fevents%2F{key}/", json=event),
            "query": client.get(f"{base}/api/v1/whoami?key={key}&api_key={unknown}"),
        }
    statuses = {name: answer.status_code for name, answer in answers.items()}
    text = output.read_text()

    assert statuses["valid"] == 202, answers["valid"].text
    assert statuses["malformed"] == 400
    assert statuses["wrong secret"] == statuses["unknown key"] == statuses["query"] == 401
    assert statuses["unknown kind"] == 404
    for secret_part in (secret, wrong.partition(".")[2], unknown):
        assert secret_part not in text, [line for line in text.splitlines() if secret_part in line]
    # The lines are there, with the path and the key's public prefix only.
    redacted_path = f"/api/v1/hooks/events/{prefix}.{REDACTED}/"
    # The access log (JSON lines escape its quotes).
    assert f'"POST {redacted_path} HTTP/1.1" 202' in text.replace('\\"', '"')
    assert f"Bad Request: {redacted_path}" in text  # django.request
    assert f"Unauthorized: /api/v1/hooks/heartbeat/{REDACTED}/" in text
    assert f"Not Found: /api/v1/hooks/nope/{prefix}.{REDACTED}/" in text
    assert f"/api/v1/whoami?key={prefix}.{REDACTED}&api_key={REDACTED}" in text


def test_every_handler_configured_at_start_redacts() -> None:
    """Django's own handlers (`django.server` of runserver, the admins' e-mail) too."""
    handlers = {
        handler
        for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
        for handler in getattr(logger, "handlers", ())
        # pytest's capture of this very run is no handler of Tradewatch's, and a library's
        # NullHandler (added when it is imported) writes nothing.
        if not type(handler).__module__.startswith("_pytest")
        and not isinstance(handler, logging.NullHandler)
    }
    names = {handler.get_name() for handler in handlers}

    assert {"django.server", "mail_admins"} <= names
    assert all(
        any(isinstance(f, HookKeyFilter) for f in handler.filters) for handler in handlers
    ), [
        (handler.get_name(), type(handler).__module__, type(handler).__name__)
        for handler in handlers
    ]
