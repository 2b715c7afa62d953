"""Where each follower of the log keeps its position: one small interface over two tables.

A follower resumes from its checkpoint after a restart or a crash, so the checkpoint is what
"nothing lost" rests on. Two tables hold them, each beside the data its followers write:

* ``checkpoints`` (``state.sqlite``): one row per consumer name — the burst identifier (whose
  IVORN index shares the database) and the outboxes towards NATS, XMPP and Slack;
* ``projection_checkpoints`` (``projections.sqlite``): one row per projection, with its
  version; the projection runner's position is the lowest of them.

Both are a :class:`Checkpoint`. ``write`` runs inside a transaction the consumer already holds
on the same database, so its rows and its position commit together: a crash leaves both or
neither (exactly once, without any idempotency in the consumer). ``save`` is for consumers
whose effects live elsewhere (a NATS server, a chat room): it moves the position after them,
so a crash in between repeats a batch, never skips one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Protocol

import aiosqlite

from burstbus.store.sqlite_thread import run_on_connection

CHECKPOINTS = """
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
);
"""

PROJECTION_CHECKPOINTS = """
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    name    TEXT PRIMARY KEY,
    seq     INTEGER NOT NULL,
    version INTEGER NOT NULL
);
"""


class Checkpoint(Protocol):
    """One follower's stored position in the log."""

    async def load(self) -> int | None:
        """The stored position; None when nothing was ever stored (the follower's first run)."""

    async def save(self, seq: int) -> None:
        """Store ``seq`` in a transaction of its own."""

    def write(self, conn: sqlite3.Connection, seq: int) -> None:
        """Store ``seq`` inside the caller's open transaction (on the database's thread)."""


def save_checkpoint(conn: sqlite3.Connection, name: str, seq: int) -> None:
    """Inside a transaction: move ``name``'s checkpoint to ``seq``."""
    conn.execute(
        "INSERT INTO checkpoints (name, seq) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET seq = excluded.seq",
        (name, seq),
    )


def load_checkpoint(conn: sqlite3.Connection, name: str) -> int | None:
    row = conn.execute("SELECT seq FROM checkpoints WHERE name = ?", (name,)).fetchone()
    return None if row is None else int(row[0])


def _in_transaction(conn: sqlite3.Connection, name: str, seq: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        save_checkpoint(conn, name, seq)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class ConsumerCheckpoint:
    """A row of ``checkpoints`` on an open (autocommit) connection, e.g. ``StateStore.db``."""

    def __init__(self, db: aiosqlite.Connection, name: str):
        self.db = db
        self.name = name

    async def load(self) -> int | None:
        return await run_on_connection(self.db, lambda c: load_checkpoint(c, self.name))

    async def save(self, seq: int) -> None:
        await run_on_connection(self.db, lambda c: _in_transaction(c, self.name, seq))

    def write(self, conn: sqlite3.Connection, seq: int) -> None:
        save_checkpoint(conn, self.name, seq)


class _Versioned(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def version(self) -> int: ...


def projection_positions(conn: sqlite3.Connection) -> dict[str, int]:
    return {str(name): int(seq) for name, seq in conn.execute("SELECT name, seq FROM projection_checkpoints")}


def _advance_projections(conn: sqlite3.Connection, projections: Sequence[_Versioned], seq: int) -> None:
    """Move the rows behind ``seq`` to it, stamping the code's version (inside a transaction)."""
    conn.executemany(
        "INSERT INTO projection_checkpoints (name, seq, version) VALUES (?, ?, ?) "
        "ON CONFLICT(name) DO UPDATE SET seq = excluded.seq, version = excluded.version WHERE seq < excluded.seq",
        [(p.name, seq, p.version) for p in projections],
    )


def _update_behind(conn: sqlite3.Connection, projections: Sequence[_Versioned], seq: int) -> None:
    conn.executemany(
        "UPDATE projection_checkpoints SET seq = ? WHERE name = ? AND seq < ?",
        [(seq, p.name, seq) for p in projections],
    )


class ProjectionsCheckpoint:
    """The projection runner's position: the lowest row of ``projection_checkpoints``.

    ``write`` (in the runner's transaction) moves every projection's row up to the batch;
    ``save`` (the runner caught up past records no projection reads) only moves rows that
    exist: a row appears with a projection's first batch or its reset, as it always has."""

    def __init__(self, db: aiosqlite.Connection, projections: Sequence[_Versioned]):
        self.db = db
        self.projections = list(projections)

    async def load(self) -> int | None:
        points = await run_on_connection(self.db, projection_positions)
        if not any(p.name in points for p in self.projections):
            return None
        return min((points.get(p.name, 0) for p in self.projections), default=0)

    async def save(self, seq: int) -> None:
        await run_on_connection(self.db, lambda c: _update_behind(c, self.projections, seq))

    def write(self, conn: sqlite3.Connection, seq: int) -> None:
        _advance_projections(conn, self.projections, seq)
