"""The orchestrator's process table: one row per process run, and its latest state.

Two kinds of rows, one table:

* **runs the orchestrator started** (``process.requested``): keyed by the run id (every
  attempt of the run is the same row); ``attempts`` is the current attempt's number, and
  ``idling`` (``process.idling``: waiting for part of its inputs) comes before ``queued``.
  A status applies to the attempt it names (``request_id``), or without one to the newest
  run with its (process, burst, obs, pass). As in the orchestrator's own fold
  (``handlers/orchestrator/runs.py``), a status for an older attempt, for an ended attempt,
  or recorded after the attempt's deadline (``timeout`` past its last sign of life: it had
  vanished) changes nothing; ``process.gave_up`` leaves the run ``failed`` with the reason.
* **runs reported only by their pipeline** (statuses with no orchestrated run): keyed by
  (process, burst id, obs id, pass id), as before the orchestrator; ``attempts`` counts the
  times the run entered ``running``; the latest status, pipeline and log line win.

Side tables with primary keys only (they are kept during a rebuild, when explicit indexes are
dropped): ``process_requests`` (request id → run, attempt, timeout) and ``process_keys``
(process/burst/obs/pass → the newest orchestrated run).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from burstbus.catalogue import (
    PROCESS_DISPATCHED,
    PROCESS_GAVE_UP,
    PROCESS_IDLING,
    PROCESS_REQUESTED,
    PROCESS_RETRY_REQUESTED,
    PROCESS_STATUS,
)
from burstbus.events import RecordedEvent, format_time, parse_time
from burstbus.store.projections.base import Projection, run_ddl

#: What a pipeline reports (``process.status``).
STATUSES = ("queued", "running", "complete", "failed", "vanished")
#: What the table shows: a run waiting for part of its inputs is ``idling``.
TABLE_STATUSES = ("idling", *STATUSES)
_ENDED = ("complete", "failed", "vanished")
ORCHESTRATOR = "system:orchestrator"


def process_id(process: str, burst_id: str, obs_id: str, pass_id: str) -> str:
    """The stable key of a process run, as used in events and the API."""
    return "/".join((process, burst_id or "-", obs_id or "-", pass_id or "-"))


def process_key(data: Mapping[str, Any]) -> str:
    return process_id(str(data.get("process", "")), str(data.get("burst_id") or ""), str(data.get("obs_id") or ""), str(data.get("pass_id") or ""))


def last_line(text: Any) -> str | None:
    """The last non-blank line of a log excerpt (what fits in a table cell)."""
    if not text:
        return None
    lines = [line for line in str(text).splitlines() if line.strip()]
    return lines[-1][:500] if lines else None


class ProcessesProjection(Projection):
    name = "processes"
    version = 2
    tables = ("processes", "process_requests", "process_keys")
    event_types = frozenset({PROCESS_STATUS, PROCESS_RETRY_REQUESTED, PROCESS_REQUESTED, PROCESS_IDLING,
                             PROCESS_DISPATCHED, PROCESS_GAVE_UP})

    def create(self, conn: sqlite3.Connection) -> None:
        run_ddl(conn,
            """
            CREATE TABLE IF NOT EXISTS processes (
                id              TEXT PRIMARY KEY,
                date            TEXT NOT NULL,
                process         TEXT NOT NULL,
                burst_id        TEXT,
                obs_id          TEXT,
                pass_id         TEXT,
                pipeline        TEXT,
                status          TEXT NOT NULL,
                attempts        INTEGER NOT NULL,
                last_log        TEXT,
                first_seen      TEXT NOT NULL,
                updated_at      TEXT NOT NULL,
                retry_requested INTEGER,
                last_seq        INTEGER NOT NULL,
                run_id          TEXT,
                request_id      TEXT,
                reason          TEXT,
                requested_by    TEXT,
                deadline        TEXT
            );
            CREATE INDEX IF NOT EXISTS processes_burst ON processes (burst_id);
            CREATE INDEX IF NOT EXISTS processes_status ON processes (status, updated_at);
            CREATE INDEX IF NOT EXISTS processes_date ON processes (date);
            CREATE TABLE IF NOT EXISTS process_requests (
                request_id TEXT PRIMARY KEY,
                run_id     TEXT NOT NULL,
                attempt    INTEGER NOT NULL,
                timeout    REAL NOT NULL
            );
            CREATE TABLE IF NOT EXISTS process_keys (
                key    TEXT PRIMARY KEY,
                run_id TEXT NOT NULL
            );
            """
        )

    def apply(self, conn: sqlite3.Connection, records: Sequence[RecordedEvent]) -> None:
        for record in records:
            try:
                _APPLY[record.type](conn, record)
            except (KeyError, TypeError, ValueError):
                continue  # an event of odd shape (written by hand): skipped the same way in a rebuild


_RUN_COLUMNS = ("status", "attempts", "request_id", "deadline", "updated_at")


def _run(conn: sqlite3.Connection, run_id: str) -> dict[str, Any] | None:
    row = conn.execute(f"SELECT {', '.join(_RUN_COLUMNS)} FROM processes WHERE id = ? AND run_id IS NOT NULL",
                       (run_id,)).fetchone()
    return None if row is None else dict(zip(_RUN_COLUMNS, row, strict=True))


def _keyed_run(conn: sqlite3.Connection, data: Mapping[str, Any]) -> str | None:
    """The orchestrated run an event without ``run_id`` is about: the newest with its key."""
    if data.get("run_id"):
        return str(data["run_id"])
    row = conn.execute("SELECT run_id FROM process_keys WHERE key = ?", (process_key(data),)).fetchone()
    return None if row is None else str(row[0])


def _later(moment: str, seconds: float) -> str:
    return format_time(parse_time(moment) + timedelta(seconds=seconds))


def _apply_idling(conn: sqlite3.Connection, record: RecordedEvent) -> None:
    d = record.data
    run_id = str(d["run_id"])
    if conn.execute("SELECT 1 FROM processes WHERE id = ?", (run_id,)).fetchone() is None:
        conn.execute(
            "INSERT INTO processes (id, date, process, burst_id, obs_id, pass_id, pipeline, status, attempts, last_log, "
            "first_seen, updated_at, retry_requested, last_seq, run_id, request_id, reason, requested_by, deadline) "
            "VALUES (?,?,?,?,?,?,?,'idling',0,NULL,?,?,NULL,?,?,NULL,?,?,NULL)",
            (run_id, record.occurred_at[:10], str(d["process"]), d.get("burst_id"), d.get("obs_id"), d.get("pass_id"),
             d.get("pipeline"), record.occurred_at, record.occurred_at, record.seq, run_id, d.get("reason"),
             d.get("requested_by")),
        )
        return
    conn.execute("UPDATE processes SET reason = ?, updated_at = ?, last_seq = ? WHERE id = ? AND status = 'idling'",
                 (d.get("reason"), record.occurred_at, record.seq, run_id))


def _apply_requested(conn: sqlite3.Connection, record: RecordedEvent) -> None:
    d = record.data
    run_id, attempt, timeout = str(d["run_id"]), int(d["attempt"]), float(d.get("timeout") or 600.0)
    if conn.execute("SELECT 1 FROM process_requests WHERE request_id = ?", (record.id,)).fetchone() is not None:
        return
    conn.execute("INSERT INTO process_requests (request_id, run_id, attempt, timeout) VALUES (?,?,?,?)",
                 (record.id, run_id, attempt, timeout))
    deadline = _later(record.recorded_at, timeout)
    current = _run(conn, run_id)
    if current is None or int(current["attempts"]) == 0:  # a new run (or one that idled): the newest with its key
        conn.execute("INSERT INTO process_keys (key, run_id) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET run_id = excluded.run_id",
                     (process_key(d), run_id))
    if current is None:
        conn.execute(
            "INSERT INTO processes (id, date, process, burst_id, obs_id, pass_id, pipeline, status, attempts, last_log, "
            "first_seen, updated_at, retry_requested, last_seq, run_id, request_id, reason, requested_by, deadline) "
            "VALUES (?,?,?,?,?,?,?,'queued',?,NULL,?,?,NULL,?,?,?,?,?,?)",
            (run_id, record.occurred_at[:10], str(d["process"]), d.get("burst_id"), d.get("obs_id"), d.get("pass_id"),
             d.get("pipeline"), attempt, record.occurred_at, record.occurred_at, record.seq, run_id, record.id,
             d.get("reason"), d.get("requested_by"), deadline),
        )
        return
    if attempt < int(current["attempts"]):
        return
    conn.execute(
        "UPDATE processes SET status = 'queued', attempts = ?, request_id = ?, reason = ?, retry_requested = NULL, "
        "deadline = ?, updated_at = ?, last_seq = ? WHERE id = ?",
        (attempt, record.id, d.get("reason"), deadline, record.occurred_at, record.seq, run_id),
    )


def _current_attempt(conn: sqlite3.Connection, request_id: str) -> tuple[str, float] | None:
    """(run id, timeout) of an attempt that is its run's current one, else None (older or unknown)."""
    row = conn.execute(
        "SELECT r.run_id, r.timeout FROM process_requests r JOIN processes p ON p.id = r.run_id AND p.request_id = r.request_id "
        "WHERE r.request_id = ?", (request_id,)).fetchone()
    return None if row is None else (str(row[0]), float(row[1]))


