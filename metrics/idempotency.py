"""Idempotency-Key: a batch sent again with the same key gets the first answer back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .models import IdempotentRequest, Source

TABLE = IdempotentRequest._meta.db_table
MAX_KEY_LENGTH = 200


class IdempotencyKeyReused(Exception):
    """The key was first used for a different body: replaying would hide a mistake."""


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False


def _claim(source: Source, key: str, endpoint: str, body_sha256: str) -> bool:
    """Insert a placeholder for the key; False when the key is already taken.

    A concurrent request with the same key waits on the unique index until the first
    one commits, then sees its answer: the batch is never stored twice.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (source_id, key, endpoint, body_sha256, status_code, "
            "response, created_at) VALUES (%s, %s, %s, %s, 0, %s, %s) "
            "ON CONFLICT (source_id, key) DO NOTHING RETURNING id",
            [source.pk, key, endpoint, body_sha256, "{}", timezone.now()],
        )
        return cursor.fetchone() is not None


def answer_once(
    *,
    source: Source,
    key: str,
    endpoint: str,
    body_sha256: str,
    store: Callable[[], Answer],
) -> Answer:
    """Run `store` once per (source, key) within the replay window; replay its answer after."""
    with transaction.atomic():
        if not _claim(source, key, endpoint, body_sha256):
            record = IdempotentRequest.objects.select_for_update().get(source=source, key=key)
            window = timedelta(hours=settings.TRADEWATCH_IDEMPOTENCY_HOURS)
            if record.created_at >= timezone.now() - window:
                if record.body_sha256 != body_sha256 or record.endpoint != endpoint:
                    raise IdempotencyKeyReused(key)
                return Answer(record.status_code, dict(record.response), replayed=True)
            # Expired: the key starts a new life with this batch.
            record.created_at = timezone.now()
            record.body_sha256 = body_sha256
            record.endpoint = endpoint
            record.save(update_fields=["created_at", "body_sha256", "endpoint"])
        answer = store()
        IdempotentRequest.objects.filter(source=source, key=key).update(
            status_code=answer.status_code, response=answer.body
        )
    return answer
