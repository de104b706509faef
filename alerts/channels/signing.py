"""Standard Webhooks signing, shared by outbound webhooks and recovery actions.

Receivers verify with the published `standardwebhooks` libraries, so the signing is that
library's own: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed by the secret in
its `whsec_<base64>` form.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 (a format marker, not a secret)


def signing_secret_new() -> str:
    """A fresh random signing secret in the `whsec_<base64>` form."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def signed_headers(
    *, secrets_in_use: list[str], webhook_id: str, body: bytes, at: datetime | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery of `body`.

    Several secrets sign at once during key rotation: their signatures are joined by
    spaces, and a receiver holding either secret verifies the message.
    """
    when = at or datetime.now(tz=UTC)
    payload = body.decode()
    signatures = [Webhook(secret).sign(webhook_id, when, payload) for secret in secrets_in_use]
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": " ".join(signatures),
    }