def _alive(conn: sqlite3.Connection, run_id: str, timeout: float, record: RecordedEvent) -> bool:
    """A sign of life for the run's current attempt: on time (deadline moved), or not counted."""
    current = _run(conn, run_id)
    if current is None or current["status"] in _ENDED or (current["deadline"] and record.recorded_at > current["deadline"]):
        return False
    conn.execute("UPDATE processes SET deadline = ? WHERE id = ?", (_later(record.recorded_at, timeout), run_id))
    return True


def _apply_dispatched(conn: sqlite3.Connection, record: RecordedEvent) -> None:
    d = record.data
    found = _current_attempt(conn, str(d["request_id"]))
    if found is None or not _alive(conn, found[0], found[1], record):
        return
    if d.get("outcome") == "refused":
        conn.execute("UPDATE processes SET status = 'failed', reason = ?, updated_at = ?, last_seq = ? WHERE id = ?",
                     (f"dispatch refused: {d.get('detail') or 'no reason given'}", record.occurred_at, record.seq, found[0]))
    else:
        conn.execute("UPDATE processes SET updated_at = ?, last_seq = ? WHERE id = ?", (record.occurred_at, record.seq, found[0]))


def _apply_status(conn: sqlite3.Connection, record: RecordedEvent) -> None:
    d = record.data
    status = str(d["status"])
    if d.get("request_id"):
        found = _current_attempt(conn, str(d["request_id"]))
        if found is None:
            if conn.execute("SELECT 1 FROM process_requests WHERE request_id = ?", (str(d["request_id"]),)).fetchone():
                return  # an older attempt's status: late
            _apply_reported(conn, record)
            return
    else:
        run_id = _keyed_run(conn, d)
        if run_id is None:
            _apply_reported(conn, record)
            return
        current = _run(conn, run_id)
        if current is None or not current["request_id"]:
            return
        found = _current_attempt(conn, str(current["request_id"]))
        if found is None:
            return
    run_id, timeout = found
    if record.actor == ORCHESTRATOR and status == "vanished":
        current = _run(conn, run_id)
        if current is not None and current["status"] not in ("complete", "failed"):
            conn.execute("UPDATE processes SET status = 'vanished', reason = ?, last_log = COALESCE(?, last_log), "
                         "updated_at = ?, last_seq = ? WHERE id = ?",
                         (last_line(d.get("log")), last_line(d.get("log")), record.occurred_at, record.seq, run_id))
        return
    if not _alive(conn, run_id, timeout, record):
        return
    conn.execute(
        "UPDATE processes SET status = ?, pipeline = COALESCE(?, pipeline), last_log = COALESCE(?, last_log), "
        "reason = CASE WHEN ? IN ('failed', 'vanished') THEN COALESCE(?, ?) ELSE reason END, "
        "updated_at = ?, last_seq = ? WHERE id = ?",
        (status, d.get("pipeline"), last_line(d.get("log")), status, last_line(d.get("log")), status,
         record.occurred_at, record.seq, run_id),
    )


