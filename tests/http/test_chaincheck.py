"""The audit page's chain walk, which runs in a child process (off the service's GIL)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from burstbus.bridges.http.chaincheck import ChainVerifier
from burstbus.events import Event
from burstbus.store.sqlite import SQLiteEventLog


async def _log(tmp_path: Path, n: int) -> SQLiteEventLog:
    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    await log.append([Event(type="test.event", data={"n": i}, stream="s", actor="test") for i in range(n)])
    return log


async def test_an_intact_chain_is_verified_to_its_head(tmp_path: Path) -> None:
    log = await _log(tmp_path, 5)
    try:
        head = await log.head()
        state = await ChainVerifier(log).check()
        assert state.ok and state.error is None
        assert (state.head_seq, state.head_hash, state.count) == (5, head.hash, 5)
    finally:
        await log.close()


async def test_a_damaged_record_is_found_by_the_child(tmp_path: Path) -> None:
    log = await _log(tmp_path, 5)
    try:
        with sqlite3.connect(tmp_path / "log.sqlite") as conn:  # an edit that bypasses the append-only triggers
            conn.execute("DROP TRIGGER events_append_only_update")
            conn.execute("UPDATE events SET actor = 'mallory' WHERE seq = 3")
        state = await ChainVerifier(log).check()
        assert not state.ok and state.error is None
        assert (state.damaged_seq, state.head_seq, state.count) == (3, 2, 2)
        assert state.reason == "stored content does not match its hash"
    finally:
        await log.close()


async def test_a_walk_that_cannot_run_is_an_error_not_a_verdict(tmp_path: Path) -> None:
    log = await _log(tmp_path, 2)
    try:
        verifier = ChainVerifier(log)
        log.path = tmp_path / "gone" / "log.sqlite"  # the child cannot open it
        state = await verifier.check()
        assert state.error is not None and "unable to open database file" in state.error
    finally:
        log.path = tmp_path / "log.sqlite"
        await log.close()
