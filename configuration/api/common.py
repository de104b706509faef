"""Who may call the configuration API, and the answers its views share.

The same permissions as the admin: the Admin group edits (add, change and delete of
what configuration holds); Viewer and Operator read.
"""

from __future__ import annotations

from typing import Any, Final

from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request

from configuration.document import Problem
from configuration.services import APPLY_PERMISSIONS, VIEW_PERMISSIONS
from core.api_errors import ErrorsView
from core.operator_api import OPERATOR_AUTHENTICATION


class CanEditConfiguration(IsAuthenticated):
    message = (
        "Changing configuration needs the Admin group's permissions: add, change and "
        "delete of schedules, sources, expectations, channels, rules, thresholds, "
        "overrides, policies, silences and health checks."
    )

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perms(APPLY_PERMISSIONS))


class CanViewConfiguration(IsAuthenticated):
    message = "Reading configuration needs the permission to view it (the Viewer group's)."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perms(VIEW_PERMISSIONS))


class ConfigurationApi(ErrorsView):
    """People only; reading needs the view permissions, anything else the Admin group's."""

    authentication_classes = OPERATOR_AUTHENTICATION

    def get_permissions(self) -> list[Any]:
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            return [CanViewConfiguration()]
        return [CanEditConfiguration()]


def problem_errors(problems: list[Problem]) -> list[dict[str, Any]]:
    """A file's problems as the API's error items: the path is the field."""
    return [{"index": None, "field": path, "message": message} for path, message in problems]


MAX_FILE_CHARACTERS: Final = 2_000_000
