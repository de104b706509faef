"""Applying a plan to the database, object by object, with the models' own validation.

Every object written goes through `full_clean()` first (the admin's validation: field
validators, the model's `clean()`, its constraints and, for channels, the kind's
config check), and a rule's thresholds through the admin's threshold check. What fails
is recorded with the object's path in the file and not saved; the caller rolls the
whole transaction back when anything failed, so a file applies whole or not at all.
Unchanged objects and rows are not written, so applying a file twice records nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, models, transaction
from django.db.models import ProtectedError

from alerts.channels.registry import channel_kind
from alerts.models import Channel, Policy, Rule, Silence, Threshold, ThresholdOverride
from alerts.threshold_checks import thresholds_problem
from health.models import HealthCheck
from metrics.models import Expectation, Schedule, Source, Tag
from metrics.schedules import windows_normalised

from .document import Item, Problem
from .fields import SECTIONS, WEEKDAY_NAMES, duration_parse, severity_value
from .models import ChannelSecretReferences
from .plan import CHANGED, CREATED, DELETED, ObjectPlan, Plan
from .schema import path_text


class Writer:
    """Writes one plan; `problems` says what could not be written, `notes` what else
    a person should know (a secret Tradewatch made itself)."""

    def __init__(
        self,
        *,
        secret_values: Mapping[str, dict[str, str]],
        secret_variables: Mapping[str, dict[str, str]],
        actor: AbstractBaseUser | None,
    ) -> None:
        self.secret_values = secret_values
        self.secret_variables = secret_variables
        self.actor = actor
        self.problems: list[Problem] = []
        self.notes: list[str] = []
        self._failed: set[tuple[str, str]] = set()

    # --- the plan --------------------------------------------------------------------

    def apply(self, plan: Plan) -> None:
        for section in SECTIONS:
            for planned in plan.of(section, CREATED, CHANGED):
                assert planned.desired is not None
                where = path_text([section, planned.index])
                if not getattr(self, f"_write_{section}")(planned, planned.desired, where):
                    self._failed.add((_table(section), planned.key))
        for section in reversed(SECTIONS):
            for planned in plan.of(section, DELETED):
                self._delete(planned)

    def _delete(self, planned: ObjectPlan) -> None:
        if planned.section == "silences":
            silence = self._silence(planned.key)
            if silence is not None:
                silence.delete()
            return
        model: type[models.Model] = {
            "schedules": Schedule, "sources": Source, "channels": Channel,
            "recovery_actions": Channel, "rules": Rule, "policies": Policy,
            "health_checks": HealthCheck,
        }[planned.section]  # fmt: skip
        found = model._default_manager.filter(name=planned.key)
        if planned.section in ("channels", "recovery_actions"):
            # A channel the file moved to the other section (its kind changed) stays.
            recovery = Channel.Kind.RECOVERY
            found = (
                found.filter(kind=recovery)
                if planned.section == "recovery_actions"
                else found.exclude(kind=recovery)
            )
        try:
            with transaction.atomic():
                found.delete()
        except ProtectedError as exc:
            users = sorted({str(obj) for obj in exc.protected_objects})[:5]
            self.problems.append(
                (
                    f"{planned.section}.{planned.key}",
                    f"cannot be deleted: still used by {', '.join(users)}",
                )
            )

    # --- problems --------------------------------------------------------------------

    def _invalid(self, error: ValidationError, where: str, *, nested: tuple[str, ...] = ()) -> None:
        """Record a model's validation error at `where`, each field at its path.

        Messages of `nested` fields (a channel's config and secrets) start with the
        kind's own field name, which becomes part of the path.
        """
        if not hasattr(error, "error_dict"):
            self.problems += [(where, str(message)) for message in error.messages]
            return
        for field, messages in error.message_dict.items():
            path = where if field == "__all__" else f"{where}.{field}"
            for message in messages:
                inner, _, rest = message.partition(": ")
                if field in nested and rest and inner.isidentifier():
                    self.problems.append((f"{path}.{inner}", rest))
                else:
                    self.problems.append((path, message))

    def _named(self, model: type[models.Model], section: str, name: str | None, where: str) -> Any:
        """The object named `name` (None for none); a problem if it is missing."""
        if name is None:
            return None
        found = model._default_manager.filter(name=name).first()
        if found is None and (_table(section), name) not in self._failed:
            self.problems.append((where, f"no {section.removesuffix('s')} named {name!r}"))
        return found

    def _tag(self, name: str | None, where: str) -> Tag | None:
        if name is None:
            return None
        tag = Tag(name=name)
        try:
            tag.full_clean(validate_unique=False)
        except ValidationError as exc:
            self.problems += [(where, message) for message in exc.message_dict.get("name", [])]
            return None
        return Tag.objects.get_or_create(name=name)[0]

    def _tags(self, names: list[str], where: str) -> list[Tag] | None:
        tags = [self._tag(name, f"{where}[{index}]") for index, name in enumerate(names)]
        return None if None in tags else [tag for tag in tags if tag is not None]

    def _many(self, model: type[models.Model], section: str, names: list[str], where: str) -> Any:
        found = [
            self._named(model, section, name, f"{where}[{index}]")
            for index, name in enumerate(names)
        ]
        return None if None in found else found

    def _saved(self, obj: models.Model, where: str, **clean: Any) -> bool:
        try:
            obj.full_clean(**clean)
        except ValidationError as exc:
            self._invalid(exc, where, nested=("config", "secrets"))
            return False
        except (TypeError, ValueError, AttributeError) as exc:
            # A kind's check met a value of a type it did not expect (a list for a URL).
            self.problems.append((where, f"has a value of the wrong type: {exc}"))
            return False
        try:
            # A savepoint: a value the database refuses fails this object, not the run.
            with transaction.atomic():
                obj.save()
        except (IntegrityError, DataError) as exc:
            self.problems.append((where, f"the database refused it: {str(exc).splitlines()[0]}"))
            return False
        return True

    # --- sections --------------------------------------------------------------------

    def _write_schedules(self, planned: ObjectPlan, item: Item, where: str) -> bool:
        schedule = Schedule.objects.filter(name=planned.key).first() or Schedule(name=planned.key)
        for name in ("kind", "exchange", "timezone", "invert", "description"):
            setattr(schedule, name, item[name])
        try:
            windows = windows_normalised(item["windows"])
        except ValueError as exc:
            self.problems.append((f"{where}.windows", str(exc)))
            return False
        if windows != schedule.windows:
            schedule.windows = windows
        return self._saved(schedule, where)

    def _schedule(self, name: str | None, where: str) -> tuple[bool, Schedule | None]:
        """(found, the schedule) for a `schedule` reference; a problem if it is missing."""
        found = self._named(Schedule, "schedules", name, where)
        return (name is None or found is not None), found

    def _write_sources(self, planned: ObjectPlan, item: Item, where: str) -> bool:
        source = Source.objects.filter(name=planned.key).first() or Source(name=planned.key)
        source.kind = item["kind"]
        source.description = item["description"]
        source.enabled = item["enabled"]
        source.heartbeat_period = duration_parse(item["heartbeat_period"])
        source.heartbeat_grace = duration_parse(item["heartbeat_grace"])
        ok, source.schedule = self._schedule(item["schedule"], f"{where}.schedule")
        tags = self._tags(item["tags"], f"{where}.tags")
        if not ok or tags is None or not self._saved(source, where):
            return False
        source.tags.set(tags)
        return self._expectations_written(source, item["expectations"], where)

    def _expectations_written(self, source: Source, wanted: list[Item], where: str) -> bool:
        existing = {e.signal: e for e in source.expectations.all()}
        signals = {item["signal"] for item in wanted}
        for signal, expectation in existing.items():
            if signal not in signals:
                expectation.delete()
        ok = True
        for index, item in enumerate(wanted):
            at = f"{where}.expectations[{index}]"
            expectation = existing.get(item["signal"]) or Expectation(
                source=source, signal=item["signal"]
            )
            found, schedule = self._schedule(item["schedule"], f"{at}.schedule")
            if not found:
                ok = False
                continue
            values = {
                "grace": None if item["grace"] is None else duration_parse(item["grace"]),
                "schedule_id": schedule.pk if schedule is not None else None,
                "enabled": item["enabled"],
            }
            if expectation.pk is None or _differs(expectation, values):
                for name, value in values.items():
                    setattr(expectation, name, value)
                ok = self._saved(expectation, at) and ok
        return ok

    def _write_channels(self, planned: ObjectPlan, item: Item, where: str) -> bool:
        channel = Channel.objects.filter(name=planned.key).first() or Channel(name=planned.key)
        channel.kind = item.get("kind", Channel.Kind.RECOVERY)
        channel.enabled = item["enabled"]
        channel.min_severity = severity_value(item["min_severity"])
        channel.rate_limit = item["rate_limit"]
        channel.rate_window = duration_parse(item["rate_window"])
        channel.config = item["config"]
        stored = channel.secrets if channel.pk else {}
        given = self.secret_values.get(planned.key, {})
        secrets = channel_kind(channel.kind).secrets_completed({**stored, **given})
        for key in sorted(set(secrets) - set(stored) - set(given)):
            self.notes.append(
                f"{planned.key}: Tradewatch made a new {key} (not shown); to know it, give "
                f"it in the file as a reference to an environment variable."
            )
        # Encryption is not deterministic: only a different secret is written again,
        # so an unchanged channel records no "secrets replaced" in its history.
        if secrets != stored:
            channel.secrets = secrets
        if not self._saved(channel, where):
            return False
        row, _ = ChannelSecretReferences.objects.get_or_create(channel=channel)
        # A secret given as a value (through the API) is stored without a reference.
        given_from = self.secret_variables.get(planned.key, {})
        references = {
            key: variable
            for key, variable in {**row.references, **given_from}.items()
            if key in secrets and (key not in given or key in given_from)
        }
        if references != row.references:
            row.references = references
            row.save(update_fields=["references"])
        return True

    _write_recovery_actions = _write_channels

    def _write_rules(self, planned: ObjectPlan, item: Item, where: str) -> bool:
        rule = Rule.objects.filter(name=planned.key).first() or Rule(name=planned.key)
        for name in (
            "description", "enabled", "kind", "metric", "labels", "aggregation",
            "change_percent", "min_samples", "guard_metric", "guard_minimum", "m_of_n_m",
            "m_of_n_n", "missing_data", "inhibited_by", "message_template", "trading_actions",
        ):  # fmt: skip
            setattr(rule, name, item[name])
        for name in ("window", "for_duration", "keep_firing_for"):
            setattr(rule, name, duration_parse(item[name]))
        rule.scope = Rule.Scope.ALL
        if item["source"] or item["tag"]:
            rule.scope = Rule.Scope.SOURCE if item["source"] else Rule.Scope.TAG
        rule.source = self._named(Source, "sources", item["source"], f"{where}.source")
        rule.tag = self._tag(item["tag"], f"{where}.tag")
        found, rule.schedule = self._schedule(item["schedule"], f"{where}.schedule")
        if (item["source"] and rule.source is None) or (item["tag"] and rule.tag is None):
            return False
        if not found:
            return False
        problem = thresholds_problem(
            (severity_value(t["severity"]), t["comparison"], t["value"], t["clear_value"])
            for t in item["thresholds"]
        )
        if problem:
            self.problems.append((f"{where}.thresholds", problem))
            return False
        if not self._saved(rule, where):
            return False
        return self._thresholds_written(rule, item["thresholds"], where)

    def _thresholds_written(self, rule: Rule, wanted: list[Item], where: str) -> bool:
        existing = {threshold.severity: threshold for threshold in rule.thresholds.all()}
        severities = {severity_value(item["severity"]): item for item in wanted}
        for severity, threshold in existing.items():
            if severity not in severities:
                threshold.delete()
        ok = True
        for index, item in enumerate(wanted):
            severity = severity_value(item["severity"])
            threshold = existing.get(severity) or Threshold(rule=rule, severity=severity)
            at = f"{where}.thresholds[{index}]"
            values = {k: item[k] for k in ("comparison", "value", "clear_value", "action")}
            if threshold.pk is None or _differs(threshold, values):
                for name, value in values.items():
                    setattr(threshold, name, value)
                if not self._saved(threshold, at):
                    ok = False
                    continue
            ok = self._overrides_written(threshold, item["overrides"], at) and ok
        return ok

    def _overrides_written(self, threshold: Threshold, wanted: list[Item], where: str) -> bool:
        existing = {o.source.name: o for o in threshold.overrides.select_related("source")}
        names = {item["source"] for item in wanted}
        for name, override in existing.items():
            if name not in names:
                override.delete()
        ok = True
        for index, item in enumerate(wanted):
            at = f"{where}.overrides[{index}]"
            found = existing.get(item["source"])
            if found is None:
                source = self._named(Source, "sources", item["source"], f"{at}.source")
                if source is None:
                    ok = False
                    continue
                found = ThresholdOverride(threshold=threshold, source=source)
            override = found
            values = {k: item[k] for k in ("value", "clear_value", "enabled")}
            if override.pk is None or _differs(override, values):
                for name, value in values.items():
                    setattr(override, name, value)
                ok = self._saved(override, at) and ok
        return ok

    def _write_policies(self, planned: ObjectPlan, item: Item, where: str) -> bool:
        policy = Policy.objects.filter(name=planned.key).first() or Policy(name=planned.key)
        policy.enabled = item["enabled"]
        policy.min_severity = severity_value(item["min_severity"])
        policy.notify_resolved = item["notify_resolved"]
        policy.notify_acknowledged = item["notify_acknowledged"]
        policy.repeat_seconds = item["repeat_seconds"]
        escalate = item["escalate_after"]
        policy.escalate_after = None if escalate is None else duration_parse(escalate)
        policy.digest_daily = item["digest_daily"]
        weekday = item["digest_weekly_day"]
        policy.digest_weekly_day = None if weekday is None else WEEKDAY_NAMES.index(weekday)
        # Read (and refused with the field named) by the model's own cleaning.
        policy.digest_time = item["digest_time"]
        policy.digest_timezone = item["digest_timezone"]
        fallback = item["fallback_channel"]
        policy.fallback_channel = self._named(
            Channel, "channels", fallback, f"{where}.fallback_channel"
        )
        links = {
            "sources": self._many(Source, "sources", item["sources"], f"{where}.sources"),
            "tags": self._tags(item["tags"], f"{where}.tags"),
            "rules": self._many(Rule, "rules", item["rules"], f"{where}.rules"),
            "channels": self._many(Channel, "channels", item["channels"], f"{where}.channels"),
            "escalation_channels": self._many(
                Channel, "channels", item["escalation_channels"], f"{where}.escalation_channels"
            ),
        }  # fmt: skip
        if any(found is None for found in links.values()) or (
            fallback and policy.fallback_channel is None
        ):
            return False
        if not self._saved(policy, where):
            return False
        for name, found in links.items():
            getattr(policy, name).set(found)
        return True

    def _write_health_checks(self, planned: ObjectPlan, item: Item, where: str) -> bool:
        check = HealthCheck.objects.filter(name=planned.key).first() or HealthCheck(
            name=planned.key
        )
        for name in (
            "kind", "config", "enabled", "failures_to_unhealthy", "successes_to_recover",
            "breaker_threshold", "recover_when",
        ):  # fmt: skip
            setattr(check, name, item[name])
        for name in ("interval", "timeout", "breaker_retry"):
            setattr(check, name, duration_parse(item[name]))
        check.source = self._named(Source, "sources", item["source"], f"{where}.source")
        action = item["recovery_action"]
        check.recovery_action = self._named(
            Channel, "recovery_actions", action, f"{where}.recovery_action"
        )
        if (item["source"] and check.source is None) or (action and check.recovery_action is None):
            return False
        return self._saved(check, where)

    def _write_silences(self, planned: ObjectPlan, item: Item, where: str) -> bool:
        silence = self._silence(planned.key)
        if silence is None:
            silence = Silence(reason=item["reason"], starts_at=_time(item["starts_at"]))
            silence.created_by = self.actor  # type: ignore[assignment]
        silence.ends_at = None if item["ends_at"] is None else _time(item["ends_at"])
        silence.min_severity = severity_value(item["min_severity"])
        found, silence.schedule = self._schedule(item["schedule"], f"{where}.schedule")
        if not found:
            return False
        links = {
            "sources": self._many(Source, "sources", item["sources"], f"{where}.sources"),
            "tags": self._tags(item["tags"], f"{where}.tags"),
            "rules": self._many(Rule, "rules", item["rules"], f"{where}.rules"),
        }
        if any(found is None for found in links.values()) or not self._saved(silence, where):
            return False
        for name, found in links.items():
            getattr(silence, name).set(found)
        return True

    def _silence(self, key: str) -> Silence | None:
        reason, _, starts_at = key.rpartition(" @ ")
        return (
            Silence.objects.filter(
                reason=reason,
                starts_at=_time(starts_at),
                alert__isnull=True,
                expired_at__isnull=True,
            )
            .order_by("pk")
            .first()
        )


def _time(text: str) -> datetime:
    # Python 3.11 reads a final "Z"; the file always writes one.
    return datetime.fromisoformat(text)


def _table(section: str) -> str:
    """Channels and recovery actions are one table, with one set of names."""
    return "channels" if section == "recovery_actions" else section


def _differs(obj: models.Model, values: Mapping[str, Any]) -> bool:
    return any(getattr(obj, name) != value for name, value in values.items())
