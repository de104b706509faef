"""The plain-SQL reads (PostgreSQL) load exactly what the ORM reads (the embedded
SQLite mode) would: the same tags, series, heartbeats, open alerts and silences."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pghistory
import pytest
from django.utils import timezone

from alerts import loading, silences, source_reads
from alerts.loading import source_data_load
from alerts.models import Alert, Rule, Severity, Silence
from metrics.ingest import heartbeat_record, metric_ingest
from metrics.models import Source
from metrics.validation import HeartbeatIn, Sample
from tests.factories import SourceFactory, TagFactory, make_alert

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


def alert(rule: Rule, source: Source, fingerprint: str, state: str) -> Alert:
    now = timezone.now()
    return make_alert(
        rule, source, fingerprint=fingerprint, state=state, severity=Severity.ERROR,
        at=now - HOUR, last_seen=now, threshold_value=3.0, peak_value=4.5,
    )  # fmt: skip


def test_the_plain_sql_reads_load_what_the_orm_reads_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = timezone.now()
    live, binance = TagFactory.create(name="live"), TagFactory.create(name="binance")
    first = SourceFactory.create(tags=[live, binance])
    second = SourceFactory.create(tags=[live])
    quiet = SourceFactory.create()
    for source, value in ((first, 2.0), (second, 4.0)):
        metric_ingest(
            source=source,
            samples=[
                Sample("leverage", {}, "{}", now - timedelta(seconds=5), value),
                Sample("mid_price", {"symbol": "BTC/USDT"}, '{"symbol":"BTC/USDT"}', now, 97e3),
                Sample("unwatched", {}, "{}", now, 1.0),
            ],
            evaluate=False,
        )
    heartbeat_record(source=first, heartbeat=HeartbeatIn("ok", {}, now - timedelta(minutes=3)))
    leverage = Rule.objects.create(name="lev", metric="leverage")
    beat = Rule.objects.create(name="beat", kind=Rule.Kind.ABSENCE, metric="heartbeat")
    health = Rule.objects.create(name="health", kind=Rule.Kind.HEALTH, metric="health:db")
    price = Rule.objects.create(name="price", metric="mid_price")
    alert(leverage, first, "a", Alert.State.FIRING)
    alert(beat, first, "b", Alert.State.FIRING)
    alert(price, second, "c", Alert.State.PENDING)
    alert(leverage, second, "d", Alert.State.RESOLVED)
    alert(health, second, "e", Alert.State.FIRING)
    rules = [leverage, beat, price]
    sources = [first, second, quiet]

    by_sql = source_data_load(sources, rules, now)
    monkeypatch.setattr(loading, "_plain_sql", lambda: False)
    by_orm = source_data_load(sources, rules, now)

    for source in sources:
        sql, orm = by_sql[source.pk], by_orm[source.pk]
        sql.series.sort(key=lambda row: row["id"])
        orm.series.sort(key=lambda row: row["id"])
        assert sql == orm, source
    assert by_sql[first.pk].tag_ids == {live.pk, binance.pk}
    assert [row["labels"] for row in by_sql[first.pk].series] == [{}, {"symbol": "BTC/USDT"}]
    assert by_sql[first.pk].heartbeat is not None
    assert set(by_sql[first.pk].open_alerts) == {"a", "b"}
    assert by_sql[first.pk].heartbeat_firing
    assert set(by_sql[second.pk].open_alerts) == {"c"}  # not resolved, not health
    assert by_sql[second.pk].open_alerts["c"].peak_value == 4.5


def test_reads_sent_together_each_come_back_whole_inside_a_history_context() -> None:
    # Admin and API requests run inside a django-pghistory context, whose execute
    # wrapper steps the cursor to the last result set: each read must still get its own.
    reads = [source_reads.Read("SELECT %s::int", [n]) for n in (1, 2, 3)]
    reads.append(source_reads.Read("SELECT 4 WHERE false", []))

    with pghistory.context(user=None):
        inside = source_reads.read_together(reads)
    outside = source_reads.read_together(reads)

    assert inside == outside == [[(1,)], [(2,)], [(3,)], []]


def test_evaluation_loads_the_enabled_source_rows_with_their_data() -> None:
    now = timezone.now()
    on = SourceFactory.create(tags=[TagFactory.create(name="live")])
    off = SourceFactory.create(enabled=False)
    metric_ingest(source=on, samples=[Sample("leverage", {}, "{}", now, 2.0)], evaluate=False)
    rule = Rule.objects.create(name="lev", metric="leverage")

    sources, data = loading.sources_with_data_load([on.pk, off.pk], [rule], now)

    [source] = sources
    assert source == on
    assert (source.name, source.heartbeat_period) == (on.name, on.heartbeat_period)
    assert set(data) == {on.pk}
    assert data[on.pk].series[0]["last_value"] == 2.0
    assert data[on.pk].tag_ids == {tag.pk for tag in on.tags.all()}


def test_the_plain_sql_silences_are_the_orm_silences() -> None:
    now = timezone.now()
    source, tag = SourceFactory.create(), TagFactory.create(name="live")
    rule = Rule.objects.create(name="lev", metric="leverage")

    def silence(starts_at: datetime = now - HOUR, **fields: Any) -> Silence:
        return Silence.objects.create(reason="test", starts_at=starts_at, **fields)

    matching = silence(min_severity=Severity.ERROR, ends_at=now + HOUR)
    matching.sources.set([source])
    matching.tags.set([tag])
    matching.rules.set([rule])
    silence(ends_at=now + HOUR)  # matching everything
    silence(alert=alert(rule, source, "open", Alert.State.FIRING))
    silence(alert=alert(rule, source, "closed", Alert.State.RESOLVED))  # over
    silence(ends_at=now - timedelta(minutes=1), starts_at=now - HOUR)  # over
    silence(starts_at=now + HOUR, ends_at=now + 2 * HOUR)  # not yet
    silence(ends_at=now + HOUR, expired_at=now - timedelta(minutes=5))  # ended by hand

    by_sql = silences._active_silences_sql(now)
    by_orm = silences._active_silences_orm(now)

    def key(m: silences.SilenceMatcher) -> tuple[object, ...]:
        return (m.min_severity, sorted(m.source_ids), sorted(m.tag_ids), sorted(m.rule_ids))

    assert sorted(by_sql, key=key) == sorted(by_orm, key=key)
    assert len(by_sql) == 3
    assert (
        silences.SilenceMatcher(
            Severity.ERROR, frozenset({source.pk}), frozenset({tag.pk}), frozenset({rule.pk})
        )
        in by_sql
    )
