"""Admin for chat accounts: who in Telegram or Slack is whom, and getting a link code."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import path

from core.audit_admin import AuditHistoryAdmin

from .linking import CODE_MINUTES, link_code_issue
from .models import ChatIdentity


@admin.register(ChatIdentity)
class ChatIdentityAdmin(AuditHistoryAdmin[ChatIdentity]):
    """Links made by people with a code, or typed here by an administrator."""

    list_display = ["user", "service", "account_name", "account_id", "workspace", "linked_at",
                    "linked_with_code"]  # fmt: skip
    list_filter = ["service", "linked_with_code"]
    list_select_related = ["user"]
    search_fields = ["account_id", "account_name", "user__username"]
    readonly_fields = ["linked_at", "linked_with_code"]

    def get_urls(self) -> list[Any]:
        link = path(
            "link/", self.admin_site.admin_view(self.link_view), name="chat_chatidentity_link"
        )
        return [link, *super().get_urls()]

    def link_view(self, request: HttpRequest) -> TemplateResponse:
        """Any staff member gets a one-time code to link their own chat account."""
        code = link_code_issue(user=request.user) if request.method == "POST" else None  # type: ignore[arg-type]
        context = {
            **self.admin_site.each_context(request),
            "title": "Link my chat account",
            "opts": self.opts,
            "code": code,
            "minutes": CODE_MINUTES,
        }
        return TemplateResponse(request, "admin/chat/chatidentity/link.html", context)
