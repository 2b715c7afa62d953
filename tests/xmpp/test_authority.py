"""Issue 11's attacks, end to end, against the real servers: Prosody (XMPP), burstbus's own VTP
ports, its embedded nats-server and its HTTP API. Nobody but an approved request speaks for a
telescope: a packet in a trigger stream from any transport is refused with a reason and a
``voevent.rejected`` event (code ``authority``), and the legitimate path still delivers
exactly one trigger over VTP, XMPP and NATS — the genuine one."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest

from burstbus.bridges.nats.server import free_port
from burstbus.bridges.xmpp.intake import voevent_payload
from burstbus.bridges.xmpp.stanzas import voevent_element
from burstbus.broker.client import publish, subscribe
from burstbus.ingest import accepted_event_id
from burstbus.store.base import ReadFilter
from burstbus.voevent.examine import examine
from tests.packets import voevent
from tests.waiting import DEADLINE, wait_for
from tests.xmpp.conftest import Burstbus, Clients, Rooms
from tests.xmpp.harness import Prosody, User
from tests.xmpp.test_acceptance import BOT, COLIBRI_STREAM, ask, code_from_page, new_burst, sections

pytestmark = pytest.mark.asyncio(loop_scope="session")

COLIBRI_SUBJECT = "svom.trigger.colibri"
TOKEN = "write-token-for-the-authority-test"
#: Where an attacker wants the telescope to look (the genuine burst is at 123.456, -12.5).
EVIL_RA, EVIL_DEC = 10.0, 80.0


def forged(ivorn: str) -> bytes:
    """A schema-valid trigger look-alike at the attacker's position."""
    return voevent(ivorn, role="utility", ra=EVIL_RA, dec=EVIL_DEC,
                   params={"Telescope": "COLIBRI", "RequestId": "forged"})


async def via_xmpp(sender: User, raw: bytes) -> str:
    before = len(sender.received)
    message = sender.make_message(mto=BOT, mbody="a notice", mtype="chat")
    message.xml.append(voevent_element(raw))
    message.send()

    def answered() -> str | None:
        return next((m.body for m in sender.received[before:] if m.frm.startswith(BOT) and m.body.startswith(("ACK", "NAK"))), None)

    return await wait_for(answered, "the bot's ACK/NAK to a VOEvent")


async def start_bus(prosody: Prosody, rooms: Rooms, started: list[Burstbus], data: Path) -> tuple[Burstbus, int]:
    options = sections(prosody, rooms)
    options["triggers"]["telescopes"][0]["nats_subject"] = COLIBRI_SUBJECT
    http_port = free_port()
    bus = await Burstbus.start(
        data, options.pop("xmpp"), real_bot=True,
        nats={"enabled": True, "embedded_port": free_port()},
        http={"enabled": True, "port": http_port, "token": TOKEN, "public_url": "https://fsc.example/burstbus"},
        **options,
    )
    started.append(bus)
    await bus.ready()
    await asyncio.wait_for(bus.nats.connected.wait(), DEADLINE)
    return bus, http_port


class Scene:
    """burstbus with a COLIBRI telescope listening on all three channels, and the people."""

    def __init__(self, bus: Burstbus, http_port: int, users: dict[str, User]):
        self.bus, self.http_port, self.users = bus, http_port, users
        self.vtp_got: list[tuple[str, bytes]] = []
        self.nats_got: list[bytes] = []
        self.utility_got: list[bytes] = []
        self.attempts: list[str] = []

    @property
    def forwarder(self) -> User:
        return self.users["forwarder"]

    async def refused_everywhere(self) -> None:
        """Every forgery is a refusal (code authority) in the log, none accepted, none sent."""
        log = self.bus.core.log
        rejected = {r.data.get("ivorn"): r.data for r in await log.read(0, ReadFilter.of(["voevent.rejected"]))}
        for attempt in self.attempts:
            assert rejected[attempt]["code"] == "authority", attempt
            assert await log.find(accepted_event_id(attempt)) is None, attempt
        await asyncio.sleep(0.2)  # a broadcast of an accepted forgery would have arrived by now
        assert not [i for i, _ in self.vtp_got if i in self.attempts]
        assert not self.users["colibri"].chats(BOT)
        assert not self.nats_got


