"""Email channel: SMTP through Django's backend, a text part and an HTML part.

The SMTP server is a destination like a webhook's: its host is checked on save (an
internal relay is let through by `TRADEWATCH_DELIVERY_ALLOWED_NETWORKS`), and smtplib's
connection is vetted again after DNS on every send, so "send test" cannot be used to
probe internal ports.
"""

from __future__ import annotations

import smtplib
import time
from html import escape
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.validators import validate_email

from alerts.channels import formatting
from alerts.channels.base import ChannelKind, DeliveryResult, NotificationMessage
from alerts.channels.destinations import host_refusal
from alerts.channels.guard import vetted_connections

SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


class EmailChannel(ChannelKind):
    """Sends each notification as one email to a list of recipients.

    Config: `to` (list of addresses), `from_address`, `host`, `port`, `username`,
    `use_tls` (STARTTLS), `use_ssl` (TLS from the first byte, usually port 465).
    Secret: `password`.
    """

    kind = "email"
    label = "Email"
    config_fields: ClassVar[tuple[str, ...]] = (
        "to",
        "from_address",
        "host",
        "port",
        "username",
        "use_tls",
        "use_ssl",
    )
    secret_fields: ClassVar[tuple[str, ...]] = ("password",)

    @classmethod
    def validate(cls, config: dict[str, Any], secrets: dict[str, str]) -> None:
        """Recipients and sender are addresses; host and port name an SMTP server."""
        errors: dict[str, str] = {}
        to = config.get("to")
        if not isinstance(to, list) or not to:
            errors["to"] = "At least one recipient address is required."
        else:
            wrong = [address for address in to if not _is_email(address)]
            if wrong:
                errors["to"] = "Not an email address: " + ", ".join(map(str, wrong)) + "."
        if not _is_email(config.get("from_address")):
            errors["from_address"] = "A valid sender address is required."
        host = config.get("host")
        if not isinstance(host, str) or not host.strip() or any(c.isspace() for c in host):
            errors["host"] = "The SMTP server's host name is required."
        port = config.get("port", 25)
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            errors["port"] = "Must be a port number from 1 to 65535."
        for flag in ("use_tls", "use_ssl"):
            if flag in config and not isinstance(config[flag], bool):
                errors[flag] = "Must be true or false."
        if config.get("use_tls") and config.get("use_ssl"):
            errors["use_ssl"] = "Choose STARTTLS (use_tls) or TLS (use_ssl), not both."
        username = config.get("username", "")
        if username and not isinstance(username, str):
            errors["username"] = "Must be text."
        if username and not secrets.get("password"):
            errors["password"] = "A password is required with a username."  # noqa: S105 (a message, not a secret)
        if "host" not in errors and "port" not in errors:
            refusal = host_refusal(str(host), int(port))
            if refusal is not None:
                errors["host"] = refusal
        if errors:
            raise cls.invalid(errors)

    def send(self, message: NotificationMessage) -> DeliveryResult:
        """Send the email; a 5xx from the server is permanent, anything else retries."""
        started = time.perf_counter()
        config = self.config
        connection = get_connection(
            SMTP_BACKEND,
            host=config["host"],
            port=int(config.get("port", 25)),
            username=config.get("username") or None,
            password=self.secrets.get("password") or None,
            use_tls=bool(config.get("use_tls", False)),
            use_ssl=bool(config.get("use_ssl", False)),
            timeout=settings.TRADEWATCH_DELIVERY_TIMEOUT_SECONDS,
            fail_silently=False,
        )
        email = EmailMultiAlternatives(
            subject=formatting.truncated(
                f"{formatting.emoji(message)} {formatting.title(message)}", 200
            ),
            body=self.text_part(message),
            from_email=config["from_address"],
            to=list(config["to"]),
            connection=connection,
            # One id across retries lets a mail filter spot a duplicate.
            headers={"X-Tradewatch-Notification": message.webhook_id},
        )
        email.attach_alternative(self.html_part(message), "text/html")
        vetted = None
        try:
            with vetted_connections() as vetted:
                email.send()
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _text in exc.recipients.values()]
            return _failure(
                started,
                f"The server refused the recipients: {_recipients(exc)}",
                status=max(codes) if codes else None,
                permanent=bool(codes) and all(code >= 500 for code in codes),
            )
        except smtplib.SMTPResponseException as exc:
            answer = (
                exc.smtp_error.decode(errors="replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            return _failure(
                started,
                f"The SMTP server answered {exc.smtp_code}: {answer}",
                status=exc.smtp_code,
                permanent=exc.smtp_code >= 500,
                answer=answer,
            )
        except (smtplib.SMTPException, OSError) as exc:
            if vetted is not None and vetted.refusals:
                # Nothing was sent, and a retry would knock at the same door.
                return _failure(
                    started, "Destination refused: " + vetted.refusals[0], permanent=True
                )
            return _failure(started, f"SMTP delivery failed: {type(exc).__name__}: {exc}")
        return DeliveryResult(ok=True, duration_ms=(time.perf_counter() - started) * 1000)

    @staticmethod
    def text_part(message: NotificationMessage) -> str:
        """The plain-text body."""
        return f"{formatting.title(message)}\n\n{formatting.text(message)}\n"

    @staticmethod
    def html_part(message: NotificationMessage) -> str:
        """The HTML body: a coloured heading, the facts as a table, the digest as a list
        (an operations digest brings its own, with its charts)."""
        if message.report is not None:
            return str(message.report["html"])
        alert = message.alert
        rows = "".join(
            f"<tr><th align='left'>{escape(fact.label)}</th><td>{escape(fact.value)}</td></tr>"
            for fact in formatting.facts(alert)
        )
        parts = [
            f"<h2 style='color:{formatting.colour(message)}'>"
            f"{escape(formatting.title(message))}</h2>"
        ]
        if alert.get("message"):
            parts.append(f"<p>{escape(str(alert['message']))}</p>")
        if rows:
            parts.append(f"<table>{rows}</table>")
        url = formatting.link(alert)
        if url:
            parts.append(f"<p><a href='{escape(url)}'>Open the alert</a></p>")
        if message.digest:
            items = "".join(
                f"<li>{escape(formatting.digest_line(held))}</li>" for held in message.digest
            )
            parts.append(f"<p>{escape(formatting.digest_heading(message))}</p><ul>{items}</ul>")
        return "<html><body>" + "".join(parts) + "</body></html>"


def _is_email(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True


def _recipients(exc: smtplib.SMTPRecipientsRefused) -> str:
    return "; ".join(
        f"{address} ({code} {text.decode(errors='replace') if isinstance(text, bytes) else text})"
        for address, (code, text) in exc.recipients.items()
    )


def _failure(
    started: float,
    error: str,
    *,
    status: int | None = None,
    permanent: bool = False,
    answer: str = "",
) -> DeliveryResult:
    return DeliveryResult(
        ok=False,
        status=status,
        error=error,
        answer=answer[:500],
        permanent=permanent,
        duration_ms=(time.perf_counter() - started) * 1000,
    )
