"""Create the first administrator when there is none (used by `make run`)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils.crypto import get_random_string


class Command(BaseCommand):
    help = (
        "Create a superuser if none exists. Credentials come from TRADEWATCH_ADMIN_USERNAME "
        "and TRADEWATCH_ADMIN_PASSWORD; without a password one is generated and printed once."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("An administrator exists already; nothing to do.")
            return
        username = settings.TRADEWATCH_ADMIN_USERNAME
        password = settings.TRADEWATCH_ADMIN_PASSWORD
        generated = not password
        if generated:
            password = get_random_string(20)
        User.objects.create_superuser(
            username=username, email=settings.TRADEWATCH_ADMIN_EMAIL, password=password
        )
        if generated:
            self.stdout.write(
                self.style.WARNING(
                    f"Created administrator '{username}' with password: {password}\n"
                    "This password is shown only now; change it in the admin."
                )
            )
        else:
            self.stdout.write(f"Created administrator '{username}' (password from environment).")
