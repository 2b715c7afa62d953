"""The JSON API's view of the read side: parsed query strings in, JSON objects out.

The SQL is the store's (:mod:`burstbus.store.read`): this module only turns what
:func:`~burstbus.bridges.http.spec.parse_query` parsed into the store's filter dataclasses,
and the store's typed rows into the objects ``/api`` answers (a burst's best position as one
object). Run on the HTTP reader's thread pool, one read transaction per request.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from burstbus.catalogue import TRIGGER_STATES
from burstbus.store.projections.processes import TABLE_STATUSES
from burstbus.store.read import bursts as read_burst
from burstbus.store.read import lists as read_lists
from burstbus.store.read.rows import BurstRow, NoticeRow, ProcessRow, TriggerRow
from burstbus.store.read.where import (
    BURST_ORDERS,
    PROCESS_ORDERS,
    TRIGGER_ORDERS,
    BurstFilter,
    ProcessFilter,
    TriggerFilter,
)

__all__ = ["BURST_ORDERS", "PROCESS_ORDERS", "TRIGGER_ORDERS", "TRIGGER_STATES", "burst_detail", "bursts",
           "processes", "triggers"]  # fmt: skip


def _many(q: Mapping[str, Any], key: str) -> tuple[str, ...]:
    return tuple(q.get(key) or ())


#: The custom filter's keys (``status:failed obs:01 attitude``) and the columns they name.
CUSTOM_KEYS = {"process": "process", "pipeline": "pipeline", "burst": "burst_id", "burst_id": "burst_id",
               "obs": "obs_id", "obs_id": "obs_id", "pass": "pass_id", "pass_id": "pass_id", "status": "status",
               "reason": "reason", "by": "requested_by"}


def custom_filter(text: str | None) -> tuple[tuple[str, str], ...]:
    """The processes' custom filter (the page's and the API's ``q``): words, each found
    anywhere (names, ids, status, reason, last log line), and ``key:value`` terms; all must
    hold. Raises ValueError with the reason for an unknown key or status."""
    terms: list[tuple[str, str]] = []
    for word in (text or "").split()[:20]:
        key, sep, value = word.partition(":")
        if not sep or not value or "://" in word:
            terms.append(("", word))
            continue
        column = CUSTOM_KEYS.get(key.lower())
        if column is None:
            raise ValueError(f"unknown key {key!r} in the custom filter (known: {', '.join(sorted(CUSTOM_KEYS))})")
        if column == "status" and value.lower() not in TABLE_STATUSES:
            raise ValueError(f"status must be one of {', '.join(TABLE_STATUSES)}, not {value!r}")
        terms.append((column, value.lower() if column == "status" else value))
    return tuple(terms)


def process_json(row: ProcessRow) -> dict[str, Any]:
    return asdict(row)


def burst_json(row: BurstRow) -> dict[str, Any]:
    """A burst as the API shows it: the best position as one object (null without one)."""
    return {
        "burst_id": row.burst_id, "first_notice_at": row.first_notice_at, "last_notice_at": row.last_notice_at,
        "event_time": row.event_time, "notice_count": row.notice_count,
        "position": {"ra": row.ra, "dec": row.dec, "err": row.err, "ivorn": row.best_ivorn} if row.ra is not None else None,
        "instruments": list(row.instruments), "retracted": row.retracted,
        "first_seq": row.first_seq, "last_seq": row.last_seq,
    }  # fmt: skip


def notice_json(row: NoticeRow) -> dict[str, Any]:
    return asdict(row)


def trigger_json(row: TriggerRow) -> dict[str, Any]:
    return asdict(row)


def processes(conn: sqlite3.Connection, q: Mapping[str, Any], limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Process runs matching the orchestrator page's filters; (page, total matching)."""
    filters = ProcessFilter(
        date_from=q.get("date_from"), date_to=q.get("date_to"), since=q.get("since"), until=q.get("until"),
        process=_many(q, "process"), burst_id=_many(q, "burst_id"), obs_id=_many(q, "obs_id"),
        pass_id=_many(q, "pass_id"), status=_many(q, "status"), pipeline=_many(q, "pipeline"),
        terms=custom_filter(q.get("q")),
    )  # fmt: skip
    page = read_lists.processes(conn, filters, q.get("order") or "-updated_at", limit, offset)
    return [process_json(r) for r in page.rows], page.total


def bursts(conn: sqlite3.Connection, q: Mapping[str, Any], limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Bursts with notices in [since, until] (overlap), by id, instrument and flags."""
    filters = BurstFilter(since=q.get("since"), until=q.get("until"), burst_id=_many(q, "burst_id"),
                          instrument=_many(q, "instrument"), retracted=q.get("retracted"),
                          has_position=q.get("has_position"))  # fmt: skip
    page = read_lists.bursts(conn, filters, q.get("order") or "-last_notice_at", limit, offset)
    return [burst_json(r) for r in page.rows], page.total


def triggers(conn: sqlite3.Connection, q: Mapping[str, Any], limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Trigger requests and their outcome; empty while the ``triggers`` table does not exist."""
    filters = TriggerFilter(since=q.get("since"), until=q.get("until"), burst_id=_many(q, "burst_id"),
                            telescope=_many(q, "telescope"), state=_many(q, "state"),
                            requested_by=_many(q, "requested_by"))  # fmt: skip
    page = read_lists.triggers(conn, filters, q.get("order") or "-requested_at", limit, offset)
    return [trigger_json(r) for r in page.rows], page.total


def burst_detail(conn: sqlite3.Connection, burst_id: str) -> dict[str, Any] | None:
    """Everything the read models know about one burst, in the read side's order; None if unknown."""
    view = read_burst.burst_view(conn, burst_id)
    if view is None:
        return None
    found = burst_json(view.burst)
    found["notices"] = [notice_json(n) for n in view.notices]
    found["processes"] = [process_json(p) for p in view.processes]
    found["triggers"] = [trigger_json(t) for t in view.triggers]
    return found
