"""Who asked, decided from stanzas alone (no server): the identity rules of bridges/xmpp/intake.py."""

from __future__ import annotations

import base64
from xml.etree import ElementTree as ET

from burstbus.bridges.xmpp.intake import Rooms, addressed, classify, voevent_payload
from burstbus.bridges.xmpp.stanzas import voevent_element
from tests.packets import voevent

ROOM = "ba@conference.fsc.example"
ANON = "anon@conference.fsc.example"
ME = "burstbus@fsc.example/burstbus-1234"


def stanza(text: str) -> ET.Element:
    return ET.fromstring(text.replace("<message ", '<message xmlns="jabber:client" ', 1).replace("<presence ", '<presence xmlns="jabber:client" ', 1))


def presence(room: str, nick: str, real: str | None, *codes: str, kind: str = "") -> ET.Element:
    item = f'<item affiliation="member" role="participant"{f" jid={chr(34)}{real}{chr(34)}" if real else ""}/>'
    status = "".join(f'<status code="{c}"/>' for c in codes)
    type_ = f' type="{kind}"' if kind else ""
    return stanza(f'<presence from="{room}/{nick}" to="{ME}"{type_}><x xmlns="http://jabber.org/protocol/muc#user">{item}{status}</x></presence>')


def joined_rooms() -> Rooms:
    rooms = Rooms({ROOM: "burstbus", ANON: "burstbus"})
    rooms.presence(presence(ROOM, "burstbus", ME, "100", "110"))
    rooms.presence(presence(ROOM, "alice", "alice@fsc.example/phone"))
    rooms.presence(presence(ANON, "burstbus", ME, "110"))  # no 100: real JIDs hidden
    rooms.presence(presence(ANON, "alice", "alice@fsc.example/phone"))  # we may see it as moderator
    return rooms


def test_a_direct_message_is_from_the_server_stamped_bare_jid() -> None:
    verdict = classify(stanza(f'<message from="Alice@FSC.example/phone" to="{ME}" type="chat"><body> burst sb1 </body></message>'),
                       me=ME, rooms=joined_rooms(), nick="burstbus")
    assert verdict.kind == "command" and verdict.command is not None and verdict.origin is not None
    assert verdict.command.asker.jid == "alice@fsc.example" and verdict.command.asker.via == "dm"
    assert verdict.command.text == "burst sb1"
    assert verdict.origin.to == "Alice@FSC.example/phone" and verdict.origin.type == "chat"


def test_in_a_room_the_identity_is_the_occupants_real_jid_at_that_moment() -> None:
    rooms = joined_rooms()
    msg = f'<message from="{ROOM}/alice" to="{ME}" type="groupchat"><body>burstbus: trigger colibri</body></message>'
    verdict = classify(stanza(msg), me=ME, rooms=rooms, nick="burstbus")
    assert verdict.command is not None and verdict.command.asker.jid == "alice@fsc.example"
    assert verdict.command.asker.room == ROOM and verdict.command.asker.nick == "alice"
    assert verdict.command.text == "trigger colibri" and verdict.origin is not None and verdict.origin.to == ROOM
    # alice leaves; mallory takes the nickname "alice": the same text is now mallory's
    rooms.presence(presence(ROOM, "alice", "alice@fsc.example/phone", kind="unavailable"))
    rooms.presence(presence(ROOM, "alice", "mallory@fsc.example/laptop"))
    verdict = classify(stanza(msg), me=ME, rooms=rooms, nick="burstbus")
    assert verdict.command is not None and verdict.command.asker.jid == "mallory@fsc.example"
    # an occupant the bot has no presence for is nobody
    ghost = f'<message from="{ROOM}/ghost" to="{ME}" type="groupchat"><body>burstbus: approve X</body></message>'
    verdict = classify(stanza(ghost), me=ME, rooms=rooms, nick="burstbus")
    assert verdict.command is not None and verdict.command.asker.jid is None


def test_a_room_that_hides_real_jids_gives_unidentified_askers_even_if_we_see_them() -> None:
    msg = f'<message from="{ANON}/alice" to="{ME}" type="groupchat"><body>@burstbus status</body></message>'
    verdict = classify(stanza(msg), me=ME, rooms=joined_rooms(), nick="burstbus")
    assert verdict.command is not None and verdict.command.asker.jid is None and verdict.command.text == "status"


