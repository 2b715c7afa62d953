"""One outgoing message as it goes on the wire: :class:`Outgoing` and its message stanza.

This is a module of its own so the stanza format is defined once: the stable stanza id (a
re-send after an outage carries the same id, and clients can drop a repeat) and the
``urn:burstbus:voevent:0`` payload, which carries a raw VOEvent byte for byte. The bot uses it
when it sends. The tests use it too, when they play a telescope or a Burst Advocate sending a
VOEvent to the bot. The receiving side is :func:`~burstbus.bridges.xmpp.intake.voevent_payload`.
Nothing here needs a session.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Literal

import slixmpp
from slixmpp.xmlstream import ET

from burstbus.bridges.xmpp.intake import NS_VOEVENT

#: The message types the bot sends.
MessageType = Literal["chat", "groupchat", "normal"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to send. ``id`` is stable (derived from the log event) so a re-send after
    an outage carries the same id and clients can drop a repeat."""

    to: str
    type: MessageType
    body: str
    id: str
    #: A raw VOEvent for the ``urn:burstbus:voevent:0`` payload.
    voevent: bytes | None = None


def voevent_element(raw: bytes) -> ET.Element:
    """``<voevent xmlns="urn:burstbus:voevent:0">``: the VOEvent document as escaped text when
    it is UTF-8 that XML character data carries unchanged, else ``encoding="base64"``."""
    element = ET.Element(f"{{{NS_VOEVENT}}}voevent")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\r" not in text and all(c in "\t\n" or c >= " " for c in text if c < " "):
        element.text = text
    else:
        element.set("encoding", "base64")
        element.text = base64.b64encode(raw).decode("ascii")
    return element


def message_stanza(client: slixmpp.ClientXMPP, out: Outgoing) -> Any:
    """The message stanza for ``out``, built by ``client`` and not yet sent."""
    message = client.make_message(mto=out.to, mbody=out.body, mtype=out.type)
    message["id"] = out.id
    if out.voevent is not None:
        message.xml.append(voevent_element(out.voevent))
    return message
