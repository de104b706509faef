"""Where Telegram and Slack send button presses: one URL per channel.

`POST /api/v1/chat/telegram/<channel id>/` takes the bot's updates (its webhook, set
with setWebhook and the channel's `webhook_secret`, which Telegram sends back in
`X-Telegram-Bot-Api-Secret-Token`). `POST /api/v1/chat/slack/<channel id>/` takes the
Slack app's interactivity and slash commands, signed with the channel's `signing_secret`.
No user token: the secret or the signature is the credential, and what a press may do
is the linked person's to decide (`chat.actions`).
"""

from __future__ import annotations

from typing import Any

import orjson
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from core.api_errors import OPERATOR_ERRORS_SCHEMA, ErrorsView, single_error

from .slack import command_handle, form_read, interaction_handle, signature_refusal, slack_channel
from .telegram import telegram_channel, update_handle, webhook_secret_matches

CHANNEL_ID = OpenApiParameter(
    "channel_id", int, OpenApiParameter.PATH, description="The Tradewatch channel's id."
)
_ERRORS = {400: OPERATOR_ERRORS_SCHEMA, 403: OPERATOR_ERRORS_SCHEMA, 404: OPERATOR_ERRORS_SCHEMA}


class ChatWebhookApi(ErrorsView):
    """Called by a chat service, never by a person: no session, no token."""

    authentication_classes: list[type[Any]] = []
    permission_classes = [AllowAny]


def _channel_missing(kind: str, channel_id: int) -> Response:
    return Response(
        single_error(f"No {kind} channel with id {channel_id}.", "channel_id"),
        status=status.HTTP_404_NOT_FOUND,
    )


def _forbidden(message: str, field: str) -> Response:
    return Response(single_error(message, field), status=status.HTTP_403_FORBIDDEN)


class TelegramUpdateApi(ChatWebhookApi):
    """`POST /api/v1/chat/telegram/<channel id>/`: one Telegram update."""

    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="chat_telegram_update",
        summary="A Telegram update: a button press or a /link message",
        description="Telegram's webhook for the channel's bot (setWebhook with "
        "`secret_token` = the channel's `webhook_secret`). Answers 200 to every genuine "
        "update, acted on or not, so Telegram does not send it again.",
        parameters=[
            CHANNEL_ID,
            OpenApiParameter(
                "X-Telegram-Bot-Api-Secret-Token",
                str,
                OpenApiParameter.HEADER,
                required=True,
                description="The channel's webhook_secret, as Telegram sends it.",
            ),
        ],
        request=inline_serializer(
            "TelegramUpdate",
            {
                "update_id": serializers.IntegerField(),
                "callback_query": serializers.DictField(required=False),
                "message": serializers.DictField(required=False),
            },
        ),
        responses={
            200: inline_serializer("ChatAccepted", {"ok": serializers.BooleanField()}),
            **_ERRORS,
        },
    )
    def post(self, request: Request, channel_id: int) -> Response:
        channel = telegram_channel(channel_id)
        if channel is None:
            return _channel_missing("Telegram", channel_id)
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token")
        if not webhook_secret_matches(channel, given):
            return _forbidden(
                "X-Telegram-Bot-Api-Secret-Token is missing or is not this channel's "
                "webhook_secret.",
                "X-Telegram-Bot-Api-Secret-Token",
            )
        try:
            update = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return Response(single_error("The body is not JSON.", "body"), status=400)
        if not isinstance(update, dict):
            return Response(single_error("The body must be a Telegram update.", "body"), 400)
        update_handle(channel, update)
        return Response({"ok": True})


class SlackInteractionApi(ChatWebhookApi):
    """`POST /api/v1/chat/slack/<channel id>/`: a press or a slash command from Slack."""

    parser_classes = [FormParser]

    @extend_schema(
        operation_id="chat_slack_interaction",
        summary="A Slack button press (interactivity) or slash command",
        description="The Slack app's interactivity request URL (and its slash command's "
        "URL), signed with the app's signing secret (the channel's `signing_secret`).",
        parameters=[
            CHANNEL_ID,
            OpenApiParameter(
                "X-Slack-Request-Timestamp",
                str,
                OpenApiParameter.HEADER,
                required=True,
                description="UNIX seconds; refused more than 5 minutes from now.",
            ),
            OpenApiParameter(
                "X-Slack-Signature",
                str,
                OpenApiParameter.HEADER,
                required=True,
                description="`v0=` and the HMAC-SHA256 of `v0:{timestamp}:{body}`.",
            ),
        ],
        request={
            "application/x-www-form-urlencoded": inline_serializer(
                "SlackInteraction",
                {
                    "payload": serializers.CharField(
                        required=False, help_text="A button press: the interaction as JSON."
                    ),
                    "command": serializers.CharField(required=False),
                    "text": serializers.CharField(required=False),
                    "user_id": serializers.CharField(required=False),
                    "team_id": serializers.CharField(required=False),
                },
            )
        },
        responses={
            200: inline_serializer(
                "SlackAnswer",
                {
                    "response_type": serializers.CharField(required=False),
                    "text": serializers.CharField(required=False),
                },
            ),
            **_ERRORS,
        },
    )
    def post(self, request: Request, channel_id: int) -> Response:
        channel = slack_channel(channel_id)
        if channel is None:
            return _channel_missing("Slack", channel_id)
        body = request.body
        refusal = signature_refusal(
            channel,
            body=body,
            timestamp=request.headers.get("X-Slack-Request-Timestamp"),
            signature=request.headers.get("X-Slack-Signature"),
        )
        if refusal is not None:
            return _forbidden(refusal, "X-Slack-Signature")
        form = form_read(body)
        if "payload" in form:
            try:
                payload: Any = orjson.loads(form["payload"])
            except orjson.JSONDecodeError:
                return Response(single_error("The payload is not JSON.", "payload"), 400)
            interaction_handle(channel, payload)
            return Response({})
        if "command" in form:
            return Response(command_handle(form))
        return Response(single_error("Neither a payload nor a command.", "payload"), 400)
