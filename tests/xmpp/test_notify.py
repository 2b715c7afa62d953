"""Notices submitted over VTP reach the BA rooms, the on-duty BA's phone and the telescope —
once each, across a restart of burstbus and an outage of the XMPP server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from burstbus.bridges.xmpp.intake import voevent_payload
from burstbus.bridges.xmpp.metrics import xmpp_metrics
from burstbus.bridges.xmpp.notify import CONSUMER
from burstbus.broker.client import publish
from burstbus.state import StateStore
from tests.packets import voevent
from tests.waiting import wait_for
from tests.xmpp.conftest import Burstbus, Clients, Rooms, jid, xmpp_options
from tests.xmpp.harness import Prosody, User

pytestmark = pytest.mark.asyncio(loop_scope="session")


def notice(burst: str, n: int = 1) -> tuple[str, bytes]:
    ivorn = f"ivo://org.svom/fsc#{burst}-{n}-{uuid.uuid4().hex[:6]}"
    return ivorn, voevent(ivorn, params={"Burst_Id": burst, "Packet_Type": "202"}, ra=123.456, dec=-12.5, err=0.05)


async def submit(bus: Burstbus, raw: bytes) -> None:
    answer = await publish("127.0.0.1", bus.receive_port, raw)
    assert answer.acknowledged, answer.reason


async def watchers(clients: Clients, rooms: Rooms) -> tuple[User, User]:
    alice = await clients.login("alice")
    await alice.join(rooms.ba, "alice")
    telescope = await clients.login("telescope", "mount")
    return alice, telescope


def bodies_with(user: User, room: str, text: str) -> list[str]:
    return [m.body for m in user.room_messages(room) if text in m.body]


async def test_a_vtp_notice_reaches_room_page_and_telescope(
    prosody: Prosody, rooms: Rooms, clients: Clients, started: list[Burstbus], tmp_path: Path
) -> None:
    alice, telescope = await watchers(clients, rooms)
    bus = await Burstbus.start(tmp_path / "data", xmpp_options(prosody, rooms))
    started.append(bus)
    await bus.ready()
    burst = f"sb{uuid.uuid4().hex[:8]}"
    ivorn, raw = notice(burst)
    await submit(bus, raw)

    [summary] = await alice.wait_room(rooms.ba, burst)
    assert summary.frm == f"{rooms.ba}/burstbus"
    assert "RA 08h13m49.44s Dec -12°30′00.0″" in summary.body and "± 3.0′" in summary.body
    assert "2026-11-20 03:04:05 UTC" in summary.body
    assert f"https://fsc.example/burstbus/bursts/{burst}" in summary.body
    [page] = await alice.wait_chat(jid("burstbus"), burst)
    assert page.body.startswith("New notice: " + burst)
    [forward] = await telescope.wait_chat(jid("burstbus"), ivorn)
    assert voevent_payload(forward.xml) == raw  # the exact bytes, in the namespaced payload
    # the same stable id everywhere: the notice's event id
    record = await bus.core.log.find(__import__("burstbus.ingest", fromlist=["x"]).accepted_event_id(ivorn))
    assert record is not None and summary.id == page.id == forward.id == record.id
    health = bus.node.health()
    assert health["up"] is True and health["rooms"][rooms.ba]["joined"] is True  # type: ignore[index]
    assert str(health["jid"]).startswith(f"{jid('burstbus')}/burstbus-")
    [component] = [c for c in bus.service.components if c.name == "xmpp"]  # what /healthz shows
    shown = component.health()
    assert shown["up"] is True and shown["rooms"][rooms.ba]["joined"] is True and shown["restarts"] == 0
    assert shown["outbox"]["delivered"] >= 3  # type: ignore[index]
    families = {f.name: f for f in await xmpp_metrics(bus.node, bus.core.log)()}  # what /metrics shows
    assert families["burstbus_xmpp_connected"].samples[0][-1] == 1
    assert families["burstbus_xmpp_out_total"].samples[0][-1] >= 3
    assert ("", {"state": "joined"}, 2) in families["burstbus_xmpp_rooms_joined"].samples  # both test rooms
    # test packets stay out of the rooms by default
    test_ivorn = f"ivo://org.svom/fsc#test-{uuid.uuid4().hex[:6]}"
    await submit(bus, voevent(test_ivorn, role="test"))
    marker_burst = f"sb{uuid.uuid4().hex[:8]}"
    await submit(bus, notice(marker_burst)[1])
    await alice.wait_room(rooms.ba, marker_burst)
    assert not [m for m in alice.received if test_ivorn in m.body]


async def test_nothing_missed_nothing_twice_across_a_bot_restart_and_a_server_outage(
    prosody: Prosody, rooms: Rooms, clients: Clients, started: list[Burstbus], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    alice, telescope = await watchers(clients, rooms)
    bus = await Burstbus.start(data, xmpp_options(prosody, rooms))
    started.append(bus)
    await bus.ready()
    burst = f"sb{uuid.uuid4().hex[:8]}"

    # 1. burstbus stops; notices accepted meanwhile (by a burstbus without XMPP) go out on start
    await bus.stop()
    offline = [notice(burst, n) for n in range(1, 4)]
    bus = await Burstbus.start(data, xmpp_options(prosody, rooms, enabled=False))
    started.append(bus)
    for _, raw in offline:
        await submit(bus, raw)
    await bus.stop()
    bus = await Burstbus.start(data, xmpp_options(prosody, rooms))
    started.append(bus)
    await wait_for(lambda: len(bodies_with(alice, rooms.ba, burst)) >= 3, "the notices accepted while burstbus was down")
    await wait_for(lambda: bus.xmpp.notifier.caught_up.is_set(), "the outbox to catch up")
    sessions = bus.xmpp.connection.connects

    # 2. the XMPP server goes down (every client is cut off); notices are accepted meanwhile
    await prosody.stop_async()
    await wait_for(lambda: not bus.xmpp.connection.up.is_set(), "the bot to notice the outage")
    during = [notice(burst, n) for n in range(4, 7)]
    for _, raw in during:
        await submit(bus, raw)
    last_seq = (await bus.core.log.head()).seq
    await prosody.start()
    await bus.ready()  # a new session (the server forgot the old one): every room joined again
    assert bus.xmpp.connection.connects == sessions + 1
    await wait_for(lambda: bus.xmpp.notifier.position >= last_seq - 1 and bus.xmpp.notifier.caught_up.is_set(),
                   "the outbox to deliver what was accepted during the outage")

    # What the phones show when they come back: the room's history, offline messages, live ones.
    alice = await clients.login("alice", "phone-again")
    await alice.join(rooms.ba, "alice", history=50)
    telescope = await clients.login("telescope", "mount-again")
    marker = f"sb{uuid.uuid4().hex[:8]}"
    await submit(bus, notice(marker)[1])
    await alice.wait_room(rooms.ba, marker)
    await alice.wait_chat(jid("burstbus"), marker)
    await wait_for(lambda: [m for m in telescope.chats(jid("burstbus")) if marker in m.body], "the marker forward")

    posted = [m for m in alice.room_messages(rooms.ba) if burst in m.body]
    pages = [m for m in alice.chats(jid("burstbus")) if burst in m.body]
    forwards = [m for m in telescope.chats(jid("burstbus")) if burst in m.body]
    assert len(posted) == len({m.id for m in posted}) == 6, [m.body for m in posted]  # 3 before, 3 during the outage
    assert len(pages) == len({m.id for m in pages}) == 3, [m.body for m in pages]  # the outage's, kept offline
    assert sorted(m.body.split()[1] for m in forwards) == sorted(ivorn for ivorn, _ in during)


async def test_a_batch_sent_again_after_a_crash_is_not_posted_twice_in_a_room(
    prosody: Prosody, rooms: Rooms, clients: Clients, started: list[Burstbus], tmp_path: Path
) -> None:
    """burstbus stops after the room got a notice but before the outbox's checkpoint moved
    (a crash in between): on start the batch goes again, and the room's archive (XEP-0313)
    says the room already has it, so the room shows it once."""
    data = tmp_path / "data"
    alice, _ = await watchers(clients, rooms)
    bus = await Burstbus.start(data, xmpp_options(prosody, rooms))
    started.append(bus)
    await bus.ready()
    await wait_for(lambda: bus.xmpp.notifier.caught_up.is_set(), "the outbox to start")
    before = bus.xmpp.notifier.position
    burst = f"sb{uuid.uuid4().hex[:8]}"
    await submit(bus, notice(burst)[1])
    await alice.wait_room(rooms.ba, burst)
    await wait_for(lambda: bus.xmpp.notifier.caught_up.is_set() and bus.xmpp.notifier.position > before, "the outbox to confirm it")
    await bus.stop()

    state = await StateStore.open(data / "state.sqlite")
    try:
        await state.checkpoint(CONSUMER).save(before)  # as if it had died before saving
    finally:
        await state.close()

    bus = await Burstbus.start(data, xmpp_options(prosody, rooms))
    started.append(bus)
    await bus.ready()
    marker = f"sb{uuid.uuid4().hex[:8]}"
    await submit(bus, notice(marker)[1])
    await alice.wait_room(rooms.ba, marker)
    assert len(bodies_with(alice, rooms.ba, burst)) == 1, bodies_with(alice, rooms.ba, burst)
    assert bus.xmpp.notifier.already_posted_total >= 1  # in each room that had it
    assert len(bodies_with(alice, rooms.ba, marker)) == 1
