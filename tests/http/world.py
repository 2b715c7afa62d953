"""A small burstbus world behind a real HTTP server, for the ``/api`` tests.

The conftest corpus of notices, the real burst identifier (so ``burst.identified`` events and
the bursts projection are what the service would make), pipeline ``process.status`` events as
the NATS inbound bridge appends them, and trigger requests. Triggers are rows written into the
triggers projection's own table, so these tests do not depend on the trigger workflow.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from burstbus.events import Event
from burstbus.handlers.bursts import BurstIdentifier
from burstbus.state import StateStore
from burstbus.store.projections.triggers import TriggersProjection
from tests.http.conftest import Archive, corpus, open_archive


def t(day: int, hour: int = 1, minute: int = 0) -> str:
    return f"2026-11-{day:02d}T{hour:02d}:{minute:02d}:00.000000Z"


#: (process, burst_id, obs_id, pass_id, pipeline, status, day, hour)
PROCESS_EVENTS = [
    ("obtloc", "sb26112000", "obs1", "1", "fsc", "queued", 20, 1),
    ("obtloc", "sb26112000", "obs1", "1", "fsc", "running", 20, 2),
    ("obtloc", "sb26112000", "obs1", "1", "fsc", "complete", 20, 3),
    ("grb-pipeline", "sb26112001", "obs1", "2", "csc", "running", 21, 1),
    ("grb-pipeline", "sb26112001", "obs1", "2", "csc", "failed", 21, 2),
    ("obtloc", "sb26112002", "obs2", "1", "fsc", "queued", 22, 5),
    ("lightcurve", "", "", "", "fsc", "running", 22, 6),
]
#: What the processes table must hold afterwards: id → (status, date, attempts).
PROCESSES = {
    "obtloc/sb26112000/obs1/1": ("complete", "2026-11-20", 1),
    "grb-pipeline/sb26112001/obs1/2": ("failed", "2026-11-21", 1),
    "obtloc/sb26112002/obs2/1": ("queued", "2026-11-22", 0),
    "lightcurve/-/-/-": ("running", "2026-11-22", 1),
}

TRIGGERS: list[dict[str, Any]] = [
    {"request_id": "a" * 32, "telescope": "colibri", "burst_id": "sb26112001", "state": "sent",
     "requested_by": "alice@fsc.example", "requested_at": t(21, 3), "note": "bright", "params": {"exposure": 60},
     "two_person": 1, "expires_at": t(21, 4), "approved_by": "bob@fsc.example", "approved_at": t(21, 3, 5),
     "sent_at": t(21, 3, 6), "voevent_ivorn": "ivo://org.svom/fsc#trigger-1", "first_seq": 1000, "last_seq": 1003},
    {"request_id": "b" * 32, "telescope": "gft", "burst_id": "sb26112001", "state": "denied",
     "requested_by": "carol@fsc.example", "requested_at": t(21, 5), "note": None, "params": {},
     "two_person": 0, "expires_at": t(21, 6), "denied_by": "bob@fsc.example", "denied_at": t(21, 5, 2),
     "reason": "too low", "first_seq": 1004, "last_seq": 1005},
    {"request_id": "c" * 32, "telescope": "colibri", "burst_id": "sb26112002", "state": "requested",
     "requested_by": "alice@fsc.example", "requested_at": t(22, 7), "note": "x'); DROP TABLE triggers; --",
     "params": {"filter": "r"}, "two_person": 1, "expires_at": t(22, 8), "first_seq": 1006, "last_seq": 1006},
]  # fmt: skip


def write_triggers(path: Path, rows: list[dict[str, Any]]) -> None:
    conn = sqlite3.connect(path)
    try:
        TriggersProjection().create(conn)
        conn.execute("DELETE FROM triggers")
        for row in rows:
            row = {**row, "params": json.dumps(row["params"])}
            keys = ",".join(row)
            conn.execute(f"INSERT INTO triggers ({keys}) VALUES ({','.join('?' * len(row))})", list(row.values()))
        conn.commit()
    finally:
        conn.close()


async def open_world(tmp: Path, **app_options: Any) -> Archive:
    archive = await open_archive(tmp, corpus(), **app_options)
    state = await StateStore.open(tmp / "state.sqlite")
    try:
        identifier = BurstIdentifier(archive.log, state)
        await identifier.start()
        await identifier.catch_up()
    finally:
        await state.close()
    events = [
        Event("process.status", {"process": p, "burst_id": b or None, "obs_id": o or None, "pass_id": s or None,
                                  "pipeline": pipe, "status": status, "log": f"step {status}\nlast line of {p}"},
              stream=b, actor="nats:burstbus.in.process", occurred_at=t(day, hour))
        for p, b, o, s, pipe, status, day, hour in PROCESS_EVENTS
    ]  # fmt: skip
    await archive.log.append(events)
    await archive.project()
    write_triggers(archive.projections_path, TRIGGERS)
    return archive
