"""Recovery action channel: a signed command telling a trading system what to do.

A recovery action is a destination like any other (the outbox writes it, delivery
claims, retries and logs it), but its receiver is the trading system itself and it
acts on what it gets: pause trading, close positions, reconnect, reset rate limits, or
a command of the operator's own. So it hears of an alert once (when the alert fires,
or escalates), never of repeats, resolutions or acknowledgements; a health check can
name one directly and send it when the check's status turns bad. The body is signed
as the webhook channel signs (Standard Webhooks, `webhook-id` the same on every
attempt), and goes through the same SSRF-guarded transport.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Final

from django.core.exceptions import ValidationError

from alerts.channels.base import DeliveryResult, NotificationMessage
from alerts.channels.signing import signing_secret_new
from alerts.channels.webhook import WebhookChannel

# The commands trading systems are expected to know; any other name is the operator's own.
COMMANDS: Final = ("pause_trading", "close_positions", "reconnect", "reset_rate_limits")
_COMMAND_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,99}$")
# What a recovery action is sent for: an alert firing or escalating, a check turning bad.
ACTING_EVENTS: Final = frozenset({"firing", "escalated", "check"})
# A source's trading state changed (sent when the channel's `trading_state` is on).
STATE_EVENT: Final = "trading_state"
TEST_COMMAND: Final = "test"


class RecoveryChannel(WebhookChannel):
    """POSTs a signed command to the trading system when an alert fires or a check fails.

    Config: `url` (the trading system's endpoint, checked against the SSRF guard on
    save), `command` (one of COMMANDS, or a name of your own), `parameters` (a JSON
    object sent with the command), `source` (the trading system's name in the body;
    empty: the source of the alert or check), `trading_state` (true: also send every
    change of the trading state of its source, or of every source when `source` is
    empty, as a `trading_state` body). Secrets: `signing_secret` (`whsec_...`,
    made when left empty) and `previous_signing_secret` while the bot moves to a new one.
    """

    kind = "recovery"
    label = "Recovery action (signed command to the trading system)"
    config_fields: ClassVar[tuple[str, ...]] = (
        "url", "command", "parameters", "source", "trading_state",
    )  # fmt: skip
    acts_once = True

    @classmethod
    def validate(cls, config: dict[str, Any], secrets: dict[str, str]) -> None:
        """The URL and secrets as for a webhook; a command name; parameters as an object."""
        errors = cls.problems(config, secrets)
        command = config.get("command")
        if not isinstance(command, str) or not command.strip():
            errors["command"] = [f"Name the command: {', '.join(COMMANDS)}, or one of your own."]
        elif not _COMMAND_NAME.match(command.strip()) or command.strip() == TEST_COMMAND:
            errors["command"] = [
                "A command is a name of up to 100 letters, digits and _ . : - (not "
                f"{TEST_COMMAND!r}, which tests send)."
            ]
        if not isinstance(config.get("parameters", {}), dict):
            errors["parameters"] = ["A JSON object, sent with the command."]
        source = config.get("source", "")
        if not isinstance(source, str) or len(source) > 100:
            errors["source"] = ["The trading system's name, up to 100 characters."]
        if not isinstance(config.get("trading_state", False), bool):
            errors["trading_state"] = ["true or false: send trading state changes too."]
        if errors:
            raise ValidationError(errors)

    @classmethod
    def secrets_completed(cls, secrets: dict[str, str]) -> dict[str, str]:
        """A new signing secret when none was given (the admin shows it once)."""
        if secrets.get("signing_secret"):
            return secrets
        return {**secrets, "signing_secret": signing_secret_new()}

    def send(self, message: NotificationMessage) -> DeliveryResult:
        """Sign and POST the command (or, for a test, a command the bot must not act on)."""
        if message.event == "test":
            body = test_body(self.config, message)
        elif message.event in ACTING_EVENTS:
            body = command_body(self.config, message)
        elif message.event == STATE_EVENT:
            body = state_body(message)
        else:
            return DeliveryResult(
                ok=False,
                permanent=True,
                error=f"A recovery action is sent when an alert fires or escalates, or a "
                f"check turns bad; not for {message.event!r}.",
            )
        return self.post_signed(body, webhook_id=message.webhook_id)


def command_body(config: dict[str, Any], message: NotificationMessage) -> dict[str, Any]:
    """What the trading system receives: the command, and why and when it was decided.

    `message.alert` is the alert's payload (alert events) or the check's (`check`
    events: check, status, source, reason); both name their source.
    """
    trigger = message.alert
    return {
        "type": "recovery_action",
        "action": message.channel,
        "command": str(config["command"]).strip(),
        "parameters": config.get("parameters") or {},
        "source": config.get("source") or trigger.get("source"),
        "event": message.event,
        "reason": trigger.get("reason") or alert_reason(trigger),
        "check": trigger.get("check"),
        "alert_id": None if message.event == "check" else trigger.get("id"),
        "requested_at": message.created_at,
    }


def state_body(message: NotificationMessage) -> dict[str, Any]:
    """A source's new trading state: what it may do now, who decided it and why."""
    state = message.alert
    return {
        "type": "trading_state",
        "action": message.channel,
        "source": state.get("source"),
        "state": state.get("state"),
        "previous_state": state.get("previous_state"),
        "may_open_positions": state.get("may_open_positions"),
        "scope": state.get("scope"),
        "reason": state.get("reason"),
        "set_by": state.get("set_by"),
        "alert_id": state.get("alert_id"),
        "since": state.get("since"),
        "expires_at": state.get("expires_at"),
        "requested_at": message.created_at,
    }


def alert_reason(alert: dict[str, Any]) -> str:
    """Why an alert sent the command, in one line."""
    return f"{alert.get('rule')} fired on {alert.get('source')}: {alert.get('message', '')}"


def test_body(config: dict[str, Any], message: NotificationMessage) -> dict[str, Any]:
    """A test: the command is `test`, so a bot that reads only `command` does nothing;
    what the action would send is beside it, for the bot's owner to check."""
    return {
        "type": "recovery_action",
        "action": message.channel,
        "command": TEST_COMMAND,
        "parameters": {},
        "would_send": {
            "command": str(config.get("command", "")).strip(),
            "parameters": config.get("parameters") or {},
        },
        "source": config.get("source") or None,
        "event": "test",
        "reason": str(message.alert.get("message", "")),
        "check": None,
        "alert_id": None,
        "requested_at": message.created_at,
    }
