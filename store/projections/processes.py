"""The orchestrator's process table, from ``process.status`` and ``process.retry_requested``.

One row per process run, keyed by (process, burst id, obs id, pass id) — the identity the
science centre's orchestrator uses. ``attempts`` counts the times the run entered
``running``; the latest status, pipeline and log line win.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from burstbus.catalogue import PROCESS_RETRY_REQUESTED, PROCESS_STATUS
from burstbus.events import RecordedEvent
from burstbus.store.projections.base import Projection, run_ddl

STATUSES = ("queued", "running", "complete", "failed", "vanished")


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
    version = 1
    tables = ("processes",)
    event_types = frozenset({PROCESS_STATUS, PROCESS_RETRY_REQUESTED})

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
                last_seq        INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS processes_burst ON processes (burst_id);
            CREATE INDEX IF NOT EXISTS processes_status ON processes (status, updated_at);
            CREATE INDEX IF NOT EXISTS processes_date ON processes (date);
            """
        )

    def apply(self, conn: sqlite3.Connection, records: Sequence[RecordedEvent]) -> None:
        for record in records:
            data = record.data
            key = process_key(data)
            row = conn.execute("SELECT status, attempts FROM processes WHERE id = ?", (key,)).fetchone()
            if record.type == PROCESS_RETRY_REQUESTED:
                if row is not None:
                    conn.execute(
                        "UPDATE processes SET retry_requested = ?, updated_at = ?, last_seq = ? WHERE id = ?",
                        (int(data.get("attempt") or row[1] + 1), record.occurred_at, record.seq, key),
                    )
                continue
            status = str(data["status"])
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
                continue
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
