"""What the bot reads from the projections: pure functions of a read-only ``sqlite3.Connection``.

They run on :class:`~burstbus.bridges.http.reader.ProjectionReader`'s threads (one read
transaction per call, so a ``burst`` answer is one consistent snapshot) and return plain
dataclasses; formatting for a phone screen is :mod:`burstbus.bots.render`'s job.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from burstbus.store.projections.voeventdb import cone_search


@dataclass(frozen=True)
class BurstRow:
    burst_id: str
    first_notice_at: str
    last_notice_at: str
    event_time: str | None
    ra: float | None
    dec: float | None
    err: float | None
    best_ivorn: str | None
    notice_count: int
    instruments: list[str]
    retracted: bool


@dataclass(frozen=True)
class NoticeRow:
    ivorn: str
    notice_at: str
    instrument: str | None
    ra: float | None
    dec: float | None
    err: float | None
    retraction: bool
    role: str | None = None


@dataclass(frozen=True)
class ProcessRow:
    process: str
    obs_id: str | None
    pass_id: str | None
    pipeline: str | None
    status: str
    attempts: int
    last_log: str | None
    updated_at: str


@dataclass(frozen=True)
class TriggerRow:
    request_id: str
    telescope: str
    burst_id: str
    state: str
    requested_by: str
    requested_at: str
    note: str | None
    params: dict[str, Any]
    two_person: bool
    expires_at: str | None
    approved_by: str | None
    denied_by: str | None
    reason: str | None
    sent_at: str | None
    voevent_ivorn: str | None


@dataclass(frozen=True)
class BurstView:
    """Everything ``burst ID`` shows, read in one transaction."""

    burst: BurstRow
    notices: list[NoticeRow] = field(default_factory=list)
    processes: list[ProcessRow] = field(default_factory=list)
    triggers: list[TriggerRow] = field(default_factory=list)


@dataclass(frozen=True)
class ConeHit:
    ivorn: str
    ra: float
    dec: float
    error: float | None
    distance: float
    role: str | None
    authored: str | None
    burst_id: str | None


_BURST_COLUMNS = (
    "burst_id, first_notice_at, last_notice_at, event_time, ra, dec, err, best_ivorn, "
    "notice_count, instruments, retracted"
)


def _burst(row: tuple[Any, ...]) -> BurstRow:
    burst_id, first, last, event_time, ra, dec, err, best_ivorn, count, instruments, retracted = row
    return BurstRow(burst_id, first, last, event_time, ra, dec, err, best_ivorn, count, json.loads(instruments or "[]"), bool(retracted))


def resolve_burst_id(conn: sqlite3.Connection, typed: str) -> str | None:
    """The burst id meant by what was typed: exact, else the one match ignoring case."""
    row = conn.execute("SELECT burst_id FROM bursts WHERE burst_id = ?", (typed,)).fetchone()
    if row:
        return str(row[0])
    rows = conn.execute("SELECT burst_id FROM bursts WHERE burst_id = ? COLLATE NOCASE LIMIT 2", (typed,)).fetchall()
    return str(rows[0][0]) if len(rows) == 1 else None


def recent_bursts(conn: sqlite3.Connection, limit: int) -> list[BurstRow]:
    rows = conn.execute(
        f"SELECT {_BURST_COLUMNS} FROM bursts ORDER BY last_notice_at DESC, burst_id LIMIT ?", (limit,)
    ).fetchall()
    return [_burst(r) for r in rows]


def burst(conn: sqlite3.Connection, burst_id: str) -> BurstRow | None:
    row = conn.execute(f"SELECT {_BURST_COLUMNS} FROM bursts WHERE burst_id = ?", (burst_id,)).fetchone()
    return _burst(row) if row else None


def notices(conn: sqlite3.Connection, burst_id: str) -> list[NoticeRow]:
    """The burst's notices in log order, with their role from the archive."""
    rows = conn.execute(
        "SELECT n.ivorn, n.notice_at, n.instrument, n.ra, n.dec, n.err, n.retraction, v.role "
        "FROM burst_notices AS n LEFT JOIN voevent AS v ON v.ivorn = n.ivorn "
        "WHERE n.burst_id = ? ORDER BY n.seq",
        (burst_id,),
    ).fetchall()
    return [NoticeRow(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), r[7]) for r in rows]


