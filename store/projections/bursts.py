"""Bursts: one row per burst, from ``burst.identified`` events only.

The burst identifier (``burstbus.handlers.bursts``) decides which burst a notice belongs to
and records that decision, with the notice's facts, in a ``burst.identified`` event. This
projection just folds those events, so it is a pure function of the log and a replay gives
the same bursts even if the identification rules change later.

``burst_aliases`` keeps the other names of a burst (a decision's ``alias``: the SVOM
``Burst_Id`` of a notice that joined a Fermi burst by coincidence), so that what a BA types
(``sb26051102``) finds the burst it became part of.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from burstbus.catalogue import BURST_IDENTIFIED
from burstbus.events import RecordedEvent
from burstbus.store.projections.base import Projection, run_ddl


def _better(err: float | None, best_err: float | None, has_best: bool) -> bool:
    """Is a position with error ``err`` better than the current best? Smaller error wins;
    any position beats none; a known error beats an unknown one."""
    if not has_best:
        return True
    if err is None:
        return False
    return best_err is None or err < best_err


class BurstsProjection(Projection):
    name = "bursts"
    version = 2
    tables = ("bursts", "burst_notices", "burst_aliases")
    event_types = frozenset({BURST_IDENTIFIED})

    def create(self, conn: sqlite3.Connection) -> None:
        run_ddl(conn,
            """
            CREATE TABLE IF NOT EXISTS bursts (
                burst_id        TEXT PRIMARY KEY,
                first_notice_at TEXT NOT NULL,
                last_notice_at  TEXT NOT NULL,
                event_time      TEXT,
                ra              REAL,
                dec             REAL,
                err             REAL,
                best_ivorn      TEXT,
                notice_count    INTEGER NOT NULL,
                instruments     TEXT NOT NULL,
                retracted       INTEGER NOT NULL,
                first_seq       INTEGER NOT NULL,
                last_seq        INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS bursts_last ON bursts (last_notice_at);
            CREATE TABLE IF NOT EXISTS burst_notices (
                ivorn      TEXT PRIMARY KEY,
                burst_id   TEXT NOT NULL,
                seq        INTEGER NOT NULL,
                rule       TEXT NOT NULL,
                notice_at  TEXT NOT NULL,
                instrument TEXT,
                ra         REAL,
                dec        REAL,
                err        REAL,
                retraction INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS burst_notices_burst ON burst_notices (burst_id, seq);
            CREATE TABLE IF NOT EXISTS burst_aliases (
                alias    TEXT PRIMARY KEY,
                burst_id TEXT NOT NULL,
                seq      INTEGER NOT NULL
            );
            """
        )

    def apply(self, conn: sqlite3.Connection, records: Sequence[RecordedEvent]) -> None:
        for record in records:
            data = record.data
            if data.get("burst_id") in (None, "") or data.get("ivorn") in (None, ""):
                continue  # not a decision this table can hold: skipped alike live and in a rebuild
            burst_id = str(data["burst_id"])
            ivorn = str(data["ivorn"])
            found = data.get("notice")
            notice: dict[str, Any] = found if isinstance(found, dict) else {}
            if conn.execute("SELECT 1 FROM burst_notices WHERE ivorn = ?", (ivorn,)).fetchone():
                continue  # a notice belongs to one burst: the first decision stands
            alias = data.get("alias")
            if isinstance(alias, str) and alias and alias != burst_id:  # the first name given stands
                conn.execute("INSERT OR IGNORE INTO burst_aliases (alias, burst_id, seq) VALUES (?,?,?)",
                             (alias, burst_id, record.seq))
            notice_at = str(notice.get("notice_at") or record.occurred_at)
            ra, dec, err = notice.get("ra"), notice.get("dec"), notice.get("err")
            instrument = notice.get("instrument")
            retraction = 1 if notice.get("retraction") else 0
            conn.execute(
                "INSERT INTO burst_notices (ivorn, burst_id, seq, rule, notice_at, instrument, ra, dec, err, retraction) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                (ivorn, burst_id, record.seq, str(data.get("rule", "")), notice_at, instrument, ra, dec, err, retraction),
            )
            row = conn.execute(
                "SELECT first_notice_at, last_notice_at, event_time, ra, err, notice_count, instruments, retracted "
                "FROM bursts WHERE burst_id = ?",
                (burst_id,),
            ).fetchone()
            event_time = notice.get("event_time")
            if row is None:
                conn.execute(
                    "INSERT INTO bursts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        burst_id, notice_at, notice_at, event_time, ra, dec, err, ivorn if ra is not None else None,
                        1, json.dumps(sorted({instrument} - {None})), retraction, record.seq, record.seq,
                    ),
                )
                continue
            first_at, last_at, known_time, best_ra, best_err, count, instruments, retracted = row
            names = set(json.loads(instruments))
            if instrument:
                names.add(instrument)
            conn.execute(
                "UPDATE bursts SET first_notice_at = ?, last_notice_at = ?, event_time = ?, notice_count = ?, "
                "instruments = ?, retracted = ?, last_seq = ? WHERE burst_id = ?",
                (
                    min(first_at, notice_at), max(last_at, notice_at),
                    min(t for t in (known_time, event_time) if t) if (known_time or event_time) else None,
                    count + 1, json.dumps(sorted(names)), max(retracted, retraction), record.seq, burst_id,
                ),
            )
            if ra is not None and _better(err, best_err, best_ra is not None):
                conn.execute(
                    "UPDATE bursts SET ra = ?, dec = ?, err = ?, best_ivorn = ? WHERE burst_id = ?",
                    (ra, dec, err, ivorn, burst_id),
                )
