"""SIGKILL during concurrent appends: nothing confirmed is lost, the chain holds, projections converge."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from burstbus.config import load_config
from burstbus.service import Core
from burstbus.store.projections.registry import all_projections
from burstbus.store.projections.runner import ProjectionRunner

REPO = Path(__file__).resolve().parents[1]


async def test_sigkill_loses_no_confirmed_append(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.crash_child", str(data_dir)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    confirmed: list[tuple[int, str, str]] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            seq, kind, key = line.split()
            confirmed.append((int(seq), kind, key))
            if len(confirmed) >= 1500:
                break
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert len(confirmed) >= 1500, child.stderr.read() if child.stderr else ""

    config = load_config(environ={}, overrides={"data": {"dir": str(data_dir)}})
    core = await Core.open(config)
    try:
        verification = await core.log.verify()
        assert verification.ok, verification
        for seq, kind, key in confirmed:
            record = await core.log.get(seq)
            assert record is not None, seq
            if kind == "voevent":
                assert record.type == "voevent.accepted" and record.data["ivorn"] == key
            else:
                assert record.id == key
        # the projections resume from their checkpoints and must equal a rebuild from nothing
        await core.catch_up()
        incremental = await core.projections.dump()
        fresh = await ProjectionRunner.open(tmp_path / "fresh.sqlite", all_projections())
        await fresh.catch_up(core.log)
        assert await fresh.dump() == incremental
        assert incremental["voeventdb"]["voevent"], "the crash run accepted notices"
        assert incremental["bursts"]["bursts"]
        await fresh.close()
    finally:
        await core.close()
