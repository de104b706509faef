"""Gunicorn settings, from the environment."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from gunicorn.glogging import Logger

bind = os.environ.get("TRADEWATCH_BIND", "127.0.0.1:8000")
# Two processes per core, two threads each: measured under half-capacity background
# ingest, this kept a breaching request's p99 at about half of two processes with four
# threads (fewer threads share each process's GIL) and took 9 % more samples per second.
workers = int(os.environ.get("WEB_CONCURRENCY", str(2 * (os.cpu_count() or 1))))
# Threads, not one request per process at a time: a small batch (a breaching value, a
# heartbeat) is then not queued behind a large one on a busy worker; the work is mostly
# database and network waits, which release the GIL. Each thread keeps its own database
# connection (CONN_MAX_AGE), so a worker holds `threads` connections.
worker_class = os.environ.get("WEB_WORKER_CLASS", "gthread")
threads = int(os.environ.get("WEB_THREADS", "2"))
# Trading systems post every tick: keep their connections open between batches (sync
# workers cannot; threaded ones can, so no TCP handshake per batch).
keepalive = 30
timeout = 30
graceful_timeout = 20
accesslog = "-"
errorlog = "-"


class RedactingLogger(Logger):
    """Gunicorn's logs without the API key of a hook URL (`/api/v1/hooks/<kind>/<key>/`).

    Every value the access line may show (request line, path, query string, referer,
    `{...}e` and `{...}i` atoms) is redacted before formatting, so any
    `access_log_format` is safe, and gunicorn's own handlers carry the same filter as
    Django's (error lines quote request lines too).
    """

    def setup(self, cfg: Any) -> None:
        # Imported here: this file is read before the application is loaded.
        from monitoring_site.log_redaction import redact_handler

        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                redact_handler(handler)

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        from monitoring_site.log_redaction import redact

        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for name, value in atoms.items():
            if isinstance(value, str):
                atoms[name] = redact(value)
        return atoms


logger_class = RedactingLogger
# Preloading before fork keeps memory low; database connections open after fork.
preload_app = True
# Gunicorn's control socket lives at one path per user: two servers on one machine
# (a second instance, a benchmark) would fight over it, and nothing here uses it.
control_socket_disable = True

# --- Prometheus counters shared by every worker ---------------------------------------
# Set before the preload imports prometheus_client, which picks its storage at import.
# One folder per web server: two servers sharing it would wipe each other's counters.
_PROMETHEUS_DIR = Path(
    os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR",
        str(Path(__file__).resolve().parent.parent / "var" / "prometheus"),
    )
)


def on_starting(server: Any) -> None:
    # Counters of a previous run would otherwise be added to this run's.
    shutil.rmtree(_PROMETHEUS_DIR, ignore_errors=True)
    _PROMETHEUS_DIR.mkdir(parents=True)


def post_fork(server: Any, worker: Any) -> None:
    # A thread wanting the GIL asks the holder for it after this long (Python's default
    # is 5 ms): a small request then is not held up for several of those at each of its
    # database round trips while a large batch validates in another thread.
    sys.setswitchinterval(0.001)
    from monitoring_site.memory import collector_tune

    collector_tune()


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
