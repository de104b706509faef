"""PostgreSQL stopped under a running Tradewatch: ingestion answers 503 + Retry-After,
stores nothing of the refused batches, /readyz says so, and the client library gets its
data through once the database is back.

The cluster is the test's own (initdb on a spare port), never the shared server.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.postgres_cluster import Cluster, scratch_cluster
from tests.processes import BASE_DIR, free_port, process_environment, wait_until, web_server
from tradewatch_client import Client


def request(
    port: int, method: str, path: str, key: str = "", body: Any = None
) -> tuple[int, dict[str, str], Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Api-Key {key}"
    try:
        connection.request(method, path, None if body is None else json.dumps(body), headers)
        answer = connection.getresponse()
        data = answer.read()
        # By lower-case name: HTTP header names are case-insensitive.
        received = {name.lower(): value for name, value in answer.getheaders()}
        is_json = received.get("content-type", "").startswith("application/json")
        return answer.status, received, json.loads(data) if data and is_json else data
    finally:
        connection.close()


def trades(*ids: str) -> dict[str, Any]:
    return {
        "trades": [
            {"id": i, "symbol": "BTC/USDT", "side": "sell", "quantity": 0.1, "price": 50_000,
             "pnl": 12.5, "fee": 0.1}
            for i in ids
        ]
    }  # fmt: skip


def manage(env: dict[str, str], *arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *arguments],
        env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    return done.stdout


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with scratch_cluster() as cluster:
        yield cluster


def test_ingestion_answers_503_while_postgresql_is_down_and_the_client_retries(
    cluster: Cluster,
) -> None:
    env = process_environment(DATABASE_URL=cluster.create_database("tradewatch"))
    manage(env, "migrate", "--no-input")
    created = manage(env, "tradewatch", "source", "add", "outage-bot", "--kind", "bot")
    match = re.search(r"API key[^:]*:\s*(\S+)", created)
    assert match, created
    key = match.group(1)
    port = free_port()

    with web_server(env, port):
        status, _, body = request(port, "POST", "/api/v1/trades", key, trades("t-1", "t-2"))
        assert (status, body) == (202, {"accepted": 2, "duplicates": 0, "trading_state": "active"})

        # The database goes away in the middle of a batch's transaction: its trades are
        # inserted, and it waits for a lock on the table written next when the cluster
        # is stopped.
        locker = psycopg.connect(cluster.url("tradewatch"))
        locker.execute("LOCK TABLE metrics_derivationrequest IN ACCESS EXCLUSIVE MODE")
        answers: list[tuple[int, dict[str, str], Any]] = []
        posting = threading.Thread(
            target=lambda: answers.append(
                request(port, "POST", "/api/v1/trades", key, trades("t-3", "t-4"))
            )
        )
        posting.start()
        # This batch's own insert, not some other session (an evaluation on arrival of
        # the first batch also waits for that table's lock).
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query ILIKE 'INSERT INTO %metrics_derivationrequest%'"
        )
        assert wait_until(lambda: cluster.query("tradewatch", waiting) == [(1,)], 20)
        # Immediate, as a crash is: a fast shutdown ends the lock holder's session first,
        # and the waiting insert may take the lock and commit before its own turn comes.
        cluster.stop("immediate")
        posting.join(30)
        locker.close()
        [(status, headers, body)] = answers
        assert status == 503, body
        assert headers["retry-after"] == "5"

        status, headers, body = request(port, "POST", "/api/v1/trades", key, trades("t-5", "t-6"))
        assert status == 503, body
        assert headers["retry-after"] == "5"
        assert headers["content-type"] == "application/json"
        assert "database is unavailable" in body["errors"][0]["message"]
        status, _, ready = request(port, "GET", "/readyz")
        assert status == 503
        assert ready["checks"]["database"]["ok"] is False

        client = Client(
            f"http://127.0.0.1:{port}", key, flush_interval=0.02, backoff_initial=0.02,
            backoff_max=0.1, max_retry_after=0.2, max_server_error_attempts=2,
        )  # fmt: skip
        try:
            for i in range(3):
                client.trade(f"c-{i}", "BTC/USDT", "sell", quantity=0.1, price=50_000, pnl=1.0)
            # More 503s than the server errors a batch may take: still not given up.
            assert wait_until(lambda: client.stats()["retries"] >= 4, 30)
            assert client.stats()["sent"] == 0

            cluster.start()

            assert client.flush(timeout=30)
            stats = client.stats()
        finally:
            client.close(timeout=0)
        assert (stats["sent"], stats["dropped_failed"], stats["dropped_rejected"]) == (3, 0, 0)
        assert "HTTP 503" in (stats["last_error"] or "")
        status, _, ready = request(port, "GET", "/readyz")
        assert (status, ready["checks"]["database"]["ok"]) == (200, True)

    stored = cluster.query("tradewatch", "SELECT trade_id FROM metrics_trade ORDER BY trade_id")
    # The client's batch once (its retries carried one Idempotency-Key); nothing of the
    # batches answered 503, not even the trades inserted before the database went away.
    assert [row[0] for row in stored] == ["c-0", "c-1", "c-2", "t-1", "t-2"]
