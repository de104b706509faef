"""The trading state where people look: dashboard banners and column, the safety view."""

from __future__ import annotations

import pytest
from django.test import Client

from metrics.control import control_set
from metrics.models import TradingControl
from monitoring_site.dashboard import dashboard_state
from tests.factories import SourceFactory, TagFactory, make_user, token_client

pytestmark = pytest.mark.django_db

State = TradingControl.State
Scope = TradingControl.Scope


def test_it_shows_a_banner_per_control_in_force_the_global_one_first() -> None:
    bot = SourceFactory.create(name="eth-maker")
    live = TagFactory.create(name="live")
    control_set(scope=Scope.SOURCE, source=bot, state=State.HALTED, reason="drawdown 21 %")
    control_set(scope=Scope.TAG, tag=live, state=State.REDUCE_ONLY, reason="risk off")
    control_set(scope=Scope.ALL, state=State.HALTED, reason="exchange outage")
    state = dashboard_state()
    banners = state["trading"]["banners"]
    assert [b["scope"] for b in banners] == ["all", "tag", "source"]
    assert banners[0]["text"] == "Every source is halted: exchange outage"
    assert banners[1]["text"] == "Every source tagged live is reduce only: risk off"
    assert banners[2]["text"] == "eth-maker is halted: drawdown 21 %"
    [row] = [row for row in state["sources"] if row["name"] == "eth-maker"]
    assert row["trading_state"] == "halted"
    control_set(scope=Scope.ALL, state=State.ACTIVE, reason="back")
    assert [b["scope"] for b in dashboard_state()["trading"]["banners"]] == ["tag", "source"]


def test_the_dashboard_offers_the_buttons_a_person_may_use() -> None:
    SourceFactory.create(name="eth-maker")
    operator = Client()
    operator.force_login(make_user("olga", groups=["Operator"], is_staff=True))
    state = operator.get("/admin/dashboard.json").json()
    assert state["can_halt"] is True
    assert state["can_rearm"] is False
    assert "trading/control" in state["trading"]["halt_all_url"]


def test_the_safety_view_reports_the_trading_state() -> None:
    bot = SourceFactory.create(name="eth-maker")
    control_set(scope=Scope.SOURCE, source=bot, state=State.REDUCE_ONLY, reason="daily loss")
    viewer = token_client(make_user("vic", groups=["Viewer"]))
    rows = {row["name"]: row for row in viewer.get("/api/v1/health/safety").json()["sources"]}
    trading = rows["eth-maker"]["trading"]
    assert (trading["state"], trading["reason"], trading["scope"]) == (
        "reduce_only", "daily loss", "source",
    )  # fmt: skip
    assert trading["may_open_positions"] is False
