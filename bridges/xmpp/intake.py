"""What a received stanza means for the bot: a command (and who asked), a VOEvent, or nothing.

Pure functions over the stanza's XML and the rooms' occupant tables, so that every rule of
identity can be tested without a server:

* **Identity is what the server stamped**, never text: a direct message's ``from`` bare JID;
  in a room, the occupant's real JID taken from the room's presence (``muc#user`` item
  ``jid``) *at the moment of the message* — and only in a room that says it is
  non-anonymous (status 100 in our own join presence, 172/173 on configuration changes).
  A nickname is display only: someone else taking "alice" is still someone else.
* A private message from a room occupant (``room@conference/nick``) never carries a real
  JID: it becomes an unidentified asker (read-only commands at most).
* Never a command: errors, headlines, carbons (XEP-0280 ``sent``/``received``), forwarded
  (XEP-0297) and archived (XEP-0313) messages, anything delayed (XEP-0203, which is how room
  history replayed on join arrives), the room's own messages and our own echoes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal
from xml.etree.ElementTree import Element

from burstbus.chat import Asker, Command

log = logging.getLogger(__name__)

NS_CLIENT = "jabber:client"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_LEGACY_DELAY = "jabber:x:delay"
#: The namespaced payload carrying a raw VOEvent (see :func:`voevent_payload`).
NS_VOEVENT = "urn:burstbus:voevent:0"

_BODY = f"{{{NS_CLIENT}}}body"
_SUBJECT = f"{{{NS_CLIENT}}}subject"


def bare(jid: str) -> str:
    """``alice@fsc.example/phone`` → ``alice@fsc.example`` (lower case, as the server compares)."""
    return jid.split("/", 1)[0].strip().lower()


def resource(jid: str) -> str:
    return jid.split("/", 1)[1] if "/" in jid else ""


@dataclass
class RoomState:
    """What the bot knows about one configured room, from the room's own presence stanzas."""

    jid: str
    nick: str
    #: The room told us it shows real JIDs to everyone (status 100 / 172).
    non_anonymous: bool = False
    joined: bool = False
    #: nick → the occupant's real bare JID (None when the room does not show it).
    occupants: dict[str, str | None] = field(default_factory=dict)
    error: str | None = None

    def reset(self) -> None:
        """A new session: we are in no room until the server says so again."""
        self.joined = False
        self.non_anonymous = False
        self.occupants.clear()

    def real_jid(self, nick: str) -> str | None:
        """The real bare JID of the occupant using ``nick`` now; None if hidden or unknown."""
        if not self.non_anonymous:
            return None
        return self.occupants.get(nick)


class Rooms:
    """The configured rooms by bare JID; updated from presence, consulted for every message."""

    def __init__(self, rooms: dict[str, str]):
        self.by_jid: dict[str, RoomState] = {bare(j): RoomState(bare(j), nick) for j, nick in rooms.items()}
        #: MUC service domains: a message from any JID there is a room (or an occupant).
        self.domains = {j.split("@", 1)[1] for j in self.by_jid}

    def get(self, jid: str) -> RoomState | None:
        return self.by_jid.get(bare(jid))

    def is_muc(self, jid: str) -> bool:
        """Is this JID a room or a room occupant (one of ours, or on a MUC service we use)?"""
        b = bare(jid)
        return b in self.by_jid or b.split("@", 1)[-1] in self.domains

    def reset(self) -> None:
        for room in self.by_jid.values():
            room.reset()

    def presence(self, stanza: Element) -> RoomState | None:
        """Fold one presence stanza into the occupant tables; returns the room it concerned."""
        frm = stanza.get("from") or ""
        room = self.get(frm)
        nick = resource(frm)
        if room is None or not nick:
            return None
        kind = stanza.get("type") or "available"
        x = stanza.find(f"{{{NS_MUC_USER}}}x")
        codes = {s.get("code") for s in x.findall(f"{{{NS_MUC_USER}}}status")} if x is not None else set()
        if kind == "error":
            if nick == room.nick:
                error = stanza.find(f"{{{NS_CLIENT}}}error")
                condition = error[0].tag.split("}")[-1] if error is not None and len(error) else "error"
                room.joined = False
                room.error = f"could not join as {nick}: {condition}"
            return room
        own = "110" in codes
        if kind == "unavailable":
            room.occupants.pop(nick, None)
            if own:
                room.joined = False
            return room
        item = x.find(f"{{{NS_MUC_USER}}}item") if x is not None else None
        real = item.get("jid") if item is not None else None
        room.occupants[nick] = bare(real) if real else None
        if own:
            room.joined = True
            room.error = None
            room.nick = nick  # the service may have changed it (status 210)
            room.non_anonymous = "100" in codes
        return room


@dataclass(frozen=True)
class Origin:
    """Where an answer goes: the room (groupchat) or the sender's full JID (chat)."""

    to: str
    type: Literal["chat", "groupchat"]


@dataclass(frozen=True)
class Intake:
    """The verdict on one message stanza."""

    kind: Literal["command", "voevent", "drop"]
    reason: str = ""
    command: Command | None = None
    origin: Origin | None = None
    #: For ``voevent``: the packet bytes and the sender's bare JID.
    payload: bytes | None = None
    sender: str | None = None
    #: A dropped message had a body (someone may have meant it as a command): log it.
    had_body: bool = False


