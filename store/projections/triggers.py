"""Trigger requests: one row per request, folded from the ``trigger.*`` events.

The workflow (``burstbus.handlers.triggers``) decides from the log itself; this table is the read
model for listing (the bot's ``triggers`` command, the HTTP API, the web UI) and for finding
requests whose code has expired. The first decision wins, as in the log: a request leaves
``requested`` once (approved, denied or expired) and an approved one becomes ``sent`` or
``failed``; after that the telescope's own packets move it forward only (acknowledged,
observing, observed, data uploaded; ``unacknowledged`` when it said nothing in time) — events
the table does not allow change nothing, so a replay gives the same rows. The state
machine is the catalogue's table (:data:`burstbus.catalogue.TRIGGER_TRANSITIONS`), the one
the workflow folds with too.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from burstbus.catalogue import (
    TRIGGER_ACKNOWLEDGED,
    TRIGGER_APPROVED,
    TRIGGER_DATA_UPLOADED,
    TRIGGER_DENIED,
    TRIGGER_EXPIRED,
    TRIGGER_FAILED,
    TRIGGER_OBSERVED,
    TRIGGER_OBSERVING,
    TRIGGER_REQUESTED,
    TRIGGER_SENT,
    TRIGGER_STATES,
    TRIGGER_TRANSITIONS,
    TRIGGER_TYPES,
    TRIGGER_UNACKNOWLEDGED,
)
from burstbus.events import RecordedEvent
from burstbus.store.projections.base import Projection, run_ddl

#: Re-exported for readers of this projection; the names live in the catalogue.
REQUESTED, APPROVED, DENIED, EXPIRED, SENT, FAILED = (
    TRIGGER_REQUESTED, TRIGGER_APPROVED, TRIGGER_DENIED, TRIGGER_EXPIRED, TRIGGER_SENT, TRIGGER_FAILED,
)
STATES = TRIGGER_STATES


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


#: What each transition writes beside the state (the state machine itself is the catalogue's).
_COLUMNS: dict[str, Callable[[RecordedEvent], dict[str, str | None]]] = {
    TRIGGER_APPROVED: lambda r: {"approved_by": _text(r.data.get("approved_by")), "approved_at": r.occurred_at},
    TRIGGER_DENIED: lambda r: {"denied_by": _text(r.data.get("denied_by")), "denied_at": r.occurred_at,
                               "reason": _text(r.data.get("reason"))},
    TRIGGER_EXPIRED: lambda r: {},
    TRIGGER_SENT: lambda r: {"sent_at": r.occurred_at, "voevent_ivorn": _text(r.data.get("voevent_ivorn"))},
    TRIGGER_FAILED: lambda r: {"reason": _text(r.data.get("reason")), "voevent_ivorn": _text(r.data.get("voevent_ivorn"))},
    # after delivery: what the telescope said (a packet citing the trigger), or its silence
    TRIGGER_UNACKNOWLEDGED: lambda r: {"unacknowledged_at": r.occurred_at},
    TRIGGER_ACKNOWLEDGED: lambda r: {"acknowledged_at": r.occurred_at},
    TRIGGER_OBSERVING: lambda r: {"observing_at": r.occurred_at},
    TRIGGER_OBSERVED: lambda r: {"observed_at": r.occurred_at},
    TRIGGER_DATA_UPLOADED: lambda r: {"data_uploaded_at": r.occurred_at, "data_location": _text(r.data.get("data_location"))},
}
#: Event type → the states it moves a request out of, and the state it moves it to.
_SOURCES: dict[str, tuple[str, ...]] = {
    kind: tuple(state for (state, k) in TRIGGER_TRANSITIONS if k == kind) for kind in _COLUMNS
}
_TARGET: dict[str, str] = {kind: target for (_, kind), target in TRIGGER_TRANSITIONS.items()}


class TriggersProjection(Projection):
    name = "triggers"
    version = 2  # 2: the telescope's steps after delivery (acknowledged … data uploaded)
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
                last_seq      INTEGER NOT NULL,
                unacknowledged_at TEXT,
                acknowledged_at   TEXT,
                observing_at      TEXT,
                observed_at       TEXT,
                data_uploaded_at  TEXT,
                data_location     TEXT
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
            elif kind in _COLUMNS:
                columns = _COLUMNS[kind](record)
                sources = _SOURCES[kind]
                assignments = "".join(f", {name} = ?" for name in columns)
                conn.execute(
                    f"UPDATE triggers SET state = ?{assignments}, last_seq = ? "
                    f"WHERE request_id = ? AND state IN ({', '.join(['?'] * len(sources))})",
                    (_TARGET[kind], *columns.values(), record.seq, request_id, *sources),
                )
