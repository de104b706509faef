"""The demo's things in the database: made (and made again) by `demo_provision`, removed
by `tradewatch demo --clean` without touching anything else; the verb's refusals."""

from __future__ import annotations

import http.server
import io
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from alerts.models import Alert, Channel, Notification, Policy, Rule, Severity
from metrics.ingest import event_ingest, heartbeat_record, metric_ingest
from metrics.models import Event, MetricSample, Source, SourceAPIKey, Tag
from metrics.services import source_create
from metrics.validation import EventIn, HeartbeatIn, Sample
from monitoring_site.demo.command import default_url
from monitoring_site.demo.provisioning import demo_clean, demo_provision
from monitoring_site.demo.sending import server_awaited
from monitoring_site.demo.story import demo_story
from monitoring_site.management.commands.tradewatch import Command
from tests.processes import free_port
from tests.receivers import Answer, receiver

pytestmark = pytest.mark.django_db

NAMES = [system.name for system in demo_story().systems]


def tradewatch(*args: str) -> tuple[str, str, int]:
    out, err = io.StringIO(), io.StringIO()
    command = Command()
    call_command(command, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue(), command.exit_code


def data_for(source: Source) -> None:
    """Some of everything a source has: samples, an event, a heartbeat, an alert with a
    notification on a channel."""
    now = timezone.now()
    metric_ingest(source=source, samples=[Sample("equity", {}, "{}", now, 1000.0)], evaluate=False)
    event_ingest(source=source, events=[EventIn("model_crashed", "", {}, now)])
    heartbeat_record(source=source, heartbeat=HeartbeatIn("ok", {}, now))
    alert = Alert.objects.create(
        fingerprint=f"fp-{source.pk}", rule=Rule.objects.get(name="Model crashed"),
        source=source, state="firing", severity=Severity.CRITICAL, first_seen=now,
        last_seen=now,
    )  # fmt: skip
    channel = Channel.objects.filter(name="demo").first() or Channel.objects.get(name="ops")
    Notification.objects.create(
        alert=alert, channel=channel, event="firing", severity=Severity.CRITICAL,
        next_attempt_at=now, created_at=now,
    )  # fmt: skip


def test_it_makes_a_source_and_key_per_system_a_console_channel_and_a_policy() -> None:
    scenario = demo_story(2.0)

    made = demo_provision(scenario.systems)

    assert sorted(made.keys) == sorted(NAMES)
    for name in NAMES:
        source = Source.objects.get(name=name)
        assert [tag.name for tag in source.tags.all()] == ["demo"]
        key = SourceAPIKey.objects.get_from_key(made.keys[name])
        assert isinstance(key, SourceAPIKey)
        assert key.source == source
    hanging = Source.objects.get(name="demo-heartbeat")
    assert hanging.heartbeat_period + hanging.heartbeat_grace == timedelta(seconds=10)
    channel = Channel.objects.get(name="demo")
    assert (channel.kind, channel.min_severity) == ("console", Severity.INFO)
    policy = Policy.objects.get(name="demo")
    assert policy.min_severity == Severity.INFO
    assert [tag.name for tag in policy.tags.all()] == ["demo"]
    assert list(policy.channels.all()) == [channel]
    assert made.channel_created
    assert made.policy_created


def test_running_it_again_replaces_the_sources_and_keeps_one_channel_and_policy() -> None:
    systems = demo_story().systems
    first = demo_provision(systems)
    data_for(Source.objects.get(name="demo-model"))

    again = demo_provision(systems)

    assert again.replaced.sources == sorted(NAMES)
    assert again.replaced.alerts == 1
    assert set(again.keys.values()).isdisjoint(first.keys.values())
    assert Source.objects.filter(name__startswith="demo-").count() == len(NAMES)
    assert not Alert.objects.exists()
    assert Channel.objects.filter(name="demo").count() == Policy.objects.count() == 1
    assert not again.channel_created
    assert not again.policy_created


def test_clean_removes_the_demo_and_nothing_else() -> None:
    ops = Channel.objects.create(name="ops", kind="console")
    ops_policy = Policy.objects.create(name="ops")
    ops_policy.channels.add(ops)
    # Someone's own sources: one tagged demo, one named demo-... without the tag.
    mine, _ = source_create(name="live-bot", tags=["demo", "live"])
    lookalike, _ = source_create(name="demo-mine", tags=["live"])
    for source in (mine, lookalike):
        data_for(source)
    demo_provision(demo_story().systems)
    for name in ("demo-model", "demo-breaker"):
        data_for(Source.objects.get(name=name))

    out, _, code = tradewatch("demo", "--clean")

    assert code == 0
    assert out.startswith(f"Removed 6 source(s) ({', '.join(sorted(NAMES))}), 6 API key(s), ")
    assert "2 alert(s), 2 notification(s), the console channel 'demo', the policy 'demo'" in out
    assert "the tag" not in out  # live-bot still carries it
    left = Source.objects.exclude(name="tradewatch")  # Tradewatch's own, from the migrations
    assert set(left.values_list("name", flat=True)) == {"live-bot", "demo-mine"}
    assert set(Alert.objects.values_list("source__name", flat=True)) == {"live-bot", "demo-mine"}
    assert Notification.objects.count() == 2
    assert MetricSample.objects.count() == Event.objects.count() == 2
    assert SourceAPIKey.objects.count() == 2
    assert list(Channel.objects.all()) == [ops]
    assert list(Policy.objects.all()) == [ops_policy]
    assert Tag.objects.filter(name="demo").exists()

    out, _, _ = tradewatch("demo", "--clean")
    assert out.strip() == "Removed nothing (no demo found)."


def test_clean_drops_the_demo_tag_when_nothing_else_uses_it() -> None:
    demo_provision(demo_story().systems)

    removed = demo_clean()

    assert removed.tag
    assert not Tag.objects.filter(name="demo").exists()


def test_it_says_to_start_tradewatch_first_when_nothing_answers() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    _, err, code = tradewatch("demo", "--url", url, "--wait", "0")

    assert code == 1
    assert err.strip() == (
        f"Nothing answers at {url}/healthz: start Tradewatch with `make run` first "
        "(or give its address with --url)."
    )
    assert not Source.objects.filter(name__startswith="demo-").exists()


def test_it_waits_for_tradewatch_still_starting() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    said: list[str] = []
    # The web server comes up two seconds after the demo started.
    later = threading.Timer(2.0, lambda: servers.append(healthz_server(port)))
    servers: list[http.server.HTTPServer] = []
    later.start()
    try:
        assert server_awaited(url, 30, said.append)
    finally:
        later.join()
        for server in servers:
            server.shutdown()
            server.server_close()
    assert said == [f"Waiting up to 30 s for Tradewatch to answer at {url} ..."]
    assert not server_awaited(f"http://127.0.0.1:{free_port()}", 1, said.append)


def healthz_server(port: int) -> http.server.HTTPServer:
    class Healthz(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", port), Healthz)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_it_stops_when_the_server_reads_another_database() -> None:
    # Answers /healthz, but knows none of the keys this test's database holds.
    with receiver(Answer(401, body=b'{"errors": ["bad key"]}')) as server:
        server.script = [Answer(200, body=b'{"status": "ok"}')]

        _, err, code = tradewatch("demo", "--url", server.url)

    assert code == 1
    assert "does not know the demo's keys: it uses another database" in err
    assert [request.path for request in server.requests] == ["/healthz", "/api/v1/whoami"]


def test_its_default_address_is_where_make_run_binds() -> None:
    assert default_url({}) == "http://127.0.0.1:8000"
    assert default_url({"TRADEWATCH_BIND": "0.0.0.0:9000"}) == "http://127.0.0.1:9000"


def test_pace_and_duration_are_checked() -> None:
    with pytest.raises(Exception, match=r"between 0\.1 and 8"):
        tradewatch("demo", "--pace", "20")
    with pytest.raises(Exception, match="positive"):
        tradewatch("demo", "--duration", "-1")
