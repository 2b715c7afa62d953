"""The outbox's position on its topic, kept with its log checkpoint: what "nothing twice" rests on.

Beside the log checkpoint (``checkpoints``: the last seq handled), ``state.sqlite`` keeps per
outbox and partition a **floor**: an offset below which no message of ours carrying a seq past
the checkpoint can lie. Both are written in one transaction after a batch's delivery reports,
so they always describe the same moment. On every (re)start of publishing the outbox reads the
topic from the floors to its end (``bridges/kafka/tail.py``); the event ids found past the
checkpoint are delivered already and are not produced again.

:class:`Ledger` is the pure bookkeeping (tested without a broker); :func:`load_floors` and
:func:`write_floors` are its storage.

The invariant, for a checkpoint C and floors F stored together: every message on the topic
that carries a burstbus event id with seq > C lies at or above F on its partition. It holds at
the first start (F = the partitions' ends before anything is produced), and each commit keeps
it: the new floors are the highest offsets that still lie at or below every message found by
the last scan whose seq is past the new checkpoint (see :meth:`Ledger.committed`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from burstbus.bridges.kafka.tail import Found, Tail

FLOORS = """
CREATE TABLE IF NOT EXISTS kafka_outbox_floors (
    consumer  TEXT NOT NULL,
    partition INTEGER NOT NULL,
    floor     INTEGER NOT NULL,
    PRIMARY KEY (consumer, partition)
);
"""


def create_tables(conn: sqlite3.Connection) -> None:
    conn.execute(FLOORS.strip().rstrip(";"))


def load_floors(conn: sqlite3.Connection, consumer: str) -> dict[int, int] | None:
    """The stored floors; None when the outbox never stored any."""
    rows = conn.execute("SELECT partition, floor FROM kafka_outbox_floors WHERE consumer = ?", (consumer,)).fetchall()
    return {int(p): int(f) for p, f in rows} if rows else None


def write_floors(conn: sqlite3.Connection, consumer: str, floors: Mapping[int, int]) -> None:
    """Inside a transaction: replace ``consumer``'s floors."""
    conn.execute("DELETE FROM kafka_outbox_floors WHERE consumer = ?", (consumer,))
    conn.executemany(
        "INSERT INTO kafka_outbox_floors (consumer, partition, floor) VALUES (?, ?, ?)",
        [(consumer, int(p), int(f)) for p, f in sorted(floors.items())],
    )


@dataclass
class Ledger:
    """Floors, and what the last scan found on the topic past the position (pure)."""

    #: Partition → floor, as stored with the checkpoint (empty: read every partition whole).
    floors: dict[int, int] = field(default_factory=dict)
    #: Event id → where it lies, for messages found past the position: delivered already.
    pending: dict[str, Found] = field(default_factory=dict)
    #: Partition → the end the last scan reached (everything below it was read).
    ends: dict[int, int] = field(default_factory=dict)

    def scanned(self, tail: Tail, position: int) -> None:
        """Take a scan's result; ``position`` is the seq publishing resumes after."""
        for p in tail.reset:  # the old floor lay outside the partition: it is meaningless now
            self.floors[p] = 0
        self.pending = {event_id: f for event_id, f in tail.found.items() if f.seq > position}
        self.ends = dict(tail.ends)

    def delivered_already(self, event_id: str) -> bool:
        return event_id in self.pending

    def committed(self, last: int, delivered: Iterable[tuple[int, int]]) -> Ledger:
        """The ledger once checkpoint ``last`` is stored (its ``floors`` are stored with it);
        ``delivered`` are the (partition, offset) of this batch's delivery reports. A new
        object: this one stays as it is until the write succeeded.

        Below the scan's end everything was read, and our own messages since are ``delivered``:
        a floor may rise past both — except on a partition where a message found by the scan
        carries a seq past ``last``: a later scan must still find it."""
        pending = {event_id: f for event_id, f in self.pending.items() if f.seq > last}
        top = dict(self.floors)
        for p, end in self.ends.items():
            top[p] = max(top.get(p, 0), end)
        for p, offset in delivered:
            top[p] = max(top.get(p, 0), offset + 1)
        for f in pending.values():
            top[f.partition] = min(top.get(f.partition, f.offset), f.offset)
        return Ledger(top, pending, dict(self.ends))
