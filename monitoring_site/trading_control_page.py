"""The admin's "Halt", "Reduce only" and "Re-arm" page: one form behind every button.

The dashboard, a source's page, an alert's page and the sources list (admin actions)
all lead here with what to change (`?state=halted&scope=source&target=7&alert=12`); the
person writes the required note (and, for reduce only, how long) and confirms.
Permissions are the service's (`alerts.control`): `metrics.halt` to tighten,
`metrics.rearm` to loosen.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from alerts.control import Target, trading_control_by_person
from alerts.models import Alert
from metrics.control import ControlRefused
from metrics.models import Source, Tag, TradingControl

State = TradingControl.State
Scope = TradingControl.Scope
VERB = {State.HALTED: "Halt", State.REDUCE_ONLY: "Reduce only", State.ACTIVE: "Re-arm"}
EXPLAINED = {
    State.HALTED: "The bot must stop trading: no new orders at all.",
    State.REDUCE_ONLY: "The bot may close positions and must open none.",
    State.ACTIVE: "The bot may trade again (a tag's or a global control still holds).",
}


class ControlForm(forms.Form):
    note = forms.CharField(
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why (required): shown on the timeline, in history and to the bot.",
    )
    minutes = forms.FloatField(
        required=False,
        min_value=1,
        label="For (minutes)",
        help_text="Reduce only: back to active after this long (empty: until re-armed).",
    )


def control_url(state: str, target: Target, *, alert_id: int | None = None, back: str = "") -> str:
    """The page's address for one button."""
    params: dict[str, Any] = {"state": state, "scope": target.scope}
    if target.source is not None:
        params["target"] = target.source.pk
    elif target.tag is not None:
        params["target"] = target.tag.pk
    if alert_id is not None:
        params["alert"] = alert_id
    if back:
        params["next"] = back
    return f"{reverse('admin:trading_control')}?{urlencode(params)}"


def _target(scope: str, raw: str) -> Target:
    if scope == Scope.ALL:
        return Target.everything()
    if not raw.isdigit():
        raise ValueError("no target")
    if scope == Scope.SOURCE:
        return Target.of_source(Source.objects.get(pk=int(raw)))
    if scope == Scope.TAG:
        return Target.of_tag(Tag.objects.get(pk=int(raw)))
    raise ValueError(scope)


def control_page(request: HttpRequest, *, each_context: dict[str, Any]) -> HttpResponse:
    """GET: the form; POST: the change, then back where the person came from."""
    values = request.POST if request.method == "POST" else request.GET
    state = values.get("state", "")
    if state not in State.values:
        raise PermissionDenied("Unknown state.")
    try:
        target = _target(values.get("scope", ""), values.get("target", ""))
    except (ValueError, Source.DoesNotExist, Tag.DoesNotExist):
        raise PermissionDenied("Unknown source or tag.") from None
    raw_alert = values.get("alert", "")
    alert = Alert.objects.filter(pk=int(raw_alert)).first() if raw_alert.isdigit() else None
    back = values.get("next", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()}):
        back = reverse("admin:index")
    form = ControlForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        minutes = form.cleaned_data["minutes"] if state == State.REDUCE_ONLY else None
        try:
            change = trading_control_by_person(
                target=target, state=state, by=request.user,  # type: ignore[arg-type]
                note=form.cleaned_data["note"], via="admin",
                alert_id=alert.pk if alert is not None else None,
                expires_at=timezone.now() + timedelta(minutes=minutes)
                if minutes else None,
            )  # fmt: skip
        except PermissionDenied as exc:
            messages.error(request, str(exc))
            return HttpResponseRedirect(back)
        except ControlRefused as exc:
            form.add_error("note", str(exc))
        else:
            held = [c for c in change.sources if c.after.state != state]
            messages.success(request, f"{VERB[State(state)]}: {target}.")
            if held:
                names = ", ".join(c.source_name for c in held[:10])
                messages.warning(request, f"Still held back by a wider control: {names}.")
            return HttpResponseRedirect(back)
    context = {
        **each_context,
        "title": f"{VERB[State(state)]} {target}",
        "form": form,
        "state": state,
        "explained": EXPLAINED[State(state)],
        "scope": target.scope,
        "target_id": values.get("target", ""),
        "alert": alert,
        "next": back,
        "is_reduce_only": state == State.REDUCE_ONLY,
    }
    return TemplateResponse(request, "admin/tradewatch/trading_control.html", context)
