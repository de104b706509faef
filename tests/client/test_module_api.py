"""The module-level calls, configured from the environment, in processes of their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.client.receiver import ROOT, ReceiverProcess, free_port

# Registered before the client's own exit hook, so it runs after it (atexit is LIFO)
# and prints the counters as they are once the client has closed.
PRINT_STATS_AT_EXIT = """
import atexit, json
atexit.register(lambda: print(json.dumps(tw.stats())))
import tradewatch_client as tw
"""


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("TRADEWATCH_")
    }
    environment.update(env, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", PRINT_STATS_AT_EXIT + code],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,  # a hang at exit fails the test instead of stalling the run
        check=False,
    )


def last_json_line(output: str) -> dict[str, object]:
    return dict(json.loads(output.strip().splitlines()[-1]))


def test_it_flushes_queued_data_when_the_interpreter_exits(receiver: ReceiverProcess) -> None:
    code = """
for i in range(100):
    tw.record("at_exit", float(i))
tw.trade("t-1", "BTC/USDT", "buy", 0.1, 50_000)
tw.heartbeat()
tw.event("model_crashed", "exiting")
"""
    result = run_python(code, TRADEWATCH_URL=receiver.url, TRADEWATCH_API_KEY="test-key")

    assert result.returncode == 0, result.stderr
    state = receiver.state()
    assert [s["value"] for s in state["metrics"]] == [float(i) for i in range(100)]
    assert len(state["trades"]) == len(state["heartbeats"]) == len(state["events"]) == 1
    assert last_json_line(result.stdout)["sent"] == 103


def test_it_exits_within_its_exit_timeout_when_the_server_is_down() -> None:
    code = """
tw.configure(exit_timeout=0.5)
for i in range(10):
    tw.record("equity", float(i))
"""
    url = f"http://127.0.0.1:{free_port()}"
    result = run_python(code, TRADEWATCH_URL=url, TRADEWATCH_API_KEY="test-key")

    assert result.returncode == 0, result.stderr
    stats = last_json_line(result.stdout)
    assert stats["sent"] == 0
    assert stats["dropped_failed"] == 10
    assert "Traceback" not in result.stderr


def test_it_is_disabled_without_settings_and_still_never_raises() -> None:
    code = """
tw.record("equity", 1.0)
tw.trade("t-1", "BTC/USDT", "buy", 0.1, 50_000)
tw.heartbeat()
tw.event("error", "nobody listens")
assert tw.flush(timeout=1)
"""
    result = run_python(code)

    assert result.returncode == 0, result.stderr
    assert "TRADEWATCH_URL or TRADEWATCH_API_KEY is not set" in result.stderr
    assert len(result.stderr.splitlines()) == 1  # said once, not once per call
    assert last_json_line(result.stdout)["dropped_closed"] == 4


def test_it_takes_its_settings_from_configure(receiver: ReceiverProcess) -> None:
    code = f"""
tw.configure(url={receiver.url!r}, api_key="test-key", batch_size=7)
for i in range(20):
    tw.record("equity", float(i))
assert tw.flush(timeout=10)
"""
    result = run_python(code)

    assert result.returncode == 0, result.stderr
    assert max(r["items"] for r in receiver.requests()) <= 7
    assert len(receiver.metrics()) == 20
