"""Where the Kafka consumer stands, kept in burstbus's own ``state.sqlite`` (not in a consumer group).

Why here and not in Kafka's consumer group (``commit``):

* **After the durable append, and nowhere else.** A batch's positions are written once the
  log returned its append (durable); a position is never ahead of the log. The log and this
  table are two files (or the log is JetStream), so the two writes cannot share a
  transaction: a crash between them makes the next start read the batch again — and nothing
  is appended twice, because every event a message becomes has a derived id (an accepted
  VOEvent its IVORN's, a JSON notice its topic's and digest's, a refusal the message's
  topic/partition/offset/digest), so the re-append is a no-op. A group commit would have
  the same gap between append and commit and add a round trip to a remote broker per batch.
* **Restarts resume at once.** ``assign`` with these offsets reads immediately, where a
  group join (``subscribe``) rebalances first (~23 s against the test broker) — alerts wait
  meanwhile. Nothing else shares our partitions, so a group's balancing buys nothing.
* **One place for the whole node's state**: a backup of the data directory, ``burstbus kafka
  check`` and ``/healthz`` read positions where the checkpoints of every other consumer are.

Tables: ``kafka_positions`` (next offset per upstream/topic/partition), ``kafka_wanted`` (when
a topic was first wanted: a partition seen later started after that, so it is read from its
beginning, never skipped by a later "now"), ``kafka_liveness`` (last heartbeat heard and the
current silence, so the silence clock survives a restart).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from burstbus.events import utc_now
from burstbus.state import StateStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS kafka_positions (
    upstream    TEXT NOT NULL,
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (upstream, topic, partition)
);
CREATE TABLE IF NOT EXISTS kafka_wanted (
    upstream TEXT NOT NULL,
    topic    TEXT NOT NULL,
    since    TEXT NOT NULL,
    PRIMARY KEY (upstream, topic)
);
CREATE TABLE IF NOT EXISTS kafka_liveness (
    upstream      TEXT PRIMARY KEY,
    heard_at      TEXT,
    silent_id     TEXT,
    silent_since  TEXT,
    updated_at    TEXT NOT NULL
);
"""

#: (topic, partition)
Partition = tuple[str, int]


@dataclass(frozen=True)
class LivenessRow:
    heard_at: str | None = None
    #: The ``kafka.silent`` event of the silence under way (None: the feed is not silent).
    silent_id: str | None = None
    silent_since: str | None = None


class Positions:
    """One upstream's rows in ``state.sqlite``."""

    def __init__(self, state: StateStore, upstream: str):
        self.state = state
        self.upstream = upstream

    async def open(self) -> Positions:
        await self.state.run(lambda c: c.executescript(SCHEMA))
        return self

    async def load(self) -> dict[Partition, int]:
        def read(conn: sqlite3.Connection) -> dict[Partition, int]:
            rows = conn.execute(
                "SELECT topic, partition, next_offset FROM kafka_positions WHERE upstream = ?", (self.upstream,)
            )
            return {(str(t), int(p)): int(o) for t, p, o in rows}

        return await self.state.run(read)

    async def wanted(self) -> dict[str, str]:
        """Topic → when it was first wanted."""
        def read(conn: sqlite3.Connection) -> dict[str, str]:
            return dict(conn.execute("SELECT topic, since FROM kafka_wanted WHERE upstream = ?", (self.upstream,)).fetchall())

        return await self.state.run(read)

    async def save(self, positions: Mapping[Partition, int], *, wanted: Iterable[str] = ()) -> None:
        """Store next offsets (only ever forward; a reset moves back through :meth:`reset`)
        and, in the same transaction, newly wanted topics."""
        now = utc_now()
        rows = [(self.upstream, t, p, o, now) for (t, p), o in positions.items()]
        topics = [(self.upstream, t, now) for t in wanted]

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO kafka_positions (upstream, topic, partition, next_offset, updated_at) VALUES (?,?,?,?,?) "
                "ON CONFLICT(upstream, topic, partition) DO UPDATE SET next_offset = excluded.next_offset, "
                "updated_at = excluded.updated_at WHERE excluded.next_offset > next_offset",
                rows,
            )
            conn.executemany("INSERT OR IGNORE INTO kafka_wanted (upstream, topic, since) VALUES (?,?,?)", topics)

        if rows or topics:
            await self.state.transaction(write)

    async def reset(self, partition: Partition, next_offset: int) -> None:
        """Move one position back (the partition restarted below it: a recorded gap)."""
        topic, number = partition

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO kafka_positions (upstream, topic, partition, next_offset, updated_at) VALUES (?,?,?,?,?) "
                "ON CONFLICT(upstream, topic, partition) DO UPDATE SET next_offset = excluded.next_offset, "
                "updated_at = excluded.updated_at",
                (self.upstream, topic, number, next_offset, utc_now()),
            )

        await self.state.transaction(write)

    async def liveness(self) -> LivenessRow:
        def read(conn: sqlite3.Connection) -> LivenessRow:
            row = conn.execute(
                "SELECT heard_at, silent_id, silent_since FROM kafka_liveness WHERE upstream = ?", (self.upstream,)
            ).fetchone()
            return LivenessRow(*row) if row else LivenessRow()

        return await self.state.run(read)

    async def save_liveness(self, row: LivenessRow) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO kafka_liveness (upstream, heard_at, silent_id, silent_since, updated_at) VALUES (?,?,?,?,?) "
                "ON CONFLICT(upstream) DO UPDATE SET heard_at = excluded.heard_at, silent_id = excluded.silent_id, "
                "silent_since = excluded.silent_since, updated_at = excluded.updated_at",
                (self.upstream, row.heard_at, row.silent_id, row.silent_since, utc_now()),
            )

        await self.state.transaction(write)


async def all_positions(state: StateStore) -> list[tuple[str, str, int, int, str]]:
    """Every stored position (upstream, topic, partition, next offset, updated) for ``kafka check``."""
    def read(conn: sqlite3.Connection) -> list[tuple[str, str, int, int, str]]:
        conn.executescript(SCHEMA)
        return [tuple(r) for r in conn.execute(  # type: ignore[misc]
            "SELECT upstream, topic, partition, next_offset, updated_at FROM kafka_positions ORDER BY 1, 2, 3")]

    return await state.run(read)
