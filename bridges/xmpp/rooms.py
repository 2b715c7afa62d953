"""The bot's rooms (XEP-0045): joined at each new session, retried after a refusal, and settled.

The rest of the bridge depends on which rooms the bot is in. The outbox posts summaries only to
joined rooms and waits for the rooms to settle before its first batch. So what the bot *does*
about rooms is one part: joining without history, rejoining after a session that could not be
resumed, retrying rooms that refused it, and saying when every room has answered. What the bot
*knows* about a room (joined, occupants, real JIDs) is read from the room's own presence by the
pure :class:`~burstbus.bridges.xmpp.intake.Rooms`, which the command intake reads as well.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import slixmpp
from slixmpp.xmlstream import ET

from burstbus.bridges.xmpp.config import XmppSection
from burstbus.bridges.xmpp.intake import Rooms, bare
from burstbus.config import resolve_secret

log = logging.getLogger(__name__)

NS_MUC = "http://jabber.org/protocol/muc"


def room_passwords(section: XmppSection) -> dict[str, str]:
    """Bare room JID → its password, for the rooms that have one (secrets resolved here)."""
    return {bare(r.jid): resolve_secret(r.password, "xmpp.rooms.password") for r in section.rooms if r.password}


class RoomMembership:
    """Joins the configured rooms and follows whether they have all answered (``settled``)."""

    def __init__(self, client: slixmpp.ClientXMPP, rooms: Rooms, passwords: Mapping[str, str],
                 up: asyncio.Event, *, retry_every: float):
        self.client = client
        self.rooms = rooms
        self._passwords = dict(passwords)
        #: Set while the session is up (the connection owns it).
        self.up = up
        #: Seconds between tries at rooms that refused us.
        self.retry_every = retry_every
        #: Set once every room is joined or has refused us.
        self.settled = asyncio.Event()

    def join_all(self) -> None:
        """A new session: the server has forgotten us in every room, so each is joined anew."""
        self.rooms.reset()
        self.settled.clear()
        for room in self.rooms.by_jid.values():
            self._join(room.jid, room.nick)
        self._check_settled()

    def join_missing(self) -> None:
        """A resumed session: the server kept us in our rooms; only the others are tried again."""
        for room in self.rooms.by_jid.values():
            if not room.joined:
                self._join(room.jid, room.nick)
        self._check_settled()

    def presence(self, presence: Any) -> None:
        """A presence stanza: the room it is from (if ours) updates what we know of it."""
        room = self.rooms.presence(presence.xml)
        if room is not None:
            if room.error:
                log.error("XMPP room %s: %s", room.jid, room.error)
            self._check_settled()

    def joined(self) -> set[str]:
        return {r.jid for r in self.rooms.by_jid.values() if r.joined}

    def health(self) -> dict[str, object]:
        return {
            r.jid: {"joined": r.joined, "nick": r.nick, "real_jids": r.non_anonymous, "occupants": len(r.occupants), "error": r.error}
            for r in self.rooms.by_jid.values()
        }

    async def rejoin_refused(self) -> None:
        """Retry rooms that refused us (not yet a member, room not created yet …)."""
        while True:
            await asyncio.sleep(self.retry_every)
            if self.up.is_set():
                for room in self.rooms.by_jid.values():
                    if room.error and not room.joined:
                        self._join(room.jid, room.nick)

    def _join(self, room: str, nick: str) -> None:
        """Join presence with no history requested (history would be delayed messages anyway)."""
        presence = self.client.make_presence(pto=f"{room}/{nick}")
        x = ET.SubElement(presence.xml, f"{{{NS_MUC}}}x")
        history = ET.SubElement(x, f"{{{NS_MUC}}}history")
        history.set("maxchars", "0")
        password = self._passwords.get(room)
        if password:
            ET.SubElement(x, f"{{{NS_MUC}}}password").text = password
        presence.send()

    def _check_settled(self) -> None:
        """Rooms are settled when each is joined or refused us (a refusal is logged and in health)."""
        if all(r.joined or r.error for r in self.rooms.by_jid.values()):
            self.settled.set()
