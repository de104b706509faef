"""Which reads go to the PostgreSQL streaming replica (DATABASE_REPLICA_URL), and which not.

The replica takes the heavy, repeated reads of people looking: the admin's dashboard
and change lists, and the operator API's GETs (alerts, silences, schedules, health,
snapshots, metric history). Everything else reads the primary:

* writes, and any read in a transaction or after a write in the same request (the
  router turns the replica off for the rest of the request at the first write);
* ingestion, trading controls (a halted bot must learn it from the primary), the event
  stream, configuration as code (its diff must be against what is), backtests, and
  every worker and beat (no request: no replica);
* sign-in, sessions, permissions and tokens (`REPLICA_APPS` lists the apps whose rows
  may come from the replica; these are not among them), so a fresh session is never
  looked for where it has not arrived yet;
* a person's reads right after their own change, wherever they make the next request:
  a change (any POST, PUT, PATCH or DELETE with a session or token, or a request that
  wrote) leaves the primary's WAL position in the shared cache under that credential,
  and their reads stay on the primary until the replica has replayed past it (one
  `pg_last_wal_replay_lsn()` on the replica per read while the mark lasts). A time
  guess would be either too long (load stays on the primary) or too short (lag spikes).

Why a request flag set by a middleware rather than routing by model alone: the same
Alert row is read by an operator's list (stale by a few milliseconds is fine) and by
the lifecycle that changes it (must be current); only the request knows which it is.
A replica that cannot be reached sends the request's reads to the primary.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import MiddlewareNotUsed
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.models import Model
from django.http import HttpRequest, HttpResponseBase

from .databases import REPLICA

logger = logging.getLogger(__name__)

# Apps whose rows operators browse: what may be read from the replica.
REPLICA_APPS = frozenset({"metrics", "alerts", "health", "audit", "pghistory"})
# The dashboard (and its live JSON), app indexes and change lists; the operator API's reads.
REPLICA_PATHS = re.compile(
    r"^/admin/(?:dashboard\.json|[a-z0-9_]+/(?:[a-z0-9_]+/)?)?$"
    r"|^/api/v1/(?:alerts(?:/\d+)?|silences|schedules|health/(?:status|safety)"
    r"|sources/[^/]+/snapshot|metrics/query)$"
)
SAFE_METHODS = frozenset({"GET", "HEAD"})
# How long a person's change keeps their reads on the primary at most (normally only
# until the replica has replayed it, milliseconds).
PIN_SECONDS = 300
PIN_KEY = "replica-pin:{credential}"
# After the replica failed to answer, this process reads the primary for this long
# before trying it again (a replica host that is down costs a connect timeout per try).
RETRY_SECONDS = 5.0
_replica_failed_at = -RETRY_SECONDS


@dataclass
class _Reads:
    """This request's routing: may its reads go to the replica; did it write."""

    replica: bool
    wrote: bool = False


_reads: ContextVar[_Reads | None] = ContextVar("replica_reads", default=None)


class ReplicaRouter:
    """Reads to the replica only when the request allows it (see the module's text)."""

    def db_for_read(self, model: type[Model], **hints: Any) -> str:
        reads = _reads.get()
        if (
            reads is not None
            and reads.replica
            and model._meta.app_label in REPLICA_APPS
            and not connections[DEFAULT_DB_ALIAS].in_atomic_block
        ):
            return REPLICA
        # Said explicitly: else Django reads a related row where its instance came from.
        return DEFAULT_DB_ALIAS

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        reads = _reads.get()
        if reads is not None:
            reads.replica = False
            reads.wrote = True
        # Said explicitly: else Django writes an instance back where it was read from.
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool | None:
        # The replica holds the primary's very rows.
        same = {DEFAULT_DB_ALIAS, REPLICA}
        return True if {obj1._state.db, obj2._state.db} <= same else None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return False if db == REPLICA else None


def _credential(request: HttpRequest) -> str | None:
    """A digest of the person's session cookie or API token (None: neither, e.g. a bot's
    API key, which never reads from the replica)."""
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    if authorization.startswith(("Token ", "Bearer ")):
        raw = authorization
    else:
        raw = request.COOKIES.get(settings.SESSION_COOKIE_NAME, "")
    return hashlib.sha256(raw.encode()).hexdigest() if raw else None


def _replica_has_replayed(lsn: str) -> bool:
    with connections[REPLICA].cursor() as cursor:
        cursor.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn])
        row = cursor.fetchone()
    return bool(row and row[0])


def replica_may_serve(request: HttpRequest, credential: str | None) -> bool:
    """Whether this request's reads may go to the replica."""
    if (
        credential is None
        or request.method not in SAFE_METHODS
        or not REPLICA_PATHS.match(request.path_info)
    ):
        return False
    global _replica_failed_at
    if time.monotonic() - _replica_failed_at < RETRY_SECONDS:
        return False
    try:
        pinned = cache.get(PIN_KEY.format(credential=credential))
        if pinned is not None and not _replica_has_replayed(str(pinned)):
            return False  # their own change has not reached the replica yet
        replica = connections[REPLICA]
        # A kept connection is checked once per request (CONN_HEALTH_CHECKS) before use:
        # here, so that a replica gone since is found before the view reads.
        replica.close_if_health_check_failed()
        replica.ensure_connection()
    except DatabaseError as exc:
        _replica_failed_at = time.monotonic()
        logger.warning("reading from the primary: the replica is unavailable (%s)", exc)
        return False
    except Exception as exc:  # the cache is away: whose change is unknown, stay current
        logger.warning("reading from the primary: the cache is unavailable (%s)", exc)
        return False
    return True


def _pin(credential: str) -> None:
    """Keep this person's reads on the primary until the replica has their change."""
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_lsn()::text")
            row = cursor.fetchone()
        if row:
            cache.set(PIN_KEY.format(credential=credential), row[0], timeout=PIN_SECONDS)
    except Exception:  # their next reads may be a moment stale; the change itself is saved
        logger.warning("could not keep this person's reads on the primary", exc_info=True)


class ReplicaReadsMiddleware:
    """Sets, per request, whether its reads may go to the replica (after authentication's
    middleware); marks a person's change so their next reads see it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        if REPLICA not in settings.DATABASES:
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        credential = _credential(request)
        reads = _Reads(replica=replica_may_serve(request, credential))
        token = _reads.set(reads)
        try:
            response = self.get_response(request)
        finally:
            _reads.reset(token)
        if credential is not None and (reads.wrote or request.method not in SAFE_METHODS):
            _pin(credential)
        return response
