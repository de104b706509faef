"""JSONL file channel: one JSON object per line, rotated by size.

Several worker processes may write the same file, so appending and rotating happen
under an exclusive `flock` on a companion `.lock` file (not the log itself, which
rotation renames away from under a waiting writer).
"""

from __future__ import annotations

import fcntl
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import orjson

from alerts.channels import formatting
from alerts.channels.base import ChannelKind, DeliveryResult, NotificationMessage

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 5
MAX_BACKUPS = 100
# The channel appends to whatever path an admin types; limiting the suffix keeps it from
# being turned against a shell profile or an authorized_keys file.
ALLOWED_SUFFIXES = (".jsonl", ".ndjson", ".json", ".log")


class JsonlChannel(ChannelKind):
    """Appends the SPEC payload of each notification to a file, one object per line.

    Config: `path` (absolute), `max_bytes` (rotate before a line would pass it),
    `backups` (rotated files kept as `path.1` … `path.N`, as `RotatingFileHandler`).
    """

    kind = "jsonl"
    label = "JSONL file"
    config_fields: ClassVar[tuple[str, ...]] = ("path", "max_bytes", "backups")

    @classmethod
    def validate(cls, config: dict[str, Any], secrets: dict[str, str]) -> None:
        """An absolute file path with a log suffix; a positive size; a sane backup count."""
        errors: dict[str, str] = {}
        path = config.get("path")
        if not isinstance(path, str) or not path.strip():
            errors["path"] = "A file path is required."
        elif not os.path.isabs(path):
            errors["path"] = "Must be an absolute path."
        elif not path.endswith(ALLOWED_SUFFIXES):
            errors["path"] = "Must end with one of " + ", ".join(ALLOWED_SUFFIXES) + "."
        elif os.path.isdir(path):
            errors["path"] = "Is a directory; name a file inside it."
        max_bytes = config.get("max_bytes", DEFAULT_MAX_BYTES)
        if not _is_int(max_bytes) or max_bytes < 1024:
            errors["max_bytes"] = "Must be a whole number of bytes, at least 1024."
        backups = config.get("backups", DEFAULT_BACKUPS)
        if not _is_int(backups) or not 0 <= backups <= MAX_BACKUPS:
            errors["backups"] = f"Must be a whole number from 0 to {MAX_BACKUPS}."
        if errors:
            raise cls.invalid(errors)

    @property
    def path(self) -> Path:
        """The file written to."""
        return Path(self.config["path"])

    def send(self, message: NotificationMessage) -> DeliveryResult:
        """Append one line, rotating first when it would make the file too large."""
        started = time.perf_counter()
        record = formatting.payload(message)
        record["webhook_id"] = message.webhook_id
        record["written_at"] = datetime.now(tz=UTC).isoformat()
        line = orjson.dumps(record, default=str) + b"\n"
        try:
            self.append(line)
        except (PermissionError, IsADirectoryError, NotADirectoryError) as exc:
            # Fixing these takes an operator; retrying will not help.
            return DeliveryResult(
                ok=False, error=f"Cannot write {self.path}: {exc}", permanent=True
            )
        except OSError as exc:
            # A full disk, for one, clears up.
            return DeliveryResult(ok=False, error=f"Cannot write {self.path}: {exc}")
        return DeliveryResult(ok=True, duration_ms=(time.perf_counter() - started) * 1000)

    def append(self, line: bytes) -> None:
        """Append `line` under the lock, rotating first when needed."""
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = path.with_name(path.name + ".lock")
        with open(lock_path, "ab") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                size = path.stat().st_size if path.exists() else 0
                max_bytes = int(self.config.get("max_bytes", DEFAULT_MAX_BYTES))
                if size > 0 and size + len(line) > max_bytes:
                    self._rotate(path, int(self.config.get("backups", DEFAULT_BACKUPS)))
                # O_APPEND: a single write of one line lands whole at the end.
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
                try:
                    view = memoryview(line)
                    while view:
                        view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    @staticmethod
    def _rotate(path: Path, backups: int) -> None:
        if backups <= 0:
            path.unlink(missing_ok=True)
            return
        for index in range(backups - 1, 0, -1):
            older = path.with_name(f"{path.name}.{index}")
            if older.exists():
                os.replace(older, path.with_name(f"{path.name}.{index + 1}"))
        os.replace(path, path.with_name(f"{path.name}.1"))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
