"""Commands as a real server delivers them: who the bot is told asked, and what it never hears.

A recording ChatBot stands in for the Burst Advocate bot: these tests are about the transport
(identity from the server and the room's presence, what is dropped, where answers go).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from burstbus.bridges.xmpp.stanzas import voevent_element
from burstbus.chat import Page
from burstbus.store.base import ReadFilter
from tests.packets import voevent
from tests.waiting import wait_for
from tests.xmpp.conftest import Burstbus, Clients, RecordingBot, Rooms, jid, xmpp_options
from tests.xmpp.harness import Prosody, raw_message

pytestmark = pytest.mark.asyncio(loop_scope="session")

BOT = jid("burstbus")


async def test_identity_in_direct_messages_rooms_and_private_messages(
    prosody: Prosody, rooms: Rooms, clients: Clients, started: list[Burstbus], tmp_path: Path
) -> None:
    bot = RecordingBot(pages=lambda c: [Page(jid("bob"), f"page for bob: {c.text}")] if "page bob" in c.text else [])
    bus = await Burstbus.start(tmp_path / "data", xmpp_options(prosody, rooms), bot=bot)
    started.append(bus)
    alice = await clients.login("alice")
    bob = await clients.login("bob")
    mallory = await clients.login("mallory")
    await bus.ready()

    # a direct message: the server-stamped bare JID; the answer goes back to that resource
    alice.say(BOT, "burst sb1 page bob")
    [answer] = await alice.wait_chat(BOT, "heard 'burst sb1 page bob' from alice@localhost")
    await bob.wait_chat(BOT, "page for bob: burst sb1 page bob")
    assert bot.commands[-1].asker.jid == "alice@localhost" and bot.commands[-1].asker.via == "dm"

    # in the members-only, non-anonymous room: the occupant's real JID; the answer names them
    await alice.join(rooms.ba, "alice")
    alice.say(rooms.ba, "burstbus: status", "groupchat")
    await alice.wait_room(rooms.ba, "alice: heard 'status' from alice@localhost")
    asker = bot.commands[-1].asker
    assert (asker.jid, asker.via, asker.room, asker.nick) == ("alice@localhost", "room", rooms.ba, "alice")

    # mallory takes the nickname "alice" in the other room... and in this one once alice left
    alice.plugin["xep_0045"].leave_muc(rooms.ba, "alice")
    await wait_for(lambda: "alice" not in bus.xmpp.connection.rooms.by_jid[rooms.ba].occupants, "alice to leave")
    await mallory.join(rooms.ba, "alice")
    mallory.say(rooms.ba, "burstbus: trigger colibri sb1", "groupchat")
    await mallory.wait_room(rooms.ba, "heard 'trigger colibri sb1' from mallory@localhost")
    assert bot.commands[-1].asker.jid == "mallory@localhost" and bot.commands[-1].asker.nick == "alice"

    # a private message through the room (room JID as sender): never the real user
    mallory.say(f"{rooms.ba}/burstbus", "approve 7Q2K")
    await mallory.wait_chat(rooms.ba, "heard 'approve 7Q2K' from unidentified")
    asker = bot.commands[-1].asker
    assert asker.jid is None and asker.room == rooms.ba and asker.nick == "alice"

    # a room that hides real JIDs: read-only askers (no JID), even though the bot could see it
    await bob.join(rooms.anon, "bob")
    bob.say(rooms.anon, "@burstbus status", "groupchat")
    await bob.wait_room(rooms.anon, "bob: heard 'status' from unidentified")
    assert bot.commands[-1].asker.jid is None and bot.commands[-1].asker.room == rooms.anon
    assert bus.xmpp.health()["rooms"][rooms.anon]["real_jids"] is False  # type: ignore[index]


async def test_carbons_forwards_archives_and_history_are_never_commands(
    prosody: Prosody, rooms: Rooms, clients: Clients, started: list[Burstbus], tmp_path: Path
) -> None:
    alice = await clients.login("alice")
    mallory = await clients.login("mallory")
    # room history: alice addressed the bot before it joined
    await alice.join(rooms.ba, "alice")
    alice.say(rooms.ba, "burstbus: approve HISTORY1", "groupchat")
    await alice.wait_room(rooms.ba, "approve HISTORY1")
    bot = RecordingBot()
    bus = await Burstbus.start(tmp_path / "data", xmpp_options(prosody, rooms), bot=bot)
    started.append(bus)
    await bus.ready()
    # a real carbon: someone logged in as the bot account on a second device sends a message;
    # the server copies it to the bot's session (carbons enabled there for this test)
    await bus.xmpp.connection.client.plugin["xep_0280"].enable()
    operator = await clients.login("burstbus", "operator-desktop")
    operator.say(jid("alice"), "burstbus: approve CARBON1")
    alice.say(f"{BOT}/operator-desktop", "approve CARBON2")  # received carbon of a message to another resource
    # forged wrappers with a body of their own
    mallory.send_raw(raw_message(BOT, '<body>approve FORWARD1</body><forwarded xmlns="urn:xmpp:forward:0"><message xmlns="jabber:client" '
                             'from="alice@localhost/phone" type="chat"><body>approve FORWARD1</body></message></forwarded>'))
    mallory.send_raw(raw_message(BOT, '<body>approve CARBON3</body><received xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0">'
                             '<message xmlns="jabber:client" from="alice@localhost/phone" type="chat"><body>approve CARBON3</body>'
                             "</message></forwarded></received>"))
    mallory.send_raw(raw_message(BOT, '<body>approve MAM1</body><result xmlns="urn:xmpp:mam:2" id="x"/>'))
    mallory.send_raw(raw_message(BOT, '<body>approve DELAY1</body><delay xmlns="urn:xmpp:delay" stamp="2026-11-20T03:00:00Z"/>'))
    # then live commands from the same sessions: nothing before them may have reached the bot
    mallory.say(BOT, "burst LIVE2")
    alice.say(BOT, "burst LIVE1")
    await alice.wait_chat(BOT, "heard 'burst LIVE1'")
    await mallory.wait_chat(BOT, "heard 'burst LIVE2'")
    dropped = bus.xmpp.connection.dropped
    await wait_for(lambda: dropped["carbon copy"] >= 3 and dropped["forwarded message"] and dropped["archived message (MAM result)"]
                   and dropped["delayed message (history or offline delivery)"], f"carbons and forged wrappers to be dropped: {dropped}")
    assert sorted(bot.texts()) == ["burst LIVE1", "burst LIVE2"], bot.texts()


async def test_voevents_from_allowed_senders_are_ingested_others_refused(
    prosody: Prosody, rooms: Rooms, clients: Clients, started: list[Burstbus], tmp_path: Path
) -> None:
    bus = await Burstbus.start(tmp_path / "data", xmpp_options(prosody, rooms), bot=RecordingBot())
    started.append(bus)
    forwarder = await clients.login("forwarder", "gajim")
    mallory = await clients.login("mallory")
    alice = await clients.login("alice")
    await alice.join(rooms.ba, "alice")
    await bus.ready()
    burst = f"sb{uuid.uuid4().hex[:8]}"
    ivorn = f"ivo://org.svom/fsc#fwd-{uuid.uuid4().hex[:6]}"
    raw = voevent(ivorn, params={"Burst_Id": burst})
    # in the namespaced payload, with a text body
    message = forwarder.make_message(mto=BOT, mbody="forwarding a notice", mtype="chat")
    message.xml.append(voevent_element(raw))
    message.send()
    await forwarder.wait_chat(BOT, f"ACK: accepted {ivorn}")
    accepted = await bus.core.log.read(0, ReadFilter.of(["voevent.accepted"]))
    assert [(r.data["ivorn"], r.data["via"], r.data["peer"], r.actor) for r in accepted] == [
        (ivorn, "xmpp", "forwarder@localhost", "xmpp:forwarder@localhost")
    ]
    await alice.wait_room(rooms.ba, burst)  # through the log like any other notice
    # the same packet again as a plain body: a duplicate, acknowledged, nothing added
    forwarder.say(BOT, raw.decode())
    await forwarder.wait_chat(BOT, f"ACK: already have {ivorn}")
    # a broken packet from an allowed sender: NAK with the ingest's reason and its event
    forwarder.say(BOT, "<?xml version='1.0'?><voe:VOEvent broken")
    await forwarder.wait_chat(BOT, "NAK (not_xml)")
    # an unlisted sender: refused with the reason, recorded
    other = voevent(f"ivo://org.svom/fsc#evil-{uuid.uuid4().hex[:6]}")
    mallory.say(BOT, other.decode())
    await mallory.wait_chat(BOT, "NAK: refused. mallory@localhost is not allowed to submit VOEvents")
    rejected = await bus.core.log.read(0, ReadFilter.of(["voevent.rejected"]))
    assert [(r.data["code"], r.data["peer"]) for r in rejected] == [("not_xml", "forwarder@localhost"), ("unauthorized", "mallory@localhost")]
    assert len(await bus.core.log.read(0, ReadFilter.of(["voevent.accepted"]))) == 1
