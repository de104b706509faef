"""Every admin page an operator can open renders, with data in it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from alerts.models import Alert, AlertTransition, Rule, Silence
from metrics.models import Source

pytestmark = pytest.mark.django_db


@pytest.fixture
def some_data(source: Source) -> None:
    rule = Rule.objects.get(name="Drawdown")
    now = timezone.now()
    alert = Alert.objects.create(
        fingerprint="f" * 64, rule=rule, source=source, state=Alert.State.FIRING, severity=30,
        value=12.0, first_seen=now, last_seen=now, fired_at=now, message="alpha-bot: drawdown 12 %",
    )  # fmt: skip
    AlertTransition.objects.create(alert=alert, at=now, kind="firing", severity=30, notify=True)
    Silence.objects.create(reason="maintenance", starts_at=now, ends_at=now + timedelta(hours=1))


@pytest.mark.parametrize(
    "model", [model for model in admin.site._registry], ids=lambda m: m._meta.label
)
def test_it_renders_the_list_and_a_change_page_of_every_model(
    admin_client: Client, some_data: None, model: type
) -> None:
    opts = model._meta  # type: ignore[attr-defined]
    changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")

    assert admin_client.get(changelist).status_code == 200
    first = model.objects.first()  # type: ignore[attr-defined]
    if first is not None:
        change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[first.pk])
        assert admin_client.get(change).status_code == 200