def _apply_reported(conn: sqlite3.Connection, record: RecordedEvent) -> None:
    """A status of a run the orchestrator did not start: the row its pipeline's ids name."""
    data = record.data
    key = process_key(data)
    status = str(data["status"])
    row = conn.execute("SELECT status, attempts FROM processes WHERE id = ?", (key,)).fetchone()
    if row is None:
        attempts = 1 if status in ("running", "complete", "failed") else 0
        conn.execute(
            "INSERT INTO processes (id, date, process, burst_id, obs_id, pass_id, pipeline, status, attempts, "
            "last_log, first_seen, updated_at, retry_requested, last_seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,NULL,?)",
            (
                key, record.occurred_at[:10], data["process"], data.get("burst_id"), data.get("obs_id"),
                data.get("pass_id"), data.get("pipeline"), status, attempts, last_line(data.get("log")),
                record.occurred_at, record.occurred_at, record.seq,
            ),
        )
        return
    previous, attempts = row
    if status == "running" and previous != "running":
        attempts += 1
    elif attempts == 0 and status in ("complete", "failed"):
        attempts = 1
    conn.execute(
        "UPDATE processes SET status = ?, attempts = ?, pipeline = COALESCE(?, pipeline), "
        "last_log = COALESCE(?, last_log), updated_at = ?, last_seq = ?, "
        "retry_requested = CASE WHEN ? = 'running' THEN NULL ELSE retry_requested END WHERE id = ?",
        (status, attempts, data.get("pipeline"), last_line(data.get("log")), record.occurred_at, record.seq, status, key),
    )


