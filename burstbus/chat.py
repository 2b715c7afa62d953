"""The seam between a chat transport (XMPP, later Slack) and the Burst Advocate bot.

A transport turns a received message into a :class:`Command` whose :class:`Asker` it has
established itself (server-stamped bare JID, the occupant's real JID in a room) and passes it
to a :class:`ChatBot`; it sends the :class:`Reply` back where the command came from and each
page to its addressee. The bot never sees stanzas and never trusts names typed in text, so
access control lives in one place and can be tested without a server.

The bot reaches the transport only through :class:`Messenger` (pages outside a reply, the
raw VOEvent of a trigger to a telescope's JID, the connection state for ``status``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from burstbus.component import PortKey


@dataclass(frozen=True)
class Asker:
    """Who sent a command, as the transport established it — never from the message text."""

    #: The server-stamped bare JID (``alice@fsc.example``); ``None`` when a room hides it
    #: (semi-anonymous room): such askers may only run read-only commands.
    jid: str | None
    #: ``dm``: a direct message from the user's own account; ``room``: addressed to the bot
    #: in a group chat.
    via: Literal["dm", "room"]
    #: The bare room JID when ``via == "room"``.
    room: str | None = None
    #: The room nickname: for display and the log only, never identity.
    nick: str | None = None
    transport: str = "xmpp"

    @property
    def identified(self) -> bool:
        return self.jid is not None

    @property
    def actor(self) -> str:
        """The log's ``actor`` for what this asker does (``xmpp:alice@fsc.example``)."""
        who = self.jid or f"{self.room}/{self.nick} (real JID hidden)"
        return f"{self.transport}:{who}"


@dataclass(frozen=True)
class Command:
    asker: Asker
    #: The message body, with the bot's address (``burstbus:``, ``@burstbus``) removed.
    text: str


@dataclass(frozen=True)
class Page:
    """A direct message to someone other than the asker (e.g. an approval code to an approver)."""

    to: str  # bare JID
    text: str


@dataclass
class Reply:
    #: The answer, sent back where the command came from (the room, or the DM).
    text: str
    pages: list[Page] = field(default_factory=list)


class ChatBot(Protocol):
    async def handle(self, command: Command) -> Reply: ...


class Messenger(Protocol):
    """What the bot may ask a chat transport to do (implemented by ``bridges/xmpp``)."""

    async def send_direct(self, jid: str, text: str) -> None:
        """A direct chat message to a bare JID (raises if it cannot be handed to the server)."""
        ...

    async def send_voevent(self, jid: str, xml: bytes, summary: str) -> None:
        """The raw VOEvent in a namespaced payload with ``summary`` as the plain-text body."""
        ...

    def health(self) -> Mapping[str, object]:
        """``{"up": bool, "last_activity": iso-time | None, ...}`` for ``status`` and /healthz."""
        ...


# -- ports: how the bot and a chat transport find each other (burstbus.component) ----------

#: A chat transport's :class:`Messenger` (pages, trigger VOEvents to telescope JIDs).
CHAT: PortKey[Messenger] = PortKey("chat.messenger", "send direct messages and VOEvents over chat")
#: The :class:`ChatBot` that answers commands a chat transport receives.
CHATBOT: PortKey[ChatBot] = PortKey("chat.bot", "answer Burst Advocates' commands")

#: ``post(where, text, id)``: a text in a group conversation, for announcements that are not
#: notices (the witness's signed checkpoints); raises when it cannot be handed over. ``id``
#: is the event's id (the stanza id in XMPP, the message metadata in Slack).
Post = Callable[[str, str, str], Awaitable[None]]
#: Post in an XMPP room the bot has joined (``[[xmpp.rooms]]``).
ROOMS: PortKey[Post] = PortKey("chat.rooms", "post a text in an XMPP room the bot has joined")
#: Post in a Slack channel the bot may write to.
CHANNELS: PortKey[Post] = PortKey("chat.channels", "post a text in a Slack channel")
