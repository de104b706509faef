"""Beat's scheduler: django-celery-beat's, sending work only while it holds the beat lock.

Exactly one beat should run. A second one started by mistake (a second `make run`, a
scaled-up container, a deploy overlapping the old one) finds the lock taken and stands
by, checking now and then; when the first beat dies its lock goes with its database
session and the standby takes over within `STANDBY_POLL_SECONDS`.

The lock is a PostgreSQL session advisory lock on a connection of its own: Django's
connections are closed and reopened between ticks (CONN_MAX_AGE), which would drop a
session lock taken on them. The embedded SQLite mode has no advisory locks; there an
exclusive lock on a file beside the database does the same for the processes of one
machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import time
import zlib
from pathlib import Path
from typing import IO, Any

from django.db import connections
from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger(__name__)

# One number for "Tradewatch's beat" in pg_advisory_lock's 64-bit key space.
LOCK_KEY = zlib.crc32(b"tradewatch:beat")
STANDBY_POLL_SECONDS = 5.0
# How often the holder checks that its lock session is still alive.
VERIFY_SECONDS = 5.0


class BeatLock:
    """The lock one beat holds while it schedules periodic work."""

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias
        self._connection: Any = None
        self._file: IO[str] | None = None
        self._unshared = False
        self._verified_at = 0.0

    @property
    def postgresql(self) -> bool:
        return connections[self.alias].vendor == "postgresql"

    def acquire(self) -> bool:
        """Take the lock if nobody holds it; True when this process holds it now."""
        if self.postgresql:
            return self._acquire_advisory()
        return self._acquire_file()

    def held(self) -> bool:
        """Whether this process still holds the lock (checked every few seconds)."""
        if self._file is not None or self._unshared:
            return True
        if self._connection is None:
            return False
        if time.monotonic() - self._verified_at < VERIFY_SECONDS:
            return True
        try:
            with self._connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND pid = pg_backend_pid() AND objid = %s AND granted",
                    [LOCK_KEY & 0xFFFFFFFF],
                )
                row = cursor.fetchone()
        except Exception:
            # The session is gone (database restart, network): so is the lock.
            logger.warning("beat lost its lock session; stopping until it takes it again")
            self.release()
            return False
        if not row or not row[0]:
            self.release()
            return False
        self._verified_at = time.monotonic()
        return True

    def release(self) -> None:
        """Let go of the lock (closing its session releases it on the server)."""
        if self._connection is not None:
            # Already broken or not: nothing is left to release either way.
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def _acquire_advisory(self) -> bool:
        wrapper = connections[self.alias]
        try:
            if self._connection is None:
                self._connection = wrapper.get_new_connection(wrapper.get_connection_params())
                self._connection.autocommit = True
            with self._connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
                row = cursor.fetchone()
        except Exception:
            logger.warning("beat could not reach the database to take its lock", exc_info=True)
            self.release()
            return False
        if row and row[0]:
            self._verified_at = time.monotonic()
            return True
        return False

    def _acquire_file(self) -> bool:
        # Beside the database file: one beat per database, as with the advisory lock.
        database = str(connections[self.alias].settings_dict["NAME"])
        path = Path(f"{database}.beat-lock") if database != ":memory:" else None
        if path is None:
            self._unshared = True  # an in-memory database is one process's own
            return True
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True


class LockedDatabaseScheduler(DatabaseScheduler):
    """django-celery-beat's scheduler, active only while holding the beat lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.beat_lock = BeatLock()
        self._standing_by = False
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Send what is due if this beat holds the lock; otherwise wait for it."""
        if not self.beat_lock.held():
            if not self.beat_lock.acquire():
                if not self._standing_by:
                    logger.warning(
                        "another beat holds the beat lock: this one stands by and sends "
                        "nothing (checking every %.0f s)",
                        STANDBY_POLL_SECONDS,
                    )
                    self._standing_by = True
                return STANDBY_POLL_SECONDS
            logger.info("beat lock taken: this beat sends the periodic work")
            self._standing_by = False
            # Read the schedule afresh: the previous holder saved when each entry last ran.
            self._initial_read = True
            self._heap = None
        result: float = super().tick(*args, **kwargs)
        return result

    def close(self) -> None:
        """Save the schedule, then let go of the lock."""
        try:
            super().close()
        finally:
            self.beat_lock.release()
