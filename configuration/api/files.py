"""`POST /api/v1/config/apply` and `GET /api/v1/config/export`: whole files."""

from __future__ import annotations

import os
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from alerts.api.common import COMMON_ERRORS, bad_request, field_errors, person
from configuration.document import DocumentInvalid
from configuration.fields import SECTIONS
from configuration.plan import SECRET_VALUE_CHANGED, Plan
from configuration.services import config_apply, config_export
from core.api_errors import OPERATOR_ERRORS_SCHEMA

from .common import MAX_FILE_CHARACTERS, ConfigurationApi, problem_errors

APPLIED_VIA_API = "config apply (API)"

PLAN_SCHEMA = inline_serializer(
    "ConfigApplyResult",
    {
        "applied": serializers.BooleanField(help_text="False for a dry run."),
        "summary": inline_serializer(
            "ConfigApplySummary",
            {
                "created": serializers.IntegerField(),
                "changed": serializers.IntegerField(),
                "unchanged": serializers.IntegerField(),
                "deleted": serializers.IntegerField(),
            },
        ),
        "objects": serializers.ListField(
            child=inline_serializer(
                "ConfigApplyObject",
                {
                    "section": serializers.ChoiceField(choices=list(SECTIONS)),
                    "name": serializers.CharField(help_text="A silence: reason @ start."),
                    "action": serializers.ChoiceField(
                        choices=["created", "changed", "unchanged", "deleted"]
                    ),
                    "changes": serializers.ListField(
                        child=inline_serializer(
                            "ConfigFieldChange",
                            {
                                "field": serializers.CharField(),
                                "old": serializers.JSONField(allow_null=True),
                                "new": serializers.JSONField(allow_null=True),
                                "secret": serializers.BooleanField(
                                    help_text="A secret's value changed (never shown)."
                                ),
                            },
                        )
                    ),
                },
            )
        ),
        "notes": serializers.ListField(child=serializers.CharField()),
    },
)


def plan_data(plan: Plan) -> list[dict[str, Any]]:
    return [
        {
            "section": planned.section,
            "name": planned.key,
            "action": planned.action,
            "changes": [
                {
                    "field": change.path,
                    "old": None if change.old == SECRET_VALUE_CHANGED else change.old,
                    "new": None if change.old == SECRET_VALUE_CHANGED else change.new,
                    "secret": change.old == SECRET_VALUE_CHANGED,
                }
                for change in planned.changes
            ],
        }
        for planned in plan.objects
    ]


class ConfigApplyApi(ConfigurationApi):
    """Check a whole file, answer the plan, and apply it (unless a dry run) at once."""

    class InputSerializer(serializers.Serializer[Any]):
        file = serializers.CharField(
            max_length=MAX_FILE_CHARACTERS,
            trim_whitespace=False,
            allow_blank=True,
            help_text="The configuration file's YAML text (see /api/schema/config.json). "
            "Secrets are ${NAME} references, read from the server's environment.",
        )
        dry_run = serializers.BooleanField(default=False, help_text="Apply nothing.")
        prune = serializers.BooleanField(
            default=False,
            help_text="Delete what the file's sections do not have (sections it leaves "
            "out are kept).",
        )

    @extend_schema(
        operation_id="config_apply",
        summary="Apply a configuration file (or see what it would change)",
        request=InputSerializer,
        responses={200: PLAN_SCHEMA, 400: OPERATOR_ERRORS_SCHEMA, **COMMON_ERRORS},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        if not serializer.is_valid():
            return bad_request(field_errors(serializer.errors))
        data = serializer.validated_data
        try:
            result = config_apply(
                text=data["file"],
                environ=os.environ,
                actor=person(request),
                dry_run=data["dry_run"],
                prune=data["prune"],
                via=APPLIED_VIA_API,
            )
        except DocumentInvalid as exc:
            return bad_request(problem_errors(exc.problems))
        counts = result.plan.counts()
        return Response(
            {
                "applied": result.applied,
                "summary": counts,
                "objects": plan_data(result.plan),
                "notes": list(result.notes),
            }
        )


class ConfigExportApi(ConfigurationApi):
    """The configuration as `tradewatch config export` writes it."""

    class FilterSerializer(serializers.Serializer[Any]):
        only = serializers.MultipleChoiceField(choices=list(SECTIONS), required=False)

    @extend_schema(
        operation_id="config_export",
        summary="The configuration as one file (secrets as references, or left out)",
        parameters=[
            OpenApiParameter(
                "only",
                str,
                many=True,
                enum=list(SECTIONS),
                description="Sections to export (repeat the parameter); default: all.",
            )
        ],
        responses={
            200: inline_serializer(
                "ConfigExport", {"file": serializers.CharField(help_text="YAML text.")}
            ),
            400: OPERATOR_ERRORS_SCHEMA,
            **COMMON_ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data={"only": request.query_params.getlist("only")})
        if not filters.is_valid():
            return bad_request(field_errors(filters.errors))
        sections = filters.validated_data.get("only") or SECTIONS
        return Response({"file": config_export(sections=sections)})
