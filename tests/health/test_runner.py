"""The runner: claims, timeouts, flap damping, the breaker, and alerts through the lifecycle."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from alerts.models import Alert, AlertTransition, Rule
from health.models import HealthCheck, HealthReport
from health.rulepack import install_health_rule
from health.runner import breaker_reset, checks_claim, checks_run, checks_run_due
from health.scoring import Status
from health.transitions import Breaker
from metrics.services import SYSTEM_SOURCE_NAME
from tests.health.conftest import LocalServer, MakeCheck, unused_port

pytestmark = pytest.mark.django_db


def due_now(check: HealthCheck) -> None:
    HealthCheck.objects.filter(pk=check.pk).update(next_run_at=timezone.now())


def run_once(check: HealthCheck) -> HealthCheck:
    due_now(check)
    checks_run_due(claim_seconds=0)
    check.refresh_from_db()
    return check


def test_it_runs_due_checks_only_and_schedules_the_next_run(
    make_check: MakeCheck, tcp_listener: int
) -> None:
    due = make_check(config={"host": "127.0.0.1", "port": tcp_listener})
    later = make_check(
        config={"host": "127.0.0.1", "port": tcp_listener},
        next_run_at=timezone.now() + timedelta(minutes=5),
    )
    before = timezone.now()
    summary = checks_run_due(claim_seconds=0)
    assert [outcome.check_id for outcome in summary.outcomes] == [due.pk]
    due.refresh_from_db()
    assert due.status == Status.HEALTHY
    assert due.next_run_at >= before + due.interval
    assert due.lease_until is None
    report = HealthReport.objects.get(health_check=due)
    assert (report.status, report.check_status, report.score) == ("healthy", "healthy", 100)
    assert not HealthReport.objects.filter(health_check=later).exists()


def test_it_damps_flapping_with_n_failures_and_m_successes(
    make_check: MakeCheck, tcp_listener: int
) -> None:
    closed = {"host": "127.0.0.1", "port": unused_port()}
    opened = {"host": "127.0.0.1", "port": tcp_listener}
    check = make_check(config=opened, failures_to_unhealthy=2, successes_to_recover=2,
                       breaker_threshold=10)  # fmt: skip
    seen = []
    for config in [opened, closed, opened, closed, closed, opened, closed, opened, opened]:
        HealthCheck.objects.filter(pk=check.pk).update(config=config)
        seen.append(run_once(check).status)
    h, c = Status.HEALTHY, Status.CRITICAL
    assert seen == [h, h, h, h, c, c, c, c, h]
    assert list(
        HealthReport.objects.filter(health_check=check).order_by("id").values_list(
            "status", flat=True
        )
    ) == ["healthy", "critical", "healthy", "critical", "critical", "healthy", "critical",
          "healthy", "healthy"]  # fmt: skip


def test_it_opens_the_breaker_probes_half_open_and_closes_on_success(
    make_check: MakeCheck, tcp_listener: int
) -> None:
    check = make_check(config={"host": "127.0.0.1", "port": unused_port()})
    for _ in range(3):
        run_once(check)
    assert check.breaker == Breaker.OPEN
    assert check.breaker_opened_at is not None
    # Probed again only after the breaker's wait, not the interval.
    assert check.next_run_at - check.breaker_opened_at == timedelta(minutes=5)
    assert checks_run_due(claim_seconds=0).ran == 0

    # The wait is over: the half-open probe fails, so the breaker opens again.
    HealthCheck.objects.filter(pk=check.pk).update(next_run_at=timezone.now())
    claimed = checks_claim(now=timezone.now(), limit=10)
    assert [c.breaker for c in claimed] == [Breaker.HALF_OPEN]
    HealthCheck.objects.filter(pk=check.pk).update(lease_until=None, breaker=Breaker.OPEN)
    check = run_once(check)
    assert check.breaker == Breaker.OPEN

    # The target is back: the next half-open probe closes it.
    HealthCheck.objects.filter(pk=check.pk).update(
        config={"host": "127.0.0.1", "port": tcp_listener}
    )
    check = run_once(check)
    assert (check.breaker, check.breaker_failures, check.status) == (
        Breaker.CLOSED, 0, Status.HEALTHY,
    )  # fmt: skip


def test_it_closes_a_breaker_reset_by_hand_and_probes_at_once(make_check: MakeCheck) -> None:
    check = make_check(config={"host": "127.0.0.1", "port": unused_port()})
    for _ in range(3):
        run_once(check)
    assert check.breaker == Breaker.OPEN
    assert breaker_reset(check_ids=[check.pk]) == 1
    check.refresh_from_db()
    assert (check.breaker, check.breaker_failures, check.breaker_opened_at) == (
        Breaker.CLOSED, 0, None,
    )  # fmt: skip
    assert check.next_run_at <= timezone.now()
    assert checks_run_due(claim_seconds=0).ran == 1


def test_it_does_not_let_a_slow_check_delay_another_past_its_timeout(
    make_check: MakeCheck, http_server: LocalServer
) -> None:
    http_server.answers["/slow"] = (200, b"ok", 3)
    http_server.answers["/fast"] = (200, b"ok", 0)
    slow = make_check("http", {"url": http_server.url("/slow")}, timeout=timedelta(seconds=1))
    fast = make_check("http", {"url": http_server.url("/fast")}, timeout=timedelta(seconds=1))
    started = time.monotonic()
    summary = checks_run_due(claim_seconds=0, workers=4)
    elapsed = time.monotonic() - started
    assert elapsed < 2.5  # the slow one is abandoned at its 1 s deadline, not awaited
    by_check = {outcome.check_id: outcome for outcome in summary.outcomes}
    assert by_check[fast.pk].result.status is Status.HEALTHY
    assert by_check[slow.pk].result.status is Status.CRITICAL
    assert by_check[slow.pk].result.issues == ["no result within 1 s"]
    # The fast one was recorded before the slow one's deadline.
    assert summary.outcomes[0].check_id == fast.pk


def test_it_skips_a_check_leased_to_another_runner(
    make_check: MakeCheck, tcp_listener: int
) -> None:
    check = make_check(config={"host": "127.0.0.1", "port": tcp_listener})
    assert [c.pk for c in checks_claim(now=timezone.now(), limit=10)] == [check.pk]
    # Due again, yet still held by the first runner: neither a due nor a forced run takes it.
    due_now(check)
    assert checks_claim(now=timezone.now(), limit=10) == []
    assert checks_run(check_ids=[check.pk]).ran == 0


# --- alerts ---------------------------------------------------------------------------


@pytest.fixture
def health_rule(db: None) -> Rule:
    install_health_rule()
    return Rule.objects.get(name="Health check status")


def test_it_opens_an_alert_at_the_statuss_severity_and_resolves_it_on_recovery(
    make_check: MakeCheck, tcp_listener: int, http_server: LocalServer, health_rule: Rule
) -> None:
    http_server.answers["/ready"] = (200, b"ok", 0)
    check = make_check("http", {"url": http_server.url("/ready")}, name="exchange-gateway")
    assert run_once(check).status == Status.HEALTHY
    assert not Alert.objects.exists()

    http_server.answers["/ready"] = (503, b"down", 0)
    assert run_once(check).status == Status.UNHEALTHY
    alert = Alert.objects.get()
    assert (alert.rule, alert.source.name, alert.severity, alert.state) == (
        health_rule, SYSTEM_SOURCE_NAME, 40, Alert.State.FIRING,
    )  # fmt: skip
    assert alert.labels == {"check": "exchange-gateway"}
    assert alert.message.startswith("exchange-gateway on tradewatch: UNHEALTHY: ")

    # Unreachable now: CRITICAL raises the same alert's severity.
    HealthCheck.objects.filter(pk=check.pk).update(
        config={"url": f"http://127.0.0.1:{unused_port()}/ready"}
    )
    assert run_once(check).status == Status.CRITICAL
    alert.refresh_from_db()
    assert (alert.severity, alert.state) == (50, Alert.State.FIRING)

    HealthCheck.objects.filter(pk=check.pk).update(config={"url": http_server.url("/ready")})
    http_server.answers["/ready"] = (200, b"ok", 0)
    assert run_once(check).status == Status.HEALTHY
    alert.refresh_from_db()
    assert (alert.state, alert.resolution) == (Alert.State.RESOLVED, "cleared")
    assert list(
        AlertTransition.objects.filter(alert=alert).order_by("id").values_list("kind", flat=True)
    ) == ["firing", "severity_raised", "resolved"]


def test_it_keeps_saying_what_failed_while_a_recovering_check_is_still_held_bad(
    make_check: MakeCheck, http_server: LocalServer, health_rule: Rule
) -> None:
    http_server.answers["/ready"] = (503, b"down", 0)
    check = make_check(
        "http", {"url": http_server.url("/ready")}, name="exchange-gateway", successes_to_recover=2
    )
    assert run_once(check).status == Status.UNHEALTHY
    failed = Alert.objects.get().message
    assert "answered 503" in failed

    # One healthy probe of the two that recover it: still UNHEALTHY, and the alert (and
    # its repeats) must not read "UNHEALTHY: HEALTHY".
    http_server.answers["/ready"] = (200, b"ok", 0)
    assert run_once(check).status == Status.UNHEALTHY
    alert = Alert.objects.get()
    assert alert.state == Alert.State.FIRING
    assert alert.message == f"{failed} (recovering: 1 of 2 healthy results)"

    assert run_once(check).status == Status.HEALTHY
    alert.refresh_from_db()
    assert alert.state == Alert.State.RESOLVED


def test_it_raises_a_sources_check_on_that_source_and_keeps_warnings_for_degraded(
    make_check: MakeCheck, source: object, health_rule: Rule
) -> None:
    check = make_check("heartbeat", {}, source=source, name="alpha heartbeat")
    run_once(check)  # no heartbeat yet: CRITICAL
    alert = Alert.objects.get()
    assert (alert.source, alert.severity) == (source, 50)


def test_it_only_applies_rules_that_name_the_check_or_its_kind(
    make_check: MakeCheck, health_rule: Rule
) -> None:
    health_rule.metric = "kind:http"
    health_rule.save()
    check = make_check(config={"host": "127.0.0.1", "port": unused_port()})
    run_once(check)
    assert not Alert.objects.exists()
    # The edit reaches the health rules at once, as it reaches the evaluated ones.
    health_rule.metric = check.name
    health_rule.save()
    run_once(check)
    assert Alert.objects.filter(severity=50).count() == 1


# --- concurrency ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_never_runs_a_check_twice_when_two_runners_race(
    make_check: MakeCheck, tcp_listener: int
) -> None:
    checks = [
        make_check(config={"host": "127.0.0.1", "port": tcp_listener}, name=f"race-{i}")
        for i in range(40)
    ]
    ran: list[int] = []

    def runner(barrier: threading.Barrier) -> None:
        try:
            barrier.wait()
            ran.append(checks_run_due(claim_seconds=0.5, workers=4).ran)
        finally:
            connection.close()

    # Races of two runners until every check has run: on a loaded machine one race may
    # not claim all 40 within its half second; a check that ran is not due again.
    for _ in range(20):
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=runner, args=(barrier,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        if sum(ran) >= len(checks):
            break
    assert sum(ran) == len(checks)
    for check in checks:
        assert HealthReport.objects.filter(health_check=check).count() == 1
