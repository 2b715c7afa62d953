"""The orchestrator's own state in ``state.sqlite``: each burst's followed events, and when each
burst next needs a look (its earliest deadline or retry).

Why keep a burst's events here rather than read them from the log: the decisions need a
burst's whole history at each batch, and the log has no cheap per-burst read on every backend
(JetStream has no index by stream). The follower writes these rows in the same transaction
as its checkpoint (as the burst identifier its index), so the two never disagree after a
crash; if the file is lost, following from the beginning rebuilds them and re-deciding
appends nothing (derived ids).

``orchestrator_due`` is how the watchdog's timers survive a restart: a burst with an
attempt still open has its next deadline (or retry time) here, taken from the log's times,
and is looked at again at start.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence

from burstbus.events import RecordedEvent, canonical_json, decode_json

SCHEMA = """
CREATE TABLE IF NOT EXISTS orchestrator_records (
    burst_id TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    record   TEXT NOT NULL,
    PRIMARY KEY (burst_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS orchestrator_due (
    burst_id TEXT PRIMARY KEY,
    due      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orchestrator_due_at ON orchestrator_due (due);
"""


def encode(record: RecordedEvent) -> str:
    return canonical_json(record.to_json_dict())


def decode(text: str) -> RecordedEvent:
    d = decode_json(text)
    return RecordedEvent(d["seq"], d["id"], d["type"], d["stream"], d["actor"], d["occurred_at"], d["recorded_at"],
                         d["data"], d["prev_hash"], d["hash"])


def create(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def load(conn: sqlite3.Connection, bursts: Sequence[str]) -> dict[str, list[RecordedEvent]]:
    """The stored events of these bursts, each list in seq order."""
    found: dict[str, list[RecordedEvent]] = {b: [] for b in bursts}
    for start in range(0, len(bursts), 500):
        chunk = list(bursts[start:start + 500])
        marks = ",".join("?" * len(chunk))
        for burst, text in conn.execute(
            f"SELECT burst_id, record FROM orchestrator_records WHERE burst_id IN ({marks}) ORDER BY burst_id, seq", chunk
        ):
            found[burst].append(decode(text))
    return found


def save(conn: sqlite3.Connection, records: Mapping[str, Iterable[RecordedEvent]], due: Mapping[str, str | None]) -> None:
    """Store new events and the bursts' next looks (None: nothing open), inside the caller's
    transaction."""
    conn.executemany("INSERT OR IGNORE INTO orchestrator_records (burst_id, seq, record) VALUES (?, ?, ?)",
                     [(burst, r.seq, encode(r)) for burst, rs in records.items() for r in rs])
    conn.executemany("INSERT INTO orchestrator_due (burst_id, due) VALUES (?, ?) "
                     "ON CONFLICT(burst_id) DO UPDATE SET due = excluded.due",
                     [(burst, when) for burst, when in due.items() if when is not None])
    conn.executemany("DELETE FROM orchestrator_due WHERE burst_id = ?", [(burst,) for burst, when in due.items() if when is None])


def all_due(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT burst_id, due FROM orchestrator_due").fetchall())
