"""Reads of the burstbus read models (processes, bursts, triggers) for the JSON API and pages.

Pure functions over a ``sqlite3.Connection`` (run on the HTTP reader's thread pool, one read
transaction per request). Every value is a bound parameter; ordering comes from fixed
tables of SQL, never from request text. A read model that does not exist yet (the
``triggers`` table before its projection first ran) reads as empty, not as an error.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

TRIGGER_STATES = ("requested", "approved", "denied", "expired", "sent", "failed")

PROCESS_ORDERS: dict[str, str] = {
    "-updated_at": "updated_at DESC, id",
    "updated_at": "updated_at, id",
    "-first_seen": "first_seen DESC, id",
    "first_seen": "first_seen, id",
    "-date": "date DESC, updated_at DESC, id",
    "date": "date, updated_at, id",
    "process": "process, updated_at DESC, id",
    "burst_id": "burst_id, updated_at DESC, id",
    "status": "status, updated_at DESC, id",
}
BURST_ORDERS: dict[str, str] = {
    "-last_notice_at": "last_notice_at DESC, burst_id",
    "last_notice_at": "last_notice_at, burst_id",
    "-first_notice_at": "first_notice_at DESC, burst_id",
    "first_notice_at": "first_notice_at, burst_id",
    "burst_id": "burst_id",
    "-burst_id": "burst_id DESC",
}
TRIGGER_ORDERS: dict[str, str] = {
    "-requested_at": "requested_at DESC, request_id",
    "requested_at": "requested_at, request_id",
}


@dataclass
class Where:
    """A conjunction of SQL conditions and their parameters."""

    clauses: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, clause: str, *params: Any) -> None:
        self.clauses.append(clause)
        self.params.extend(params)

    def any_of(self, column: str, values: Sequence[Any]) -> None:
        if values:
            self.add(f"{column} IN ({','.join('?' * len(values))})", *values)

    def sql(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "1"


def table_exists(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _rows(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _page(conn: sqlite3.Connection, table: str, where: Where, order: str, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    total = conn.execute(f"SELECT count(*) FROM {table} WHERE {where.sql()}", where.params).fetchone()[0]
    cursor = conn.execute(
        f"SELECT * FROM {table} WHERE {where.sql()} ORDER BY {order} LIMIT ? OFFSET ?", [*where.params, limit, offset]
    )
    return _rows(cursor), int(total)


# -- processes ---------------------------------------------------------------------------


def process_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {**row, "retry_requested": row.get("retry_requested")}


def processes(conn: sqlite3.Connection, q: Mapping[str, Any], limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Process runs matching the orchestrator page's filters; (page, total matching)."""
    where = Where()
    if q.get("date_from"):
        where.add("date >= ?", q["date_from"])
    if q.get("date_to"):
        where.add("date <= ?", q["date_to"])
    if q.get("since"):
        where.add("updated_at >= ?", q["since"])
    if q.get("until"):
        where.add("updated_at <= ?", q["until"])
    for key in ("process", "burst_id", "obs_id", "pass_id", "status", "pipeline"):
        where.any_of(key, q.get(key) or ())
    order = PROCESS_ORDERS[q.get("order") or "-updated_at"]
    rows, total = _page(conn, "processes", where, order, limit, offset)
    return [process_row(r) for r in rows], total


# -- bursts ------------------------------------------------------------------------------