def _drop(reason: str, had_body: bool = False) -> Intake:
    return Intake("drop", reason, had_body=had_body)


def addressed(body: str, nicks: list[str]) -> str | None:
    """The command text if ``body`` addresses the bot (``burstbus: …``, ``burstbus, …``,
    ``@burstbus …``), else None."""
    text = body.strip()
    lowered = text.lower()
    for nick in nicks:
        for form in (f"@{nick}", nick):
            if lowered.startswith(form.lower()):
                rest = text[len(form) :]
                if not rest or rest[0] in ":,; \t\r\n":
                    return rest.lstrip(":,; \t\r\n").strip()
    return None


def looks_like_voevent(body: str) -> bool:
    head = body.lstrip()[:2048]
    return head.startswith("<") and "VOEvent" in head


def voevent_payload(stanza: Element) -> bytes | None:
    """The packet in a ``<voevent xmlns="urn:burstbus:voevent:0">`` element, if any: its
    text is the XML document (escaped as character data), or base64 of the exact bytes when
    ``encoding="base64"``."""
    element = stanza.find(f"{{{NS_VOEVENT}}}voevent")
    if element is None:
        return None
    text = element.text or ""
    if (element.get("encoding") or "").lower() == "base64":
        import base64
        import binascii

        try:
            return base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            return b""
    return text.encode("utf-8")


def _has_child_ns(stanza: Element, namespace: str, names: tuple[str, ...] | None = None) -> bool:
    for child in stanza:
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag.startswith(f"{{{namespace}"):
            if names is None or tag.split("}", 1)[1] in names:
                return True
    return False


def classify(stanza: Element, *, me: str, rooms: Rooms, nick: str) -> Intake:
    """Decide what one message stanza is. ``me`` is the bot's full JID; ``nick`` its default
    room nickname (each room's current nick is in ``rooms``)."""
    kind = stanza.get("type") or "normal"
    frm = stanza.get("from") or ""
    body_el = stanza.find(_BODY)
    body = body_el.text if body_el is not None and body_el.text else ""
    has_body = bool(body.strip())
    if kind == "error":
        return _drop("error", has_body)
    if kind == "headline":
        return _drop("headline", has_body)
    if not frm:
        return _drop("no sender (from our own server or account)", has_body)
    if _has_child_ns(stanza, NS_CARBONS, ("sent", "received")):
        return _drop("carbon copy", True)
    if _has_child_ns(stanza, NS_FORWARD):
        return _drop("forwarded message", True)
    if any(isinstance(c.tag, str) and c.tag.startswith("{urn:xmpp:mam:") and c.tag.endswith("}result") for c in stanza):
        return _drop("archived message (MAM result)", True)
    if _has_child_ns(stanza, NS_DELAY, ("delay",)) or _has_child_ns(stanza, NS_LEGACY_DELAY, ("x",)):
        return _drop("delayed message (history or offline delivery)", has_body)
    if kind == "groupchat":
        return _groupchat(stanza, frm, body, rooms)
    if kind not in ("chat", "normal"):
        return _drop(f"message type {kind}", has_body)
    if bare(frm) == bare(me):
        return _drop("from our own account", has_body)
    if rooms.is_muc(frm):
        # A private message through a room: the sender is an occupant nickname, whoever is
        # behind it. Never the real user: unidentified (read-only at most).
        room_jid, occupant = bare(frm), resource(frm)
        if not has_body or not occupant:
            return _drop("room private message without text", has_body)
        text = addressed(body, [nick]) or body.strip()
        asker = Asker(jid=None, via="room", room=room_jid, nick=occupant)
        return Intake("command", "private message through a room", Command(asker, text), Origin(frm, "chat"))
    payload = voevent_payload(stanza)
    if payload is None and has_body and looks_like_voevent(body):
        payload = body.encode("utf-8")
    if payload is not None:
        return Intake("voevent", "VOEvent", origin=Origin(frm, "chat"), payload=payload, sender=bare(frm))
    if not has_body:
        return _drop("no text (chat state, receipt …)")
    asker = Asker(jid=bare(frm), via="dm")
    return Intake("command", "direct message", Command(asker, body.strip()), Origin(frm, "chat"))


def _groupchat(stanza: Element, frm: str, body: str, rooms: Rooms) -> Intake:
    room = rooms.get(frm)
    has_body = bool(body.strip())
    if room is None:
        return _drop("group chat from a room we do not serve", has_body)
    occupant = resource(frm)
    if not occupant:
        x = stanza.find(f"{{{NS_MUC_USER}}}x")
        codes = {s.get("code") for s in x.findall(f"{{{NS_MUC_USER}}}status")} if x is not None else set()
        if "172" in codes:
            room.non_anonymous = True
        if "173" in codes or "174" in codes:
            room.non_anonymous = False
        return _drop("the room's own message", has_body)
    if occupant == room.nick:
        return _drop("our own message echoed by the room", False)
    if stanza.find(_SUBJECT) is not None and not has_body:
        return _drop("room subject")
    if not has_body:
        return _drop("no text")
    text = addressed(body, [room.nick])
    if text is None:
        return _drop("not addressed to the bot")
    asker = Asker(jid=room.real_jid(occupant), via="room", room=room.jid, nick=occupant)
    return Intake("command", "addressed in a room", Command(asker, text), Origin(room.jid, "groupchat"))
