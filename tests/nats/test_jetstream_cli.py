"""Every command on ``[log] backend = "jetstream"`` with the embedded nats-server, as an operator runs them.

No URL is configured, so each command starts the data directory's nats-server for as long as
its log is open, and stops it after; a command run beside ``burstbus run`` uses the service's
server instead of starting a second one on the same store.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.packets import voevent

ENV = {
    "BURSTBUS_LOG_BACKEND": "jetstream",
    "BURSTBUS_NATS_EMBEDDED_PORT": "0",  # never the default ports
    "BURSTBUS_VTP_ENABLED": "false",
    "BURSTBUS_HTTP_ENABLED": "false",
}
DEADLINE = 60.0


def burstbus(data_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "burstbus.cli", "--data-dir", str(data_dir), *args],
        cwd=data_dir.parent, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        env={**os.environ, **ENV},
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def packets(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i in range(5):
        (folder / f"good{i}.xml").write_bytes(voevent(f"ivo://js.example/SWIFT#BAT_{i}", params={"TrigID": str(100 + i)}))
    (folder / "followup.xml").write_bytes(
        voevent("ivo://js.example/SWIFT#XRT_0", params={"TrigID": "100"}, cites=[("ivo://js.example/SWIFT#BAT_0", "followup")]))
    (folder / "broken.xml").write_bytes(b"<VOEvent ivorn='ivo://x/y#1'")
    return folder


def marker(data: Path) -> dict[str, object] | None:
    path = data / "nats" / "embedded.json"
    return json.loads(path.read_text()) if path.exists() else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def rows(data: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(data / "projections.sqlite") as conn:
        return sorted(conn.execute(sql).fetchall())


def test_import_log_verify_rebuild_replay_on_the_jetstream_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    folder = packets(tmp_path / "packets")
    first = burstbus(data, "import", str(folder))
    assert "7 packets: 6 accepted, 0 duplicates (already in the log), 1 refused" in first.stdout
    assert "7 packets: 0 accepted, 6 duplicates" in burstbus(data, "import", str(folder)).stdout
    assert marker(data) is None, "the command stopped the server it started"
    assert not (data / "log.sqlite").exists() and (data / "nats" / "jetstream").is_dir()

    events = [json.loads(line) for line in burstbus(data, "log").stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    types = [e["type"] for e in events]
    assert (types.count("voevent.accepted"), types.count("voevent.rejected"), types.count("burst.identified")) == (6, 2, 6)
    only = [json.loads(x) for x in burstbus(data, "log", "--type", "burst.identified", "--stream", "swift-100").stdout.splitlines()]
    assert {e["data"]["ivorn"] for e in only} == {"ivo://js.example/SWIFT#BAT_0", "ivo://js.example/SWIFT#XRT_0"}
    tail = [json.loads(x) for x in burstbus(data, "log", "--after", str(len(events) - 2)).stdout.splitlines()]
    assert [e["seq"] for e in tail] == [len(events) - 1, len(events)]

    assert f"ok: {len(events)} events, hash chain intact" in burstbus(data, "verify").stdout

    before = rows(data, "SELECT ivorn FROM voevent")
    assert len(before) == 6 and len(rows(data, "SELECT burst_id FROM bursts")) == 5
    assert "rebuilt voeventdb, processes, bursts" in burstbus(data, "rebuild").stdout
    assert rows(data, "SELECT ivorn FROM voevent") == before

    replay = burstbus(data, "replay", "--until", events[3]["recorded_at"], "--out", str(tmp_path / "then.sqlite"))
    assert "state as of" in replay.stdout and "(log seq 1..4)" in replay.stdout
    assert marker(data) is None

    # The stream's records leave as an export (hashes and all) and a SQLite log takes them as they are.
    export = tmp_path / "stream.jsonl.gz"
    assert f"exported {len(events)} records" in burstbus(data, "export", "-o", str(export)).stderr
    moved = subprocess.run([sys.executable, "-m", "burstbus.cli", "--data-dir", str(tmp_path / "sqlite"), "import", str(export)],
                           cwd=tmp_path, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert moved.returncode == 0, moved.stderr
    head = subprocess.run([sys.executable, "-m", "burstbus.cli", "--data-dir", str(tmp_path / "sqlite"), "verify"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL).stdout
    assert f"ok: {len(events)} events" in head and events[-1]["hash"] in head
    backup = burstbus(data, "backup", str(tmp_path / "backup"))
    assert "nats stream backup BURSTBUS_LOG" in backup.stdout  # the stream's own snapshot, said


def test_a_command_beside_the_running_service_uses_its_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    folder = packets(tmp_path / "packets")
    service = subprocess.Popen(
        [sys.executable, "-m", "burstbus.cli", "--data-dir", str(data), "run"],
        cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, stdin=subprocess.DEVNULL,
        env={**os.environ, **ENV},
    )
    try:
        assert service.stderr is not None
        for line in service.stderr:
            if "burstbus running" in line:
                break
        else:
            raise AssertionError("the service never said it was running")
        threading.Thread(target=service.stderr.read, daemon=True).start()
        started = marker(data)
        assert started is not None and alive(int(started["pid"]))  # type: ignore[arg-type]

        assert "6 accepted" in burstbus(data, "import", str(folder)).stdout
        deadline = time.monotonic() + DEADLINE
        while rows(data, "SELECT COUNT(*) FROM burst_notices") != [(6,)] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert rows(data, "SELECT COUNT(*) FROM burst_notices") == [(6,)], "the service projected the import"
        assert "ok: " in burstbus(data, "verify").stdout
        assert marker(data) == started, "the commands used the service's server and left it running"
        assert alive(int(started["pid"]))  # type: ignore[arg-type]

        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=60) == 0
        assert marker(data) is None and not alive(int(started["pid"]))  # type: ignore[arg-type]
    finally:
        service.kill()
        service.wait()
