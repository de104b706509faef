"""The silence services: create with what they match, validate by field, expire once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.utils import timezone

from alerts import selectors
from alerts.models import Alert, Rule, Severity, Silence
from alerts.silences import (
    SilenceOver,
    alert_silence,
    alert_silences,
    is_silenced,
    silence_create,
    silence_expire,
)
from metrics.models import Source
from tests.factories import SourceFactory, TagFactory, make_alert

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


@pytest.fixture
def rule() -> Rule:
    return Rule.objects.create(name="silence test rule", metric="drawdown_pct")


def test_it_creates_a_silence_with_what_it_matches(source: Source, rule: Rule) -> None:
    person = User.objects.create_user("sam")
    tag = TagFactory.create(name="live")
    now = timezone.now()

    silence = silence_create(
        reason="exchange maintenance", created_by=person, sources=[source], tags=[tag],
        rules=[rule], min_severity=Severity.ERROR, ends_at=now + HOUR, now=now,
    )  # fmt: skip

    silence.refresh_from_db()
    assert (silence.starts_at, silence.ends_at, silence.created_by) == (now, now + HOUR, person)
    assert list(silence.sources.all()) == [source]
    assert list(silence.tags.all()) == [tag]
    assert list(silence.rules.all()) == [rule]
    assert silence.min_severity == Severity.ERROR


def test_it_ends_with_whichever_comes_first_of_time_and_alert(source: Source, rule: Rule) -> None:
    alert = make_alert(rule, source)
    now = timezone.now()

    silence = silence_create(
        reason="both", created_by=None, ends_at=now + HOUR, alert=alert, now=now
    )

    assert selectors.silence_state(silence, now) == "active"
    assert selectors.silence_state(silence, now + HOUR) == "expired"
    alert.state = Alert.State.RESOLVED
    assert selectors.silence_state(silence, now) == "expired"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"ends_at": None}, "ends_at"),
        ({"ends_at": -1}, "ends_at"),
        ({"starts_at": 2, "ends_at": 1}, "ends_at"),
        ({"reason": ""}, "reason"),
        ({"reason": "x" * 501}, "reason"),
    ],
)
def test_it_names_the_field_at_fault_and_stores_nothing(
    fields: dict[str, object], field: str
) -> None:
    now = timezone.now()
    values: dict[str, object] = {"reason": "why", "ends_at": 1} | fields
    for key in ("starts_at", "ends_at"):
        if isinstance(values.get(key), int):
            values[key] = now + values[key] * HOUR  # type: ignore[operator]

    with pytest.raises(ValidationError) as raised:
        silence_create(created_by=None, now=now, **values)  # type: ignore[arg-type]

    assert list(raised.value.message_dict) == [field]
    assert not Silence.objects.exists()


def test_it_refuses_to_last_until_a_resolved_alert(source: Source, rule: Rule) -> None:
    alert = make_alert(rule, source, state=Alert.State.RESOLVED)

    with pytest.raises(ValidationError) as raised:
        silence_create(reason="late", created_by=None, alert=alert)

    assert raised.value.message_dict == {"alert": [f"Alert {alert.pk} is resolved already."]}


def test_it_expires_a_silence_once(source: Source) -> None:
    now = timezone.now()
    silence = silence_create(reason="deploy", created_by=None, ends_at=now + HOUR, now=now)

    silence_expire(silence_id=silence.pk, by=None, now=now + timedelta(minutes=1))

    silence.refresh_from_db()
    assert silence.expired_at == now + timedelta(minutes=1)
    assert selectors.silence_state(silence, now + timedelta(minutes=2)) == "expired"
    with pytest.raises(SilenceOver):
        silence_expire(silence_id=silence.pk, by=None)


def test_it_will_not_expire_a_silence_that_ended_or_whose_alert_resolved(
    source: Source, rule: Rule
) -> None:
    now = timezone.now()
    timed = silence_create(reason="short", created_by=None, ends_at=now + HOUR, now=now)
    alert = make_alert(rule, SourceFactory.create())
    with_alert = silence_create(reason="until fixed", created_by=None, alert=alert, now=now)
    Alert.objects.filter(pk=alert.pk).update(state=Alert.State.RESOLVED)

    with pytest.raises(SilenceOver):
        silence_expire(silence_id=timed.pk, by=None, now=now + 2 * HOUR)
    with pytest.raises(SilenceOver):
        silence_expire(silence_id=with_alert.pk, by=None)
    with pytest.raises(Silence.DoesNotExist):
        silence_expire(silence_id=999999, by=None)


def test_it_silences_an_alerts_rule_on_its_source_for_hours_or_until_it_resolves(
    source: Source, rule: Rule
) -> None:
    alert = make_alert(rule, source)
    person = User.objects.create_user("sam")
    now = timezone.now()

    for_an_hour = alert_silence(alert=alert, by=person, hours=1, now=now)
    until_resolved = alert_silence(alert=alert, by=person, hours=None, now=now)

    assert (for_an_hour.alert, for_an_hour.ends_at) == (None, now + HOUR)
    assert (until_resolved.alert, until_resolved.ends_at) == (alert, None)
    for silence in (for_an_hour, until_resolved):
        assert list(silence.sources.all()) == [source]
        assert list(silence.rules.all()) == [rule]
        assert silence.created_by == person
        assert silence.reason == f"Silenced from the admin by sam: {alert}"
    alert.state = Alert.State.RESOLVED
    with pytest.raises(ValidationError) as refused:
        alert_silence(alert=alert, by=person, hours=None, now=now)
    assert "alert" in refused.value.message_dict


def test_it_names_the_silences_that_mute_an_alert_as_the_lifecycle_judges_them(
    source: Source, rule: Rule
) -> None:
    alert = make_alert(rule, source)
    other_rule = Rule.objects.create(name="another rule", metric="equity")
    tag, other_tag = TagFactory.create(name="live"), TagFactory.create(name="paper")
    source.tags.add(tag)
    now = timezone.now()

    def silence(ends_in: timedelta | None = HOUR, **fields: Any) -> Silence:
        return Silence.objects.create(
            reason="test", starts_at=fields.pop("starts_at", now - HOUR),
            ends_at=None if ends_in is None else now + ends_in, **fields,
        )  # fmt: skip

    everything_later = silence(ends_in=2 * HOUR)
    by_tag = silence()
    by_tag.tags.set([tag])
    by_rule_and_source = silence(ends_in=timedelta(minutes=30))
    by_rule_and_source.rules.set([rule])
    by_rule_and_source.sources.set([source])
    until_resolved = silence(ends_in=None, alert=alert)
    silence().tags.set([other_tag])  # another tag
    silence().rules.set([other_rule])  # another rule
    silence(min_severity=Severity.CRITICAL)  # milder than it mutes
    silence(expired_at=now - timedelta(minutes=1))  # ended by hand
    silence(starts_at=now + HOUR, ends_in=2 * HOUR)  # not yet

    muting = alert_silences(alert, now=now)

    assert muting == [by_rule_and_source, by_tag, everything_later, until_resolved]
    assert is_silenced(alert, now)
    Silence.objects.filter(pk__in=[s.pk for s in muting]).update(expired_at=now)
    assert alert_silences(alert, now=now) == []
    assert not is_silenced(alert, now)
