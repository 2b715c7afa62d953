"""Request Process in a real Prosody room: a BA's ``process PIPELINE BURST key=value`` becomes a
run (``process.asked`` → the orchestrator's ``process.requested`` once its data are there); a
viewer's is refused, told why, and recorded. Real Prosody, real slixmpp clients, the real bot
and orchestrator in one burstbus (the tests/xmpp harness; NATS off, so the run's dispatch is
refused with that reason — what is checked here is who may ask and what is recorded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from burstbus.events import Event, RecordedEvent
from burstbus.store.base import ReadFilter
from tests.waiting import wait_for
from tests.xmpp.conftest import Burstbus, Clients, Rooms, jid, xmpp_options
from tests.xmpp.harness import Prosody
from tests.xmpp.test_acceptance import ask, new_burst

pytestmark = pytest.mark.asyncio(loop_scope="session")

ALICE, CAROL = jid("alice"), jid("carol")


async def test_a_ba_requests_a_run_in_a_room_and_a_viewer_is_refused(
    prosody: Prosody, rooms: Rooms, clients: Clients, started: list[Burstbus], tmp_path: Path
) -> None:
    alice = await clients.login("alice")
    carol = await clients.login("carol")
    await alice.join(rooms.ba, "alice")
    await carol.join(rooms.ba, "carol")
    bus = await Burstbus.start(
        tmp_path / "data", xmpp_options(prosody, rooms, forward=[]), real_bot=True,
        acl={"default_role": "viewer", "users": [{"jid": ALICE, "roles": ["ba"]}, {"jid": CAROL, "roles": ["viewer"]}]},
        orchestrator={"data_kinds": ["vhf.eclairs"]},
        pipelines={"pipelines": [{"name": "ecl-loc", "needs": ["vhf.eclairs"], "nats_subject": "fsc.pipelines.ecl",
                                  "parameters": {"threshold": "6.5"}}]},
    )
    started.append(bus)
    await bus.ready()
    burst = await new_burst(bus, alice, rooms)

    answer = await ask(alice, f"process ecl-loc {burst} threshold=5", "Recorded: run", room=rooms.ba, nick="alice")
    assert "threshold=5 (default 6.5)" in answer
    refusal = await ask(carol, f"process ecl-loc {burst}", "Sorry", room=rooms.ba, nick="carol")
    assert "ba" in refusal

    [asked] = await bus.core.log.read(0, ReadFilter.of(["process.asked"]))
    assert asked.actor == f"xmpp:{ALICE}" and asked.data["parameters"] == {"threshold": "5"}
    commands = [c.data for c in await bus.core.log.read(0, ReadFilter.of(["ba.command"])) if c.data["command"] == "process"]
    assert [(c["jid"], c["via"], c["outcome"], c["reason"]) for c in commands] == [
        (ALICE, "room", "ok", None), (CAROL, "room", "refused", "needs role ba")]

    await bus.core.log.append([Event("data.available", {"burst_id": burst, "kind": "vhf.eclairs",
                                                        "location": "file:///vhf/1.dat"}, stream=burst)])

    async def asked_run() -> list[RecordedEvent]:
        found = await bus.core.log.read(0, ReadFilter.of(["process.requested"]))
        return [r for r in found if r.data.get("asked_id") == asked.id]

    [requested] = await wait_for(asked_run, "the asked run to be requested once its data are there")
    assert requested.data["requested_by"] == ALICE and requested.data["changed"] == {"threshold": "5"}
