"""Request Process by hand, from the bot (``process PIPELINE BURST [key=value …]``): role-checked,
recorded, and made a run by a running orchestrator; a viewer is refused, and that is recorded
too. The orchestrator runs in this process over the bot's core, dispatching to a recording port."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from burstbus.events import Event
from burstbus.handlers.orchestrator.config import OrchestratorSection, PipelinesSection
from burstbus.handlers.orchestrator.node import Orchestrator
from burstbus.store.consumer import Start
from tests.bots.conftest import ALICE, BURST, VIC, World, make_world
from tests.waiting import wait_for

PIPELINES = {
    "orchestrator": {"data_kinds": ["vhf.eclairs"]},
    "pipelines": {"pipelines": [
        {"name": "ecl-loc", "needs": ["vhf.eclairs"], "nats_subject": "svom.pipelines.ecl", "timeout": 300,
         "parameters": {"threshold": "6.5"}},
        {"name": "admin-only", "needs": ["vhf.eclairs"], "nats_subject": "svom.pipelines.x", "request_roles": ["admin"]},
    ]},
}


class Port:
    """The ``nats.request`` port: records every request and answers ACK."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []

    async def __call__(self, subject: str, payload: bytes, headers: dict[str, str], timeout: float) -> bytes:
        self.requests.append((subject, json.loads(payload), headers))
        return b"ACK"


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[World, Orchestrator, Port]]:
    port = Port()
    async with make_world(tmp_path, **PIPELINES) as world:
        config = world.config
        orchestrator = Orchestrator(world.core.log, world.core.state, config.section(OrchestratorSection),
                                    config.section(PipelinesSection), request=lambda: port, start=Start.BEGINNING)
        world.bot.orchestrator = lambda: orchestrator
        task = asyncio.create_task(orchestrator.run())
        try:
            yield world, orchestrator, port
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_a_ba_requests_a_run_with_other_parameters_and_it_is_dispatched(running: tuple[World, Orchestrator, Port]) -> None:
    world, orchestrator, port = running
    reply = await world.say(ALICE, "process ECL-LOC sb26112001 threshold=5 note=rerun")
    assert reply.text.startswith("Recorded: run "), reply.text
    assert "threshold=5 (default 6.5), note=rerun" in reply.text
    [asked] = await world.events("process.asked")
    assert asked.actor == f"xmpp:{ALICE}" and asked.stream == BURST
    assert asked.data["parameters"] == {"threshold": "5", "note": "rerun"} and asked.data["requested_by"] == ALICE
    [command] = [e for e in await world.events("ba.command") if e.data["command"] == "process"]
    assert command.data["outcome"] == "ok" and command.seq > asked.seq  # its own event first, then the command's
    [idling] = await wait_for(lambda: world.events("process.idling"), "the asked run to wait for its inputs")
    assert idling.data["asked_id"] == asked.id and idling.data["missing"] == ["vhf.eclairs"]

    await world.core.log.append([Event("data.available", {"burst_id": BURST, "kind": "vhf.eclairs",
                                                          "location": "file:///vhf/1"}, stream=BURST)])
    await wait_for(lambda: len(port.requests) == 3, "both automatic runs and the asked one to be dispatched")
    by_params = {json.dumps(p["parameters"], sort_keys=True): (p, h) for _, p, h in port.requests
                 if p["pipeline"] == "ecl-loc"}
    asked_payload, headers = by_params['{"note": "rerun", "threshold": "5"}']
    assert asked_payload["requested_by"] == ALICE and headers["Nats-Msg-Id"] == asked_payload["request_id"]
    assert '{"threshold": "6.5"}' in by_params  # the automatic run keeps the defaults
    requested = [e for e in await world.events("process.requested") if e.data["asked_id"] == asked.id]
    assert requested[0].data["changed"] == {"threshold": "5", "note": "rerun"}
    await wait_for(lambda: _count(world, "process.dispatched", 3), "the answers to be recorded")
    await world.sync()
    listed = await world.say(ALICE, f"processes {BURST}")
    assert listed.text.count("ecl-loc: queued") == 2, listed.text


async def test_who_may_not_ask_is_refused_and_recorded(running: tuple[World, Orchestrator, Port]) -> None:
    world, _, _ = running
    refused = await world.say(VIC, f"process ecl-loc {BURST}")
    assert refused.text.startswith("Sorry") and "ba" in refused.text, refused.text
    too_low = await world.say(ALICE, f"process admin-only {BURST}")
    assert too_low.text.startswith("Sorry, admin-only may be requested by admin")
    unknown = await world.say(ALICE, f"process nope {BURST}")
    assert "I know no pipeline 'nope' (pipelines: ecl-loc, admin-only)" in unknown.text
    no_burst = await world.say(ALICE, "process ecl-loc sb26110100")
    assert "I know no burst called 'sb26110100'" in no_burst.text
    bad = await world.say(ALICE, f"process ecl-loc {BURST} threshold")
    assert "key=value" in bad.text
    hidden = await world.say(None, f"process ecl-loc {BURST}", via="room", room="ba@conference.fsc.example", nick="x")
    assert "Sorry" in hidden.text
    assert await world.events("process.asked") == []
    commands = [e.data for e in await world.events("ba.command") if e.data["command"] == "process"]
    assert [c["outcome"] for c in commands] == ["refused"] * 6
    assert commands[0]["jid"] == VIC and commands[0]["reason"] == "needs role ba"
    assert commands[1]["reason"] == "needs role admin for admin-only"


async def _count(world: World, kind: str, n: int) -> bool:
    return len(await world.events(kind)) >= n
