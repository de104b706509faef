"""`/api/v1/config/<section>[/<name>]`: list, create, read, replace and delete one object
of configuration; `/api/v1/config/sources/<name>/keys`: a source's API keys."""

from __future__ import annotations

import os
from typing import Any, Final

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from alerts.api.common import COMMON_ERRORS, bad_request, conflict, person
from configuration.document import DocumentInvalid
from configuration.objects import (
    OBJECT_SECTIONS,
    ObjectExists,
    ObjectInUse,
    ObjectMissing,
    object_delete,
    object_get,
    object_put,
    objects_list,
)
from core.api_errors import OPERATOR_ERRORS_SCHEMA, single_error
from core.operator_api import OPERATOR_AUTHENTICATION
from metrics.models import Source, SourceAPIKey
from metrics.services import api_keys_revoke, source_key_issue

from .common import ConfigurationApi, problem_errors
from .serializers import section_serializers

# The models whose permissions each section needs (the admin's, per action).
SECTION_MODELS: Final = {
    "schedules": ("metrics.{}_schedule",),
    "sources": ("metrics.{}_source", "metrics.{}_expectation"),
    "channels": ("alerts.{}_channel",),
    "recovery_actions": ("alerts.{}_channel",),
    "rules": ("alerts.{}_rule", "alerts.{}_threshold", "alerts.{}_thresholdoverride"),
    "policies": ("alerts.{}_policy",),
    "health_checks": ("health.{}_healthcheck",),
}
ACTIONS: Final = {"GET": ("view",), "POST": ("add",), "PUT": ("add", "change"),
                  "DELETE": ("delete",)}  # fmt: skip
NAME = OpenApiParameter("name", str, OpenApiParameter.PATH, description="The object's name.")


def url_part(section: str) -> str:
    return section.replace("_", "-")


