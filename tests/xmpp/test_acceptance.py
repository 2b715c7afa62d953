"""Issue 5's acceptance, end to end: real Prosody, real slixmpp clients as Burst Advocates,
the real bot (bots/bot.py), notices over VTP, triggers to a VTP subscriber and an XMPP
telescope, and ``burstbus log`` telling who did what."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from burstbus.bridges.xmpp.intake import voevent_payload
from burstbus.broker.client import publish, subscribe
from burstbus.store.base import ReadFilter
from tests.packets import voevent
from tests.waiting import DEADLINE, wait_for
from tests.xmpp.conftest import Burstbus, Clients, Rooms, jid, xmpp_options
from tests.xmpp.harness import Prosody, User, raw_message

pytestmark = pytest.mark.asyncio(loop_scope="session")

BOT = jid("burstbus")
ALICE, BOB, CAROL, DAVE, MALLORY = (jid(u) for u in ("alice", "bob", "carol", "owner", "mallory"))
COLIBRI_STREAM = "ivo://fsc.example/trigger/colibri"
CODE = re.compile(r"To approve: approve (\S+) (\S+)")


def sections(prosody: Prosody, rooms: Rooms) -> dict[str, Any]:
    """alice: BA; bob and dave ("owner" account): approvers; carol: viewer; mallory: unlisted."""
    return {
        "xmpp": xmpp_options(prosody, rooms, forward=[]),
        "acl": {
            "default_role": "viewer",
            "users": [
                {"jid": ALICE, "roles": ["ba"], "telescopes": ["COLIBRI", "TAROT"]},
                {"jid": BOB, "roles": ["approver"], "telescopes": ["COLIBRI", "TAROT"]},
                {"jid": DAVE, "roles": ["approver"], "telescopes": ["COLIBRI", "TAROT"]},
                {"jid": CAROL, "roles": ["viewer"]},
            ],
        },
        "triggers": {
            "authority": "fsc.example",
            "code_minutes": 15,
            "telescopes": [
                {"name": "COLIBRI", "two_person": True, "vtp_stream": COLIBRI_STREAM, "jids": [jid("colibri")]},
                {"name": "TAROT", "two_person": True, "jids": [jid("telescope")]},
            ],
        },
    }


class Clock:
    """The bot's clock: real time plus an offset a test can move (code expiry)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


async def start(prosody: Prosody, rooms: Rooms, started: list[Burstbus], data: Path, clock: Clock | None = None) -> Burstbus:
    options = sections(prosody, rooms)
    bus = await Burstbus.start(data, options.pop("xmpp"), real_bot=True, clock=clock, **options)
    started.append(bus)
    await bus.ready()
    return bus


async def new_burst(bus: Burstbus, alice: User, rooms: Rooms) -> str:
    """A notice over VTP; returns its burst id once the room shows it and the read model has it."""
    burst = f"sb{uuid.uuid4().hex[:8]}"
    raw = voevent(f"ivo://org.svom/fsc#{burst}-1", params={"Burst_Id": burst, "Packet_Type": "202"})
    answer = await publish("127.0.0.1", bus.receive_port, raw)
    assert answer.acknowledged, answer.reason
    await alice.wait_room(rooms.ba, burst)
    head = (await bus.core.log.head()).seq
    await wait_for(lambda: bus.core.projections.applied_seq >= head, "the read models to have the burst")
    return burst


async def ask(user: User, text: str, contains: str, *, room: str | None = None, nick: str = "") -> str:
    """Say ``text`` (to the bot directly, or addressed in ``room``); the bot's answer."""
    before = len(user.received)
    if room is None:
        user.say(BOT, text)
    else:
        user.say(room, f"burstbus: {text}", "groupchat")

    def answered() -> str | None:
        for message in user.received[before:]:
            if room is None and message.kind == "chat" and message.frm.startswith(BOT) and contains in message.body:
                return message.body
            if room is not None and message.frm == f"{room}/burstbus" and message.body.startswith(f"{nick}:") and contains in message.body:
                return message.body
        return None

    return await wait_for(answered, f"the bot's answer to {text!r} containing {contains!r}")


async def code_from_page(user: User, burst: str, telescope: str, already: int = 0) -> str:
    def requests() -> list[Any]:
        found = [m for m in user.chats(BOT) if "To approve:" in m.body and f"{telescope} on {burst}" in m.body]
        return found if len(found) > already else []

    pages = await wait_for(requests, f"{user.boundjid.bare}'s approval page for {telescope} on {burst}")
    match = CODE.search(pages[-1].body)
    assert match is not None and match.group(2) == telescope, pages[-1].body
    return match.group(1)


