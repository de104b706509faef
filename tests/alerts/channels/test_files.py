"""JSONL channel: one JSON object per line in a size-rotated file."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from alerts.channels.jsonl import JsonlChannel
from tests.alerts.channels.receivers import alert_payload, notification


def test_it_appends_one_json_object_per_line(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    kind = JsonlChannel({"path": str(path)}, {})

    assert kind.send(notification(webhook_id="msg_1")).ok
    assert kind.send(notification("resolved", webhook_id="msg_2")).ok

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(x["event"], x["webhook_id"]) for x in lines] == [
        ("firing", "msg_1"),
        ("resolved", "msg_2"),
    ]
    assert lines[0]["alert"] == alert_payload()
    assert lines[0]["version"] == 1


def test_it_rotates_by_size_keeping_n_backups(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    kind = JsonlChannel({"path": str(path), "max_bytes": 2048, "backups": 2}, {})

    for number in range(60):
        assert kind.send(notification(webhook_id=f"msg_{number:03}")).ok

    files = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock"))
    assert files == ["alerts.jsonl", "alerts.jsonl.1", "alerts.jsonl.2"]
    kept: list[str] = []
    for name in ("alerts.jsonl.2", "alerts.jsonl.1", "alerts.jsonl"):
        content = (tmp_path / name).read_text()
        assert 0 < len(content.encode()) <= 2048
        kept.extend(json.loads(line)["webhook_id"] for line in content.splitlines())
    # Oldest first, nothing torn or out of order, the newest last.
    assert kept == [f"msg_{n:03}" for n in range(60 - len(kept), 60)]


def test_it_rotates_to_nothing_with_no_backups(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    kind = JsonlChannel({"path": str(path), "max_bytes": 1024, "backups": 0}, {})

    for number in range(20):
        kind.send(notification(webhook_id=f"msg_{number}"))

    assert sorted(p.name for p in tmp_path.iterdir()) == ["alerts.jsonl", "alerts.jsonl.lock"]
    assert path.stat().st_size <= 1024


def _write_many(path: str, writer: int, count: int) -> None:
    kind = JsonlChannel({"path": path, "max_bytes": 4096, "backups": 100}, {})
    for number in range(count):
        kind.send(notification(webhook_id=f"w{writer}-{number}"))


def test_it_keeps_every_line_whole_with_several_writer_processes(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    fork = multiprocessing.get_context("fork")
    writers = [fork.Process(target=_write_many, args=(str(path), w, 40)) for w in range(3)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)

    assert [writer.exitcode for writer in writers] == [0, 0, 0]
    ids: list[str] = []
    for file in tmp_path.glob("alerts.jsonl*"):
        if file.name.endswith(".lock"):
            continue
        assert file.stat().st_size <= 4096
        ids.extend(json.loads(line)["webhook_id"] for line in file.read_text().splitlines())
    assert sorted(ids) == sorted(f"w{w}-{n}" for w in range(3) for n in range(40))


def test_it_says_when_the_file_cannot_be_written(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a directory")

    result = JsonlChannel({"path": str(blocked / "alerts.jsonl")}, {}).send(notification())

    assert not result.ok
    assert "Cannot write" in result.error