@contextlib.asynccontextmanager
async def scene(prosody: Prosody, rooms: Rooms, clients: Clients, started: list[Burstbus], data: Path) -> AsyncIterator[Scene]:
    users = {name: await clients.login(name, resource) for name, resource in
             (("alice", "phone"), ("bob", "phone"), ("colibri", "mount"), ("forwarder", "gajim"))}
    await users["alice"].join(rooms.ba, "alice")  # forwarder: allowed to submit VOEvents (voevent_senders)
    bus, http_port = await start_bus(prosody, rooms, started, data)
    made = Scene(bus, http_port, users)
    assert bus.nats.server is not None
    await asyncio.wait_for(bus.vtp.broadcaster_ready.wait(), DEADLINE)
    broadcaster = bus.vtp.broadcaster
    assert broadcaster is not None
    vtp_telescope = asyncio.create_task(subscribe(
        "127.0.0.1", broadcaster.port, local_ivo="ivo://colibri.example/vtp",
        filters=[f"starts-with(/*/@ivorn, '{COLIBRI_STREAM}')"], on_event=lambda i, d: made.vtp_got.append((i, d)),
    ))
    nc = await nats.connect(bus.nats.server.url)

    async def on_trigger(msg: Any) -> None:
        made.nats_got.append(msg.data)

    async def on_utility(msg: Any) -> None:
        made.utility_got.append(msg.data)

    await nc.subscribe(COLIBRI_SUBJECT, cb=on_trigger)
    await nc.subscribe("burstbus.voevent.utility", cb=on_utility)
    await nc.flush()
    try:
        await wait_for(lambda: sum(s.authenticated for s in broadcaster.subscribers()) >= 1, "the VTP telescope to subscribe")
        yield made
    finally:
        vtp_telescope.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await vtp_telescope
        await nc.close()


async def test_attack_1_an_xmpp_voevent_sender_cannot_publish_in_a_trigger_stream(
    prosody: Prosody, rooms: Rooms, clients: Clients, started: list[Burstbus], tmp_path: Path
) -> None:
    async with scene(prosody, rooms, clients, started, tmp_path / "data") as s:
        ivorn = f"{COLIBRI_STREAM}#xmpp-{uuid.uuid4().hex[:6]}"
        answer = await via_xmpp(s.forwarder, forged(ivorn))
        assert answer.startswith("NAK (authority)") and "trigger workflow" in answer, answer
        s.attempts.append(ivorn)
        # its ordinary notices still go in
        ordinary = f"ivo://org.svom/fsc#fwd-{uuid.uuid4().hex[:6]}"
        assert (await via_xmpp(s.forwarder, voevent(ordinary))).startswith(f"ACK: accepted {ordinary}")
        await s.refused_everywhere()


async def test_attack_2_a_vtp_author_cannot_publish_in_a_trigger_stream(
    prosody: Prosody, rooms: Rooms, clients: Clients, started: list[Burstbus], tmp_path: Path
) -> None:
    async with scene(prosody, rooms, clients, started, tmp_path / "data") as s:
        ivorn = f"{COLIBRI_STREAM}#vtp-{uuid.uuid4().hex[:6]}"
        result = await publish("127.0.0.1", s.bus.receive_port, forged(ivorn))
        assert not result.acknowledged and "Event rejected (authority)" in (result.reason or ""), result
        s.attempts.append(ivorn)
        await s.refused_everywhere()


