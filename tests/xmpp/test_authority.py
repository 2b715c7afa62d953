"""Issue 11's attacks, end to end, against the real servers: Prosody (XMPP), burstbus's own VTP
ports, its embedded nats-server and its HTTP API. Nobody but an approved request speaks for a
telescope: a packet in a trigger stream from any transport is refused with a reason and a
``voevent.rejected`` event (code ``authority``), and the legitimate path still delivers
exactly one trigger over VTP, XMPP and NATS — the genuine one."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest

from burstbus.bridges.nats.server import free_port
from burstbus.bridges.xmpp.client import voevent_element
from burstbus.bridges.xmpp.intake import voevent_payload
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
    assert bus.service.nats is not None
    await asyncio.wait_for(bus.service.nats.connected.wait(), DEADLINE)
    return bus, http_port


async def test_no_transport_can_put_a_packet_in_a_trigger_stream_and_only_the_approved_trigger_goes_out(
    prosody: Prosody, rooms: Rooms, clients: Clients, started: list[Burstbus], tmp_path: Path
) -> None:
    alice = await clients.login("alice")
    bob = await clients.login("bob")
    colibri = await clients.login("colibri", "mount")
    forwarder = await clients.login("forwarder", "gajim")  # allowed to submit VOEvents (voevent_senders)
    await alice.join(rooms.ba, "alice")
    bus, http_port = await start_bus(prosody, rooms, started, tmp_path / "data")
    assert bus.service.vtp is not None and bus.service.nats is not None
    await asyncio.wait_for(bus.service.vtp.broadcaster_ready.wait(), DEADLINE)
    broadcaster = bus.service.vtp.broadcaster
    assert broadcaster is not None
    assert bus.service.nats.server is not None
    nats_url = bus.service.nats.server.url

    vtp_got: list[tuple[str, bytes]] = []
    vtp_telescope = asyncio.create_task(subscribe(
        "127.0.0.1", broadcaster.port, local_ivo="ivo://colibri.example/vtp",
        filters=[f"starts-with(/*/@ivorn, '{COLIBRI_STREAM}')"], on_event=lambda i, d: vtp_got.append((i, d)),
    ))
    nc = await nats.connect(nats_url)
    nats_got: list[bytes] = []
    utility_got: list[bytes] = []

    async def on_trigger(msg: Any) -> None:
        nats_got.append(msg.data)

    async def on_utility(msg: Any) -> None:
        utility_got.append(msg.data)

    await nc.subscribe(COLIBRI_SUBJECT, cb=on_trigger)
    await nc.subscribe("burstbus.voevent.utility", cb=on_utility)
    await nc.flush()
    try:
        await wait_for(lambda: sum(s.authenticated for s in broadcaster.subscribers()) >= 1, "the VTP telescope to subscribe")
        burst = await new_burst(bus, alice, rooms)
        attempts: list[str] = []

        # 1. an account allowed to submit VOEvents over XMPP, into the trigger stream
        ivorn = f"{COLIBRI_STREAM}#xmpp-{uuid.uuid4().hex[:6]}"
        answer = await via_xmpp(forwarder, forged(ivorn))
        assert answer.startswith("NAK (authority)") and "trigger workflow" in answer, answer
        attempts.append(ivorn)

        # 2. an allowed VTP author (burstbus publish to the author port)
        ivorn = f"{COLIBRI_STREAM}#vtp-{uuid.uuid4().hex[:6]}"
        result = await publish("127.0.0.1", bus.receive_port, forged(ivorn))
        assert not result.acknowledged and "Event rejected (authority)" in (result.reason or ""), result
        attempts.append(ivorn)

        # ... and the same through NATS and HTTP POST
        ivorn = f"{COLIBRI_STREAM}#nats-{uuid.uuid4().hex[:6]}"
        reply = await nc.request("burstbus.in.voevent", forged(ivorn), timeout=DEADLINE)
        assert reply.data.decode().startswith("NAK ") and "trigger stream" in reply.data.decode(), reply.data
        attempts.append(ivorn)
        ivorn = f"{COLIBRI_STREAM}#http-{uuid.uuid4().hex[:6]}"
        async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{http_port}/api/voevents", data=forged(ivorn),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/xml"},
        ) as response:
            body = await response.json()
            assert response.status in (403, 422) and body.get("code") == "authority", (response.status, body)
        attempts.append(ivorn)

        # 3. pre-emption: the pending request's id is known; the attacker submits a packet under
        #    the IVORN the workflow used to derive from it (request id alone), at its own position
        await ask(alice, f"trigger COLIBRI {burst} slew now", "recorded", room=rooms.ba, nick="alice")
        [requested] = await bus.core.log.read(0, ReadFilter.of(["trigger.requested"]))
        request_id = requested.data["request_id"]
        predicted = f"{COLIBRI_STREAM}#{request_id}"
        assert (await via_xmpp(forwarder, forged(predicted))).startswith("NAK (authority)")
        assert not (await publish("127.0.0.1", bus.receive_port, forged(predicted))).acknowledged
        attempts.append(predicted)
        assert await bus.core.log.find(accepted_event_id(predicted)) is None

        # the genuine approval sends the genuine packet, once, everywhere
        code = await code_from_page(bob, burst, "COLIBRI")
        answer = await ask(bob, f"approve {code} COLIBRI", "Sent to COLIBRI")
        [sent] = await bus.core.log.read(0, ReadFilter.of(["trigger.sent"]))
        ivorn = sent.data["voevent_ivorn"]
        assert ivorn != predicted and ivorn.startswith(f"{predicted}-") and ivorn in answer
        assert set(sent.data["channels"]) == {"vtp", "xmpp", "nats"}
        await wait_for(lambda: vtp_got, "the trigger at the VTP telescope")
        await wait_for(lambda: nats_got, "the trigger on the telescope's NATS subject")
        [message] = await colibri.wait_chat(BOT, "")
        genuine = await bus.core.log.find(accepted_event_id(ivorn))
        assert genuine is not None and genuine.actor == "local:triggers"
        packet = genuine.data["xml"].encode()
        position = examine(packet).summary["position"]  # where the burst is, not the attacker's spot
        assert abs(position["ra"] - 123.456) < 1e-3 and abs(position["dec"] + 12.5) < 1e-3, position
        assert voevent_payload(message.xml) == packet
        assert nats_got == [packet]

        # every forgery is a refusal in the log, none was accepted, none went out anywhere
        rejected = {r.data.get("ivorn"): r.data for r in await bus.core.log.read(0, ReadFilter.of(["voevent.rejected"]))}
        for attempt in attempts:
            assert rejected[attempt]["code"] == "authority", attempt
            assert await bus.core.log.find(accepted_event_id(attempt)) is None
        accepted = [r.data["ivorn"] for r in await bus.core.log.read(0, ReadFilter.of(["voevent.accepted"]))]
        assert [i for i in accepted if i.startswith(COLIBRI_STREAM)] == [ivorn]
        await asyncio.sleep(0.2)  # anything forged would have arrived with or before the genuine packet
        assert [i for i, _ in vtp_got] == [ivorn]
        assert len(colibri.chats(BOT)) == 1
        await wait_for(lambda: utility_got, "the outbox's copy of the trigger on burstbus.voevent.utility")
        assert utility_got == [packet]
    finally:
        vtp_telescope.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await vtp_telescope
        await nc.close()