class SectionPermission(BasePermission):
    """The admin's model permissions for the section and the request's method."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        actions = ACTIONS.get(request.method or "GET", ("view",))
        needed = [
            perm.format(action) for perm in SECTION_MODELS[view.section] for action in actions
        ]
        self.message = (
            f"You need the permission{'s' if len(needed) > 1 else ''} {', '.join(needed)} "
            "(the Admin group edits configuration; Viewer and Operator read it)."
        )
        return bool(user.has_perms(needed))


class ObjectApi(ConfigurationApi):
    section: str = ""

    def get_permissions(self) -> list[Any]:
        return [IsAuthenticated(), SectionPermission()]


def _body(request: Request) -> dict[str, Any] | Response:
    if not isinstance(request.data, dict):
        return bad_request([{"index": None, "field": None, "message": "Send a JSON object."}])
    return dict(request.data)


def _missing(section: str, name: str) -> Response:
    what = section.removesuffix("s").replace("_", " ")
    return Response(single_error(f"No {what} named {name!r}.", "name"), status=404)


def _write(request: Request, section: str, name: str, *, create: bool) -> Response:
    body = _body(request)
    if isinstance(body, Response):
        return body
    try:
        item, _ = object_put(
            section=section, name=name, data=body, environ=os.environ,
            actor=person(request), create_only=create,
        )  # fmt: skip
    except ObjectExists:
        return conflict(f"{name!r} exists: replace it with PUT on its URL.")
    except DocumentInvalid as exc:
        return bad_request(problem_errors(exc.problems))
    return Response(item, status=status.HTTP_201_CREATED if create else status.HTTP_200_OK)


def section_views(
    section: str, answer: Any, request_body: Any
) -> tuple[type[ObjectApi], type[ObjectApi]]:
    """The list and the detail view of one section, with their schema."""
    what = section.removesuffix("s").replace("_", " ")
    op = section.removesuffix("s") if section != "policies" else "policy"

    class ListApi(ObjectApi):
        @extend_schema(
            operation_id=f"config_{section}_list",
            summary=f"Every {what}, by name",
            responses={200: answer(many=True), **COMMON_ERRORS},
        )
        def get(self, request: Request) -> Response:
            return Response(objects_list(section=self.section))

        @extend_schema(
            operation_id=f"config_{op}_create",
            summary=f"Create a {what} (the admin's validation and messages)",
            request=request_body,
            responses={
                201: answer, 400: OPERATOR_ERRORS_SCHEMA, 409: OPERATOR_ERRORS_SCHEMA,
                **COMMON_ERRORS,
            },
        )  # fmt: skip
        def post(self, request: Request) -> Response:
            body = _body(request)
            if isinstance(body, Response):
                return body
            name = body.get("name")
            if not isinstance(name, str) or not name:
                return bad_request([{"index": None, "field": "name", "message": "is required"}])
            return _write(request, self.section, name, create=True)

    class DetailApi(ObjectApi):
        @extend_schema(
            operation_id=f"config_{op}_get",
            summary=f"One {what}",
            parameters=[NAME],
            responses={200: answer, 404: OPERATOR_ERRORS_SCHEMA, **COMMON_ERRORS},
        )
        def get(self, request: Request, name: str) -> Response:
            try:
                return Response(object_get(section=self.section, name=name))
            except ObjectMissing:
                return _missing(self.section, name)

        @extend_schema(
            operation_id=f"config_{op}_put",
            summary=f"Create or replace a {what}: fields left out take their defaults",
            parameters=[NAME],
            request=request_body,
            responses={200: answer, 400: OPERATOR_ERRORS_SCHEMA, **COMMON_ERRORS},
        )
        def put(self, request: Request, name: str) -> Response:
            return _write(request, self.section, name, create=False)

        @extend_schema(
            operation_id=f"config_{op}_delete",
            summary=f"Delete a {what}, as the admin does",
            parameters=[NAME],
            request=None,
            responses={
                204: None, 404: OPERATOR_ERRORS_SCHEMA, 409: OPERATOR_ERRORS_SCHEMA,
                **COMMON_ERRORS,
            },
        )  # fmt: skip
        def delete(self, request: Request, name: str) -> Response:
            try:
                object_delete(section=self.section, name=name, actor=person(request))
            except ObjectMissing:
                return _missing(self.section, name)
            except ObjectInUse as exc:
                return conflict(str(exc))
            return Response(status=status.HTTP_204_NO_CONTENT)

    ListApi.section = DetailApi.section = section
    return ListApi, DetailApi


VIEWS: Final = {
    section: section_views(section, *serializers_)
    for section, serializers_ in section_serializers().items()
    if section in OBJECT_SECTIONS
}


class CanManageKeys(BasePermission):
    message = "You need the permission to manage source API keys (metrics.add_sourceapikey)."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        needed = (
            "metrics.add_sourceapikey"
            if request.method == "POST"
            else "metrics.change_sourceapikey"
        )
        return bool(user and user.is_authenticated and user.has_perm(needed))


class SourceKeysApi(ConfigurationApi):
    """Issue a source's API key (shown once, here only), or revoke all of them."""

    authentication_classes = OPERATOR_AUTHENTICATION

    def get_permissions(self) -> list[Any]:
        return [IsAuthenticated(), CanManageKeys()]

    @extend_schema(
        operation_id="config_source_key_issue",
        summary="Issue an API key for a source: shown in this answer only",
        parameters=[NAME],
        request=None,
        responses={
            201: inline_serializer(
                "SourceKeyIssued",
                {
                    "source": serializers.CharField(),
                    "key": serializers.CharField(help_text="Shown only now: store it safely."),
                },
            ),
            404: OPERATOR_ERRORS_SCHEMA,
            **COMMON_ERRORS,
        },
    )
    def post(self, request: Request, name: str) -> Response:
        source = Source.objects.filter(name=name).first()
        if source is None:
            return _missing("sources", name)
        key = source_key_issue(source=source, name=f"issued through the API by {person(request)}")
        return Response({"source": source.name, "key": key}, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="config_source_keys_revoke",
        summary="Revoke every API key of a source",
        parameters=[NAME],
        request=None,
        responses={
            200: inline_serializer("SourceKeysRevoked", {"revoked": serializers.IntegerField()}),
            404: OPERATOR_ERRORS_SCHEMA,
            **COMMON_ERRORS,
        },
    )
    def delete(self, request: Request, name: str) -> Response:
        source = Source.objects.filter(name=name).first()
        if source is None:
            return _missing("sources", name)
        revoked = api_keys_revoke(keys=SourceAPIKey.objects.filter(source=source))
        return Response({"revoked": revoked})
