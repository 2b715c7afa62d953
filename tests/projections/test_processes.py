"""The process table, as the orchestrator page shows it."""

from __future__ import annotations

from pathlib import Path

from burstbus.events import Event
from burstbus.store.projections.processes import ProcessesProjection
from burstbus.store.projections.runner import ProjectionRunner
from burstbus.store.sqlite import SQLiteEventLog


def status(process: str, state: str, log: str | None = None, **ids: str) -> Event:
    data = {"process": process, "burst_id": ids.get("burst_id", "sb26112001"), "obs_id": ids.get("obs_id", "01"),
            "pass_id": ids.get("pass_id", "p1"), "pipeline": "eclairs-pipeline", "status": state}
    if log:
        data["log"] = log
    return Event("process.status", data, stream=data["burst_id"], actor="nats:orchestrator")


async def test_process_rows_follow_status_changes(tmp_path: Path) -> None:
    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    runner = await ProjectionRunner.open(tmp_path / "p.sqlite", [ProcessesProjection()])
    await log.append([
        status("ecl-loc", "queued"),
        status("ecl-loc", "running", "starting\nreading L1 data\n"),
        status("ecl-loc", "failed", "Traceback...\nIOError: no attitude\n"),
        Event("process.retry_requested", {"process": "ecl-loc", "burst_id": "sb26112001", "obs_id": "01", "pass_id": "p1", "attempt": 2}),
        status("ecl-loc", "running"),
        status("ecl-loc", "complete", "done"),
        status("mxt-loc", "running", burst_id="sb26112002"),
    ])
    await runner.catch_up(log)
    rows = {r[0]: r for r in (await runner.dump())["processes"]["processes"]}
    row = rows["ecl-loc/sb26112001/01/p1"]
    # id, date, process, burst, obs, pass, pipeline, status, attempts, last_log, first, updated, retry, seq
    assert row[7] == "complete"
    assert row[8] == 2
    assert row[9] == "done"
    assert row[12] is None  # the retry was honoured
    assert rows["mxt-loc/sb26112002/01/p1"][7] == "running"
    await runner.close()
    await log.close()
