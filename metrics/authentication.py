"""API-key authentication for trading systems: `Authorization: Api-Key <key>`."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from core.generations import generation_bump, generation_current, generation_known
from core.operator_api import KEYWORD

from .models import Source, SourceAPIKey


@dataclass(frozen=True)
class SourcePrincipal:
    """The authenticated caller of an ingestion endpoint: a source, never a person.

    It carries no Django permissions, so operator endpoints (which check model
    permissions of a user) refuse it even though it is authenticated.
    """

    source: Source
    api_key: SourceAPIKey

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False

    @property
    def pk(self) -> str:
        return f"source:{self.source.pk}"

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return False

    def has_perms(self, perm_list: object, obj: object = None) -> bool:
        return False

    def __str__(self) -> str:
        return f"source {self.source.name}"


# Every ingestion request runs this lookup: one plain query (an ORM query with
# select_related costs several times more than the whole rest of authentication).
_KEY_FIELDS = ["id", "prefix", "hashed_key", "name", "revoked", "expiry_date", "source_id"]
_SOURCE_FIELDS = ["id", "name", "kind", "enabled"]
_USABLE_KEY_SQL = (
    "SELECT k.id, k.prefix, k.hashed_key, k.name, k.revoked, k.expiry_date, k.source_id, "
    "s.id, s.name, s.kind, s.enabled "
    f"FROM {SourceAPIKey._meta.db_table} k JOIN {Source._meta.db_table} s ON s.id = k.source_id "
    "WHERE k.prefix = %s AND NOT k.revoked"
)


def usable_key(prefix: str) -> SourceAPIKey | None:
    """The unrevoked key with this prefix and its source (other fields load on access)."""
    with connection.cursor() as cursor:
        cursor.execute(_USABLE_KEY_SQL, [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    db = connection.alias
    # from_db with a subset of fields (in model order) defers the rest, as .only() would.
    api_key = SourceAPIKey.from_db(db, _KEY_FIELDS, row[:7])
    api_key.source = Source.from_db(db, _SOURCE_FIELDS, row[7:])
    return api_key


# Keys that authenticated lately, so that a trading system posting every tick costs no
# query and no hash check per request. Keyed by a digest of the whole presented key (a
# right prefix with a wrong secret never matches), per process, bounded.
#
# Each remembered check is tagged with the keys' generation the shared cache held when
# the check was read (as rules are, see `core.generations`). Revoking a key, or
# disabling or deleting a source, writes a fresh generation once it is committed, so
# every process checks the database again at its next request: a revoked key is
# refused at once, everywhere. With the cache away nothing remembered is trusted (every
# request is checked in the database). KEY_CACHE_SECONDS bounds how long a change made
# straight in the database, which bumps no generation, can go unseen; expiry dates are
# checked on every request.
KEYS_GENERATION = generation_known("source-keys-generation")
KEY_CACHE_SECONDS = 5.0
_KEY_CACHE_LIMIT = 10_000


@dataclass(frozen=True)
class _Remembered:
    checked_at: float
    generation: object
    principal: SourcePrincipal


_known_keys: dict[bytes, _Remembered] = {}


def forget_known_keys() -> None:
    """Check every key against the database again, in this process only (tests)."""
    _known_keys.clear()


def keys_changed() -> None:
    """Keys were revoked or a source disabled: every process checks keys afresh.

    This process at once; every other one from its next request after the change
    commits (call it inside the transaction that makes the change).
    """
    forget_known_keys()
    generation_bump(KEYS_GENERATION)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class SourceAPIKeyAuthentication(authentication.BaseAuthentication):
    """Map `Authorization: Api-Key <key>` to its source.

    Unknown, revoked and expired keys and keys of a disabled source all get the same
    401, so a caller learns nothing about which keys exist.
    """

    def authenticate(self, request: Request) -> tuple[SourcePrincipal, SourceAPIKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        keyword, _, key = header.partition(" ")
        if keyword != KEYWORD:
            return None
        key = key.strip()
        if not key:
            raise exceptions.AuthenticationFailed("Empty API key.")
        return self.authenticate_key(key)

    def authenticate_key(self, key: str) -> tuple[SourcePrincipal, SourceAPIKey]:
        digest = _digest(key)
        # Read before the database: a revocation committed meanwhile shows as a new one.
        generation = generation_current(KEYS_GENERATION, what="API keys")
        known = _known_keys.get(digest)
        if (
            known is not None
            and known.generation == generation
            and time.monotonic() - known.checked_at < KEY_CACHE_SECONDS
        ):
            principal = known.principal
            expiry = principal.api_key.expiry_date
            if expiry is None or expiry > timezone.now():
                return principal, principal.api_key
        principal = self._check(key)
        if len(_known_keys) >= _KEY_CACHE_LIMIT:
            _known_keys.clear()
        _known_keys[digest] = _Remembered(time.monotonic(), generation, principal)
        return principal, principal.api_key

    def _check(self, key: str) -> SourcePrincipal:
        """The source of a usable key, from the database; AuthenticationFailed if none."""
        api_key = usable_key(key.partition(".")[0])
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if not api_key.is_valid(key):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if api_key.expiry_date is not None and api_key.expiry_date <= timezone.now():
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if not api_key.source.enabled:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        return SourcePrincipal(source=api_key.source, api_key=api_key)

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (with WWW-Authenticate) rather than 403.
        return KEYWORD


class HookKeyAuthentication(SourceAPIKeyAuthentication):
    """The key as the last part of the URL, for integrations that cannot set headers.

    URLs end up in proxy logs: give such an integration a key of its own, so it can
    be revoked alone.
    """

    def authenticate(self, request: Request) -> tuple[SourcePrincipal, SourceAPIKey] | None:
        context = getattr(request, "parser_context", None) or {}
        key = (context.get("kwargs") or {}).get("token", "")
        if not key:
            raise exceptions.AuthenticationFailed("Missing API key.")
        return self.authenticate_key(key)
