"""Only the bot's own messages in a room's archive count as "already posted"."""

from __future__ import annotations

from slixmpp import Message

from burstbus.bridges.xmpp.archive import _ours


def stanza(frm: str) -> Message:
    message = Message()
    message["from"] = frm
    message["id"] = "evt-1"
    return message


def test_a_message_from_our_occupant_jid_counts() -> None:
    assert _ours(stanza("ba@conference.fsc.example/burstbus"), "BA@conference.fsc.example", "burstbus")


def test_another_occupant_reusing_our_id_does_not_count() -> None:
    assert not _ours(stanza("ba@conference.fsc.example/mallory"), "ba@conference.fsc.example", "burstbus")
    assert not _ours(stanza("ba@conference.fsc.example/burstbus2"), "ba@conference.fsc.example", "burstbus")


def test_the_same_nick_in_another_room_does_not_count() -> None:
    assert not _ours(stanza("other@conference.fsc.example/burstbus"), "ba@conference.fsc.example", "burstbus")