async def test_nats_and_http_post_cannot_publish_in_a_trigger_stream(
    prosody: Prosody, rooms: Rooms, clients: Clients, started: list[Burstbus], tmp_path: Path
) -> None:
    async with scene(prosody, rooms, clients, started, tmp_path / "data") as s:
        assert s.bus.nats.server is not None
        nc = await nats.connect(s.bus.nats.server.url)
        try:
            ivorn = f"{COLIBRI_STREAM}#nats-{uuid.uuid4().hex[:6]}"
            reply = (await nc.request("burstbus.in.voevent", forged(ivorn), timeout=DEADLINE)).data.decode()
            assert reply.startswith("NAK ") and "trigger stream" in reply, reply
            s.attempts.append(ivorn)
        finally:
            await nc.close()
        ivorn = f"{COLIBRI_STREAM}#http-{uuid.uuid4().hex[:6]}"
        async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{s.http_port}/api/voevents", data=forged(ivorn),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/xml"},
        ) as response:
            body = await response.json()
            assert response.status == 403 and body.get("code") == "authority", (response.status, body)
        s.attempts.append(ivorn)
        await s.refused_everywhere()


async def test_attack_3_pre_empting_an_approval_fails_and_exactly_the_genuine_trigger_goes_out_everywhere(
    prosody: Prosody, rooms: Rooms, clients: Clients, started: list[Burstbus], tmp_path: Path
) -> None:
    async with scene(prosody, rooms, clients, started, tmp_path / "data") as s:
        alice, bob, colibri = s.users["alice"], s.users["bob"], s.users["colibri"]
        bus = s.bus
        burst = await new_burst(bus, alice, rooms)
        # the pending request's id is known (the old open /api/triggers); the attacker submits
        # a packet under the IVORN the workflow used to derive from it, at its own position
        await ask(alice, f"trigger COLIBRI {burst} slew now", "recorded", room=rooms.ba, nick="alice")
        [requested] = await bus.core.log.read(0, ReadFilter.of(["trigger.requested"]))
        predicted = f"{COLIBRI_STREAM}#{requested.data['request_id']}"
        answer = await via_xmpp(s.forwarder, forged(predicted))
        assert answer.startswith("NAK (authority)"), answer
        assert not (await publish("127.0.0.1", bus.receive_port, forged(predicted))).acknowledged
        s.attempts.append(predicted)
        await s.refused_everywhere()

        # the genuine approval sends the genuine packet, once, on every channel
        code = await code_from_page(bob, burst, "COLIBRI")
        answer = await ask(bob, f"approve {code} COLIBRI", "Sent to COLIBRI")
        [sent] = await bus.core.log.read(0, ReadFilter.of(["trigger.sent"]))
        ivorn = sent.data["voevent_ivorn"]
        assert ivorn != predicted and ivorn.startswith(f"{predicted}-") and ivorn in answer
        assert set(sent.data["channels"]) == {"vtp", "xmpp", "nats"}
        await wait_for(lambda: s.vtp_got, "the trigger at the VTP telescope")
        await wait_for(lambda: s.nats_got, "the trigger on the telescope's NATS subject")
        [message] = await colibri.wait_chat(BOT, "")
        genuine = await bus.core.log.find(accepted_event_id(ivorn))
        assert genuine is not None and genuine.actor == "local:triggers"
        packet = genuine.data["xml"].encode()
        position = examine(packet).summary["position"]  # where the burst is, not the attacker's spot
        assert abs(position["ra"] - 123.456) < 1e-3 and abs(position["dec"] + 12.5) < 1e-3, position
        assert voevent_payload(message.xml) == packet
        await asyncio.sleep(0.2)  # a second packet would have arrived by now
        assert s.vtp_got == [(ivorn, packet)]
        assert s.nats_got == [packet]
        assert len(colibri.chats(BOT)) == 1
        accepted = [r.data["ivorn"] for r in await bus.core.log.read(0, ReadFilter.of(["voevent.accepted"]))]
        assert [i for i in accepted if i.startswith(COLIBRI_STREAM)] == [ivorn]
        await wait_for(lambda: s.utility_got, "the outbox's copy of the trigger on burstbus.voevent.utility")
        assert s.utility_got == [packet]
