"""One object of configuration at a time, for the configuration API's CRUD endpoints.

Each write is a one-object configuration file applied: the same schema, the same
models' validation and messages, the same history (`via` the configuration API), so
an object reads and writes through the API exactly as it does in a file. Problems are
named by their path inside the object (`thresholds[0].value`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import pghistory
from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction
from django.db.models import ProtectedError

from alerts.models import Channel, Policy, Rule
from health.models import HealthCheck
from metrics.models import Schedule, Source

from .document import DocumentInvalid, Item, Problem, document_from_data, plain_data
from .fields import SECTIONS, VERSION
from .schema import schema_problems
from .secrets import CHANNEL_SECTIONS, reference_variable
from .services import ApplyResult, document_apply
from .state import state_read

EDITED_VIA: Final = "configuration API"
# The sections edited one object at a time (silences have their own API).
OBJECT_SECTIONS: Final = tuple(section for section in SECTIONS if section != "silences")
MODELS: Final[dict[str, type[models.Model]]] = {
    "schedules": Schedule,
    "sources": Source,
    "channels": Channel,
    "recovery_actions": Channel,
    "rules": Rule,
    "policies": Policy,
    "health_checks": HealthCheck,
}


class ObjectMissing(LookupError):
    pass


class ObjectExists(Exception):
    pass


class ObjectInUse(Exception):
    """Other objects still refer to it (a schedule a source or rule follows)."""


def _shown(section: str, item: Item) -> Item:
    """An object as the API answers it: which secrets are set, never their values."""
    if section not in CHANNEL_SECTIONS:
        return item
    shown = {key: value for key, value in item.items() if key != "secrets"}
    shown["secrets_set"] = sorted(item["secrets"])
    return shown


def objects_list(*, section: str) -> list[Item]:
    document, _ = state_read(sections=(section,))
    return [_shown(section, item) for item in document.sections[section]]


def object_get(*, section: str, name: str) -> Item:
    for item in objects_list(section=section):
        if item["name"] == name:
            return item
    raise ObjectMissing(name)


def _inner(problems: list[Problem], section: str) -> list[Problem]:
    """Paths inside the one object: `rules[0].window` -> `window`."""
    prefix = f"{section}[0]"
    return [
        (path.removeprefix(prefix).removeprefix(".") if path.startswith(prefix) else path, text)
        for path, text in problems
    ]


def object_put(
    *,
    section: str,
    name: str,
    data: Mapping[str, Any],
    environ: Mapping[str, str],
    actor: AbstractBaseUser,
    create_only: bool = False,
) -> tuple[Item, ApplyResult]:
    """Create or replace the object `name` of `section` with `data` (every field; those
    left out take their defaults, secrets left out keep what is stored).

    DocumentInvalid names each problem; ObjectExists when `create_only` finds it.
    """
    # Text the database cannot store (a NUL character) is refused before any query.
    problems = []
    for field, value in [("name", name), *((k, v) for k, v in data.items() if k != "name")]:
        try:
            plain_data(value)
        except ValueError as exc:
            problems.append((str(field), str(exc)))
    if problems:
        raise DocumentInvalid(problems)
    item = dict(data)
    if item.get("name", name) != name:
        raise DocumentInvalid(
            [("name", f"the URL names {name!r}: create the new name and delete the old one")]
        )
    item["name"] = name
    literal: dict[str, str] = {}
    if section in CHANNEL_SECTIONS and isinstance(item.get("secrets"), dict):
        # Through the API a secret is a value, or a ${NAME} reference as in a file.
        secrets = item.pop("secrets")
        problems = [
            (f"secrets.{key}", "must be text") for key, value in secrets.items()
            if not isinstance(value, str) or not value
        ]  # fmt: skip
        if problems:
            raise DocumentInvalid(problems)
        item["secrets"] = {k: v for k, v in secrets.items() if reference_variable(v) is not None}
        literal = {k: v for k, v in secrets.items() if reference_variable(v) is None}
    data_file = {"version": VERSION, section: [item]}
    problems = schema_problems(data_file)
    if problems:
        raise DocumentInvalid(_inner(problems, section))
    with transaction.atomic():
        if create_only and MODELS[section]._default_manager.filter(name=name).exists():
            raise ObjectExists(name)
        try:
            document = document_from_data(data_file)
            result = document_apply(
                document=document, environ=environ, literal_secrets={name: literal},
                actor=actor, via=EDITED_VIA,
            )  # fmt: skip
        except DocumentInvalid as exc:
            raise DocumentInvalid(_inner(exc.problems, section)) from None
        return object_get(section=section, name=name), result


def object_delete(*, section: str, name: str, actor: AbstractBaseUser) -> None:
    """Delete the object, as the admin does (what hangs on it goes with it)."""
    queryset = MODELS[section]._default_manager.filter(name=name)
    if section in CHANNEL_SECTIONS:
        recovery = Channel.Kind.RECOVERY
        queryset = (
            queryset.filter(kind=recovery)
            if section == "recovery_actions"
            else queryset.exclude(kind=recovery)
        )
    with (
        transaction.atomic(),
        pghistory.context(user=actor.pk, username=actor.get_username(), via=EDITED_VIA),
    ):
        if not queryset.exists():
            raise ObjectMissing(name)
        try:
            queryset.delete()
        except ProtectedError as exc:
            users = sorted({str(obj) for obj in exc.protected_objects})[:5]
            raise ObjectInUse(f"{name!r} is still used by {', '.join(users)}.") from None