def test_a_private_message_through_a_room_is_never_the_real_user() -> None:
    msg = f'<message from="{ROOM}/alice" to="{ME}" type="chat"><body>approve 7Q2K</body><x xmlns="http://jabber.org/protocol/muc#user"/></message>'
    verdict = classify(stanza(msg), me=ME, rooms=joined_rooms(), nick="burstbus")
    assert verdict.command is not None and verdict.command.asker.jid is None
    assert verdict.origin is not None and verdict.origin.to == f"{ROOM}/alice"
    # also from a room of the same MUC service that we are not in
    other = msg.replace(ROOM, "elsewhere@conference.fsc.example")
    verdict = classify(stanza(other), me=ME, rooms=joined_rooms(), nick="burstbus")
    assert verdict.command is not None and verdict.command.asker.jid is None


def test_never_commands() -> None:
    rooms = joined_rooms()
    body = "<body>burstbus: approve 7Q2K</body>"
    cases = {
        "carbon": f'<message from="burstbus@fsc.example" to="{ME}"><received xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0">'
                  f'<message xmlns="jabber:client" from="alice@fsc.example/x" type="chat">{body}</message></forwarded></received></message>',
        "spoofed carbon with a body": f'<message from="mallory@fsc.example/x" to="{ME}" type="chat">{body}<sent xmlns="urn:xmpp:carbons:2"/></message>',
        "forwarded": f'<message from="mallory@fsc.example/x" to="{ME}" type="chat">{body}<forwarded xmlns="urn:xmpp:forward:0"/></message>',
        "archive": f'<message from="mallory@fsc.example/x" to="{ME}">{body}<result xmlns="urn:xmpp:mam:2" id="1"/></message>',
        "history": f'<message from="{ROOM}/alice" to="{ME}" type="groupchat">{body}<delay xmlns="urn:xmpp:delay" stamp="2026-11-20T03:00:00Z"/></message>',
        "offline": f'<message from="alice@fsc.example/x" to="{ME}" type="chat">{body}<delay xmlns="urn:xmpp:delay" stamp="2026-11-20T03:00:00Z"/></message>',
        "legacy delay": f'<message from="alice@fsc.example/x" to="{ME}" type="chat">{body}<x xmlns="jabber:x:delay" stamp="20261120T03:00:00"/></message>',
        "error": f'<message from="alice@fsc.example/x" to="{ME}" type="error">{body}</message>',
        "headline": f'<message from="alice@fsc.example/x" to="{ME}" type="headline">{body}</message>',
        "own echo": f'<message from="{ROOM}/burstbus" to="{ME}" type="groupchat">{body}</message>',
        "room itself": f'<message from="{ROOM}" to="{ME}" type="groupchat">{body}</message>',
        "other room": f'<message from="other@conference.fsc.example/alice" to="{ME}" type="groupchat">{body}</message>',
        "not addressed": f'<message from="{ROOM}/alice" to="{ME}" type="groupchat"><body>approve 7Q2K</body></message>',
        "own account": f'<message from="burstbus@fsc.example/other" to="{ME}" type="chat">{body}</message>',
        "no from": f'<message to="{ME}" type="chat">{body}</message>',
    }
    for name, text in cases.items():
        verdict = classify(stanza(text), me=ME, rooms=rooms, nick="burstbus")
        assert verdict.kind == "drop", name


def test_addressing_forms() -> None:
    assert addressed("burstbus: burst sb1", ["burstbus"]) == "burst sb1"
    assert addressed("Burstbus, status", ["burstbus"]) == "status"
    assert addressed("@burstbus help", ["burstbus"]) == "help"
    assert addressed("burstbus", ["burstbus"]) == ""
    assert addressed("burstbusy: x", ["burstbus"]) is None
    assert addressed("hey burstbus: x", ["burstbus"]) is None


def test_voevent_payloads_round_trip_and_bodies_are_recognised() -> None:
    raw = voevent("ivo://test.example/xmpp#payload")
    message = stanza(f'<message from="forwarder@fsc.example/x" to="{ME}" type="chat"><body>a notice</body></message>')
    message.append(voevent_element(raw))
    assert voevent_payload(ET.fromstring(ET.tostring(message))) == raw
    odd = raw.replace(b"\n", b"\r\n")
    element = voevent_element(odd)
    assert element.get("encoding") == "base64" and base64.b64decode(element.text or "") == odd
    verdict = classify(message, me=ME, rooms=joined_rooms(), nick="burstbus")
    assert verdict.kind == "voevent" and verdict.payload == raw and verdict.sender == "forwarder@fsc.example"
    plain = ET.Element("{jabber:client}message", {"from": "forwarder@fsc.example/x", "type": "chat"})
    ET.SubElement(plain, "{jabber:client}body").text = raw.decode()
    verdict = classify(plain, me=ME, rooms=joined_rooms(), nick="burstbus")
    assert verdict.kind == "voevent" and verdict.payload == raw
