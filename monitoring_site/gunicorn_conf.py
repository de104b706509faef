"""Gunicorn settings, from the environment."""

from __future__ import annotations

import os

bind = os.environ.get("TRADEWATCH_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Trading systems post every tick: keep their connections open between batches.
keepalive = 30
timeout = 30
graceful_timeout = 20
accesslog = "-"
errorlog = "-"
# Preloading before fork keeps memory low; database connections open after fork.
preload_app = True
# Gunicorn's control socket lives at one path per user: two servers on one machine
# (a second instance, a benchmark) would fight over it, and nothing here uses it.
control_socket_disable = True
