"""The projection runner: follows the log and keeps every read model up to date, exactly once.

All projections live in one SQLite file (``projections.sqlite`` in the data directory), apart
from the log so that read-model writes never contend with appends. The runner is a
:class:`~burstbus.store.consumer.Follower` whose checkpoint is the lowest row of
``projection_checkpoints`` (:class:`~burstbus.store.checkpoints.ProjectionsCheckpoint`):
each batch of records is applied to every projection that has not seen it and the
projections' checkpoints are moved in the same transaction, so after a crash the runner
resumes from the checkpoints, and a batch is either wholly applied or not at all.

A projection whose stored ``version`` differs from its code is rebuilt from the log at start.
"""

from __future__ import annotations

import gc
import logging
import sqlite3
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from burstbus.events import RecordedEvent
from burstbus.store.base import EventLog
from burstbus.store.checkpoints import (
    PROJECTION_CHECKPOINTS,
    ProjectionsCheckpoint,
    projection_positions,
)
from burstbus.store.consumer import BACKGROUND_INTERVAL, Batch, Follower
from burstbus.store.projections.base import Projection
from burstbus.store.sqlite_thread import open_database, run_on_connection

log = logging.getLogger(__name__)

CHECKPOINTS = PROJECTION_CHECKPOINTS


@dataclass(frozen=True, slots=True)
class Checkpoint:
    name: str
    seq: int
    version: int


def _apply_batch(conn: sqlite3.Connection, projections: Sequence[Projection], batch: Batch[RecordedEvent]) -> None:
    """One transaction: apply records past each projection's checkpoint, then move them."""
    records = batch.records
    if not records:
        return
    last = batch.last
    conn.execute("BEGIN IMMEDIATE")
    try:
        done = projection_positions(conn)
        for projection in projections:
            seen = done.get(projection.name, 0)
            if seen >= last:
                continue
            wanted = projection.event_types
            todo = [r for r in records if r.seq > seen and r.type in wanted]
            if todo:
                projection.apply(conn, todo)
        batch.write_checkpoint(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _drop_secondary_indexes(conn: sqlite3.Connection, projections: Sequence[Projection]) -> list[str]:
    """Drop the projections' explicit indexes (not PRIMARY KEY/UNIQUE ones, which ``apply``
    relies on) and return their CREATE statements: building an index once over a million
    rows is cheaper than maintaining it row by row during a replay."""
    statements: list[str] = []
    for projection in projections:
        for table in projection.tables:
            rows = conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,)
            ).fetchall()
            for name, sql in rows:
                conn.execute(f'DROP INDEX "{name}"')
                statements.append(sql)
    return statements


def _create_indexes(conn: sqlite3.Connection, statements: Sequence[str]) -> None:
    for sql in statements:
        conn.execute(sql)


