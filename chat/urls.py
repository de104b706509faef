"""URLs of the chat services' callbacks, included under `api/v1/`."""

from __future__ import annotations

from django.urls import path

from . import api

urlpatterns = [
    path(
        "chat/telegram/<int:channel_id>/",
        api.TelegramUpdateApi.as_view(),
        name="chat-telegram",
    ),
    path("chat/slack/<int:channel_id>/", api.SlackInteractionApi.as_view(), name="chat-slack"),
]
