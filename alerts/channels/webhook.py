"""Generic webhook channel: the SPEC's JSON payload, signed as Standard Webhooks says."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, ClassVar

import orjson
from django.core.exceptions import ValidationError

from alerts.channels import formatting, http
from alerts.channels.base import ChannelKind, DeliveryResult, NotificationMessage
from alerts.channels.destinations import destination_check
from alerts.channels.signing import SECRET_PREFIX, signed_headers

_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
# The Standard Webhooks specification asks for secrets of 24 to 64 bytes.
_SECRET_BYTES = (24, 64)


class WebhookChannel(ChannelKind):
    """POSTs the alert as JSON to any URL, signed so the receiver can trust it.

    Config: `url` (not secret; checked against the SSRF guard on save). Secrets:
    `signing_secret` (`whsec_…`) and, while receivers move to a new secret,
    `previous_signing_secret`: both sign every message until it is removed.
    """

    kind = "webhook"
    label = "Webhook"
    config_fields: ClassVar[tuple[str, ...]] = ("url",)
    secret_fields: ClassVar[tuple[str, ...]] = ("signing_secret", "previous_signing_secret")

    @classmethod
    def validate(cls, config: dict[str, Any], secrets: dict[str, str]) -> None:
        """The URL is a deliverable destination; the secrets are `whsec_` secrets."""
        errors = cls.problems(config, secrets)
        if errors:
            raise ValidationError(errors)

    @classmethod
    def problems(cls, config: dict[str, Any], secrets: dict[str, str]) -> dict[str, list[str]]:
        """What is wrong with the URL and the signing secrets, by field."""
        errors: dict[str, list[str]] = {}
        url = config.get("url")
        if not isinstance(url, str) or not url.strip():
            errors["url"] = ["The receiver's URL is required."]
        else:
            try:
                destination_check(url.strip())
            except ValidationError as exc:
                errors["url"] = exc.messages
        problem = _secret_problem(secrets.get("signing_secret", ""))
        if problem:
            errors["signing_secret"] = [problem]
        previous = secrets.get("previous_signing_secret", "")
        if previous:
            problem = _secret_problem(previous)
            if problem:
                errors["previous_signing_secret"] = [problem]
        return errors

    def send(self, message: NotificationMessage) -> DeliveryResult:
        """Sign and POST the payload; the signature covers the exact bytes sent."""
        return self.post_signed(formatting.payload(message), webhook_id=message.webhook_id)

    def post_signed(self, document: dict[str, Any], *, webhook_id: str) -> DeliveryResult:
        """POST `document` as JSON to the URL, signed with every secret in use."""
        body = orjson.dumps(document, default=str)
        headers = signed_headers(
            secrets_in_use=self.secrets_in_use(), webhook_id=webhook_id, body=body
        )
        headers["Content-Type"] = "application/json"
        return http.post(str(self.config["url"]).strip(), content=body, headers=headers)

    def secrets_in_use(self) -> list[str]:
        """The current secret, then the previous one while a rotation is under way."""
        in_use = [self.secrets["signing_secret"]]
        if self.secrets.get("previous_signing_secret"):
            in_use.append(self.secrets["previous_signing_secret"])
        return in_use


def _secret_problem(secret: str) -> str | None:
    if not secret:
        return "A signing secret is required."
    if not secret.startswith(SECRET_PREFIX):
        return f"Must be a Standard Webhooks secret starting with {SECRET_PREFIX}."
    encoded = secret[len(SECRET_PREFIX) :]
    if not _BASE64.match(encoded):
        return f"After {SECRET_PREFIX}, the secret must be base64."
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        return f"After {SECRET_PREFIX}, the secret must be base64."
    low, high = _SECRET_BYTES
    if not low <= len(key) <= high:
        return f"The secret must hold {low} to {high} bytes; make a new one."
    return None
