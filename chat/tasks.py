"""Celery tasks of the chat app."""

from __future__ import annotations

from celery import shared_task

from .polling import telegram_poll


@shared_task(name="chat.tasks.poll_telegram", time_limit=150, soft_time_limit=130)
def poll_telegram() -> None:
    """On beat: button presses of the Telegram channels that poll (`buttons: poll`)."""
    telegram_poll()
