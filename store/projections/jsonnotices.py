"""JSON notices (``notice.accepted``: LVK, Einstein Probe, IceCube … from Kafka): one row each.

The voeventdb archive is 4pisky's schema and serves ``/apiv1`` to ``voeventdb.remote``
clients, which expect VOEvents: a JSON notice has no IVORN, no XML and no citations, so it
gets its own small table beside it rather than rows that would break those clients. The
notices pages and ``/api/notices/json`` list it; the exact bytes stay in the log (``id`` is the
seq of the ``notice.accepted`` event, as ``voevent.id`` is for VOEvents). ``key`` is the
notice's identity among notices (``burstbus.notices.notice_key``: ``<topic>#<notice id>``),
the same text the burst identifier's decisions and ``burst_notices`` use, so a notice and its
burst join on it.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from typing import Any, ClassVar

from burstbus.catalogue import NOTICE_ACCEPTED
from burstbus.events import RecordedEvent
from burstbus.store.projections.base import Projection, run_ddl

_INSERT = (
    "INSERT OR IGNORE INTO json_notice (id, key, notice_id, topic, schema, role, mission, instrument, event_time, "
    "authored, received, ra, dec, err, superevent_id, alert_type, sha256, size) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def _text(value: Any, limit: int = 200) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def notice_key(data: Any) -> str:
    """As ``burstbus.notices.notice_key`` for a JSON notice (the store imports no core module
    above it, so the rule is restated: ``<topic>#<notice id or digest>``)."""
    return f"{data.get('topic') or 'json'}#{data.get('notice_id') or data.get('sha256') or ''}"


class JsonNoticesProjection(Projection):
    """``notice.accepted`` → ``json_notice`` rows."""

    name: ClassVar[str] = "json_notices"
    version: ClassVar[int] = 1
    tables: ClassVar[tuple[str, ...]] = ("json_notice",)
    event_types: ClassVar[frozenset[str]] = frozenset({NOTICE_ACCEPTED})

    def create(self, conn: sqlite3.Connection) -> None:
        run_ddl(conn,
            """
            CREATE TABLE IF NOT EXISTS json_notice (
                id            INTEGER PRIMARY KEY,  -- the log seq of its notice.accepted event
                key           TEXT NOT NULL,        -- <topic>#<notice id>: burst_notices.ivorn
                notice_id     TEXT NOT NULL,
                topic         TEXT NOT NULL,
                schema        TEXT,
                role          TEXT,
                mission       TEXT,
                instrument    TEXT,
                event_time    TEXT,
                authored      TEXT,
                received      TEXT NOT NULL,        -- the log's recorded_at
                ra            REAL,
                dec           REAL,
                err           REAL,
                superevent_id TEXT,
                alert_type    TEXT,
                sha256        TEXT,
                size          INTEGER
            );
            CREATE INDEX IF NOT EXISTS json_notice_key ON json_notice (key);
            CREATE INDEX IF NOT EXISTS json_notice_topic ON json_notice (topic, id);
            CREATE INDEX IF NOT EXISTS json_notice_superevent ON json_notice (superevent_id);
            """
        )

    def apply(self, conn: sqlite3.Connection, records: Sequence[RecordedEvent]) -> None:
        rows: list[tuple[Any, ...]] = []
        for record in records:
            data = record.data
            topic = _text(data.get("topic"), 249)
            if record.type != NOTICE_ACCEPTED or not topic:
                continue  # not a notice this table can hold: skipped alike live and in a rebuild
            found = data.get("position")
            position: dict[str, Any] = found if isinstance(found, dict) else {}
            ra, dec = _number(position.get("ra")), _number(position.get("dec"))
            if ra is None or dec is None or not (-90.0 <= dec <= 90.0):
                ra = dec = None
            lvk: dict[str, Any] = data["lvk"] if isinstance(data.get("lvk"), dict) else {}
            params: dict[str, Any] = data["params"] if isinstance(data.get("params"), dict) else {}
            size = data.get("size")
            rows.append((
                record.seq, notice_key(data), _text(data.get("notice_id")) or "", topic, _text(data.get("schema")),
                _text(data.get("role"), 20), _text(data.get("mission"), 40), _text(data.get("instrument"), 40),
                _text(data.get("time"), 40), _text(data.get("authored"), 40), record.recorded_at,
                ra, dec, _number(position.get("err")) if ra is not None else None,
                _text(lvk.get("superevent_id") or params.get("GraceID"), 40), _text(lvk.get("alert_type") or params.get("AlertType"), 40),
                _text(data.get("sha256"), 64), size if isinstance(size, int) and not isinstance(size, bool) else None,
            ))
        if rows:
            conn.executemany(_INSERT, rows)