def notice_ivorns(conn: sqlite3.Connection, burst_id: str) -> list[str]:
    return [str(r[0]) for r in conn.execute("SELECT ivorn FROM burst_notices WHERE burst_id = ? ORDER BY seq", (burst_id,))]


def processes(conn: sqlite3.Connection, burst_id: str) -> list[ProcessRow]:
    rows = conn.execute(
        "SELECT process, obs_id, pass_id, pipeline, status, attempts, last_log, updated_at "
        "FROM processes WHERE burst_id = ? ORDER BY updated_at DESC, id",
        (burst_id,),
    ).fetchall()
    return [ProcessRow(*r) for r in rows]


_TRIGGER_COLUMNS = (
    "request_id, telescope, burst_id, state, requested_by, requested_at, note, params, two_person, "
    "expires_at, approved_by, denied_by, reason, sent_at, voevent_ivorn"
)


def _trigger(row: tuple[Any, ...]) -> TriggerRow:
    values = list(row)
    values[7] = json.loads(values[7] or "{}")
    values[8] = bool(values[8])
    return TriggerRow(*values)


def triggers_of(conn: sqlite3.Connection, burst_id: str) -> list[TriggerRow]:
    rows = conn.execute(
        f"SELECT {_TRIGGER_COLUMNS} FROM triggers WHERE burst_id = ? ORDER BY requested_at DESC", (burst_id,)
    ).fetchall()
    return [_trigger(r) for r in rows]


def recent_triggers(conn: sqlite3.Connection, limit: int) -> list[TriggerRow]:
    """Pending requests first, then the newest others."""
    rows = conn.execute(
        f"SELECT {_TRIGGER_COLUMNS} FROM triggers "
        "ORDER BY state = 'requested' DESC, requested_at DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [_trigger(r) for r in rows]


def due_for_expiry(conn: sqlite3.Connection, now: str) -> list[TriggerRow]:
    rows = conn.execute(
        f"SELECT {_TRIGGER_COLUMNS} FROM triggers WHERE state = 'requested' AND expires_at <= ? ORDER BY expires_at",
        (now,),
    ).fetchall()
    return [_trigger(r) for r in rows]


def undelivered(conn: sqlite3.Connection) -> list[TriggerRow]:
    """Approved requests with no ``trigger.sent``/``failed`` yet (a crash between the two)."""
    rows = conn.execute(f"SELECT {_TRIGGER_COLUMNS} FROM triggers WHERE state = 'approved'").fetchall()
    return [_trigger(r) for r in rows]


def pending_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM triggers WHERE state = 'requested'").fetchone()[0])


def burst_view(conn: sqlite3.Connection, burst_id: str) -> BurstView | None:
    found = burst(conn, burst_id)
    if found is None:
        return None
    return BurstView(found, notices(conn, burst_id), processes(conn, burst_id), triggers_of(conn, burst_id))


def near(conn: sqlite3.Connection, ra: float, dec: float, radius: float, limit: int) -> tuple[list[ConeHit], int]:
    """Notices within ``radius`` degrees, nearest first (at most ``limit``), and how many in all."""
    found = cone_search(conn, ra, dec, radius)
    hits = []
    for ivorn, c_ra, c_dec, error, distance in found[:limit]:
        meta = conn.execute(
            "SELECT v.role, v.author_datetime, n.burst_id FROM voevent AS v "
            "LEFT JOIN burst_notices AS n ON n.ivorn = v.ivorn WHERE v.ivorn = ?",
            (ivorn,),
        ).fetchone()
        role, authored, burst_id = meta if meta else (None, None, None)
        hits.append(ConeHit(ivorn, c_ra, c_dec, error, distance, role, authored, burst_id))
    return hits, len(found)


def projection_positions(conn: sqlite3.Connection) -> dict[str, int]:
    """Each projection's checkpoint (for ``status``: how far behind the log the read side is)."""
    try:
        return {str(n): int(s) for n, s in conn.execute("SELECT name, seq FROM projection_checkpoints")}
    except sqlite3.OperationalError:
        return {}
