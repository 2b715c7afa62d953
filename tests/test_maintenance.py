"""backup / restore / export / import of an export, through the real command line."""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

from burstbus.events import Event, StoredRecord
from burstbus.store.base import subscribe_stored
from burstbus.store.sqlite import SQLiteEventLog

APPENDER = """
import asyncio, sys
from burstbus.events import Event
from burstbus.store.sqlite import SQLiteEventLog

async def main(path, total):
    log = await SQLiteEventLog.open(path)
    for start in range(0, total, 10):
        await log.append([Event("process.status", {"n": i, "status": "running"}, stream="b", actor="t") for i in range(start, start + 10)])
    await log.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def burstbus(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "burstbus.cli", "--data-dir", str(data_dir), *args],
                          cwd=data_dir.parent, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


async def stored(path: Path) -> list[StoredRecord]:
    log = await SQLiteEventLog.open(path)
    try:
        head = (await log.head()).seq
        out: list[StoredRecord] = []
        if head:
            async for batch in subscribe_stored(log, 0):
                out += batch
                if out[-1].seq >= head:
                    break
        return out
    finally:
        await log.close()


async def make_log(path: Path, count: int) -> None:
    log = await SQLiteEventLog.open(path)
    await log.append([Event("voevent.accepted", {"ivorn": f"ivo://x/y#{i}", "ra": i * 1.5, "note": "é ☄"}, stream="s", actor="t")
                      for i in range(count)])
    await log.close()


def test_export_then_import_gives_the_same_records_and_a_changed_byte_is_refused_with_its_seq(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    asyncio.run(make_log(source / "log.sqlite", 300))
    export = tmp_path / "log.jsonl.gz"
    done = burstbus(source, "export", "-o", str(export))
    assert done.returncode == 0 and "exported 300 records" in done.stderr, done.stderr

    copy = tmp_path / "copy"
    done = burstbus(copy, "import", str(export))
    assert done.returncode == 0, done.stdout + done.stderr
    # The same records, byte for byte; then the handlers catch up as on any import (the burst
    # identifier decides the notices the source log had no decision for yet).
    assert asyncio.run(stored(copy / "log.sqlite"))[:300] == asyncio.run(stored(source / "log.sqlite"))
    assert burstbus(copy, "verify").returncode == 0

    lines = gzip.decompress(export.read_bytes()).decode().splitlines()
    record = json.loads(lines[123])  # seq 123 (line 1 is the header)
    assert record["seq"] == 123
    record["data_json"] = record["data_json"].replace('"ra":183', '"ra":184')  # one byte
    lines[123] = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    tampered = tmp_path / "tampered.jsonl.gz"
    tampered.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    fresh = tmp_path / "fresh"
    done = burstbus(fresh, "import", str(tampered))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "record at seq 123 was changed" in done.stderr, done.stderr
    assert not (fresh / "log.sqlite").exists() or asyncio.run(stored(fresh / "log.sqlite")) == []  # nothing written

    again = burstbus(copy, "import", str(export))  # into a log that already holds it: does not continue it
    assert again.returncode == 1 and "seq 1 where seq" in again.stderr, again.stderr


def test_an_online_backup_during_appends_restores_a_gap_free_verified_prefix(tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    appender = subprocess.Popen([sys.executable, "-c", APPENDER, str(live / "log.sqlite"), "5000"], stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (live / "log.sqlite").exists() or not asyncio.run(stored(live / "log.sqlite")):
            assert time.monotonic() < deadline and appender.poll() is None, "the appender never started"
            time.sleep(0.05)
        done = burstbus(live, "backup", str(tmp_path / "backup"))
        assert done.returncode == 0, done.stderr
    finally:
        assert appender.wait(timeout=300) == 0
    manifest = json.loads((tmp_path / "backup" / "backup.json").read_text())
    assert manifest["log"]["verified"] and manifest["files"][-1] == "log.sqlite"

    restored = tmp_path / "restored"
    done = burstbus(restored, "restore", str(tmp_path / "backup"))
    assert done.returncode == 0, done.stderr
    assert burstbus(restored, "verify").returncode == 0
    records = asyncio.run(stored(restored / "log.sqlite"))
    assert [r.seq for r in records] == list(range(1, len(records) + 1))  # a prefix, no gap
    assert 0 < len(records) <= 5000 and records[-1].hash == manifest["log"]["head_hash"]
    assert records == asyncio.run(stored(live / "log.sqlite"))[: len(records)]

    over = burstbus(restored, "restore", str(tmp_path / "backup"))
    assert over.returncode == 1 and "--force" in over.stderr
    forced = burstbus(restored, "restore", "--force", str(tmp_path / "backup"))
    assert forced.returncode == 0 and "moved the old" in forced.stdout
    assert burstbus(tmp_path / "live", "backup", str(tmp_path / "backup")).returncode == 1  # never over a backup
