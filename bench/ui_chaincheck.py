"""How the audit page's background chain check affects the log's other readers.

The reference is ``SQLiteEventLog.verify()``, which walks the chain on the log's one reader
connection; the web UI's ``verify_off_the_reader`` walks it on a read-only connection of its
own in a worker thread. While each runs, a reader does what every follower (projections, the
VTP broadcaster, outboxes) does — ``log.read(after, limit=10)`` every 10 ms — and the worst
latency it saw is printed beside the walk's duration.

    python bench/ui_chaincheck.py [--events 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from burstbus.bridges.http.chaincheck import verify_off_the_reader
from burstbus.events import Event
from burstbus.store.base import Verification
from burstbus.store.sqlite import SQLiteEventLog


async def worst_read_during(log: SQLiteEventLog, walk: Callable[[], Awaitable[Verification]]) -> tuple[Verification, float, float]:
    head = (await log.head()).seq
    done = asyncio.Event()

    async def follower() -> float:
        worst = 0.0
        while not done.is_set():
            started = time.perf_counter()
            await log.read(max(0, head - 10), limit=10)
            worst = max(worst, time.perf_counter() - started)
            await asyncio.sleep(0.01)
        return worst

    task = asyncio.create_task(follower())
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    found = await walk()
    took = time.perf_counter() - started
    done.set()
    return found, took, await task


async def main(events: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = await SQLiteEventLog.open(Path(tmp) / "log.sqlite", synchronous="NORMAL")
        try:
            # A notice-sized event (~3 KB of XML), as most of a real log is.
            data = {"ivorn": "ivo://bench/x#y", "xml": "x" * 3000, "position": {"ra": 1.0, "dec": 2.0}}
            for start in range(0, events, 5000):
                await log.append([Event("voevent.accepted", data) for _ in range(min(5000, events - start))])
            print(f"{events:,} events in the log\n")
            print("| walk | events verified | duration | worst follower read during it |")
            print("|---|---|---|---|")
            for name, walk in (("log.verify() (reference)", log.verify),
                               ("verify_off_the_reader (UI)", lambda: verify_off_the_reader(log))):  # fmt: skip
                found, took, worst = await worst_read_during(log, walk)
                assert found.ok
                print(f"| {name} | {found.count:,} | {took:.2f} s | {worst * 1000:.0f} ms |")
        finally:
            await log.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    asyncio.run(main(parser.parse_args().events))
