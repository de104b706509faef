"""The configuration API's objects as the OpenAPI schema describes them.

Made from the file's field table (`configuration.fields`), so an object reads the same
in a file and through the API. They document; validation is the file's own (schema,
then the models), so its messages are the same everywhere.
"""

from __future__ import annotations

from typing import Any, Final

from rest_framework import serializers

from configuration.fields import SEVERITY_NAMES, Field, section_fields

DURATION_HELP: Final = "A duration: 30s, 5m, 1h30m, 1d, 250ms, or a number of seconds."
TITLES: Final = {
    "schedules": "Schedule",
    "sources": "Source",
    "channels": "Channel",
    "recovery_actions": "RecoveryAction",
    "rules": "Rule",
    "policies": "Policy",
    "health_checks": "HealthCheck",
    "thresholds": "Threshold",
    "overrides": "ThresholdOverride",
    "expectations": "Expectation",
}


def _field(spec: Field, name: str, *, answer: bool) -> serializers.Field[Any, Any, Any, Any]:
    options: dict[str, Any] = {"help_text": spec.help or None}
    if not answer:
        options["required"] = spec.required and spec.name != "name"
    if spec.nullable:
        options["allow_null"] = True
    kind = spec.kind
    if kind in ("text", "exchange"):
        return serializers.CharField(allow_blank=True, max_length=spec.max_length, **options)
    if kind == "bool":
        return serializers.BooleanField(**options)
    if kind == "int":
        minimum = None if spec.minimum is None else int(spec.minimum)
        return serializers.IntegerField(min_value=minimum, **options)
    if kind == "number":
        return serializers.FloatField(**options)
    if kind == "duration":
        options["help_text"] = DURATION_HELP
        return serializers.CharField(**options)
    if kind == "severity":
        # Text rather than an enum: any case is read (`warning`), upper case written.
        options["help_text"] = f"One of {', '.join(SEVERITY_NAMES)} (any case)."
        return serializers.CharField(**options)
    if kind == "choice":
        return serializers.ChoiceField(choices=list(spec.choices), **options)
    if kind == "object":
        return serializers.DictField(**options)
    if kind == "ref":
        return serializers.CharField(**options)
    if kind in ("refs", "tags"):
        return serializers.ListField(child=serializers.CharField(), **options)
    if kind == "timestamp":
        return serializers.DateTimeField(**options)
    if kind == "windows":
        options["help_text"] = spec.help or None
        return serializers.ListField(child=serializers.CharField(), **options)
    if kind == "items":
        return object_serializer(spec.items, f"{name}{TITLES[spec.name]}", answer=answer)(
            many=True, **options
        )
    raise AssertionError(kind)  # pragma: no cover - a table mistake


def object_serializer(
    fields: tuple[Field, ...], title: str, *, answer: bool
) -> type[serializers.Serializer[Any]]:
    """A serializer class (an OpenAPI component) for objects with `fields`."""
    attrs: dict[str, Any] = {}
    for spec in fields:
        if spec.kind == "secrets":
            if answer:
                attrs["secrets_set"] = serializers.ListField(
                    child=serializers.CharField(),
                    help_text="The secrets that are set (their values are never shown).",
                )
            else:
                attrs["secrets"] = serializers.DictField(
                    child=serializers.CharField(),
                    required=False,
                    help_text="Write-only: each secret's value, or a ${NAME} reference to "
                    "the server's environment. A secret left out keeps the stored one.",
                )
            continue
        attrs[spec.name] = _field(spec, title, answer=answer)
    suffix = "" if answer else "Request"
    name = f"Config{title}{suffix}Serializer"
    return type(name, (serializers.Serializer,), attrs)


def section_serializers() -> dict[str, tuple[type[Any], type[Any]]]:
    """(answer, request) serializer classes per section edited through the API."""
    tables = section_fields()
    return {
        section: (
            object_serializer(tables[section], TITLES[section], answer=True),
            object_serializer(tables[section], TITLES[section], answer=False),
        )
        for section in TITLES
        if section in tables
    }
