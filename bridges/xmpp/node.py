"""XMPP in the service: the bot's connection, the notification outbox and VOEvent intake.

One supervised component (``xmpp``): :meth:`XmppNode.run` keeps the connection up
(reconnecting by itself with backoff) and runs the outbox beside it; if either fails
unexpectedly the supervisor restarts the component, and the outbox resumes from its
checkpoint. ``/healthz`` shows the connection state (``up``, rooms joined, last activity,
outbox position) under ``xmpp``.

The node is the bot's :class:`~burstbus.chat.Messenger` (``send_direct``,
``send_voevent``, ``health``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from burstbus.bridges.xmpp.client import XmppConnection
from burstbus.bridges.xmpp.config import XmppSection
from burstbus.bridges.xmpp.delivery import NotConnected
from burstbus.bridges.xmpp.intake import Intake, bare
from burstbus.bridges.xmpp.notify import CONSUMER, Notifier
from burstbus.bridges.xmpp.render import Templates, load_templates
from burstbus.bridges.xmpp.voevents import VOEventIntake
from burstbus.chat import ChatBot
from burstbus.ingest import Ingest
from burstbus.ratelimit import RateLimiter
from burstbus.state import StateStore
from burstbus.store.base import EventLog
from burstbus.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class XmppNode:
    """The XMPP bridge. ``connection`` and ``notifier`` exist from construction (tests, metrics)."""

    def __init__(
        self,
        event_log: EventLog,
        state: StateStore,
        ingest: Ingest,
        section: XmppSection,
        *,
        bot: ChatBot | None = None,
        find_bot: Callable[[], ChatBot | None] | None = None,
        link_base: str = "http://127.0.0.1:8080",
        burst_roles: tuple[str, ...] = ("observation",),
        templates: Templates | None = None,
        consumer: str = CONSUMER,
    ):
        self.section = section
        self.intake = VOEventIntake(ingest, section.voevent_senders)
        self.voevent_limiter = RateLimiter(what="VOEvents")
        self.connection = XmppConnection(section, bot=bot, find_bot=find_bot, on_voevent=self._voevent)
        self.templates = templates or load_templates(section.templates_dir)
        self.notifier = Notifier(
            event_log, state, self.connection, section, self.templates,
            link_base=link_base, burst_roles=burst_roles, name=consumer,
        )

    @property
    def bot(self) -> ChatBot | None:
        return self.connection.bot

    @bot.setter
    def bot(self, value: ChatBot | None) -> None:
        self.connection.bot = value

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self.connection.run(), name="burstbus-xmpp-connection"),
            asyncio.create_task(self.notifier.run(), name="burstbus-xmpp-notify"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raise what stopped it, for the supervisor
            raise RuntimeError("an XMPP task ended")  # neither ever returns on its own
        finally:
            await cancel_and_wait(tasks)

    async def _voevent(self, verdict: Intake) -> str:
        """A VOEvent from a JID not in ``voevent_senders`` is refused and recorded
        (``voevent.rejected``, up to 4 KiB of it); the bot's per-sender limit keeps a flood of
        them out of the log: over it, the first is still refused and recorded, the rest of the
        window is dropped unanswered. Allowed senders (configured feeds) are never limited."""
        sender = (verdict.sender or "").lower()
        if sender not in self.intake.senders and self.voevent_limiter.check(sender, trusted=False) == "drop":
            return ""
        return await self.intake(verdict)

    # -- Messenger ---------------------------------------------------------------------------

    async def send_direct(self, jid: str, text: str) -> None:
        await self.connection.send_direct(jid, text)

    async def send_voevent(self, jid: str, xml: bytes, summary: str) -> None:
        await self.connection.send_voevent(jid, xml, summary)

    async def post_room(self, room: str, text: str, id: str) -> None:
        """A groupchat message in a room the bot has joined (the ``chat.rooms`` port: the
        witness's checkpoints); ``id`` is the stanza id. Returns once the server has it."""
        jid = bare(room)
        if jid not in self.connection.joined_rooms():
            raise NotConnected(f"not in the room {jid} (it must be among [[xmpp.rooms]], and joined)")
        await self.connection.send(jid, text, type="groupchat", id=id)

    def health(self) -> Mapping[str, object]:
        state = dict(self.connection.health())
        state["outbox"] = self.notifier.health()
        state["voevent_rate_limit"] = self.voevent_limiter.health()
        return state
