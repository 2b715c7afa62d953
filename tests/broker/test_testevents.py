"""Periodic test events: valid, role=test, through the log to subscribers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from burstbus.broker.testevents import build_test_event, send_test_events
from burstbus.ingest import Ingest
from burstbus.store.base import ReadFilter
from burstbus.store.sqlite import SQLiteEventLog
from burstbus.voevent.examine import examine


def test_the_test_event_is_a_valid_test_packet() -> None:
    examined = examine(build_test_event("ivo://burstbus.local/broker", datetime(2026, 11, 21, 3, 4, 5, tzinfo=UTC)))
    assert examined.summary["role"] == "test"
    assert examined.summary["ivorn"] == "ivo://burstbus.local/broker#TestEvent-2026-11-21T03:04:05.000000"


@pytest.mark.asyncio(loop_scope="session")
async def test_test_events_enter_the_log_where_the_broadcaster_reads(tmp_path: Path) -> None:
    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    ingest = Ingest(log)
    task = asyncio.create_task(send_test_events(ingest, "ivo://burstbus.local/broker", 0.05))
    try:
        async for _batch in log.subscribe(filter=ReadFilter.of(types=["voevent.accepted"])):
            break  # the first test event has arrived
    finally:
        task.cancel()
    [first] = (await log.read(filter=ReadFilter.of(types=["voevent.accepted"])))[:1]
    assert first.data["role"] == "test" and first.data["via"] == "local"
    await ingest.close()
    await log.close()
