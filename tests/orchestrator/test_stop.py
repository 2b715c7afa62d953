"""The orchestrator stops when cancelled, even at the moment its watchdog is woken.

Found as a hang of the whole suite's run (pytest-timeout after 600 s, every thread idle): the
watchdog slept in ``asyncio.wait_for(wake.wait())``, and on Python 3.11 wait_for returns the
result instead of raising when a cancel lands as the event is set. The watchdog then went
round again and waited for ever on the stopped follower. Setting the event and cancelling in
the same step makes that moment certain."""

from __future__ import annotations

import asyncio
from pathlib import Path

from burstbus.handlers.orchestrator.config import OrchestratorSection, PipelinesSection
from burstbus.handlers.orchestrator.node import Orchestrator
from burstbus.store.consumer import Start
from tests.bots.conftest import make_world
from tests.waiting import DEADLINE, wait_for

PIPELINES = {
    "orchestrator": {"data_kinds": ["vhf.eclairs"]},
    "pipelines": {"pipelines": [{"name": "ecl-loc", "needs": ["vhf.eclairs"], "nats_subject": "svom.pipelines.ecl"}]},
}


async def test_a_cancel_that_lands_as_the_watchdog_wakes_still_stops_it(tmp_path: Path) -> None:
    async with make_world(tmp_path, **PIPELINES) as world:
        config = world.config
        orchestrator = Orchestrator(world.core.log, world.core.state, config.section(OrchestratorSection),
                                    config.section(PipelinesSection), start=Start.HEAD)
        task = asyncio.create_task(orchestrator.run())
        # rounds counts up with no await between it and the watchdog's sleep: once it is seen,
        # the watchdog is asleep on its wake-up event
        await wait_for(lambda: orchestrator.rounds >= 1, "the watchdog's first round, then its sleep")
        orchestrator._wake.set()
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=DEADLINE)
        assert task in done, "the orchestrator did not stop"
        assert task.cancelled()
