"""Who may call the ingestion endpoints."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from .authentication import SourcePrincipal


class IsSource(BasePermission):
    """Only a caller authenticated by a source API key (not a person's session)."""

    message = "These endpoints take a source API key: Authorization: Api-Key <key>."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, SourcePrincipal)
