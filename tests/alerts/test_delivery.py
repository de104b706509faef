"""Routing, the outbox and delivery on PostgreSQL, against real receivers on loopback."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from alerts.alert_actions import alert_acknowledge
from alerts.channels.signing import signing_secret_new
from alerts.delivery import notification_deliver, outbox_sweep
from alerts.escalation import alerts_escalate
from alerts.evaluation import forget_rules_cache
from alerts.models import (
    Alert,
    Channel,
    DeliveryAttempt,
    Notification,
    Policy,
    RulePackInstall,
    Silence,
)
from alerts.rulepacks.trading import install_trading_pack
from core.events import EventsAppend
from metrics.models import Event, Source
from tests.alerts.conftest import MakeRule, evaluate, later, record
from tests.factories import SourceFactory, TagFactory
from tests.receivers import Answer, Receiver, receiver

pytestmark = pytest.mark.django_db

WARNING, ERROR, CRITICAL, EMERGENCY = 30, 40, 50, 60
State = Notification.State


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


@pytest.fixture(autouse=True)
def _quick_retries(settings: SettingsWrapper) -> None:
    settings.TRADEWATCH_DELIVERY_BACKOFF_SECONDS = 0.01
    settings.TRADEWATCH_DELIVERY_MAX_ATTEMPTS = 4
    settings.TRADEWATCH_DELIVERY_TIMEOUT_SECONDS = 1.0


MakeChannel = Callable[..., Channel]


@pytest.fixture
def make_channel(hook: Receiver) -> MakeChannel:
    def make(name: str = "ops-hook", url: str | None = None, **fields: Any) -> Channel:
        channel = Channel(
            name=name, kind=Channel.Kind.WEBHOOK, config={"url": url or f"{hook.url}/{name}"},
            rate_limit=fields.pop("rate_limit", 0), **fields,
        )  # fmt: skip
        channel.secrets = {"signing_secret": signing_secret_new()}
        channel.full_clean()
        channel.save()
        return channel

    return make


def policy_for(*channels: Channel, **fields: Any) -> Policy:
    policy = Policy.objects.create(name=fields.pop("name", "everything"), **fields)
    policy.channels.set(channels)
    return policy


def breach(source: Source, value: float = 15.0, at: float = 0.0) -> None:
    record(source, "drawdown_pct", value, ts=later(at))
    evaluate(source, now=later(at))


def deliver_all(now_offset: float = 0.0) -> list[str]:
    """Deliver every pending notification that is due, as workers would."""
    outcomes = []
    now = later(now_offset)
    for pk in Notification.objects.filter(state=State.PENDING).values_list("pk", flat=True):
        outcomes.append(notification_deliver(notification_id=pk, now=now).state)
    return outcomes


def payloads(hook: Receiver) -> list[dict[str, Any]]:
    return [json.loads(body) for body in hook.bodies()]


def test_it_writes_the_outbox_row_in_the_alert_transaction_and_queues_it_on_commit(
    source: Source,
    make_rule: MakeRule,
    make_channel: MakeChannel,
    django_capture_on_commit_callbacks: Any,
) -> None:
    make_rule()
    channel = make_channel()
    policy_for(channel)

    with django_capture_on_commit_callbacks() as callbacks:
        breach(source)

    [notification] = Notification.objects.all()
    assert (notification.event, notification.state, notification.channel_id) == (
        "firing", State.PENDING, channel.pk,
    )  # fmt: skip
    assert notification.alert.state == Alert.State.FIRING  # type: ignore[union-attr]
    assert notification.payload["severity"] == "WARNING"
    # Its delivery queued once; besides, the alert change told to the live event stream.
    events = [callback for callback in callbacks if isinstance(callback, EventsAppend)]
    assert len(callbacks) - len(events) == 1
    assert [event.kind for append in events for event in append.events] == ["alert"]


def test_it_delivers_the_spec_payload_signed_per_standard_webhooks(
    source: Source, make_rule: MakeRule, make_channel: MakeChannel, hook: Receiver
) -> None:
    make_rule()
    channel = make_channel()
    policy_for(channel)
    breach(source)

    assert deliver_all() == [State.SENT]

    [request] = hook.requests
    secret = channel.secrets["signing_secret"]
    body = Webhook(secret).verify(request.body, request.headers)
    assert body["version"] == 1
    assert body["event"] == "firing"
    alert = body["alert"]
    assert {"id", "fingerprint", "rule", "source", "severity", "status", "value", "threshold",
            "message", "first_seen", "last_seen", "count", "url"} <= set(alert)  # fmt: skip
    assert (alert["source"], alert["severity"], alert["value"]) == ("alpha-bot", "WARNING", 15.0)
    assert alert["url"].endswith(f"/admin/alerts/alert/{alert['id']}/change/")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body.replace(b"15.0", b"16.0"), request.headers)
    notification = Notification.objects.get()
    assert request.headers["webhook-id"] == notification.webhook_id
    assert notification.sent_at is not None
    [attempt] = DeliveryAttempt.objects.all()
    assert (attempt.ok, attempt.status, attempt.answer) == (True, 200, "ok")
    channel.refresh_from_db()
    assert (channel.sent_count, channel.failed_count) == (1, 0)


def test_it_retries_500s_and_delivers_on_the_third_attempt_with_the_same_webhook_id(
    source: Source, make_rule: MakeRule, make_channel: MakeChannel, hook: Receiver
) -> None:
    make_rule()
    policy_for(make_channel())
    breach(source)
    hook.script = [Answer(500, body=b"boom"), Answer(500, body=b"boom")]

    assert deliver_all(0) == [State.PENDING]
    assert deliver_all(5) == [State.PENDING]
    assert deliver_all(10) == [State.SENT]

    assert len({request.headers["webhook-id"] for request in hook.requests}) == 1
    assert len(hook.requests) == 3
    notification = Notification.objects.get()
    assert notification.attempts == 3
    assert [a.status for a in notification.delivery_attempts.all()] == [500, 500, 200]
    assert notification.delivery_attempts.first().answer == "boom"  # type: ignore[union-attr]


def test_it_honours_retry_after_on_429(
    source: Source, make_rule: MakeRule, make_channel: MakeChannel, hook: Receiver
) -> None:
    make_rule()
    policy_for(make_channel())
    breach(source)
    hook.script = [Answer(429, headers={"Retry-After": "120"})]
    before = timezone.now()

    assert deliver_all() == [State.PENDING]

    notification = Notification.objects.get()
    assert notification.next_attempt_at >= before + timedelta(seconds=119)
    # Not due yet: a delivery task arriving early changes nothing.
    assert deliver_all(60) == ["skipped"]
    assert deliver_all(121) == [State.SENT]


def test_it_disables_the_channel_on_410_and_raises_an_alert_about_it(
    source: Source, make_rule: MakeRule, make_channel: MakeChannel, hook: Receiver
) -> None:
    make_rule()
    channel = make_channel()
    policy_for(channel)
    breach(source)
    hook.script = [Answer(410, body=b"gone")]

    assert deliver_all() == [State.FAILED]

    channel.refresh_from_db()
    assert not channel.enabled
    assert "410" in channel.disabled_reason
    event = Event.objects.get(type="channel_disabled")
    assert channel.name in event.message
    # The pack's rule turns the event into an alert on Tradewatch's own source.
    RulePackInstall.objects.filter(key="channel_disabled").delete()
    install_trading_pack()
    forget_rules_cache()
    evaluate(event.source)
    alert = Alert.objects.get(source=event.source)
    assert (alert.rule.name, alert.severity) == ("Notification channel disabled", CRITICAL)


def test_it_fails_other_4xx_at_once_and_uses_the_fallback_channel(
    source: Source, make_rule: MakeRule, make_channel: MakeChannel, hook: Receiver
) -> None:
    make_rule()
    broken, fallback = make_channel("broken"), make_channel("fallback")
    policy_for(broken, fallback_channel=fallback)
    breach(source)
    hook.script = [Answer(404, body=b"no such hook")]

    assert deliver_all() == [State.FAILED]
    assert deliver_all() == [State.SENT]

    failed = Notification.objects.get(channel=broken)
    assert (failed.attempts, failed.last_status) == (1, 404)
    assert "no such hook" in failed.last_error
    rescued = Notification.objects.get(channel=fallback)
    assert rescued.is_fallback
    assert rescued.payload == failed.payload
    assert [r.path for r in hook.requests] == ["/broken", "/fallback"]
    assert Event.objects.filter(type="notification_failed").count() == 1


def test_it_fails_after_the_attempt_limit_then_falls_back(
    source: Source, make_rule: MakeRule, make_channel: MakeChannel, hook: Receiver
) -> None:
    make_rule()
    broken, fallback = make_channel("broken"), make_channel("fallback")
    policy_for(broken, fallback_channel=fallback)
    breach(source)
    hook.script = [Answer(503)] * 4

    outcomes = [deliver_all(60 * i)[0] for i in range(4)]

    assert outcomes == [State.PENDING, State.PENDING, State.PENDING, State.FAILED]
    assert Notification.objects.get(channel=broken).attempts == 4
    assert deliver_all(300) == [State.SENT]
    assert hook.requests[-1].path == "/fallback"


def test_it_times_out_a_receiver_that_never_answers_and_retries(
    source: Source, make_rule: MakeRule, make_channel: MakeChannel, hook: Receiver,
    settings: SettingsWrapper,
) -> None:  # fmt: skip
    settings.TRADEWATCH_DELIVERY_TIMEOUT_SECONDS = 0.5
    make_rule()
    policy_for(make_channel())
    breach(source)
    hook.hang.set()

    assert deliver_all() == [State.PENDING]

    notification = Notification.objects.get()
    assert notification.attempts == 1
    assert notification.last_status is None
    assert notification.last_error.startswith("No answer within 0.5 s")
    hook.hang.clear()
    assert deliver_all(60) == [State.SENT]


def test_it_holds_back_past_the_rate_limit_and_sends_one_digest_of_the_rest(
    make_rule: MakeRule, make_channel: MakeChannel, hook: Receiver
) -> None:
    make_rule()
    channel = make_channel(rate_limit=2, rate_window=timedelta(seconds=60))
    policy_for(channel)
    sources = [SourceFactory.create() for _ in range(5)]
    for source in sources:
        breach(source)

    outcomes = deliver_all()

    assert sorted(outcomes) == sorted([State.SENT] * 2 + [State.SUPPRESSED] * 3)
    assert len(hook.requests) == 2
    digest = Notification.objects.get(event="digest", state=State.PENDING)
    assert digest.next_attempt_at > timezone.now() + timedelta(seconds=50)
    assert deliver_all(30) == ["skipped"]
    assert deliver_all(61) == [State.SENT]
    body = payloads(hook)[-1]
    assert body["event"] == "digest"
    assert len(body["digest"]) == 3
    held = Notification.objects.filter(held=Notification.Held.RATE_LIMITED)
    assert {n.digest_id for n in held} == {digest.pk}
    # Nothing dropped: every alert reached the receiver, alone or in the digest.
    told = {p["alert"]["source"] for p in payloads(hook)[:2]} | {
        item["source"] for item in body["digest"]
    }
    assert told == {source.name for source in sources}


def test_it_keeps_silenced_notifications_as_suppressed_and_sends_none(
    source: Source, make_rule: MakeRule, make_channel: MakeChannel, hook: Receiver
) -> None:
    make_rule()
    policy_for(make_channel())
    silence = Silence.objects.create(
        reason="maintenance", starts_at=timezone.now(), ends_at=later(3600)
    )
    silence.sources.add(source)

    breach(source)

    [notification] = Notification.objects.all()
    assert (notification.state, notification.held) == (State.SUPPRESSED, "silenced")
    assert deliver_all() == []
    assert hook.requests == []


def test_it_routes_by_severity_sources_tags_and_rules(
    make_rule: MakeRule, make_channel: MakeChannel
) -> None:
    rule = make_rule(thresholds=[(WARNING, ">", 10, None), (CRITICAL, ">", 30, None)])
    tagged = SourceFactory.create(name="tagged")
    tagged.tags.add(TagFactory.create(name="live"))
    other = SourceFactory.create(name="other")
    critical_only = make_channel("critical-only")
    live_only = make_channel("live-only")
    this_rule = make_channel("this-rule")
    quiet = make_channel("quiet", min_severity=EMERGENCY)
    policy_for(critical_only, name="critical", min_severity=CRITICAL)
    policy_for(live_only, name="live").tags.set(list(tagged.tags.all()))
    policy_for(this_rule, name="rule").rules.set([rule])
    policy_for(quiet, name="quiet channel")

    breach(tagged, 15)
    breach(other, 35)

    routed = {
        (n.alert.source.name, n.channel.name)  # type: ignore[union-attr]
        for n in Notification.objects.select_related("alert__source", "channel")
    }
    assert routed == {
        ("tagged", "live-only"), ("tagged", "this-rule"),
        ("other", "critical-only"), ("other", "this-rule"),
    }  # fmt: skip


def test_it_announces_resolution_only_where_the_policy_asks(
    source: Source, make_rule: MakeRule, make_channel: MakeChannel
) -> None:
    make_rule()
    told, untold = make_channel("told"), make_channel("untold")
    policy_for(told, name="with resolved")
    policy_for(untold, name="without resolved", notify_resolved=False)

    breach(source, 15, 0)
    breach(source, 5, 1)

    events = sorted(Notification.objects.values_list("channel__name", "event"))
    assert events == [
        ("told", "firing"), ("told", "resolved"), ("untold", "firing"),
    ]  # fmt: skip


def test_it_spaces_repeats_by_the_policy_interval(
    source: Source, make_rule: MakeRule, make_channel: MakeChannel, settings: SettingsWrapper
) -> None:
    settings.TRADEWATCH_REPEAT_SECONDS = {**settings.TRADEWATCH_REPEAT_SECONDS, "WARNING": 10}
    make_rule()
    often, seldom = make_channel("often"), make_channel("seldom")
    policy_for(often, name="often")
    policy_for(seldom, name="seldom", repeat_seconds={"WARNING": 25})

    for second in range(0, 41, 5):
        breach(source, 15, second)

    events = list(Notification.objects.order_by("created_at").values_list("channel__name", "event"))
    assert events.count(("often", "repeat")) == 4  # at 10, 20, 30, 40 s
    assert events.count(("seldom", "repeat")) == 1  # at 30 s: 25 s after the firing
    assert events.count(("often", "firing")) == events.count(("seldom", "firing")) == 1


def test_it_escalates_an_unacknowledged_alert_once(
    source: Source, make_rule: MakeRule, make_channel: MakeChannel
) -> None:
    make_rule()
    first, manager = make_channel("first"), make_channel("manager")
    policy = policy_for(first, escalate_after=timedelta(minutes=10))
    policy.escalation_channels.set([manager])
    breach(source)

    assert alerts_escalate(now=later(300)) == 0
    assert alerts_escalate(now=later(601)) == 1
    assert alerts_escalate(now=later(900)) == 0

    escalated = Notification.objects.get(event="escalated")
    assert escalated.channel == manager
    assert escalated.alert.timeline.filter(kind="escalated").count() == 1  # type: ignore[union-attr]


def test_it_does_not_escalate_an_acknowledged_alert(
    source: Source, make_rule: MakeRule, make_channel: MakeChannel
) -> None:
    make_rule()
    policy = policy_for(make_channel("first"), escalate_after=timedelta(minutes=10))
    policy.escalation_channels.set([make_channel("manager")])
    breach(source)
    person = User.objects.create_user("ops")
    alert_acknowledge(alert_id=Alert.objects.get().pk, by=person)

    assert alerts_escalate(now=later(3600)) == 0
    assert Notification.objects.filter(event="acknowledged").count() == 1


def test_it_does_nothing_for_a_notification_already_sent(
    source: Source, make_rule: MakeRule, make_channel: MakeChannel, hook: Receiver
) -> None:
    make_rule()
    policy_for(make_channel())
    breach(source)
    [notification] = Notification.objects.all()

    first = notification_deliver(notification_id=notification.pk)
    again = notification_deliver(notification_id=notification.pk)

    assert (first.state, again.state) == (State.SENT, "skipped")
    assert len(hook.requests) == 1


def test_the_sweeper_queues_due_unleased_rows_only(
    source: Source, make_rule: MakeRule, make_channel: MakeChannel,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    make_rule()
    policy_for(make_channel("a"), make_channel("b"), make_channel("c"))
    breach(source)
    due, leased, queued = Notification.objects.order_by("pk")
    now = timezone.now()
    Notification.objects.filter(pk=due.pk).update(queued_until=None)
    Notification.objects.filter(pk=leased.pk).update(
        queued_until=None, claimed_until=now + timedelta(seconds=30)
    )

    with django_capture_on_commit_callbacks() as callbacks:
        assert outbox_sweep(now=now) == 1
    assert len(callbacks) == 1
    # Past the queue lease (a lost broker message) and the worker lease (a dead worker).
    assert outbox_sweep(now=now + timedelta(minutes=2)) == 3
    assert queued.pk  # queued on commit at creation: swept only once its lease ran out


def test_a_disabled_channel_fails_its_pending_notifications_to_the_fallback(
    source: Source, make_rule: MakeRule, make_channel: MakeChannel, hook: Receiver
) -> None:
    make_rule()
    off, fallback = make_channel("off"), make_channel("fallback")
    policy_for(off, fallback_channel=fallback)
    breach(source)
    Channel.objects.filter(pk=off.pk).update(enabled=False)

    assert sorted(deliver_all()) == [State.FAILED]
    assert deliver_all() == [State.SENT]
    assert [r.path for r in hook.requests] == ["/fallback"]
