"""Configuration as code: export Tradewatch's configuration, and apply a file to it.

`config_export` writes the file; `config_apply` checks a whole file (the schema, names
it refers to, secrets' environment variables, then every object with the models' own
validation), shows the plan, and applies it in one transaction, or nothing of it.
The command line and the API both call these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

import pghistory
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction

from alerts.models import Channel, Policy, Rule, Silence
from health.models import HealthCheck
from metrics.models import Schedule, Source

from .document import Document, DocumentInvalid, document_read, document_text, reference_problems
from .fields import SECTIONS
from .plan import Plan, plan_make
from .secrets import CHANNEL_SECTIONS, secrets_resolve
from .state import STORED, exported, state_read
from .writing import Writer

# Held for the length of one apply, so two applies at once take turns.
_APPLY_LOCK: Final = 0x7477_636F_6E66  # "twconf"
APPLIED_VIA: Final = "config apply"
# What a person needs to apply a file: to add, change and delete what files hold.
APPLY_PERMISSIONS: Final = tuple(
    f"{app}.{action}_{model}"
    for app, model in (
        ("metrics", "schedule"), ("metrics", "source"), ("metrics", "expectation"),
        ("alerts", "channel"), ("alerts", "rule"), ("alerts", "threshold"),
        ("alerts", "thresholdoverride"), ("alerts", "policy"), ("alerts", "silence"),
        ("health", "healthcheck"),
    )
    for action in ("add", "change", "delete")
)  # fmt: skip


# What a person needs to read configuration: the Viewer group's view permissions.
VIEW_PERMISSIONS: Final = tuple(
    f"{app}.view_{model}"
    for app, model in (
        ("metrics", "schedule"), ("metrics", "source"), ("alerts", "channel"),
        ("alerts", "rule"), ("alerts", "policy"), ("alerts", "silence"),
        ("health", "healthcheck"),
    )
)  # fmt: skip


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    applied: bool
    notes: tuple[str, ...] = field(default_factory=tuple)


def config_export(*, sections: Iterable[str] = SECTIONS) -> str:
    """The configuration as one YAML file (secrets as references, or left out)."""
    wanted = tuple(section for section in SECTIONS if section in set(sections))
    document, _ = state_read(sections=wanted)
    return document_text(exported(document))


def may_apply(user: AbstractBaseUser) -> bool:
    """Whether `user` may apply files: the admin's Admin group may."""
    return bool(user.is_active and user.has_perms(APPLY_PERMISSIONS))  # type: ignore[attr-defined]


def _names_known() -> dict[str, set[str]]:
    channels = Channel.objects.values_list("name", "kind")
    return {
        "schedules": set(Schedule.objects.values_list("name", flat=True)),
        "sources": set(Source.objects.values_list("name", flat=True)),
        "channels": {name for name, kind in channels if kind != Channel.Kind.RECOVERY},
        "recovery_actions": {name for name, kind in channels if kind == Channel.Kind.RECOVERY},
        "rules": set(Rule.objects.values_list("name", flat=True)),
        "policies": set(Policy.objects.values_list("name", flat=True)),
        "health_checks": set(HealthCheck.objects.values_list("name", flat=True)),
        "silences": {str(pk) for pk in Silence.objects.values_list("pk", flat=True)},
    }


def config_apply(
    *,
    text: str,
    environ: Mapping[str, str],
    actor: AbstractBaseUser | None = None,
    actor_name: str = "",
    dry_run: bool = False,
    prune: bool = False,
    via: str = APPLIED_VIA,
) -> ApplyResult:
    """Apply the file `text`; DocumentInvalid (nothing changed) naming every problem.

    With `dry_run` everything is checked as if applied (in a transaction rolled back),
    so the answer is the same a real apply would give. History records each change
    as made by `actor` (or `actor_name`) through `via`.
    """
    return document_apply(
        document=document_read(text), environ=environ, actor=actor, actor_name=actor_name,
        dry_run=dry_run, prune=prune, via=via,
    )  # fmt: skip


def document_apply(
    *,
    document: Document,
    environ: Mapping[str, str],
    literal_secrets: Mapping[str, dict[str, str]] | None = None,
    actor: AbstractBaseUser | None = None,
    actor_name: str = "",
    dry_run: bool = False,
    prune: bool = False,
    via: str = APPLIED_VIA,
) -> ApplyResult:
    """Apply a document read already (see `config_apply`).

    `literal_secrets` are secret values given as such (by the API, per channel name),
    stored without a reference; a file only ever has references.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_APPLY_LOCK])
        plan, writer = _planned_and_written(
            document, environ, literal_secrets or {}, actor, prune=prune,
            actor_name=actor_name, via=via,
        )  # fmt: skip
        if writer.problems:
            raise DocumentInvalid(writer.problems)
        if dry_run:
            transaction.set_rollback(True)
    return ApplyResult(plan=plan, applied=not dry_run, notes=tuple(writer.notes))


def _planned_and_written(
    document: Document,
    environ: Mapping[str, str],
    literal_secrets: Mapping[str, dict[str, str]],
    actor: AbstractBaseUser | None,
    *,
    prune: bool,
    actor_name: str,
    via: str,
) -> tuple[Plan, Writer]:
    problems = reference_problems(document, _names_known(), prune=prune)
    values, variables, secret_problems = secrets_resolve(document, environ)
    problems += secret_problems
    if problems:
        raise DocumentInvalid(problems)
    for section in CHANNEL_SECTIONS:
        for item in document.sections.get(section, []):
            literal = literal_secrets.get(item["name"], {})
            values.setdefault(item["name"], {}).update(literal)
            item["secrets"] = dict(
                sorted({**item["secrets"], **dict.fromkeys(literal, STORED)}.items())
            )
    current, stored = state_read(sections=tuple(document.sections))
    changed_values = {
        name: {
            key
            for key, value in given.items()
            if key in stored.values.get(name, {}) and stored.values[name][key] != value
        }
        for name, given in values.items()
    }
    plan = plan_make(current, document, prune=prune, secret_values_changed=changed_values)
    writer = Writer(secret_values=values, secret_variables=variables, actor=actor)
    username = actor.get_username() if actor is not None else actor_name
    with pghistory.context(user=actor.pk if actor else None, username=username, via=via):
        writer.apply(plan)
    return plan, writer
