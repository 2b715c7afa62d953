"""The SQLite log raises only the log's own errors (``store.base``), the SQLite one as cause."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from burstbus.store.base import LogClosed, LogError, LogUnavailable
from burstbus.store.sqlite import SQLiteEventLog
from tests.store.contract import ev


async def test_a_database_locked_by_another_process_is_log_unavailable_and_a_retry_appends(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    log = await SQLiteEventLog.open(path)
    try:
        await log.append([ev(1)])
        await log._writer_conn.execute("PRAGMA busy_timeout = 50")  # not 30 s: the test waits for it
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        fresh = ev(2)
        try:
            with pytest.raises(LogUnavailable) as raised:
                await log.append([fresh])
            assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
        finally:
            other.execute("ROLLBACK")
            other.close()
        [again] = await log.append([fresh])
        assert (again.seq, again.new) == (2, True)
        assert (await log.verify()).ok
    finally:
        await log.close()


async def test_a_closed_log_raises_log_closed_from_every_read(tmp_path: Path) -> None:
    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    await log.append([ev(1)])
    await log.close()
    for name, call in {
        "head": log.head, "read": log.read, "get": lambda: log.get(1), "find": lambda: log.find("x"),
        "seq_at": lambda: log.seq_at("2100-01-01T00:00:00Z"), "verify": log.verify,
        "append": lambda: log.append([ev(2)]),
    }.items():
        with pytest.raises(LogClosed):
            await call()  # noqa: B023 (called at once)
        assert name


async def test_a_bad_argument_stays_the_callers_error(tmp_path: Path) -> None:
    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    try:
        with pytest.raises(ValueError) as raised:
            await log.seq_at("not a time")
        assert not isinstance(raised.value, LogError)
    finally:
        await log.close()
