"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu import Connection

PROBE_TIMEOUT_SECONDS = 2


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def check_database() -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not ready"; say which
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}".strip()}
    return {"ok": True, "vendor": connection.vendor, "latency_ms": _elapsed_ms(started)}


def check_broker() -> dict[str, Any]:
    started = time.perf_counter()
    url = settings.CELERY_BROKER_URL
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    try:
        with Connection(
            url, connect_timeout=PROBE_TIMEOUT_SECONDS, transport_options=options
        ) as conn:
            conn.ensure_connection(max_retries=1, timeout=PROBE_TIMEOUT_SECONDS)
    except Exception as exc:  # kombu raises transport-specific errors
        return {
            "ok": False,
            "transport": url.split("://", 1)[0],
            "error": f"{type(exc).__name__}: {exc}".strip(),
        }
    return {
        "ok": True,
        "transport": url.split("://", 1)[0],
        "latency_ms": _elapsed_ms(started),
    }


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers: no dependency is touched."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Database and broker reachable: 200 when both are, 503 naming the one that is not."""
    checks = {"database": check_database(), "broker": check_broker()}
    ready = all(check["ok"] for check in checks.values())
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    return JsonResponse(body, status=200 if ready else 503)
