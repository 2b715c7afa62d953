"""The SQLite backend against the shared contract, plus what only SQLite can show."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from burstbus.store.sqlite import SQLiteEventLog
from tests.store.contract import EventLogContract, ev


@pytest.fixture
def make_log(tmp_path: Path):
    async def make() -> SQLiteEventLog:
        return await SQLiteEventLog.open(tmp_path / "log.sqlite", poll_interval=0.05)

    return make


class TestSQLiteEventLog(EventLogContract):
    pass


async def test_update_and_delete_are_refused_by_the_database(tmp_path: Path) -> None:
    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    await log.append([ev(1)])
    await log.close()
    conn = sqlite3.connect(tmp_path / "log.sqlite")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE events SET data = '{}' WHERE seq = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM events")
    conn.close()


async def test_verify_names_the_first_damaged_seq(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    log = await SQLiteEventLog.open(path)
    await log.append([ev(i) for i in range(10)])
    await log.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER events_append_only_update")
    conn.execute("""UPDATE events SET data = '{"n":99,"text":"forged"}' WHERE seq = 6""")
    conn.commit()
    conn.close()
    log = await SQLiteEventLog.open(path)
    result = await log.verify()
    assert not result.ok
    assert result.first_bad_seq == 6
    assert result.count == 5
    await log.close()


async def test_wal_and_synchronous_full_by_default(tmp_path: Path) -> None:
    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    assert (await (await log._writer_conn.execute("PRAGMA journal_mode")).fetchone())[0] == "wal"
    assert (await (await log._writer_conn.execute("PRAGMA synchronous")).fetchone())[0] == 2  # FULL
    await log.close()


async def test_two_handles_on_one_file_keep_one_chain(tmp_path: Path) -> None:
    """A CLI import and a running service may append to the same file."""
    a = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    b = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    for i in range(20):
        await (a if i % 2 else b).append([ev(i)])
    verification = await a.verify()
    assert verification.ok and verification.count == 20
    await a.close()
    await b.close()
