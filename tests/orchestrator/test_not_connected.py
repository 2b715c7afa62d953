"""Burstbus's own NATS connection down when a dispatch is due: not a refusal.

Found by the SIGKILL-during-dispatch acceptance test under the load of a parallel suite: after
the restart, the orchestrator's first round came before the NATS node had connected; "not
connected" was recorded as a refused dispatch, the attempt failed, and after its 30 s backoff
attempt 2 went out — the worker never saw attempt 1 again, and the run cost an attempt for a
fault of ours. Now nothing is recorded and the same attempt is sent once NATS is back."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from burstbus.component import RequestNotSent
from burstbus.events import Event
from burstbus.handlers.orchestrator.config import OrchestratorSection, PipelinesSection
from burstbus.handlers.orchestrator.node import Orchestrator
from burstbus.store.consumer import Start
from tests.bots.conftest import make_world
from tests.waiting import wait_for

PIPELINES = {
    "orchestrator": {"data_kinds": ["vhf.eclairs"]},
    "pipelines": {"pipelines": [{"name": "ecl-loc", "needs": ["vhf.eclairs"], "nats_subject": "svom.pipelines.ecl",
                                 "timeout": 300}]},
}
BURST = "sb26120302"


async def test_a_dispatch_while_nats_is_not_connected_is_sent_again_as_the_same_attempt(tmp_path: Path) -> None:
    sent: list[str] = []
    connected = asyncio.Event()

    async def request(subject: str, payload: bytes, headers: dict[str, str], timeout: float) -> bytes:
        if not connected.is_set():
            connected.set()  # down for the first try only
            raise RequestNotSent(f"not connected to NATS; {subject} not requested")
        sent.append(headers["Nats-Msg-Id"])
        return b"ACK"

    async with make_world(tmp_path, **PIPELINES) as world:
        log = world.core.log
        config = world.config
        orchestrator = Orchestrator(log, world.core.state, config.section(OrchestratorSection),
                                    config.section(PipelinesSection), request=lambda: request, start=Start.HEAD)
        task = asyncio.create_task(orchestrator.run())
        try:
            await wait_for(lambda: orchestrator.follower.caught_up.is_set(), "the orchestrator positioned at the head")
            await log.append([Event("data.available", {"burst_id": BURST, "kind": "vhf.eclairs",
                                                       "location": "file:///vhf/ecl"}, stream=BURST)])
            [dispatched] = await wait_for(lambda: world.events("process.dispatched"), "the dispatch recorded")
            [requested] = await world.events("process.requested")
            assert requested.data["attempt"] == 1
            assert (dispatched.data["outcome"], dispatched.data["request_id"]) == ("accepted", requested.id)
            assert sent == [requested.id]  # the same attempt, once NATS was there
            assert not await world.events("process.retry_requested")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_the_nats_node_says_not_sent_while_it_is_not_connected(tmp_path: Path) -> None:
    from burstbus.bridges.nats.config import NatsSection
    from burstbus.bridges.nats.node import NatsNode

    async with make_world(tmp_path) as world:
        node = NatsNode(world.core.log, world.core.ingest, world.core.state, NatsSection(), tmp_path)
        with pytest.raises(RequestNotSent):
            await node.request("svom.pipelines.ecl", b"{}", {}, 1.0)
