"""Stopping a bot end to end: a drawdown past 20 % halts it through real workers and the
real web server, the bot learns it three ways, and only an Admin re-arms it."""

from __future__ import annotations

import http.client
import importlib
import json
import threading
from typing import Any

import pytest
from django.apps import apps
from django.db import DEFAULT_DB_ALIAS
from rest_framework.authtoken.models import Token
from standardwebhooks.webhooks import Webhook

from alerts.models import Alert, AlertTransition, Rule, Threshold
from audit.models import TradingControlEvent
from metrics.services import source_create
from tests.factories import make_user
from tests.health.conftest import recovery_channel
from tests.processes import (
    broker_purge,
    celery_worker,
    free_port,
    process_environment,
    wait_until,
    web_server,
)
from tests.receivers import receiver
from tradewatch_client import Client

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ENV = {"TRADEWATCH_DELIVERY_ALLOWED_NETWORKS": "127.0.0.0/8"}


def call(
    port: int, method: str, path: str, body: Any = None, **headers: str
) -> tuple[int, dict[str, str], Any]:
    """One request over a real socket: status, headers (lower case), JSON body or None."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        connection.request(method, path, body=data, headers=headers)
        answer = connection.getresponse()
        raw = answer.read()
        headers = {name.lower(): value for name, value in answer.getheaders()}
        return answer.status, headers, json.loads(raw) if raw else None
    finally:
        connection.close()


def drawdown_rule() -> Rule:
    rule = Rule.objects.create(name="Drawdown (halts)", metric="drawdown_pct",
                               trading_actions=True)  # fmt: skip
    Threshold.objects.create(rule=rule, severity=30, comparison=">", value=10)
    Threshold.objects.create(rule=rule, severity=60, comparison=">", value=20, action="halt")
    return rule


def groups() -> None:
    """The groups as the migrations make them (a transactional test before may have
    emptied every table)."""
    for name, grant in (
        ("0001_groups", "groups_grant"),
        ("0002_trading_control_permissions", "control_permissions_grant"),
        ("0003_schedule_permissions", "schedule_permissions_grant"),
    ):
        getattr(importlib.import_module(f"monitoring_site.migrations.{name}"), grant)(
            apps, DEFAULT_DB_ALIAS
        )  # fmt: skip


def test_a_drawdown_past_20_percent_halts_the_bot_until_an_admin_rearms_it() -> None:
    broker_purge()
    groups()
    source, key = source_create(name="e2e-halt-bot")
    rule = drawdown_rule()
    operator = Token.objects.create(user=make_user("olga", groups=["Operator"])).key
    admin = Token.objects.create(user=make_user("adam", groups=["Admin"])).key
    bot = {"Authorization": f"Api-Key {key}"}
    port = free_port()
    with (
        receiver() as hook,
        web_server(process_environment(**ENV), port),
        celery_worker(process_environment(**ENV), queues="ingest,delivery"),
    ):
        channel, secret = recovery_channel(hook.url, name="bot state", trading_state=True)
        status, headers, body = call(port, "GET", "/api/v1/control", **bot)
        assert (status, body["state"]) == (200, "active")
        etag = headers["etag"]

        # A long-polling bot, waiting for a change.
        woken: list[tuple[int, Any]] = []
        poll = threading.Thread(
            target=lambda: woken.append(
                call(port, "GET", "/api/v1/control?wait=30", **bot, **{"If-None-Match": etag})[::2]
            )
        )
        poll.start()
        # The client library, long-polling too.
        library = Client(f"http://127.0.0.1:{port}", key, control_wait=5, control_stale_after=30)
        assert wait_until(lambda: library.trading_state() == "active", 30)
        assert library.may_open_positions()

        breach = {"samples": [{"name": "drawdown_pct", "value": 21.0}]}
        assert call(port, "POST", "/api/v1/metrics", breach, **bot)[0] == 202

        def next_answer_says_halted() -> bool:
            _, headers, body = call(port, "POST", "/api/v1/heartbeat", {}, **bot)
            return (
                headers["tradewatch-trading-state"] == "halted"
                and body["trading_state"] == "halted"
            )

        assert wait_until(next_answer_says_halted, 30)
        poll.join(30)
        assert woken, "the long poll did not wake"
        assert woken[0][0] == 200
        assert woken[0][1]["state"] == "halted"
        assert woken[0][1]["set_by"] == rule.name
        assert wait_until(lambda: library.trading_state() == "halted", 30)
        assert not library.may_open_positions()

        # The signed recovery webhook.
        assert wait_until(lambda: len(hook.requests) >= 1, 60)
        request = hook.requests[0]
        sent = Webhook(secret).verify(request.body, request.headers)
        assert (sent["type"], sent["source"], sent["state"], sent["previous_state"]) == (
            "trading_state", "e2e-halt-bot", "halted", "active",
        )  # fmt: skip

        # The alert resolves; the bot stays halted.
        call(port, "POST", "/api/v1/metrics", {"samples": [{"name": "drawdown_pct", "value": 2.0}]},
             **bot)  # fmt: skip
        alert = Alert.objects.get(rule=rule, source=source)
        assert wait_until(lambda: Alert.objects.get(pk=alert.pk).state == Alert.State.RESOLVED, 60)
        assert call(port, "GET", "/api/v1/control", **bot)[2]["state"] == "halted"

        # An Operator cannot re-arm; an Admin can.
        status, _, body = call(port, "POST", f"/api/v1/sources/{source.name}/control",
                               {"state": "active", "note": "looks fine"},
                               Authorization=f"Token {operator}")  # fmt: skip
        assert status == 403
        assert "metrics.rearm" in body["errors"][0]["message"]
        status, _, body = call(port, "POST", f"/api/v1/sources/{source.name}/control",
                               {"state": "active", "note": "fills reviewed"},
                               Authorization=f"Token {admin}")  # fmt: skip
        assert (status, body["state"]) == (200, "active")
        _, headers, _ = call(port, "POST", "/api/v1/heartbeat", {}, **bot)
        assert headers["tradewatch-trading-state"] == "active"
        assert wait_until(lambda: library.may_open_positions(), 30)
        assert wait_until(lambda: len(hook.requests) >= 2, 60)
        rearmed = Webhook(secret).verify(hook.requests[1].body, hook.requests[1].headers)
        assert (rearmed["state"], rearmed["previous_state"]) == ("active", "halted")
        library.close(timeout=1)

    # Every step on the alert's timeline, and in history.
    kinds = list(alert.timeline.values_list("kind", "details__state"))
    assert (AlertTransition.Kind.FIRING, None) in kinds
    assert (AlertTransition.Kind.TRADING_STATE, "halted") in kinds
    assert (AlertTransition.Kind.RESOLVED, None) in kinds
    assert (AlertTransition.Kind.TRADING_STATE, "active") in kinds
    history = list(
        TradingControlEvent.objects.filter(source=source)
        .order_by("pgh_id")
        .values_list("state", "set_by_rule", "set_by__username", "set_via")
    )
    assert history[-2:] == [
        ("halted", rule.name, None, "rule"),
        ("active", "", "adam", "api"),
    ]
    assert channel.notifications.count() == 2