def burst_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ``bursts`` row as the API shows it: the best position as one object, flags as bools."""
    out = {k: row[k] for k in ("burst_id", "first_notice_at", "last_notice_at", "event_time", "notice_count")}
    out["position"] = (
        {"ra": row["ra"], "dec": row["dec"], "err": row["err"], "ivorn": row["best_ivorn"]} if row["ra"] is not None else None
    )
    out["instruments"] = json.loads(row["instruments"] or "[]")
    out["retracted"] = bool(row["retracted"])
    out["first_seq"], out["last_seq"] = row["first_seq"], row["last_seq"]
    return out


def bursts(conn: sqlite3.Connection, q: Mapping[str, Any], limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Bursts with notices in [since, until] (overlap), by id, instrument and flags."""
    if not table_exists(conn, "bursts"):
        return [], 0
    where = Where()
    if q.get("since"):
        where.add("last_notice_at >= ?", q["since"])
    if q.get("until"):
        where.add("first_notice_at <= ?", q["until"])
    where.any_of("burst_id", q.get("burst_id") or ())
    instruments = q.get("instrument") or ()
    if instruments:
        marks = ",".join("?" * len(instruments))
        where.add(f"EXISTS (SELECT 1 FROM json_each(bursts.instruments) WHERE value IN ({marks}))", *instruments)
    if q.get("retracted") is not None:
        where.add("retracted = ?", int(q["retracted"]))
    if q.get("has_position") is not None:
        where.add("ra IS NOT NULL" if q["has_position"] else "ra IS NULL")
    order = BURST_ORDERS[q.get("order") or "-last_notice_at"]
    rows, total = _page(conn, "bursts", where, order, limit, offset)
    return [burst_row(r) for r in rows], total


def notice_row(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["retraction"] = bool(out["retraction"])
    return out


def burst_detail(conn: sqlite3.Connection, burst_id: str) -> dict[str, Any] | None:
    """Everything the read models know about one burst; None if it is unknown."""
    if not table_exists(conn, "bursts"):
        return None
    cursor = conn.execute("SELECT * FROM bursts WHERE burst_id = ?", (burst_id,))
    found = _rows(cursor)
    if not found:
        return None
    burst = burst_row(found[0])
    voevent = table_exists(conn, "voevent")
    join = (
        "SELECT n.ivorn, n.seq, n.rule, n.notice_at, n.instrument, n.ra, n.dec, n.err, n.retraction, "
        "v.role, v.stream, v.author_datetime, v.mission FROM burst_notices AS n LEFT JOIN voevent AS v ON v.ivorn = n.ivorn "
        "WHERE n.burst_id = ? ORDER BY n.seq"
        if voevent
        else "SELECT * FROM burst_notices AS n WHERE n.burst_id = ? ORDER BY n.seq"
    )
    burst["notices"] = [notice_row(r) for r in _rows(conn.execute(join, (burst_id,)))]
    burst["processes"] = (
        [process_row(r) for r in _rows(conn.execute(
            "SELECT * FROM processes WHERE burst_id = ? ORDER BY first_seen, id", (burst_id,)))]
        if table_exists(conn, "processes") else []
    )  # fmt: skip
    burst["triggers"] = triggers(conn, {"burst_id": (burst_id,), "order": "requested_at"}, -1, 0)[0]
    return burst


# -- triggers ----------------------------------------------------------------------------


def trigger_row(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    try:
        out["params"] = json.loads(out.get("params") or "{}")
    except ValueError:  # written by the projection as JSON; keep the text if it is not
        pass
    out["two_person"] = bool(out.get("two_person"))
    return out


def triggers(conn: sqlite3.Connection, q: Mapping[str, Any], limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Trigger requests and their outcome; empty while the ``triggers`` table does not exist."""
    if not table_exists(conn, "triggers"):
        return [], 0
    where = Where()
    if q.get("since"):
        where.add("requested_at >= ?", q["since"])
    if q.get("until"):
        where.add("requested_at <= ?", q["until"])
    for key in ("burst_id", "telescope", "state", "requested_by"):
        where.any_of(key, q.get(key) or ())
    order = TRIGGER_ORDERS[q.get("order") or "-requested_at"]
    rows, total = _page(conn, "triggers", where, order, limit, offset)
    return [trigger_row(r) for r in rows], total


def projected_seq(conn: sqlite3.Connection) -> int | None:
    """The lowest checkpoint of all projections (what every read model has applied)."""
    if not table_exists(conn, "projection_checkpoints"):
        return None
    row = conn.execute("SELECT min(seq) FROM projection_checkpoints").fetchone()
    return None if row is None or row[0] is None else int(row[0])
