"""Operators' reads from a real PostgreSQL streaming replica (DATABASE_REPLICA_URL).

The primary and its hot standby are the test's own (initdb, then pg_basebackup on spare
ports), never the shared server. Pausing the standby's replay makes the two differ, so
each answer shows where it was read: what the primary has and the replica has not yet.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.postgres_cluster import Cluster, scratch_cluster, streaming_replica
from tests.processes import BASE_DIR, free_port, process_environment, wait_until, web_server

pytestmark = pytest.mark.slow

OPERATORS = """
import json
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
tokens = {}
for name in ("ann", "bob", "cyd"):
    user = get_user_model().objects.create_superuser(name, f"{name}@example.com", "pw-" + name * 4)
    tokens[name] = Token.objects.create(user=user).key
print(json.dumps(tokens))
"""


class Http:
    """One client of the web server: its Authorization header or its session cookies."""

    def __init__(self, port: int, authorization: str = "") -> None:
        self.port = port
        self.authorization = authorization
        self.cookies: dict[str, str] = {}

    def __call__(
        self, method: str, path: str, body: Any = None, *, form: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        data = None if body is None else json.dumps(body)
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Referer"] = f"http://127.0.0.1:{self.port}{path}"
            data = urlencode(form)
        if self.authorization:
            headers["Authorization"] = self.authorization
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            connection.request(method, path, data, headers)
            answer = connection.getresponse()
            raw = answer.read()
            for header in answer.msg.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(header).items():
                    self.cookies[name] = morsel.value
            is_json = (answer.getheader("Content-Type") or "").startswith("application/json")
            return answer.status, json.loads(raw) if raw and is_json else raw.decode()
        finally:
            connection.close()


def manage(env: dict[str, str], *arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *arguments],
        env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    return done.stdout


def reasons(answer: Any) -> set[str]:
    return {silence["reason"] for silence in answer["results"]}


def silence(reason: str) -> dict[str, str]:
    ends = datetime.now(UTC) + timedelta(hours=1)
    return {"reason": reason, "ends_at": ends.isoformat()}


@pytest.fixture
def primary() -> Iterator[Cluster]:
    with scratch_cluster() as cluster:
        yield cluster


def test_operators_read_the_replica_and_their_own_changes_from_the_primary(
    primary: Cluster,
) -> None:
    database = primary.create_database("tradewatch")
    env = process_environment(DATABASE_URL=database)
    manage(env, "migrate", "--no-input")
    created = manage(env, "tradewatch", "source", "add", "replica-bot", "--kind", "bot")
    match = re.search(r"API key[^:]*:\s*(\S+)", created)
    assert match, created
    bot_key = match.group(1)
    tokens = json.loads(manage(env, "shell", "-c", OPERATORS).strip().splitlines()[-1])

    with streaming_replica(primary) as replica:
        env = process_environment(
            DATABASE_URL=database, DATABASE_REPLICA_URL=replica.url("tradewatch")
        )
        port = free_port()
        ann = Http(port, f"Token {tokens['ann']}")
        bob = Http(port, f"Token {tokens['bob']}")
        bot = Http(port, f"Api-Key {bot_key}")
        cyd = Http(port)  # the admin, signed in with a session

        def replayed() -> bool:
            # The standby has replayed everything the primary wrote so far.
            [(lsn,)] = primary.query("tradewatch", "SELECT pg_current_wal_lsn()::text")
            [(done,)] = replica.query(
                "tradewatch", f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"
            )
            return bool(done)

        with web_server(env, port):
            status, answer = ann("POST", "/api/v1/silences", silence("before the pause"))
            assert status == 201, answer
            assert wait_until(replayed, 30)
            assert reasons(bob("GET", "/api/v1/silences")[1]) == {"before the pause"}

            replica.query("tradewatch", "SELECT pg_wal_replay_pause()")

            # A person's own change: their next reads come from the primary...
            status, answer = ann("POST", "/api/v1/silences", silence("ann's change"))
            assert status == 201, answer
            status, answer = ann("GET", "/api/v1/silences")
            assert status == 200
            assert reasons(answer) == {"before the pause", "ann's change"}
            # ...while another operator's reads come from the replica, which has not
            # replayed it.
            status, answer = bob("GET", "/api/v1/silences")
            assert status == 200
            assert reasons(answer) == {"before the pause"}

            # Signing in writes a session on the primary; the admin then finds it there
            # (sessions are never read from the replica) and lists from the replica.
            status, page = cyd("GET", "/admin/login/")
            assert status == 200
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
            assert token, page[:500]
            status, _ = cyd(
                "POST",
                "/admin/login/?next=/admin/",
                form={
                    "csrfmiddlewaretoken": token.group(1),
                    "username": "cyd",
                    "password": "pw-" + "cyd" * 4,
                    "next": "/admin/",
                },
            )
            assert status == 302
            assert "sessionid" in cyd.cookies
            status, page = cyd("GET", "/admin/alerts/silence/")
            assert status == 200, page[:300]
            assert "before the pause" in page
            assert "ann&#x27;s change" not in page
            assert "ann's change" not in page

            # Bots and workers never read the replica: a halt made now is in the bot's
            # very next answer, and its batches are stored.
            status, answer = ann(
                "POST",
                "/api/v1/sources/replica-bot/control",
                {"state": "halted", "note": "replica test"},
            )
            assert status in (200, 201), answer
            status, answer = bot("GET", "/api/v1/control")
            assert status == 200
            assert answer["state"] == "halted", answer
            batch = {"samples": [{"name": "x", "value": 1}]}
            status, answer = bot("POST", "/api/v1/metrics", batch)
            assert status == 202, answer
            assert primary.query(
                "tradewatch",
                "SELECT count(*) FROM metrics_metricsample s JOIN metrics_metricseries m "
                "ON m.id = s.series_id WHERE m.name = 'x'",
            ) == [(1,)]

            replica.query("tradewatch", "SELECT pg_wal_replay_resume()")
            assert wait_until(replayed, 30)

            # Replayed: everyone reads everything, from the replica again.
            assert reasons(bob("GET", "/api/v1/silences")[1]) == {
                "before the pause",
                "ann's change",
            }
            status, page = cyd("GET", "/admin/alerts/silence/")
            assert "ann&#x27;s change" in page or "ann's change" in page

            # The replica gone: reads fall back to the primary, nothing fails.
            replica.stop("immediate")
            status, answer = bob("GET", "/api/v1/silences")
            assert status == 200, answer
            assert reasons(answer) == {"before the pause", "ann's change"}
