"""The console channel under `make run`: the launcher's worker prints each notification as
one plain line on the launcher's own stdout, not as a log record of Celery's."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from rest_framework.test import APIClient

from alerts.models import Alert, Channel, Notification, Policy, Severity
from alerts.payloads import alert_url
from metrics.services import source_create
from monitoring_site.launcher import Supervisor, worker_command
from tests.processes import broker_purge, process_environment, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _empty_queues() -> Iterator[None]:
    broker_purge()
    yield
    broker_purge()


def test_the_launcher_s_worker_prints_a_plain_line_on_the_launcher_s_stdout(
    capfd: pytest.CaptureFixture[str],
) -> None:
    _, key = source_create(name="console-bot")
    channel = Channel(name="terminal", kind=Channel.Kind.CONSOLE, config={}, rate_limit=0)
    channel.full_clean()
    channel.save()
    Policy.objects.create(name="all", min_severity=Severity.WARNING).channels.set([channel])
    env = process_environment()
    # Without colour here because the stdout is a file, not because someone asked.
    env.pop("NO_COLOR", None)
    # The worker as `make run` starts it: the launcher's command, under its supervisor,
    # writing to the launcher's stdout and stderr (captured here as files).
    supervisor = Supervisor(env, commands={"worker": worker_command(env)})
    supervisor.start()
    try:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        response = client.post(
            "/api/v1/metrics",
            json.dumps({"samples": [{"name": "leverage", "value": 4.5}]}),
            content_type="application/json",
        )
        assert response.status_code == 202

        def delivered() -> bool:
            assert supervisor.check_children(), "the worker kept crashing"
            return Notification.objects.filter(channel=channel, state="sent").exists()

        assert wait_until(delivered, 120, 0.5), capfd.readouterr().err[-3000:]
    finally:
        supervisor.stop()
    out, err = capfd.readouterr()

    alert = Alert.objects.get(rule__name="Leverage")
    expected = (
        "[Firing] CRITICAL Leverage on console-bot | console-bot: leverage 4.50x | "
        f"value 4.5 (threshold > 3) | {alert_url(alert.pk)}"
    )
    assert expected in out.splitlines(), out[-3000:]
    assert "console-bot: leverage" not in err
    assert "celery.redirected" not in out + err
