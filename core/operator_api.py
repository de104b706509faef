"""Who may call an operator endpoint (alerts, health, metric reads): people, never a
source's API key, each holding the Django model permission the endpoint names."""

from __future__ import annotations

from typing import Any, ClassVar, Final

from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

# `Authorization: Api-Key <key>`: how a trading system presents its source's key.
KEYWORD: Final = "Api-Key"

SOURCE_KEY_ON_OPERATOR_ENDPOINT: Final = (
    "API keys are for sending data (metrics, trades, heartbeats, events; whoami checks "
    "one). This endpoint is for people: send a user's token (Authorization: Token "
    "<token>) or use an admin session."
)


class SourceKeyRefusal(authentication.BaseAuthentication):
    """Refuse a source's API key on an operator endpoint, saying what the endpoint takes.

    Listed after the token and session classes, so it only sees requests neither
    authenticated. Without it a key is simply not looked at, and its caller is told
    "Authentication credentials were not provided." while sending some. The answer
    stays 401 (the key is no credential here; the request may succeed with one),
    with the first class's `WWW-Authenticate: Token` naming what to send.
    """

    def authenticate(self, request: Request) -> None:
        header = authentication.get_authorization_header(request).split()
        if header and header[0].decode("latin-1").lower() == KEYWORD.lower():
            raise exceptions.AuthenticationFailed(SOURCE_KEY_ON_OPERATOR_ENDPOINT)
        return None


# The authentication of every operator endpoint. Listed on each of their views rather
# than in the project's defaults: a source's key must never authenticate a person, and
# the defaults also serve the schema, which a bot may fetch with its key in the header.
OPERATOR_AUTHENTICATION: Final = (
    authentication.TokenAuthentication,
    authentication.SessionAuthentication,
    SourceKeyRefusal,
)


class HasModelPermission(BasePermission):
    """A signed-in person holding one Django model permission."""

    permission: ClassVar[str]
    message: ClassVar[str]

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(self.permission))
