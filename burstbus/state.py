"""Handlers' own state: ``state.sqlite`` in the data directory.

The burst identifier's IVORN → burst index, the Slack outbox's threads and posts, the trigger
workflow's code key live here, beside the ``checkpoints`` table of the followers that are not
projections (``burstbus.store.checkpoints``: the identifier and the NATS, XMPP and Slack
outboxes). A consumer that keeps state writes it in the same transaction as its checkpoint
(``transaction`` + ``Batch.write_checkpoint``), so a crash never leaves the two out of step;
what it appended to the log meanwhile is idempotent (derived event ids), so redoing a batch
after a crash adds nothing twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import aiosqlite

from burstbus.store.checkpoints import CHECKPOINTS, ConsumerCheckpoint
from burstbus.store.sqlite_thread import open_database, run_on_connection

T = TypeVar("T")


class StateStore:
    def __init__(self, db: aiosqlite.Connection, path: Path):
        self.db = db
        self.path = path

    @classmethod
    async def open(cls, path: Path | str) -> StateStore:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        db, _ = await open_database(
            path, "state database",
            "it holds the followers' and Kafka positions and the approval codes: restore it from a backup "
            "(docs/deploy.md) rather than deleting it, which makes every follower start as on a first run",
            lambda c: c.executescript(CHECKPOINTS), synchronous="FULL",
        )
        return cls(db, path)

    def checkpoint(self, name: str) -> ConsumerCheckpoint:
        """Consumer ``name``'s position in the log, kept in this database."""
        return ConsumerCheckpoint(self.db, name)

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