def _reset(conn: sqlite3.Connection, projections: Sequence[Projection]) -> None:
    """Drop and recreate the given projections, with their checkpoints back at zero."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for projection in projections:
            projection.drop(conn)
            projection.create(conn)
            conn.execute(
                "INSERT INTO projection_checkpoints (name, seq, version) VALUES (?, 0, ?) "
                "ON CONFLICT(name) DO UPDATE SET seq = 0, version = excluded.version",
                (projection.name, projection.version),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _prepare(conn: sqlite3.Connection, projections: Sequence[Projection]) -> list[str]:
    """Create missing tables; reset projections whose stored version is stale. Returns those reset."""
    conn.executescript(CHECKPOINTS)
    stale = []
    for projection in projections:
        row = conn.execute("SELECT version FROM projection_checkpoints WHERE name = ?", (projection.name,)).fetchone()
        if row is not None and row[0] != projection.version:
            stale.append(projection)
        else:
            projection.create(conn)
    if stale:
        _reset(conn, stale)
    return [p.name for p in stale]


class ProjectionRunner:
    """Keeps a set of projections in one SQLite file in step with an event log."""

    def __init__(self, db: aiosqlite.Connection, path: Path, projections: Sequence[Projection], synchronous: str):
        self.db = db
        self.path = path
        self.projections = list(projections)
        self.synchronous = synchronous
        self.applied_seq = 0
        self.checkpoint = ProjectionsCheckpoint(db, self.projections)
        self._following: Follower[RecordedEvent] | None = None
        #: Read only the event types some projection wants.
        self.event_types: frozenset[str] = frozenset().union(*(p.event_types for p in self.projections))

    @classmethod
    async def open(cls, path: Path | str, projections: Sequence[Projection], *, synchronous: str = "NORMAL") -> ProjectionRunner:
        """Open the projection database. ``NORMAL`` is enough: it can always be rebuilt from the log."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        projections = list(projections)

        def set_up(conn: sqlite3.Connection) -> list[str]:
            # Derived data, rebuilt at will: no need to zero freed pages, and a larger cache helps bulk replays.
            conn.execute("PRAGMA secure_delete = OFF")
            conn.execute("PRAGMA cache_size = -65536")
            return _prepare(conn, projections)

        db, reset = await open_database(path, "projections database",
                                        "it holds only what the log rebuilds: move it away and start again",
                                        set_up, synchronous=synchronous)
        runner = cls(db, path, projections, synchronous)
        for name in reset:
            log.warning("projection %s changed version: rebuilding it from the log", name)
        return runner

    def select(self, names: Sequence[str]) -> list[Projection]:
        """The projections with these names (all when empty); unknown names raise KeyError."""
        if not names:
            return list(self.projections)
        by_name = {p.name: p for p in self.projections}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise KeyError(f"unknown projection(s): {', '.join(unknown)} (known: {', '.join(by_name)})")
        return [by_name[n] for n in names]

    async def checkpoints(self) -> list[Checkpoint]:
        rows = await self.db.execute_fetchall("SELECT name, seq, version FROM projection_checkpoints ORDER BY name")
        return [Checkpoint(*row) for row in rows]

    def follower(self, log_: EventLog, batch_size: int = 2000, *, every_type: bool = False) -> Follower[RecordedEvent]:
        """A follower of ``log_`` that applies its batches here (fresh: it starts from the
        checkpoints). Batches of 2,000 replay fastest here (measured: 1-2k ≈ 59k events/s,
        5k ≈ 54k, 20k ≈ 49k: a smaller batch keeps its rows and pages in cache).

        It reads only the types some projection wants, unless ``every_type``: then the
        checkpoints and ``applied_seq`` also move past the records nobody reads (burst.none
        after every utility notice, commands), so "applied up to the head" means caught up."""
        return Follower(log_, self._apply, name="projections", checkpoint=self.checkpoint,
                        types=None if every_type else self.event_types, batch_size=batch_size,
                        batch_interval=BACKGROUND_INTERVAL)

    async def _apply(self, batch: Batch[RecordedEvent]) -> None:
        await run_on_connection(self.db, lambda c: _apply_batch(c, self.projections, batch))
        self.applied_seq = batch.last

    async def catch_up(
        self,
        log_: EventLog,
        batch_size: int = 2000,
        progress: Callable[[int], None] | None = None,
        stop_at: int | None = None,
    ) -> int:
        """Apply everything up to the log's current head (or ``stop_at``); returns that seq."""
        target = await self.follower(log_, batch_size).catch_up(stop_at, progress)
        self.applied_seq = max(self.applied_seq, target)
        return target

    async def follow(self, log_: EventLog, batch_size: int = 2000) -> None:
        """Run forever: catch up, then apply live batches as they are committed; a failed
        batch is retried from the checkpoints (the transaction rolled back). Live, every type
        is read (they are in memory, decoded once for every follower), so the position is the
        head once caught up; a bulk :meth:`catch_up` reads only the projected types."""
        self._following = self.follower(log_, batch_size, every_type=True)
        await self._following.run()

    def health(self) -> dict[str, object]:
        """The live follower's state (``/healthz``): down with the error while a batch is retried."""
        state: dict[str, object] = {"applied_seq": self.applied_seq}
        if self._following is not None:
            state.update(self._following.health(), up=not self._following.retrying)
        return state

    async def rebuild(self, log_: EventLog, names: Sequence[str] = (), progress: Callable[[int], None] | None = None) -> int:
        """Drop the named projections (all when empty) and replay the log into them.

        A bulk replay: fsync is off until it ends (a crash meanwhile just means rebuilding
        again) and the garbage collector is paused (projections build no reference cycles).
        """
        chosen = self.select(names)
        await run_on_connection(self.db, lambda c: _reset(c, chosen))
        indexes = await run_on_connection(self.db, lambda c: _drop_secondary_indexes(c, chosen))
        await self.db.execute("PRAGMA synchronous = OFF")
        collecting = gc.isenabled()
        switch = sys.getswitchinterval()
        gc.disable()
        # The replay hands work between three threads (loop, log reader, projection writer)
        # once per batch; a shorter GIL switch interval makes those hand-offs prompt (measured).
        sys.setswitchinterval(min(switch, 0.001))
        try:
            return await self.catch_up(log_, progress=progress)
        finally:
            sys.setswitchinterval(switch)
            if collecting:
                gc.enable()
            await run_on_connection(self.db, lambda c: _create_indexes(c, indexes))
            await self.db.execute(f"PRAGMA synchronous = {self.synchronous}")
            await self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def dump(self) -> dict[str, dict[str, list[tuple[object, ...]]]]:
        """Every projection's rows, for comparisons (tests, ``rebuild --check``)."""
        return await run_on_connection(self.db, lambda c: {p.name: p.dump(c) for p in self.projections})

    async def close(self) -> None:
        await self.db.close()
