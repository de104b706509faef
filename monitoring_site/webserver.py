"""The production web server: Granian, then monitoring_site.front, then Django.

Why not gunicorn's threaded workers: gunicorn hands a connection to one of its few
threads as soon as the first bytes arrive, and that thread then waits for the rest of
the request; four clients sending a header byte every two seconds held every thread of
`2 x 2`, and `/healthz` and ingestion stopped answering. Granian reads and parses
requests on a Rust event loop (hyper), which holds many slow connections for the price
of a buffer each and closes one whose headers are not complete within
`TRADEWATCH_HEADER_TIMEOUT_SECONDS`; monitoring_site.front then reads the body on the
asyncio loop (with its own deadline and size limit), so only a complete request
reaches one of the few Python threads that run Django's sync views.

`python -m monitoring_site.webserver` (what `launcher web` runs) reads its settings
from the environment, like the rest of Tradewatch.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitoring_site.launch_defaults import DEFAULT_BIND, split_bind

BASE_DIR = Path(__file__).resolve().parent.parent

# One line per request, through Python logging (logger `granian.access`), so every
# filter and handler of Tradewatch's logging applies to it as to any other line.
ACCESS_LOG_FORMAT = '%(addr)s - "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).1fms'


class RequestTargetFilter(logging.Filter):
    """The access line's path with its query string, as the request line had it (the
    server logs them apart). Runs on the logger, so the handlers' filters (a hook key in
    a query string is redacted there) see the whole target."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, Mapping) and args.get("query_string"):
            record.args = {**args, "path": f"{args.get('path', '')}?{args['query_string']}"}
        return True


@dataclass(frozen=True)
class WebSettings:
    """How the web server runs; every field from an environment variable."""

    host: str
    port: int
    workers: int
    header_timeout_ms: int
    keepalive: bool
    max_connections: int
    stop_timeout_seconds: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> WebSettings:
        host, port = split_bind(environ.get("TRADEWATCH_BIND", DEFAULT_BIND))
        workers = int(environ.get("WEB_CONCURRENCY", str(2 * (os.cpu_count() or 1))))
        header_timeout = float(environ.get("TRADEWATCH_HEADER_TIMEOUT_SECONDS", "10"))
        return cls(
            host=host,
            port=port,
            workers=max(1, workers),
            # Granian accepts 1 ms to 60 s.
            header_timeout_ms=min(60_000, max(1, round(header_timeout * 1000))),
            keepalive=True,
            # Open connections per process (Granian's "backpressure": each connection
            # holds a permit, an idle or slow one too); beyond it new connections wait
            # in the kernel's queue. Slow ones are closed at the header deadline.
            max_connections=int(environ.get("TRADEWATCH_WEB_MAX_CONNECTIONS", "1000")),
            # Below the 30 s the launcher (and 20 s tests) wait before killing the
            # server: it then always reaps its own workers, leaving none behind.
            stop_timeout_seconds=int(environ.get("TRADEWATCH_WEB_STOP_TIMEOUT_SECONDS", "15")),
        )


def reset_prometheus_folder(environ: dict[str, str]) -> Path:
    """Prometheus counters shared by every web process, in a folder emptied at start.

    prometheus_client picks its storage at import, in each process: the variable is set
    here, before any worker starts. Counters of a previous run would otherwise be added
    to this run's; one folder per web server, as two sharing it would wipe each other's.
    """
    folder = Path(
        environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(BASE_DIR / "var" / "prometheus"))
    )
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def granian_options(web: WebSettings) -> dict[str, Any]:
    """The keyword arguments of `granian.Granian` for these settings."""
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings

    return {
        "target": "monitoring_site.front:application",
        "address": web.host,
        "port": web.port,
        # ASGI without lifespan events (Django has none to run).
        "interface": Interfaces.ASGINL,
        # HTTP/1.1 only: TLS and HTTP/2 belong to the proxy in front.
        "http": HTTPModes.http1,
        "websockets": False,
        "workers": web.workers,
        "backlog": 2048,
        "backpressure": web.max_connections,
        "http1_settings": HTTP1Settings(
            header_read_timeout=web.header_timeout_ms, keep_alive=web.keepalive
        ),
        # Tradewatch's own logging configuration (settings.LOGGING) takes over in each
        # worker once Django is set up; this one covers the server's own lines.
        "log_access": True,
        "log_access_format": ACCESS_LOG_FORMAT,
        "log_dictconfig": {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
            "filters": {"request_target": {"()": RequestTargetFilter}},
            "handlers": {
                "console": {
                    "class": "logging.StreamHandler",
                    "formatter": "plain",
                    "stream": "ext://sys.stdout",
                }
            },
            "loggers": {
                "_granian": {"handlers": ["console"], "level": "INFO", "propagate": False},
                "granian.access": {
                    "handlers": [],
                    "level": "INFO",
                    "propagate": True,
                    "filters": ["request_target"],
                },
            },
            "root": {"handlers": ["console"], "level": "INFO"},
        },
        # On SIGTERM a worker stops accepting, finishes its requests and waits for their
        # clients to close kept-alive connections; past this it is killed.
        "workers_kill_timeout": web.stop_timeout_seconds,
        "working_dir": BASE_DIR,
    }


def main() -> None:
    from granian import Granian

    environ = os.environ
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitoring_site.settings")
    reset_prometheus_folder(environ)  # type: ignore[arg-type]
    web = WebSettings.from_environ(environ)
    Granian(**granian_options(web)).serve()


if __name__ == "__main__":
    main()
