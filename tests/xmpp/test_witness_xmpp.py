"""The witness in a real Prosody room: a Burst Advocate's client sees the signed checkpoint, and
the message copied from the room catches the log rewritten (one packet changed, everything after
re-chained) that ``burstbus verify`` alone passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from burstbus.handlers.witness.checkpoint import check_signature, documents_in
from burstbus.handlers.witness.keys import PublicKey
from burstbus.handlers.witness.witness import Witness
from tests.waiting import wait_for
from tests.witness.helpers import BURST, burstbus, copy_log, make_key, notice, rewrite
from tests.xmpp.conftest import Burstbus, Clients, Rooms, jid, xmpp_options
from tests.xmpp.harness import Prosody

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_checkpoint_posted_in_a_room_catches_a_rewritten_log(
    prosody: Prosody, rooms: Rooms, clients: Clients, started: list[Burstbus], tmp_path: Path
) -> None:
    key = make_key(tmp_path)
    alice = await clients.login("alice")
    await alice.join(rooms.ba, "alice")
    data = tmp_path / "data"
    bus = await Burstbus.start(data, xmpp_options(prosody, rooms),
                               witness={"enabled": True, "key_file": str(key), "interval": 0, "nats_subject": "",
                                        "xmpp_rooms": [rooms.ba]})
    started.append(bus)
    await bus.ready()
    witness = bus.service.part(Witness)
    assert witness is not None
    await wait_for(lambda: all(f.positioned.is_set() for f in witness.followers.values()), "the witness's outbox")
    seqs = []
    for n in range(3):
        result = await bus.core.ingest.submit(notice(n, BURST), via="local", peer="test")
        seqs.append(result.seq)
    signed = await witness.sign_now(actor=f"xmpp:{jid('owner')}")

    [message] = await alice.wait_room(rooms.ba, "burstbus log checkpoint")
    assert message.frm == f"{rooms.ba}/burstbus"
    record = await bus.core.log.get(signed.seq)
    assert record is not None and message.id == record.id  # the event's id as the stanza id
    [posted] = documents_in(message.body)
    assert posted == signed.checkpoint
    assert f"seq {posted.payload.seq} hash {posted.payload.hash}" in message.body.splitlines()[0]
    assert check_signature(posted, [PublicKey.parse(str(key.with_name("witness.key.pub")))])
    await bus.stop()

    copied = tmp_path / "copied-from-the-room.txt"
    copied.write_text(message.body)  # what a BA pastes from their client
    pub = str(key.with_name("witness.key.pub"))
    ok = burstbus(data, "verify", "--against", str(copied), "--public-key", pub)
    assert ok.returncode == 0, ok.stdout + ok.stderr

    copy_log(data / "log.sqlite", tmp_path / "copy" / "log.sqlite")
    rewrite(tmp_path / "copy" / "log.sqlite", seqs[1], lambda text: text.replace("123.456", "124.456"))
    plain = burstbus(tmp_path / "copy", "verify")
    assert plain.returncode == 0, plain.stdout  # consistent again: the plain walk cannot tell
    caught = burstbus(tmp_path / "copy", "verify", "--against", str(copied), "--public-key", pub)
    assert caught.returncode == 1, caught.stdout + caught.stderr
    head = posted.payload.seq
    assert caught.stdout.startswith(f"REWRITTEN: checkpoint seq {head} ")
    assert "where: the first changed record is in seq 1.." in caught.stdout  # no earlier signed checkpoint to narrow it


async def test_an_admin_asks_the_bot_for_a_checkpoint_and_the_room_gets_it(
    prosody: Prosody, rooms: Rooms, clients: Clients, started: list[Burstbus], tmp_path: Path
) -> None:
    key = make_key(tmp_path)
    owner, carol = await clients.login("owner"), await clients.login("carol")
    await owner.join(rooms.ba, "owner")
    bus = await Burstbus.start(
        tmp_path / "data", xmpp_options(prosody, rooms, forward=[]), real_bot=True,
        acl={"default_role": "viewer", "users": [{"jid": jid("owner"), "roles": ["admin"]}, {"jid": jid("carol"), "roles": ["viewer"]}]},
        witness={"enabled": True, "key_file": str(key), "interval": 0, "nats_subject": "", "xmpp_rooms": [rooms.ba]},
    )
    started.append(bus)
    await bus.ready()
    witness = bus.service.part(Witness)
    assert witness is not None
    await wait_for(lambda: all(f.positioned.is_set() for f in witness.followers.values()), "the witness's outbox")
    await bus.core.ingest.submit(notice(7, BURST), via="local", peer="test")

    carol.say(jid("burstbus"), "checkpoint")
    [refused] = await carol.wait_chat(jid("burstbus"), "checkpoint")
    assert "Signed" not in refused.body
    owner.say(jid("burstbus"), "checkpoint")
    [answer] = await owner.wait_chat(jid("burstbus"), "Signed the log's head")
    [posted] = await owner.wait_room(rooms.ba, "burstbus log checkpoint")
    [checkpoint] = documents_in(posted.body)
    assert f"seq {checkpoint.payload.seq}, hash {checkpoint.payload.hash}" in answer.body
    events = await bus.core.log.read(0)
    [signed] = [r for r in events if r.type == "log.checkpoint_signed"]
    assert signed.actor == f"xmpp:{jid('owner')}" and signed.data["checkpoint"] == checkpoint.document()
    commands = [r for r in events if r.type == "ba.command" and r.data.get("command") == "checkpoint"]
    assert [(r.actor, r.data["outcome"]) for r in commands] == [(f"xmpp:{jid('carol')}", "refused"), (f"xmpp:{jid('owner')}", "ok")]
    assert commands[1].seq == signed.seq + 1  # the command's own event just before its record
