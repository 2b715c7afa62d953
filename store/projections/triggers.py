"""Trigger requests: one row per request, folded from the ``trigger.*`` events.

The workflow (``burstbus.bots.triggers``) decides from the log itself; this table is the read
model for listing (the bot's ``triggers`` command, the HTTP API, the web UI) and for finding
requests whose code has expired. The first decision wins, as in the log: a request leaves
``requested`` once (approved, denied or expired) and an approved one ends ``sent`` or
``failed`` — later events for it change nothing, so a replay gives the same rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from burstbus.events import RecordedEvent
from burstbus.store.projections.base import Projection, run_ddl

REQUESTED = "trigger.requested"
APPROVED = "trigger.approved"
DENIED = "trigger.denied"
EXPIRED = "trigger.expired"
SENT = "trigger.sent"
FAILED = "trigger.failed"
TRIGGER_TYPES = (REQUESTED, APPROVED, DENIED, EXPIRED, SENT, FAILED)
STATES = ("requested", "approved", "denied", "expired", "sent", "failed")


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


class TriggersProjection(Projection):
    name = "triggers"
    version = 1
    tables = ("triggers",)
    event_types = frozenset(TRIGGER_TYPES)

    def create(self, conn: sqlite3.Connection) -> None:
        run_ddl(conn,
            """
            CREATE TABLE IF NOT EXISTS triggers (
                request_id    TEXT PRIMARY KEY,
                telescope     TEXT NOT NULL,
                burst_id      TEXT NOT NULL,
                state         TEXT NOT NULL,
                requested_by  TEXT NOT NULL,
                requested_at  TEXT NOT NULL,
                note          TEXT,
                params        TEXT NOT NULL,
                two_person    INTEGER NOT NULL,
                expires_at    TEXT,
                approved_by   TEXT, approved_at TEXT,
                denied_by     TEXT, denied_at   TEXT,
                reason        TEXT,
                sent_at       TEXT,
                voevent_ivorn TEXT,
                first_seq     INTEGER NOT NULL,
                last_seq      INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS triggers_burst ON triggers (burst_id);
            CREATE INDEX IF NOT EXISTS triggers_requested ON triggers (requested_at);
            """
        )

    def apply(self, conn: sqlite3.Connection, records: Sequence[RecordedEvent]) -> None:
        for record in records:
            data = record.data
            request_id = data.get("request_id")
            if not isinstance(request_id, str) or not request_id:
                continue
            kind = record.type
            if kind == REQUESTED:
                conn.execute(
                    "INSERT OR IGNORE INTO triggers (request_id, telescope, burst_id, state, requested_by, "
                    "requested_at, note, params, two_person, expires_at, first_seq, last_seq) "
                    "VALUES (?,?,?,'requested',?,?,?,?,?,?,?,?)",
                    (
                        request_id, str(data.get("telescope", "")), str(data.get("burst_id", "")),
                        str(data.get("requested_by", "")), record.occurred_at, _text(data.get("note")),
                        json.dumps(data.get("params") or {}, sort_keys=True, separators=(",", ":")),
                        1 if data.get("two_person") else 0, _text(data.get("expires_at")), record.seq, record.seq,
                    ),
                )
            elif kind == APPROVED:
                conn.execute(
                    "UPDATE triggers SET state = 'approved', approved_by = ?, approved_at = ?, last_seq = ? "
                    "WHERE request_id = ? AND state = 'requested'",
                    (_text(data.get("approved_by")), record.occurred_at, record.seq, request_id),
                )
            elif kind == DENIED:
                conn.execute(
                    "UPDATE triggers SET state = 'denied', denied_by = ?, denied_at = ?, reason = ?, last_seq = ? "
                    "WHERE request_id = ? AND state = 'requested'",
                    (_text(data.get("denied_by")), record.occurred_at, _text(data.get("reason")), record.seq, request_id),
                )
            elif kind == EXPIRED:
                conn.execute(
                    "UPDATE triggers SET state = 'expired', last_seq = ? WHERE request_id = ? AND state = 'requested'",
                    (record.seq, request_id),
                )
            elif kind == SENT:
                conn.execute(
                    "UPDATE triggers SET state = 'sent', sent_at = ?, voevent_ivorn = ?, last_seq = ? "
                    "WHERE request_id = ? AND state = 'approved'",
                    (record.occurred_at, _text(data.get("voevent_ivorn")), record.seq, request_id),
                )
            elif kind == FAILED:
                conn.execute(
                    "UPDATE triggers SET state = 'failed', reason = ?, voevent_ivorn = ?, last_seq = ? "
                    "WHERE request_id = ? AND state = 'approved'",
                    (_text(data.get("reason")), _text(data.get("voevent_ivorn")), record.seq, request_id),
                )