async def sent_events(bus: Burstbus) -> list[Any]:
    return await bus.core.log.read(0, ReadFilter.of(["trigger.sent"]))


async def test_notice_in_room_and_page_then_burst_query_and_a_viewer_cannot_trigger(
    prosody: Prosody, rooms: Rooms, clients: Clients, started: list[Burstbus], tmp_path: Path
) -> None:
    alice = await clients.login("alice")
    carol = await clients.login("carol")
    await alice.join(rooms.ba, "alice")
    await carol.join(rooms.ba, "carol")
    bus = await start(prosody, rooms, started, tmp_path / "data")
    burst = await new_burst(bus, alice, rooms)
    await alice.wait_chat(BOT, f"New notice: {burst}")  # the on-duty BA's page

    answer = await ask(alice, f"burst {burst}", burst, room=rooms.ba, nick="alice")
    assert "123.4" in answer or "08h13m" in answer, answer  # the position the notice gave
    refusal = await ask(carol, f"trigger COLIBRI {burst}", "Sorry", room=rooms.ba, nick="carol")
    assert "trigger" in refusal.lower()
    assert not await bus.core.log.read(0, ReadFilter.of(["trigger.requested"]))
    commands = await bus.core.log.read(0, ReadFilter.of(["ba.command"]))
    assert [(c.data["jid"], c.data["via"], c.data["outcome"]) for c in commands] == [
        (ALICE, "room", "ok"), (CAROL, "room", "refused"),
    ]
    status = await ask(alice, "status", "Chat: connected")
    assert "Chat: connected" in status


async def test_happy_path_request_approve_and_both_telescopes_receive_it(
    prosody: Prosody, rooms: Rooms, clients: Clients, started: list[Burstbus], tmp_path: Path
) -> None:
    alice = await clients.login("alice")
    bob = await clients.login("bob")
    colibri = await clients.login("colibri", "mount")
    await alice.join(rooms.ba, "alice")
    bus = await start(prosody, rooms, started, tmp_path / "data")
    await asyncio.wait_for(bus.vtp.broadcaster_ready.wait(), DEADLINE)
    assert bus.vtp.broadcaster is not None
    got: dict[str, bytes] = {}
    vtp_telescope = asyncio.create_task(subscribe(
        "127.0.0.1", bus.vtp.broadcaster.port, local_ivo="ivo://colibri.example/vtp",
        filters=[f"starts-with(/*/@ivorn, '{COLIBRI_STREAM}#')"], on_event=lambda ivorn, data: got.setdefault(ivorn, data),
    ))
    try:
        broadcaster = bus.vtp.broadcaster
        await wait_for(lambda: sum(s.authenticated for s in broadcaster.subscribers()) >= 1, "the VTP telescope to subscribe")
        burst = await new_burst(bus, alice, rooms)

        await ask(alice, f"trigger COLIBRI {burst} slew now", "recorded", room=rooms.ba, nick="alice")
        code = await code_from_page(bob, burst, "COLIBRI")
        answer = await ask(bob, f"approve {code} COLIBRI", "Sent to COLIBRI")
        [sent] = await sent_events(bus)
        ivorn = sent.data["voevent_ivorn"]
        assert ivorn.startswith(COLIBRI_STREAM + "#") and ivorn in answer
        [message] = await colibri.wait_chat(BOT, "")
        assert voevent_payload(message.xml) is not None and ivorn.encode() in voevent_payload(message.xml)  # type: ignore[operator]
        await wait_for(lambda: ivorn in got, "the trigger VOEvent at the VTP telescope")
        await alice.wait_chat(BOT, "bob@localhost approved your COLIBRI trigger")
    finally:
        vtp_telescope.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await vtp_telescope

    # `burstbus log` shows each step with who did it
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "burstbus.cli", "--data-dir", str(tmp_path / "data"), "log", "--stream", burst,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
    )
    out, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert proc.returncode == 0, err.decode()
    steps = [(e["type"], e["actor"]) for e in map(json.loads, out.decode().splitlines()) if e["type"].startswith("trigger.")]
    assert steps == [
        ("trigger.requested", f"xmpp:{ALICE}"),
        ("trigger.approved", f"xmpp:{BOB}"),
        ("trigger.sent", "system:triggers"),
    ], steps


