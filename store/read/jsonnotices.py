"""JSON notices (``json_notice``, from Kafka) as the API and the notices page list them.

Newest first, with the burst each belongs to (``burst_notices`` keys JSON notices by the same
``<topic>#<notice id>`` text), and the one lookup the raw endpoint needs: the log seq of a
notice named by its seq or its key. A node without the table (no Kafka, an old projections
file) reads an empty page.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from burstbus.store.read.bursts import table_exists
from burstbus.store.read.rows import Page

_COLUMNS = ("id", "key", "notice_id", "topic", "schema", "role", "mission", "instrument", "event_time", "authored",
            "received", "ra", "dec", "err", "superevent_id", "alert_type", "size")


@dataclass(frozen=True, slots=True)
class JsonNoticeRow:
    """One JSON notice: ``seq`` is its ``notice.accepted`` event's (the exact bytes are there)."""

    seq: int
    key: str
    notice_id: str
    topic: str
    schema: str | None
    role: str | None
    mission: str | None
    instrument: str | None
    event_time: str | None
    authored: str | None
    received: str
    ra: float | None
    dec: float | None
    err: float | None
    superevent_id: str | None
    alert_type: str | None
    size: int | None
    burst_id: str | None = None


def json_notices(conn: sqlite3.Connection, limit: int, offset: int = 0, topic: str | None = None) -> Page[JsonNoticeRow]:
    if not table_exists(conn, "json_notice"):
        return Page((), 0)
    where, params = ("WHERE j.topic = ?", [topic]) if topic else ("", [])
    bursts = table_exists(conn, "burst_notices")
    burst_col = "bn.burst_id" if bursts else "NULL"
    burst_join = "LEFT JOIN burst_notices AS bn ON bn.ivorn = j.key" if bursts else ""
    columns = ", ".join(f"j.{c}" for c in _COLUMNS)
    sql = f"SELECT {columns}, {burst_col} FROM json_notice AS j {burst_join} {where} ORDER BY j.id DESC LIMIT ? OFFSET ?"
    rows = tuple(JsonNoticeRow(*row) for row in conn.execute(sql, [*params, limit, offset]))
    (total,) = conn.execute(f"SELECT count(*) FROM json_notice AS j {where}", params).fetchone()
    return Page(rows, int(total))


#: SQLite's largest INTEGER: a seq above it names nothing.
_MAX_SEQ = 2**63 - 1


def json_notice_seq(conn: sqlite3.Connection, ref: str) -> int | None:
    """The seq of the notice named by ``ref``: its seq (digits) or its key (``<topic>#<id>``)."""
    if not table_exists(conn, "json_notice"):
        return None
    if ref.isascii() and ref.isdigit():  # ("²".isdigit() is true, and int() refuses it)
        seq = int(ref) if len(ref) <= 19 else _MAX_SEQ + 1  # (int() refuses 4,300 digits and more)
        if seq > _MAX_SEQ:  # no such seq, and more than SQLite's INTEGER takes
            return None
        row = conn.execute("SELECT id FROM json_notice WHERE id = ?", (seq,)).fetchone()
    else:
        row = conn.execute("SELECT id FROM json_notice WHERE key = ? ORDER BY id DESC LIMIT 1", (ref,)).fetchone()
    return None if row is None else int(row[0])
