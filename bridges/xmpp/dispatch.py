"""What the bot receives, handled: commands and VOEvents run one at a time, answered in place.

:func:`~burstbus.bridges.xmpp.intake.classify` decides, without side effects, what a message
stanza is. This module acts on that decision. It holds the queue that gives the bot its commands
one at a time, in arrival order, and counts what was
dropped (health, metrics). It sends each answer back where the command came from: in a room, it
is addressed to the asker so their phone notifies; ``Reply.pages`` go as direct messages.
VOEvents go to the ``on_voevent`` handler (:class:`~burstbus.bridges.xmpp.voevents.VOEventIntake`
in the service). It is kept apart from the session because none of this depends on how the
connection is kept up: a failing command is logged and the asker told, and the session is never
affected.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import slixmpp

from burstbus.bridges.xmpp.delivery import NotConnected, SessionLost
from burstbus.bridges.xmpp.intake import Intake, Origin, Rooms, classify
from burstbus.bridges.xmpp.stanzas import MessageType
from burstbus.chat import ChatBot, Command, Reply

log = logging.getLogger(__name__)


class Send(Protocol):
    """How an answer goes out (the connection's confirmed ``send``)."""

    async def __call__(self, to: str, body: str, *, type: MessageType = "chat") -> None: ...


class Dispatcher:
    """Received message stanzas → the bot (commands) or ``on_voevent`` (VOEvents) → answers."""

    def __init__(
        self,
        client: slixmpp.ClientXMPP,
        rooms: Rooms,
        nick: str,
        send: Send,
        *,
        bot: ChatBot | None = None,
        find_bot: Callable[[], ChatBot | None] | None = None,
        on_voevent: Callable[[Intake], Awaitable[str]] | None = None,
    ):
        self.client = client
        self.rooms = rooms
        self.nick = nick
        self.send = send
        #: Who answers commands: ``bot``, else whatever ``find_bot`` (the ``chat.bot`` port) gives.
        self.bot = bot
        self.find_bot = find_bot
        self.on_voevent = on_voevent
        self.commands_total = 0
        self.dropped_total = 0
        #: Why messages were not commands (reason → count), for health and tests.
        self.dropped: Counter[str] = Counter()
        self._commands: asyncio.Queue[Intake] = asyncio.Queue()

    def received(self, message: Any) -> None:
        """A message stanza from the server: queued if it is a command or a VOEvent, else counted."""
        verdict = classify(message.xml, me=self.client.boundjid.full, rooms=self.rooms, nick=self.nick)
        if verdict.kind == "drop":
            self.dropped_total += 1
            self.dropped[verdict.reason] += 1
            if verdict.had_body:
                log.debug("XMPP: not a command (%s) from %s", verdict.reason, message["from"])
            return
        self._commands.put_nowait(verdict)

    async def run(self) -> None:
        """One command at a time, in the order they arrived."""
        while True:
            verdict = await self._commands.get()
            try:
                if verdict.kind == "voevent":
                    await self._voevent(verdict)
                elif verdict.kind == "command":
                    await self._command(verdict)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("XMPP: handling a message failed")

    async def _voevent(self, verdict: Intake) -> None:
        assert verdict.origin is not None
        if self.on_voevent is None:
            answer = "NAK: this bot does not take VOEvents."
        else:
            answer = await self.on_voevent(verdict)
        await self._answer(verdict.origin, answer, None)

    async def _command(self, verdict: Intake) -> None:
        command, origin = verdict.command, verdict.origin
        assert command is not None and origin is not None
        self.commands_total += 1
        bot = self.bot or (self.find_bot() if self.find_bot is not None else None)
        if bot is None:
            reply = Reply("The bot is not running here; only notifications are sent.")
        else:
            try:
                reply = await bot.handle(command)
            except Exception:
                # Not the text: it may hold an approval code (the bot redacts its own lines).
                who = command.asker.jid or f"someone in {command.asker.room}"
                log.exception("the bot failed on a command from %s", who)
                reply = Reply("Sorry, something went wrong handling that; the operators have the details in the log.")
        await self._answer(origin, reply.text, command)
        for page in reply.pages:
            try:
                await self.send(page.to, page.text, type="chat")
            except (NotConnected, SessionLost, TimeoutError) as exc:
                log.error("XMPP: page to %s not delivered: %s", page.to, exc)

    async def _answer(self, origin: Origin, text: str, command: Command | None) -> None:
        if not text:
            return
        if origin.type == "groupchat" and command is not None and command.asker.nick:
            text = f"{command.asker.nick}: {text}"
        try:
            await self.send(origin.to, text, type=origin.type)
        except (NotConnected, SessionLost, TimeoutError) as exc:
            log.error("XMPP: answer to %s not delivered: %s", origin.to, exc)
