"""The dashboard, its JSON and an alert's page stay a bounded number of queries with 100
sources, 1,000,000 samples and 100,000 alerts.

The rows are written by PostgreSQL itself (`generate_series`) once for the module, so
setting up takes seconds; they are removed again when the module's tests are done.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from alerts.models import Alert, Rule
from metrics.models import MetricSample, Source

SOURCES = 100
POINTS_PER_SERIES = 5_000  # x 2 series x 100 sources = 1,000,000 samples
ALERTS = 100_000
FIRING_EVERY = 100  # 1,000 firing, the rest resolved

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def many(django_db_setup: None, django_db_blocker: Any) -> Iterator[dict[str, Any]]:
    started = time.monotonic()
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO metrics_source (name, kind, description, enabled, heartbeat_period,
                                        heartbeat_grace, created_at, updated_at)
            SELECT 'scale-' || g, 'bot', '', true, interval '60 s', interval '60 s', now(), now()
            FROM generate_series(1, %s) g;

            INSERT INTO metrics_sourceheartbeat (source_id, status, info, last_seen, first_seen,
                                                 count)
            SELECT id, 'ok', '{}', now() - interval '10 s', now() - interval '2 days', 100
            FROM metrics_source WHERE name LIKE 'scale-%%';

            INSERT INTO metrics_metricseries (source_id, name, labels, labels_key, last_ts,
                                              last_value, created_at)
            SELECT s.id, n.name, '{}', '{}', now(), 1, now()
            FROM metrics_source s CROSS JOIN (VALUES ('equity'), ('drawdown_pct')) n(name)
            WHERE s.name LIKE 'scale-%%';

            INSERT INTO metrics_metricsample (series_id, ts, value)
            SELECT series.id, now() - g * interval '30 s',
                   CASE WHEN series.name = 'equity' THEN 10000 + 500 * sin(g / 300.0)
                        ELSE 5 + 4 * sin(g / 200.0) END
            FROM metrics_metricseries series
            JOIN metrics_source s ON s.id = series.source_id AND s.name LIKE 'scale-%%'
            CROSS JOIN generate_series(0, %s - 1) g;
            """,
            [SOURCES, POINTS_PER_SERIES],
        )
        # Not the watchdog's: there is one such alert, and health and counts leave it out.
        rules = list(
            Rule.objects.exclude(pack="self", metric="watchdog")
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        cursor.execute(
            """
            WITH sources AS (
                SELECT id, row_number() OVER (ORDER BY id) - 1 AS n
                FROM metrics_source WHERE name LIKE 'scale-%%'
            )
            INSERT INTO alerts_alert (fingerprint, labels, state, severity, value, peak_value,
                threshold_value, comparison, message, count, first_seen, fired_at, last_seen,
                resolved_at, resolution, acknowledgement_note, inhibited, source_id, rule_id)
            SELECT md5('scale' || g), '{}',
                   CASE WHEN g %% %s = 0 THEN 'firing' ELSE 'resolved' END,
                   (ARRAY[30, 40, 50, 60])[1 + g %% 4], 12, 12, 10, '>', 'scale alert ' || g, 1,
                   now() - (g %% 129600) * interval '1 min',
                   now() - (g %% 129600) * interval '1 min',
                   now() - (g %% 129600) * interval '1 min' + interval '5 min',
                   CASE WHEN g %% %s = 0 THEN NULL
                        ELSE now() - (g %% 129600) * interval '1 min' + interval '5 min' END,
                   CASE WHEN g %% %s = 0 THEN '' ELSE 'cleared' END, '', false,
                   sources.id, (%s::bigint[])[1 + g %% %s]
            FROM generate_series(1, %s) g JOIN sources ON sources.n = g %% %s;
            ANALYZE metrics_source, metrics_metricseries, metrics_metricsample, alerts_alert;
            """,
            [FIRING_EVERY, FIRING_EVERY, FIRING_EVERY, rules, len(rules), ALERTS, SOURCES],
        )
        drawdown = Rule.objects.get(name="Drawdown")
        alert = Alert.objects.filter(state="firing", source__name="scale-1").first()
        assert alert is not None
        Alert.objects.filter(pk=alert.pk).update(rule=drawdown)
        cursor.execute(
            """
            INSERT INTO alerts_alerttransition (alert_id, at, kind, severity, value, details,
                                                notify, silenced)
            SELECT %s, now() - g * interval '1 min', 'repeat', 30, 12, '{}', true, false
            FROM generate_series(1, 300) g
            """,
            [alert.pk],
        )
    setup_seconds = time.monotonic() - started
    yield {"alert": alert, "setup_seconds": setup_seconds}
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM metrics_metricsample WHERE series_id IN (SELECT id FROM"
            " metrics_metricseries WHERE source_id IN (SELECT id FROM metrics_source"
            " WHERE name LIKE 'scale-%%'))"
        )
        Source.objects.filter(name__startswith="scale-").delete()


@pytest.fixture
def operator_client(operator: User) -> Client:
    client = Client()
    client.force_login(operator)
    return client


def test_it_sets_up_a_million_samples_and_100000_alerts_in_seconds(
    many: dict[str, Any], db: None
) -> None:
    assert MetricSample.objects.count() >= SOURCES * 2 * POINTS_PER_SERIES
    assert Alert.objects.count() >= ALERTS
    assert many["setup_seconds"] < 120


def test_it_renders_the_dashboard_in_a_bounded_number_of_queries(
    many: dict[str, Any], operator_client: Client, django_assert_max_num_queries: Any
) -> None:
    operator_client.get("/admin/")  # warm the session and the content types
    # 4 for the session, user and permissions; 13 for the dashboard, whatever the size.
    with django_assert_max_num_queries(17):
        page = operator_client.get("/admin/")

    assert page.status_code == 200
    state = page.context["dashboard"]
    assert len(state["sources"]) >= SOURCES
    assert len(state["firing"]["alerts"]) == 50
    assert state["firing"]["total"] >= ALERTS // FIRING_EVERY
    assert len(state["chart"]["equity"]) > 50


def test_it_answers_the_dashboard_json_in_a_bounded_number_of_queries(
    many: dict[str, Any], operator_client: Client, django_assert_max_num_queries: Any
) -> None:
    source = Source.objects.get(name="scale-7")
    operator_client.get("/admin/dashboard.json")
    with django_assert_max_num_queries(17):
        answer = operator_client.get(f"/admin/dashboard.json?source={source.pk}&range=7d")

    state = answer.json()
    assert state["chart"]["source"] == source.pk
    assert len(state["chart"]["drawdown"]) > 10
    assert sum(hour["count"] for hour in state["alerts_per_hour"]) > 0


def test_it_renders_an_alert_page_in_a_bounded_number_of_queries(
    many: dict[str, Any], operator_client: Client, django_assert_max_num_queries: Any
) -> None:
    url = f"/admin/alerts/alert/{many['alert'].pk}/change/"
    operator_client.get(url)
    with django_assert_max_num_queries(10):
        page = operator_client.get(url)

    assert page.status_code == 200
    assert len(page.context["alert_timeline"]) == 200
    assert page.context["alert_chart"]["points"]