def _apply_retry(conn: sqlite3.Connection, record: RecordedEvent) -> None:
    d = record.data
    run_id = _keyed_run(conn, d)
    if run_id is not None and _run(conn, run_id) is not None:
        conn.execute("UPDATE processes SET retry_requested = ?, reason = COALESCE(?, reason), updated_at = ?, last_seq = ? "
                     "WHERE id = ?", (int(d.get("attempt") or 0) or None, d.get("reason"), record.occurred_at, record.seq, run_id))
        return
    key = process_key(d)
    row = conn.execute("SELECT attempts FROM processes WHERE id = ?", (key,)).fetchone()
    if row is not None:
        conn.execute(
            "UPDATE processes SET retry_requested = ?, updated_at = ?, last_seq = ? WHERE id = ?",
            (int(d.get("attempt") or row[0] + 1), record.occurred_at, record.seq, key),
        )


def _apply_gave_up(conn: sqlite3.Connection, record: RecordedEvent) -> None:
    d = record.data
    conn.execute("UPDATE processes SET status = 'failed', reason = ?, retry_requested = NULL, updated_at = ?, last_seq = ? "
                 "WHERE id = ? AND run_id IS NOT NULL", (d.get("reason"), record.occurred_at, record.seq, str(d["run_id"])))


_APPLY = {
    PROCESS_STATUS: _apply_status,
    PROCESS_RETRY_REQUESTED: _apply_retry,
    PROCESS_REQUESTED: _apply_requested,
    PROCESS_IDLING: _apply_idling,
    PROCESS_DISPATCHED: _apply_dispatched,
    PROCESS_GAVE_UP: _apply_gave_up,
}
