"""OpenAPI description of the source API-key scheme (drf-spectacular extension)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class SourceAPIKeyScheme(OpenApiAuthenticationExtension):
    target_class = "metrics.authentication.SourceAPIKeyAuthentication"
    name = "SourceApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`: the key of one source, shown once when created.",
        }


class HookKeyScheme(OpenApiAuthenticationExtension):
    """The hooks carry the key in the path (`<token>`), which OpenAPI has no scheme for."""

    target_class = "metrics.authentication.HookKeyAuthentication"
    name: list[str] = []
    priority = 1

    def get_security_requirement(self, auto_schema: Any) -> Any:
        return None

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, str]]:
        return []
