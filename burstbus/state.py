"""Handlers' own state and their checkpoints in the log: ``state.sqlite`` in the data directory.

Every consumer of the log that is not a projection (the burst identifier, and later the
outboxes towards VTP, NATS, XMPP, Slack) remembers the last seq it finished here. A consumer
that keeps state writes it in the same transaction as its checkpoint (``transaction``), so a
crash never leaves the two out of step; what it appended to the log meanwhile is idempotent
(derived event ids), so redoing a batch after a crash adds nothing twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import aiosqlite

from burstbus.store.sqlite_thread import connect, run_on_connection

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
);
"""


def save_checkpoint(conn: sqlite3.Connection, name: str, seq: int) -> None:
    """Inside a transaction: move ``name``'s checkpoint to ``seq``."""
    conn.execute(
        "INSERT INTO checkpoints (name, seq) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET seq = excluded.seq",
        (name, seq),
    )


class StateStore:
    def __init__(self, db: aiosqlite.Connection, path: Path):
        self.db = db
        self.path = path

    @classmethod
    async def open(cls, path: Path | str) -> StateStore:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await connect(path, synchronous="FULL")
        await db.executescript(SCHEMA)
        return cls(db, path)

    async def checkpoint(self, name: str) -> int:
        rows = list(await self.db.execute_fetchall("SELECT seq FROM checkpoints WHERE name = ?", (name,)))
        return int(rows[0][0]) if rows else 0

    async def checkpoints(self) -> dict[str, int]:
        return {name: seq for name, seq in await self.db.execute_fetchall("SELECT name, seq FROM checkpoints")}

    async def set_checkpoint(self, name: str, seq: int) -> None:
        await self.transaction(lambda conn: save_checkpoint(conn, name, seq))

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the database thread (reads, or DDL that commits itself)."""
        return await run_on_connection(self.db, fn)

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside one IMMEDIATE transaction on the database thread."""

        def wrapped(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await run_on_connection(self.db, wrapped)

    async def close(self) -> None:
        await self.db.close()
