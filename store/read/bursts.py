"""One burst with its notices, processes and triggers, in the read side's one order.

The HTTP API, the burst page and the bot's ``burst`` all read a burst here, so they list its
parts in the same order:

* **notices** by ``notice_at`` (the notice's own time), then log ``seq``: the burst's story
  as it happened, also for notices that arrived late or out of order;
* **processes** by ``process``, ``obs_id``, ``pass_id`` (NULL first), then ``id``: a stable
  table that does not reshuffle as runs update;
* **triggers** newest request first (``requested_at`` descending, then ``request_id``).

A missing part of the read model (no ``voevent`` archive, no ``processes`` or ``triggers``
table yet on this node) reads as empty rather than failing the whole burst.
"""

from __future__ import annotations

import sqlite3

from burstbus.store.read.rows import (
    BURST_COLUMNS,
    PROCESS_COLUMNS,
    TRIGGER_COLUMNS,
    BurstRow,
    BurstView,
    NoticeRow,
    ProcessRow,
    TriggerRow,
)

NOTICE_ORDER = "n.notice_at, n.seq"
PROCESS_ORDER = "process, obs_id, pass_id, id"
TRIGGER_ORDER = "requested_at DESC, request_id"


def table_exists(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def burst(conn: sqlite3.Connection, burst_id: str) -> BurstRow | None:
    if not table_exists(conn, "bursts"):
        return None
    row = conn.execute(f"SELECT {', '.join(BURST_COLUMNS)} FROM bursts WHERE burst_id = ?", (burst_id,)).fetchone()
    return BurstRow.from_row(row) if row else None


def resolve_burst_id(conn: sqlite3.Connection, typed: str) -> str | None:
    """The burst id meant by what was typed: exact, else the one match ignoring case; then the
    same among the bursts' other names (an SVOM id whose notice joined a Fermi burst)."""
    if not table_exists(conn, "bursts"):
        return None
    tables = [("bursts", "burst_id")] + ([("burst_aliases", "alias")] if table_exists(conn, "burst_aliases") else [])
    for table, column in tables:
        row = conn.execute(f"SELECT burst_id FROM {table} WHERE {column} = ?", (typed,)).fetchone()  # noqa: S608 - fixed names
        if row:
            return str(row[0])
        rows = conn.execute(f"SELECT DISTINCT burst_id FROM {table} WHERE {column} = ? COLLATE NOCASE LIMIT 2",  # noqa: S608
                            (typed,)).fetchall()
        if len(rows) == 1:
            return str(rows[0][0])
    return None


def notices(conn: sqlite3.Connection, burst_id: str) -> tuple[NoticeRow, ...]:
    """The burst's notices by time then seq, with role, stream, author time and mission."""
    archive = ("v.role, v.stream, v.author_datetime, v.mission FROM burst_notices AS n "
               "LEFT JOIN voevent AS v ON v.ivorn = n.ivorn"
               if table_exists(conn, "voevent") else "NULL, NULL, NULL, NULL FROM burst_notices AS n")  # fmt: skip
    sql = ("SELECT n.ivorn, n.seq, n.rule, n.notice_at, n.instrument, n.ra, n.dec, n.err, n.retraction, "
           f"{archive} WHERE n.burst_id = ? ORDER BY {NOTICE_ORDER}")  # fmt: skip
    return tuple(NoticeRow.from_row(r) for r in conn.execute(sql, (burst_id,)))


def notice_ivorns(conn: sqlite3.Connection, burst_id: str) -> list[str]:
    """The burst's notice IVORNs in the same order as :func:`notices` (a trigger cites them)."""
    sql = f"SELECT n.ivorn FROM burst_notices AS n WHERE n.burst_id = ? ORDER BY {NOTICE_ORDER}"
    return [str(r[0]) for r in conn.execute(sql, (burst_id,))]


def processes(conn: sqlite3.Connection, burst_id: str) -> tuple[ProcessRow, ...]:
    if not table_exists(conn, "processes"):
        return ()
    sql = f"SELECT {', '.join(PROCESS_COLUMNS)} FROM processes WHERE burst_id = ? ORDER BY {PROCESS_ORDER}"
    return tuple(ProcessRow.from_row(r) for r in conn.execute(sql, (burst_id,)))


def triggers(conn: sqlite3.Connection, burst_id: str) -> tuple[TriggerRow, ...]:
    if not table_exists(conn, "triggers"):
        return ()
    sql = f"SELECT {', '.join(TRIGGER_COLUMNS)} FROM triggers WHERE burst_id = ? ORDER BY {TRIGGER_ORDER}"
    return tuple(TriggerRow.from_row(r) for r in conn.execute(sql, (burst_id,)))


def burst_view(conn: sqlite3.Connection, burst_id: str) -> BurstView | None:
    """Everything the read models know about one burst (one snapshot); None if unknown."""
    found = burst(conn, burst_id)
    if found is None:
        return None
    return BurstView(found, notices(conn, burst_id), processes(conn, burst_id), triggers(conn, burst_id))
