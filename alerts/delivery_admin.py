"""Admin for channels, policies and the notification outbox."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from core.audit_admin import AuditHistoryAdmin

from .channels.registry import channel_kind
from .crypto import masked
from .delivery import channel_send_test, notification_retry
from .models import Channel, DeliveryAttempt, Notification, Policy


class ChannelForm(forms.ModelForm[Channel]):
    """Secrets are write-only: shown masked, kept when left as shown, replaced when typed.

    A secret the kind makes itself when left empty (a recovery action's signing secret)
    is shown once, after the save.
    """

    issued: dict[str, str]

    secrets = forms.JSONField(
        required=False,
        help_text="The kind's secrets as a JSON object (webhook URL, bot token, password, "
        "signing secret). Shown masked; leave a value as shown to keep it, or type a new one.",
    )

    class Meta:
        model = Channel
        fields = [
            "name", "kind", "enabled", "min_severity", "config", "secrets", "rate_limit",
            "rate_window",
        ]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["secrets"] = {
                key: masked(value) for key, value in self.instance.secrets.items()
            }

    def clean_secrets(self) -> dict[str, str]:
        typed = self.cleaned_data.get("secrets") or {}
        if not isinstance(typed, dict) or not all(isinstance(v, str) for v in typed.values()):
            raise forms.ValidationError("A JSON object of text values.")
        current = self.instance.secrets if self.instance.pk else {}
        merged = {
            key: current[key] if key in current and value == masked(current[key]) else value
            for key, value in typed.items()
        }
        completed = self._completed(merged)
        # What the kind made itself (a recovery action's signing secret) is shown once.
        self.issued = {key: value for key, value in completed.items() if key not in merged}
        # Set before the model's own validation, which checks them with the kind.
        self.instance.secrets = completed
        return completed

    def _completed(self, secrets: dict[str, str]) -> dict[str, str]:
        try:
            kind = channel_kind(str(self.cleaned_data.get("kind", "")))
        except LookupError:
            return secrets  # the kind field reports it
        return kind.secrets_completed(secrets)


class DeliveryAttemptInline(admin.TabularInline[DeliveryAttempt, Notification]):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ["at", "ok", "status", "duration_ms", "answer", "error"]
    readonly_fields = ["at", "ok", "status", "duration_ms", "answer", "error"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Channel)
class ChannelAdmin(AuditHistoryAdmin[Channel]):
    form = ChannelForm
    list_display = [
        "name", "kind", "enabled", "min_severity", "sent_count", "failed_count",
        "last_success_at", "last_error_short",
    ]  # fmt: skip
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]
    readonly_fields = [
        "sent_count", "failed_count", "last_success_at", "last_error", "last_error_at",
        "disabled_reason", "disabled_at",
    ]  # fmt: skip
    actions = ["send_test", "enable"]

    def save_model(self, request: HttpRequest, obj: Channel, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        for key, value in getattr(form, "issued", {}).items():
            # The receiver needs it in full; from now on it is shown masked.
            self.message_user(
                request,
                f"{obj.name}: the new {key} is {value} — give it to the receiver now; "
                "it is shown masked from here on.",
                messages.WARNING,
            )

    @admin.display(description="last error")
    def last_error_short(self, channel: Channel) -> str:
        return channel.last_error[:80]

    @admin.action(description="Send a test notification", permissions=["send_test"])
    def send_test(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        for channel in queryset:
            result = channel_send_test(channel=channel)
            if result.ok:
                self.message_user(
                    request, f"Test through {channel.name}: sent ({result.status or 'ok'}, "
                    f"{result.duration_ms:.0f} ms).", messages.SUCCESS,
                )  # fmt: skip
            else:
                self.message_user(
                    request,
                    f"Test through {channel.name}: failed: {result.error or result.status} "
                    f"{result.answer[:200]}",
                    messages.ERROR,
                )

    def has_send_test_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("alerts.send_test")

    @admin.action(description="Enable (clears the reason it was disabled)", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        for channel in queryset:
            channel.enabled, channel.disabled_reason, channel.disabled_at = True, "", None
            channel.save(update_fields=["enabled", "disabled_reason", "disabled_at"])


@admin.register(Policy)
class PolicyAdmin(AuditHistoryAdmin[Policy]):
    list_display = [
        "name", "enabled", "min_severity", "channel_names", "escalate_after", "digests",
    ]  # fmt: skip
    list_filter = ["enabled", "min_severity"]
    search_fields = ["name"]
    filter_horizontal = ["sources", "tags", "rules", "channels", "escalation_channels"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Policy]:
        return super().get_queryset(request).prefetch_related("channels")

    @admin.display(description="channels")
    def channel_names(self, policy: Policy) -> str:
        return ", ".join(channel.name for channel in policy.channels.all())

    @admin.display(description="operations digest")
    def digests(self, policy: Policy) -> str:
        kinds = ["daily"] if policy.digest_daily else []
        if policy.digest_weekly_day is not None:
            kinds.append(f"{policy.get_digest_weekly_day_display()}s")
        if not kinds:
            return "—"
        return f"{' and '.join(kinds)} at {policy.digest_time:%H:%M} {policy.digest_timezone}"


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(Notification.State.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(state=self.value()) if self.value() else queryset


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin[Notification]):
    list_display = [
        "id", "created_at", "event", "channel", "alert_link", "state", "held", "attempts",
        "last_status", "last_error_short", "sent_at",
    ]  # fmt: skip
    list_filter = [StateFilter, "event", "channel__kind", "channel"]
    list_select_related = ["channel"]
    # The outbox grows with every alert change: no full count on each page.
    show_full_result_count = False
    date_hierarchy = "created_at"
    inlines = [DeliveryAttemptInline]
    actions = ["retry"]
    readonly_fields = [
        "uid", "alert", "transition", "channel", "policy", "event", "severity", "state",
        "held", "digest", "is_fallback", "attempts", "next_attempt_at", "queued_until",
        "claimed_until", "last_status", "last_error", "created_at", "sent_at", "payload_shown",
    ]  # fmt: skip
    exclude = ["payload", "rate_slot_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="alert")
    def alert_link(self, notification: Notification) -> str:
        if notification.alert_id is None:
            return "—"
        url = reverse("admin:alerts_alert_change", args=[notification.alert_id])
        return format_html('<a href="{}">#{}</a>', url, notification.alert_id)

    @admin.display(description="last error")
    def last_error_short(self, notification: Notification) -> str:
        return notification.last_error[:80]

    @admin.display(description="payload")
    def payload_shown(self, notification: Notification) -> str:
        return format_html("<pre>{}</pre>", json.dumps(notification.payload, indent=2))

    @admin.action(description="Retry now", permissions=["retry"])
    def retry(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        retried = sum(
            notification_retry(notification_id=pk) for pk in queryset.values_list("pk", flat=True)
        )
        self.message_user(request, f"{retried} notification(s) queued again.", messages.SUCCESS)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("alerts.send_test")
