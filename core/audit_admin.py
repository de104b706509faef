"""The audit history in the admin: a "History" page on every audited object."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import Http404, HttpRequest
from django.template.response import TemplateResponse

from .audit_history import audit_available, object_history

_ModelT = TypeVar("_ModelT", bound=Model)


class AuditHistoryAdmin(admin.ModelAdmin[_ModelT]):
    """Replaces the admin's own history (form saves only) with the trigger-recorded one,
    which also has bulk actions, `queryset.update()` and changes made outside the admin."""

    def history_related(self, obj: Any) -> Sequence[Model]:
        """Objects whose own changes belong in `obj`'s history (besides rows pointing at it)."""
        return ()

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> Any:
        if not audit_available():
            return super().history_view(request, object_id, extra_context)
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} with id {object_id}.")
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": f"History: {obj}",
            "subtitle": None,
            "opts": self.opts,
            "object": obj,
            "changes": object_history(obj, related=self.history_related(obj)),
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/audit/object_history.html", context)
