"""The process table for runs the orchestrator started: idling, queued, running, complete,
failed with the reason, vanished, retried, given up — and the same rows after a rebuild."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from burstbus.events import Event
from burstbus.handlers.orchestrator import ids
from burstbus.handlers.orchestrator.config import PipelinesSection
from burstbus.store.projections.processes import ProcessesProjection
from burstbus.store.projections.runner import ProjectionRunner
from burstbus.store.read.rows import ProcessRow
from burstbus.store.sqlite import SQLiteEventLog
from tests.handlers.orchestrator.history import (
    PIPELINES,
    ahead,
    data,
    dispatched,
    orchestrated_history,
    requested,
    settle,
    status,
)


async def table(log: SQLiteEventLog, path: Path, batch_size: int = 1000, rebuild: bool = False) -> dict[str, ProcessRow]:
    runner = await ProjectionRunner.open(path, [ProcessesProjection()])
    try:
        if rebuild:
            await runner.rebuild(log)
        else:
            await runner.catch_up(log, batch_size=batch_size)
        return {r[0]: ProcessRow.from_row(r) for r in (await runner.dump())["processes"]["processes"]}
    finally:
        await runner.close()


#: The pipelines with a timeout no busy machine reaches between two of the test's appends (the
#: shared ones time out after 0.05 s, for the vanishing tests; a status later than that is
#: rightly not counted, which made this test fail under load).
PATIENT = PipelinesSection(tuple(dataclasses.replace(p, timeout=300.0) for p in PIPELINES.pipelines))


async def test_a_run_shows_idling_queued_running_complete(tmp_path: Path) -> None:
    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    burst = "sb26112001"
    run = ids.run_id("ecl-loc", burst, None)
    await log.append([data(burst, "vhf.eclairs")])
    await settle(log, burst, pipelines=PATIENT)
    row = (await table(log, tmp_path / "a.sqlite"))[run]
    assert (row.status, row.attempts, row.reason, row.process, row.pipeline) == (
        "idling", 0, "waiting for vhf.attitude", "ecl-loc", "ecl-loc")
    await log.append([data(burst, "vhf.attitude")])
    ecl = requested(await settle(log, burst, pipelines=PATIENT), "ecl-loc")
    row = (await table(log, tmp_path / "b.sqlite"))[run]
    assert (row.status, row.attempts, row.request_id, row.run_id, row.reason) == ("queued", 1, ecl.id, run, "inputs ready")
    assert row.deadline is not None
    await log.append([dispatched(burst, ecl.id), status(burst, ecl.id, "running", "reading\n")])
    assert (await table(log, tmp_path / "c.sqlite"))[run].status == "running"
    await log.append([status(burst, ecl.id, "complete", "done")])
    row = (await table(log, tmp_path / "d.sqlite"))[run]
    assert (row.status, row.last_log) == ("complete", "done")
    await log.close()


async def test_retries_then_giving_up_leave_the_run_failed_with_the_reason(tmp_path: Path) -> None:
    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    burst = "sb26112002"
    run = ids.run_id("ecl-loc", burst, None)
    await log.append([data(burst, "vhf.eclairs"), data(burst, "vhf.attitude")])
    first = requested(await settle(log, burst), "ecl-loc")
    await log.append([dispatched(burst, first.id), status(burst, first.id, "failed", "IOError: no attitude")])
    await settle(log, burst)  # retried at once (backoff 0)
    row = (await table(log, tmp_path / "a.sqlite"))[run]
    assert (row.status, row.attempts) == ("queued", 2)
    assert row.reason == "retry: attempt 1 failed: IOError: no attitude"
    await log.append([status(burst, first.id, "complete", "the first attempt, late")])  # an older attempt: ignored
    assert (await table(log, tmp_path / "b.sqlite"))[run].status == "queued"
    for _ in range(3):
        await settle(log, burst, ahead(3600))  # the second and third attempts vanish
    row = (await table(log, tmp_path / "c.sqlite"))[run]
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.reason is not None and row.reason.startswith("attempt 3 of 3 vanished: no sign of life")
    await log.close()


async def test_a_refused_dispatch_and_a_status_without_request_id(tmp_path: Path) -> None:
    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    burst = "sb26112003"
    await log.append([data(burst, "vhf.mxt", obs_id="07")])
    mxt = requested(await settle(log, burst), "mxt-loc")
    await log.append([dispatched(burst, mxt.id, "refused")])
    row = (await table(log, tmp_path / "a.sqlite"))[ids.run_id("mxt-loc", burst, "07")]
    assert (row.status, row.reason, row.obs_id) == ("failed", "dispatch refused: refused", "07")
    await log.append([Event("process.status", {"process": "mxt-loc", "burst_id": burst, "obs_id": "07", "status": "running"},
                            stream=burst)])
    rows = await table(log, tmp_path / "b.sqlite")
    assert set(rows) == {ids.run_id("mxt-loc", burst, "07")}  # found by its key, and ended: no new row
    await log.close()


async def test_rebuild_equals_incremental_for_orchestrated_runs(tmp_path: Path) -> None:
    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    await orchestrated_history(log, random.Random(3), bursts=5)
    incremental = await table(log, tmp_path / "one.sqlite", batch_size=1)
    assert await table(log, tmp_path / "two.sqlite", batch_size=7) == incremental
    assert await table(log, tmp_path / "one.sqlite", rebuild=True) == incremental
    statuses = {r.status for r in incremental.values()}
    assert {"complete", "failed", "idling"} <= statuses, statuses
    await log.close()
