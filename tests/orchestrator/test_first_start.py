"""A burst that began before the orchestrator's first start: its follower starts at the head, so
the burst's earlier data are in the log only. Found in the served demo under load (the ECLAIRs
data one event before the start, the attitude after it: the run waited for ever). The first
time a burst is met, its earlier events are read from the log, and the run starts."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from burstbus.events import Event
from burstbus.handlers.orchestrator.config import OrchestratorSection, PipelinesSection
from burstbus.handlers.orchestrator.node import Orchestrator
from burstbus.store.consumer import Start
from tests.bots.conftest import make_world
from tests.waiting import wait_for

PIPELINES = {
    "orchestrator": {"data_kinds": ["vhf.eclairs", "vhf.attitude"]},
    "pipelines": {"pipelines": [{"name": "ecl-loc", "needs": ["vhf.eclairs", "vhf.attitude"],
                                 "nats_subject": "svom.pipelines.ecl", "timeout": 300}]},
}
BURST = "sb26120301"


def data(kind: str) -> Event:
    return Event("data.available", {"burst_id": BURST, "kind": kind, "location": f"file:///vhf/{kind}"}, stream=BURST)


async def test_a_burst_begun_before_the_first_start_still_runs_once_its_other_input_arrives(tmp_path: Path) -> None:
    async with make_world(tmp_path, **PIPELINES) as world:
        log = world.core.log
        await log.append([data("vhf.eclairs")])  # before the orchestrator ever ran
        config = world.config
        orchestrator = Orchestrator(log, world.core.state, config.section(OrchestratorSection),
                                    config.section(PipelinesSection), request=lambda: None, start=Start.HEAD)
        task = asyncio.create_task(orchestrator.run())
        try:
            await wait_for(lambda: orchestrator.follower.caught_up.is_set(), "the orchestrator positioned at the head")
            await log.append([data("vhf.attitude")])
            [requested] = await wait_for(lambda: world.events("process.requested"), "the run requested")
            assert requested.data["pipeline"] == "ecl-loc" and requested.stream == BURST
            idling = [e.data.get("reason") for e in await world.events("process.idling")]
            assert not any("vhf.eclairs" in str(r) for r in idling), idling  # never waiting for the ECLAIRs data it has
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
