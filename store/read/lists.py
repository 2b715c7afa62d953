"""Filtered, paged lists of the projections, and the small reads the bot's workflow needs.

The filters come as :mod:`~burstbus.store.read.where` dataclasses (the HTTP bridge builds
them from query strings and forms), the order as a key of that module's fixed tables; the
answer is a :class:`~burstbus.store.read.rows.Page` of typed rows. A table that does not exist
yet (a fresh node before its first projection) reads as an empty page.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from burstbus.store.read.bursts import table_exists
from burstbus.store.read.rows import (
    BURST_COLUMNS,
    PROCESS_COLUMNS,
    TRIGGER_COLUMNS,
    BurstRow,
    ConeHit,
    Page,
    ProcessRow,
    TriggerRow,
)
from burstbus.store.read.voeventdb import cone_search
from burstbus.store.read.where import (
    BURST_ORDERS,
    PROCESS_ORDERS,
    TRIGGER_ORDERS,
    BurstFilter,
    ProcessFilter,
    TriggerFilter,
    Where,
)

R = TypeVar("R")


def _page(conn: sqlite3.Connection, table: str, columns: Sequence[str], make: Callable[[Sequence[Any]], R],
          where: Where, order: str, limit: int, offset: int) -> Page[R]:  # fmt: skip
    if not table_exists(conn, table):
        return Page((), 0)
    total = conn.execute(f"SELECT count(*) FROM {table} WHERE {where.sql()}", where.params).fetchone()[0]
    sql = f"SELECT {', '.join(columns)} FROM {table} WHERE {where.sql()} ORDER BY {order} LIMIT ? OFFSET ?"
    rows = tuple(make(r) for r in conn.execute(sql, [*where.params, limit, offset]))
    return Page(rows, int(total))


def processes(conn: sqlite3.Connection, filters: ProcessFilter, order: str = "-updated_at", limit: int = -1,
              offset: int = 0) -> Page[ProcessRow]:  # fmt: skip
    """Process runs matching ``filters`` (``limit`` -1: all)."""
    return _page(conn, "processes", PROCESS_COLUMNS, ProcessRow.from_row, filters.where(), PROCESS_ORDERS[order],
                 limit, offset)  # fmt: skip


def process_counts(conn: sqlite3.Connection, filters: ProcessFilter | None = None) -> dict[str, int]:
    """How many runs matching ``filters`` (all, without) have each status."""
    if not table_exists(conn, "processes"):
        return {}
    where = (filters or ProcessFilter()).where()
    sql = f"SELECT status, count(*) FROM processes WHERE {where.sql()} GROUP BY status"
    return {str(s): int(n) for s, n in conn.execute(sql, where.params)}


def bursts(conn: sqlite3.Connection, filters: BurstFilter, order: str = "-last_notice_at", limit: int = -1,
           offset: int = 0) -> Page[BurstRow]:  # fmt: skip
    return _page(conn, "bursts", BURST_COLUMNS, BurstRow.from_row, filters.where(), BURST_ORDERS[order], limit, offset)


def recent_bursts(conn: sqlite3.Connection, limit: int) -> tuple[BurstRow, ...]:
    return bursts(conn, BurstFilter(), limit=limit).rows


def burst_counts(conn: sqlite3.Connection, burst_ids: Sequence[str]) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """For these bursts: their process runs per status, and their trigger requests."""
    statuses: dict[str, dict[str, int]] = {}
    triggers: dict[str, int] = {}
    if not burst_ids:
        return statuses, triggers
    ids = json.dumps(list(burst_ids))
    if table_exists(conn, "processes"):
        for burst_id, status, n in conn.execute(
            "SELECT burst_id, status, count(*) FROM processes WHERE burst_id IN (SELECT value FROM json_each(?)) "
            "GROUP BY burst_id, status", (ids,)):  # fmt: skip
            statuses.setdefault(burst_id, {})[status] = n
    if table_exists(conn, "triggers"):
        triggers = {str(b): int(n) for b, n in conn.execute(
            "SELECT burst_id, count(*) FROM triggers WHERE burst_id IN (SELECT value FROM json_each(?)) "
            "GROUP BY burst_id", (ids,))}  # fmt: skip
    return statuses, triggers


def triggers(conn: sqlite3.Connection, filters: TriggerFilter, order: str = "-requested_at", limit: int = -1,
             offset: int = 0) -> Page[TriggerRow]:  # fmt: skip
    """Trigger requests; an empty page while the ``triggers`` table does not exist."""
    return _page(conn, "triggers", TRIGGER_COLUMNS, TriggerRow.from_row, filters.where(), TRIGGER_ORDERS[order],
                 limit, offset)  # fmt: skip


_TRIGGERS = f"SELECT {', '.join(TRIGGER_COLUMNS)} FROM triggers"


def recent_triggers(conn: sqlite3.Connection, limit: int) -> list[TriggerRow]:
    """Pending requests first, then the newest others."""
    sql = f"{_TRIGGERS} ORDER BY state = 'requested' DESC, requested_at DESC, request_id LIMIT ?"
    return [TriggerRow.from_row(r) for r in conn.execute(sql, (limit,))]


def due_for_expiry(conn: sqlite3.Connection, now: str) -> list[TriggerRow]:
    sql = f"{_TRIGGERS} WHERE state = 'requested' AND expires_at <= ? ORDER BY expires_at, request_id"
    return [TriggerRow.from_row(r) for r in conn.execute(sql, (now,))]


def undelivered(conn: sqlite3.Connection) -> list[TriggerRow]:
    """Approved requests with no ``trigger.sent``/``failed`` yet (a crash between the two)."""
    return [TriggerRow.from_row(r) for r in conn.execute(f"{_TRIGGERS} WHERE state = 'approved' ORDER BY requested_at")]


def awaiting_acknowledgement(conn: sqlite3.Connection, sent_before: str) -> list[TriggerRow]:
    """Sent triggers no telescope packet answered yet, sent at or before ``sent_before``."""
    sql = f"{_TRIGGERS} WHERE state = 'sent' AND sent_at <= ? ORDER BY sent_at, request_id"
    return [TriggerRow.from_row(r) for r in conn.execute(sql, (sent_before,))]


def pending_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM triggers WHERE state = 'requested'").fetchone()[0])


def near(conn: sqlite3.Connection, ra: float, dec: float, radius: float, limit: int) -> tuple[list[ConeHit], int]:
    """Notices within ``radius`` degrees, nearest first (at most ``limit``), and how many in all."""
    found = cone_search(conn, ra, dec, radius)
    hits = []
    for match in found[:limit]:
        meta = conn.execute(
            "SELECT v.role, v.author_datetime, n.burst_id FROM voevent AS v "
            "LEFT JOIN burst_notices AS n ON n.ivorn = v.ivorn WHERE v.ivorn = ?",
            (match.ivorn,),
        ).fetchone()
        role, authored, burst_id = meta if meta else (None, None, None)
        hits.append(ConeHit(match.ivorn, match.ra, match.dec, match.error, match.distance, role, authored, burst_id))
    return hits, len(found)


def projection_positions(conn: sqlite3.Connection) -> dict[str, int]:
    """Each projection's checkpoint (how far behind the log the read side is)."""
    if not table_exists(conn, "projection_checkpoints"):
        return {}
    return {str(n): int(s) for n, s in conn.execute("SELECT name, seq FROM projection_checkpoints")}


def projected_seq(conn: sqlite3.Connection) -> int | None:
    """The lowest checkpoint of all projections (what every read model has applied)."""
    if not table_exists(conn, "projection_checkpoints"):
        return None
    row = conn.execute("SELECT min(seq) FROM projection_checkpoints").fetchone()
    return None if row is None or row[0] is None else int(row[0])
