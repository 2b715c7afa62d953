"""Append throughput of the SQLite event log, beside the practical limit on the same disk.

For 1, 10 and 100 concurrent appenders (each awaiting one ``append`` of one event at a time,
as transports do: one packet → one durable append → ACK), with ``synchronous`` FULL and
NORMAL, prints events/s. The reference is plain ``sqlite3.executemany`` of the same rows into
the same table layout, 1,000 rows per transaction, in the same directory: no hashing, no
asyncio, no per-caller acknowledgement — the most this disk and SQLite can do.

Target (issue 2): durable (FULL) append ≥ 20,000 events/s with 100 appenders.

    python bench/log_append.py [--events 30000] [--dir /path/on/the/disk]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from burstbus.events import Event
from burstbus.store.chain import record_hash
from burstbus.store.sqlite import SCHEMA, SQLiteEventLog


def payload(i: int) -> dict[str, object]:
    """A realistic small event: a pipeline status with a log excerpt (~300 bytes)."""
    return {
        "process": f"eclairs-loc-{i % 50}",
        "burst_id": f"sb2611{i % 9999:04d}",
        "obs_id": str(i % 7),
        "pass_id": "1",
        "pipeline": "eclairs",
        "status": ("queued", "running", "complete")[i % 3],
        "log": f"step {i}: reading L1 products, attitude ok, {i * 7 % 1000} photons selected\n",
    }


async def burstbus_rate(path: Path, appenders: int, total: int, synchronous: str) -> float:
    log = await SQLiteEventLog.open(path, synchronous=synchronous)
    per = total // appenders

    async def appender(k: int) -> None:
        for n in range(per):
            await log.append([Event("process.status", payload(k * per + n), stream="bench", actor="bench")])

    started = time.perf_counter()
    await asyncio.gather(*[appender(k) for k in range(appenders)])
    elapsed = time.perf_counter() - started
    verification = await log.verify()
    assert verification.ok and verification.count == per * appenders, verification
    await log.close()
    return per * appenders / elapsed


def sqlite_rate(path: Path, total: int, synchronous: str) -> float:
    rows = []
    prev = "0" * 64
    for i in range(total):  # precomputed, so the timing is SQLite and the disk only
        data = json.dumps(payload(i), sort_keys=True, separators=(",", ":"))
        digest = record_hash(prev_hash=prev, seq=i + 1, id=str(i), type="process.status", stream="bench", actor="bench",
                             occurred_at="2026-11-21T00:00:00.000000Z", recorded_at="2026-11-21T00:00:00.000000Z", data_json=data)
        rows.append((i + 1, str(i), "process.status", "bench", "bench", "2026-11-21T00:00:00.000000Z",
                     "2026-11-21T00:00:00.000000Z", data, prev, digest))
        prev = digest
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.executescript(SCHEMA)
    started = time.perf_counter()
    for start in range(0, total, 1000):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)", rows[start : start + 1000])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=30_000, help="events per run with 10 and 100 appenders")
    parser.add_argument("--dir", type=Path, help="where to write (default: a temp dir)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="burstbus-bench-", dir=args.dir))
    results: dict[tuple[str, str], float] = {}
    for synchronous in ("FULL", "NORMAL"):
        results[("sqlite3.executemany, 1,000/txn", synchronous)] = sqlite_rate(base / f"plain-{synchronous}.sqlite", args.events, synchronous)
        for appenders in (1, 10, 100):
            # one appender pays one commit per event: fewer events keep the run short
            total = max(args.events // 10, 1000) if appenders == 1 else args.events
            path = base / f"log-{synchronous}-{appenders}.sqlite"
            results[(f"burstbus log, {appenders} appenders", synchronous)] = asyncio.run(burstbus_rate(path, appenders, total, synchronous))
    print("\n| append path | synchronous=FULL (events/s) | synchronous=NORMAL (events/s) |")
    print("|---|---:|---:|")
    for name in dict.fromkeys(name for name, _ in results):
        print(f"| {name} | {results[(name, 'FULL')]:,.0f} | {results[(name, 'NORMAL')]:,.0f} |")
    full100 = results[("burstbus log, 100 appenders", "FULL")]
    print(f"\ntarget: durable (FULL) append with 100 appenders >= 20,000 events/s: measured {full100:,.0f} "
          f"-> {'MET' if full100 >= 20_000 else 'NOT MET'}")
    print(f"(files in {base})")


if __name__ == "__main__":
    main()
