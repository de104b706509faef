"""Factories for the rows the tests need: sources, tags, metric series, alerts, people.

One definition each, so a test says only what matters to it and every test builds the
same thing the same way.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import factory
from django.contrib.auth.models import Group, Permission, User
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from alerts.models import Alert, AlertTransition, Rule, Severity
from core.query_params import labels_key
from metrics.models import MetricSample, MetricSeries, Source, Tag


class TagFactory(factory.django.DjangoModelFactory[Tag]):
    class Meta:
        model = Tag
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"tag-{n}")


def _tags_set(source: Source, create: bool, extracted: list[Tag] | None, **kwargs: object) -> None:
    """`SourceFactory(tags=[...])`: a many-to-many is set once the source is saved."""
    if create and extracted:
        source.tags.set(extracted)


class SourceFactory(factory.django.DjangoModelFactory[Source]):
    class Meta:
        model = Source
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"bot-{n}")
    kind = Source.Kind.BOT

    tags = factory.PostGeneration(_tags_set)


def make_series(
    source: Source,
    name: str,
    labels: dict[str, str] | None = None,
    points: Sequence[tuple[datetime, float]] = (),
) -> MetricSeries:
    """A series of `source` with `points` (time, value) stored as its samples; the last
    of them is its latest value (none without points)."""
    labels = labels or {}
    series = MetricSeries.objects.create(
        source=source,
        name=name,
        labels=labels,
        labels_key=labels_key(labels),
        last_ts=points[-1][0] if points else None,
        last_value=points[-1][1] if points else None,
    )
    MetricSample.objects.bulk_create(
        MetricSample(series=series, ts=ts, value=value) for ts, value in points
    )
    return series


_fingerprints = itertools.count()


def make_alert(
    rule: Rule,
    source: Source,
    *,
    state: str = Alert.State.FIRING,
    severity: int = Severity.WARNING,
    at: datetime | None = None,
    last_seen: datetime | None = None,
    value: float | None = 12.5,
    timeline: bool = False,
    save: bool = True,
    **fields: Any,
) -> Alert:
    """An alert of `rule` on `source` as the lifecycle leaves it: `value` past a `> 10`
    threshold, first seen `at` and last seen `last_seen` (each defaulting to the other,
    both to now), fired when first seen unless pending, resolved when last seen if
    resolved; `fields` set anything else.

    With `timeline`, its first timeline entry too (pending, or a firing that was sent);
    `save=False` leaves it unsaved (for `bulk_create`).
    """
    first_seen = at or last_seen or timezone.now()
    last_seen = last_seen or first_seen
    values: dict[str, Any] = {
        "fingerprint": f"fp-{next(_fingerprints)}",
        "labels": {},
        "value": value,
        "peak_value": value,
        "threshold_value": 10.0,
        "comparison": ">",
        "message": f"{rule.name} on {source.name}: "
        + ("no data" if value is None else f"{value:g} > 10"),
        "first_seen": first_seen,
        "fired_at": None if state == Alert.State.PENDING else first_seen,
        "last_seen": last_seen,
    }
    if state == Alert.State.RESOLVED:
        values |= {"resolved_at": last_seen, "resolution": Alert.Resolution.CONDITION_CLEARED}
    alert = Alert(rule=rule, source=source, state=state, severity=severity, **(values | fields))
    if not save:
        return alert
    alert.save()
    if timeline:
        pending = state == Alert.State.PENDING
        AlertTransition.objects.create(
            alert=alert, at=first_seen, severity=severity, value=alert.value,
            kind=AlertTransition.Kind.PENDING if pending else AlertTransition.Kind.FIRING,
            notify=not pending,
        )  # fmt: skip
    return alert


def make_user(username: str, *perms: str, groups: Sequence[str] = (), **fields: Any) -> User:
    """A person holding `perms` ("app_label.codename") and in `groups`; `fields` go to
    `create_user` (a password only where a test logs in with one: hashing it costs half a
    second, and tokens and forced logins need none)."""
    user = User.objects.create_user(username, **fields)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    for group in groups:
        user.groups.add(Group.objects.get(name=group))
    return user


def token_client(user: User) -> APIClient:
    """An API client calling as `user`, with a token of their own."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client
