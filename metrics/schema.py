"""The OpenAPI schema: the source API-key scheme, and every answer each operation can give."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from rest_framework.authentication import SessionAuthentication

from core.api_errors import ERRORS_SCHEMA
from core.operator_api import SourceKeyRefusal
from metrics.api.limits import BODY_METHODS


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


class SourceKeyRefusalScheme(OpenApiAuthenticationExtension):
    """The refusal of source keys on operator endpoints authenticates nobody: no scheme
    (its answer is documented with the 401)."""

    target_class = "core.operator_api.SourceKeyRefusal"
    name: list[str] = []
    priority = 1

    def get_security_requirement(self, auto_schema: Any) -> Any:
        return None

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, str]]:
        return []


# --- Every answer an operation can give ----------------------------------------------------

HEADER_DESCRIPTIONS = {
    "200": "OK.",
    "201": "Created.",
    "202": "Accepted and stored.",
    "X-Request-ID": "The request's id (the caller's own, or a new one): search the logs for it.",
    "Retry-After": "Seconds to wait before sending again.",
    "WWW-Authenticate": "The scheme to authenticate with.",
    "Idempotent-Replayed": "`true` when this is the stored answer to an earlier request "
    "with the same `Idempotency-Key`.",
    "Tradewatch-Trading-State": "The trading state the source must obey now: `active`, "
    "`reduce_only` or `halted`.",
    "ETag": "The state's tag: send it back in `If-None-Match`.",
}
DESCRIPTIONS = {
    "200": "OK.",
    "201": "Created.",
    "202": "Accepted and stored.",
    "304": "Not modified: the state is still the one `If-None-Match` names.",
    "400": "The request is malformed; each error names the parameter, field or item.",
    "401": "No credentials, or credentials that are unknown, revoked or expired.",
    "403": "Authenticated, without the permission this operation needs (or a session "
    "request without its CSRF token).",
    "404": "No such object.",
    "406": "The `Accept` header asks for a type other than JSON.",
    "409": "The object's state does not allow this now.",
    "413": "The request body is larger than the configured limit (TRADEWATCH_MAX_BODY_BYTES).",
    "414": "The URL is longer than TRADEWATCH_MAX_URL_BYTES; JSON from Tradewatch, HTML "
    "when the HTTP server's own request-line limit is hit first.",
    "415": "The body is not JSON (`Content-Type: application/json`).",
    "422": "The `Idempotency-Key` was already used for a different request.",
    "429": "Too many requests for this source; wait `Retry-After` seconds.",
    "503": "The database is unavailable; nothing was stored. Retry after `Retry-After` seconds.",
}
# An operator endpoint's 401 also answers a source's API key, with a message saying so.
OPERATOR_401 = (
    f"{DESCRIPTIONS['401'][:-1]}, or a source's API key: those are for sending data, "
    "operator endpoints take a user's token or an admin session."
)
# Permission classes that only ask for an authenticated caller: failing them is a 401.
_AUTHENTICATION_ONLY = ("IsAuthenticated", "IsSource", "AllowAny")


def _header(name: str, schema: dict[str, Any], *, required: bool) -> dict[str, Any]:
    return {"schema": schema, "required": required, "description": HEADER_DESCRIPTIONS[name]}


class TradewatchAutoSchema(AutoSchema):
    """drf-spectacular's schema, completed with every error answer a view can really give.

    What a view can answer follows from how it is built (its authentication, permission
    and throttle classes, its parameters and body) and from what every API request goes
    through (the size limits, content negotiation, the database), so it is derived here
    once rather than listed by hand on each view.
    """

    def _get_parameters(self) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super()._get_parameters()
        for parameter in parameters:
            # Django's `<int:...>` converter matches digits only.
            if parameter["in"] == "path" and parameter["schema"].get("type") == "integer":
                parameter["schema"].setdefault("minimum", 0)
        return parameters

    def error_codes(self) -> set[str]:
        """The error statuses this operation can answer (besides those it declares)."""
        view = self.view
        codes = {"406", "414", "503"}
        authenticators = view.get_authenticators()
        permissions = [type(permission).__name__ for permission in view.get_permissions()]
        if authenticators and permissions != ["AllowAny"]:
            codes.add("401")
            if any(isinstance(a, SessionAuthentication) for a in authenticators) or any(
                name not in _AUTHENTICATION_ONLY for name in permissions
            ):
                codes.add("403")
        parameters = self._get_parameters()
        has_body = self.method in BODY_METHODS and self.get_request_serializer() is not None
        if has_body or any(parameter["in"] in ("query", "header") for parameter in parameters):
            codes.add("400")
        if any(parameter["in"] == "path" for parameter in parameters):
            codes.add("404")
        if self.method in BODY_METHODS:
            codes.add("413")
        if has_body:
            codes.add("415")
        if view.get_throttles():
            codes.add("429")
        return codes

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        errors = self.resolve_serializer(ERRORS_SCHEMA, "response").ref
        for code in self.error_codes():
            responses.setdefault(code, {"content": {"application/json": {"schema": errors}}})
        idempotent = any(
            parameter["name"] == "Idempotency-Key" for parameter in self._get_parameters()
        )
        request_id = _header("X-Request-ID", {"type": "string"}, required=True)
        seconds = {"type": "integer", "minimum": 1}
        refuses_keys = any(isinstance(a, SourceKeyRefusal) for a in self.view.get_authenticators())
        for code, response in responses.items():
            if not response.get("description"):
                response["description"] = (
                    OPERATOR_401 if code == "401" and refuses_keys else DESCRIPTIONS.get(code, "")
                )
            headers = response.setdefault("headers", {})
            # The HTTP server's own 414 (a request line over 64 KiB) carries no request id
            # and no body.
            headers["X-Request-ID"] = {**request_id, "required": code != "414"}
            if code == "401":
                headers["WWW-Authenticate"] = _header(
                    "WWW-Authenticate", {"type": "string"}, required=True
                )
            if code in ("429", "503"):
                headers["Retry-After"] = _header("Retry-After", seconds, required=True)
            if (code.startswith("2") or code == "304") and getattr(
                self.view, "answers_trading_state", False
            ):
                headers["Tradewatch-Trading-State"] = _header(
                    "Tradewatch-Trading-State",
                    {"type": "string", "enum": ["active", "reduce_only", "halted"]},
                    required=True,
                )
                if self.method == "GET":
                    headers["ETag"] = _header("ETag", {"type": "string"}, required=True)
            if code.startswith("2") and idempotent:
                headers["Idempotent-Replayed"] = _header(
                    "Idempotent-Replayed", {"type": "string", "enum": ["true"]}, required=False
                )
        return dict(sorted(responses.items()))