async def test_security_suite_never_sends_a_trigger(
    prosody: Prosody, rooms: Rooms, clients: Clients, started: list[Burstbus], tmp_path: Path
) -> None:
    clock = Clock()
    alice = await clients.login("alice")
    bob = await clients.login("bob")
    dave = await clients.login("owner")
    mallory = await clients.login("mallory")
    # The one legitimate trigger below goes to COLIBRI's JID: received here, not left in the
    # server's offline store for the next test that logs that account in.
    await clients.login("colibri", "mount")
    await alice.join(rooms.ba, "alice")
    data = tmp_path / "data"
    bus = await start(prosody, rooms, started, data, clock)
    burst = await new_burst(bus, alice, rooms)

    # 1. an unlisted JID can neither request nor approve
    await ask(mallory, f"trigger COLIBRI {burst}", "Sorry")
    await ask(alice, f"trigger COLIBRI {burst}", "recorded")
    code = await code_from_page(bob, burst, "COLIBRI")
    await ask(mallory, f"approve {code} COLIBRI", "Sorry")
    # 2. someone else using an approver's nickname in the room is still someone else
    await mallory.join(rooms.ba, "bob")
    await ask(mallory, f"approve {code} COLIBRI", "Sorry", room=rooms.ba, nick="bob")
    # 3. a direct message from a room occupant's room JID is nobody, even the real approver's
    await dave.join(rooms.ba, "dave")
    before = len(dave.received)
    dave.say(f"{rooms.ba}/burstbus", f"approve {code} COLIBRI")
    await wait_for(lambda: [m for m in dave.received[before:] if m.frm == f"{rooms.ba}/burstbus" and "Sorry" in m.body],
                   "the refusal of a private message through the room")
    # 4. a command inside a carbon (forged by mallory, wrapping dave's words) is never acted on
    mallory.send_raw(raw_message(BOT, f'<received xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0">'
                                      f'<message xmlns="jabber:client" from="{DAVE}/phone" to="{BOT}" type="chat">'
                                      f"<body>approve {code} COLIBRI</body></message></forwarded></received>"))
    # 5. a code for one telescope does not approve another
    await ask(bob, f"approve {code} TAROT", "not TAROT")
    # 6. self-approval on a two-person telescope (bob requests TAROT; dave's page has the code)
    await ask(bob, f"trigger TAROT {burst}", "recorded")
    tarot_code = await code_from_page(dave, burst, "TAROT")
    await ask(bob, f"approve {tarot_code} TAROT", "two people")
    # 7. room history replayed on join: dave approves in the room while the bot is away
    await bus.stop()
    dave.say(rooms.ba, f"burstbus: approve {tarot_code} TAROT", "groupchat")
    await dave.wait_room(rooms.ba, f"approve {tarot_code}")
    bus = await start(prosody, rooms, started, data, clock)
    assert not await sent_events(bus)
    # 8. an expired code (the bot's clock moves 16 minutes on)
    clock.offset = timedelta(minutes=16)
    await ask(dave, f"approve {code} COLIBRI", "expired")
    clock.offset = timedelta()
    # 9. a reused code: approved once (sent), then again
    await ask(alice, f"trigger COLIBRI {burst}", "recorded")
    fresh = await code_from_page(bob, burst, "COLIBRI", already=1)
    await ask(dave, f"approve {fresh} COLIBRI", "Sent to COLIBRI")
    await ask(bob, f"approve {fresh} COLIBRI", "already used")

    sent = await sent_events(bus)
    assert len(sent) == 1, "only the one legitimate approval sent a trigger"
    approvals = await bus.core.log.read(0, ReadFilter.of(["trigger.approved"]))
    assert [(a.data["approved_by"], a.data["telescope"]) for a in approvals] == [(DAVE, "COLIBRI")]
    refused = [c.data for c in await bus.core.log.read(0, ReadFilter.of(["ba.command"])) if c.data["outcome"] != "ok"]
    assert len(refused) >= 8, refused
    assert all(c["jid"] in (None, MALLORY, BOB, DAVE) for c in refused)
    assert any(c["jid"] is None and c["room"] == rooms.ba for c in refused)  # the private message through the room
    assert any(c["jid"] == MALLORY and c["nick"] == "bob" for c in refused)  # mallory as "bob"
    # the carbon and the room history were never commands at all
    assert len([c for c in refused if c["jid"] == MALLORY and c["via"] == "dm" and c["text"].startswith("approve")]) == 1
    assert not [c for c in refused if c["jid"] == DAVE and c["via"] == "room"]
