"""Issue 14's acceptance for follow-up coming back, with real Prosody and the real bot: after a
trigger went out, the telescope's acknowledgement and data-uploaded packets (over VTP, shaped
like partner telescopes' packets) advance the trigger — requested → approved → sent →
acknowledged → data uploaded — page the requester, show in ``triggers``, and leave the data's
location for the orchestrator; a packet citing an unknown trigger is archived and changes
nothing; a telescope that never acknowledges is flagged to the BAs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from burstbus.broker.client import publish
from burstbus.handlers.triggers.attention import AckWatch
from burstbus.store.base import ReadFilter
from tests.handlers.triggers.telescope import telescope_reply
from tests.waiting import wait_for
from tests.xmpp.conftest import Burstbus, Clients, Rooms, jid
from tests.xmpp.harness import Prosody
from tests.xmpp.test_acceptance import BOT, COLIBRI_STREAM, ask, code_from_page, new_burst, sections

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def start(prosody: Prosody, rooms: Rooms, started: list[Burstbus], data: Path) -> Burstbus:
    options = sections(prosody, rooms)
    options["triggers"] = {**options["triggers"], "ack_minutes": 30}
    bus = await Burstbus.start(data, options.pop("xmpp"), real_bot=True, **options)
    started.append(bus)
    await bus.ready()
    return bus


async def say(bus: Burstbus, raw: bytes) -> None:
    answer = await publish("127.0.0.1", bus.receive_port, raw)
    assert answer.acknowledged, answer.reason


async def test_the_telescopes_packets_advance_the_trigger_page_the_requester_and_show_in_triggers(
    prosody: Prosody, rooms: Rooms, clients: Clients, started: list[Burstbus], tmp_path: Path
) -> None:
    alice = await clients.login("alice")
    bob = await clients.login("bob")
    await clients.login("colibri", "mount")  # receive the triggers (not left offline for other tests)
    await clients.login("telescope", "mount")
    await alice.join(rooms.ba, "alice")
    bus = await start(prosody, rooms, started, tmp_path / "data")
    burst = await new_burst(bus, alice, rooms)
    await ask(alice, f"trigger COLIBRI {burst}", "recorded", room=rooms.ba, nick="alice")
    code = await code_from_page(bob, burst, "COLIBRI")
    await ask(bob, f"approve {code} COLIBRI", "Sent to COLIBRI")
    [sent] = await bus.core.log.read(0, ReadFilter.of(["trigger.sent"]))
    trigger = sent.data["voevent_ivorn"]
    assert trigger.startswith(COLIBRI_STREAM)

    # a packet citing an unknown trigger: archived, nothing changes
    unknown = f"{COLIBRI_STREAM}#00000000000000000000000000000000-000000000000"
    await say(bus, telescope_reply(f"ivo://colibri.example/followup#{burst}-stray", unknown, "acknowledged"))
    # the telescope acknowledges, then uploads its data
    await say(bus, telescope_reply(f"ivo://colibri.example/followup#{burst}-ack", trigger, "Acknowledged"))
    await alice.wait_chat(BOT, f"COLIBRI acknowledged the trigger on {burst}")
    location = f"https://colibri.example/data/{burst}/r.fits"
    await say(bus, telescope_reply(f"ivo://colibri.example/followup#{burst}-data", trigger, "data uploaded",
                                   data_location=location))
    [page] = await alice.wait_chat(BOT, f"COLIBRI uploaded its data on {burst}")
    assert location in page.body

    steps = await bus.core.log.read(0, ReadFilter.of(stream=burst, types=[
        "trigger.requested", "trigger.approved", "trigger.sent", "trigger.acknowledged", "trigger.observing",
        "trigger.observed", "trigger.data_uploaded", "trigger.unacknowledged"]))
    assert [e.type for e in steps] == ["trigger.requested", "trigger.approved", "trigger.sent", "trigger.acknowledged",
                                       "trigger.data_uploaded"]
    [data] = await bus.core.log.read(0, ReadFilter.of(types=["data.available"]))
    assert (data.data["kind"], data.data["location"], data.stream) == ("followup.COLIBRI", location, burst)
    stray = await bus.core.log.read(0, ReadFilter.of(types=["voevent.accepted"]))
    assert f"ivo://colibri.example/followup#{burst}-stray" in [a.data["ivorn"] for a in stray]  # archived
    head = (await bus.core.log.head()).seq
    await wait_for(lambda: bus.core.projections.applied_seq >= head, "the read models to have the steps")
    listing = await ask(alice, "triggers", "COLIBRI on")
    assert "acknowledged" in listing and "data uploaded" in listing and location in listing

    # a silent telescope: TAROT is sent a trigger and never answers; its BAs are told
    await ask(alice, f"trigger TAROT {burst}", "recorded", room=rooms.ba, nick="alice")
    tarot_code = await code_from_page(bob, burst, "TAROT", already=0)
    await ask(bob, f"approve {tarot_code} TAROT", "Sent to TAROT")
    head = (await bus.core.log.head()).seq
    await wait_for(lambda: bus.core.projections.applied_seq >= head, "the read models to have the TAROT trigger")
    watch = bus.service.part(AckWatch)
    assert watch is not None
    watch.clock = lambda: datetime.now(UTC) + timedelta(minutes=31)  # the log's sent_at + 30 minutes have passed
    assert await watch.check() == 1
    await alice.wait_chat(BOT, "No acknowledgement from TAROT")
    await bob.wait_chat(BOT, "No acknowledgement from TAROT")
    assert jid("bob") in (await bus.core.log.read(0, ReadFilter.of(types=["trigger.unacknowledged"])))[0].data["approvers"]
