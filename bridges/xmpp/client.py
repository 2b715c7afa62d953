"""The bot's XMPP connection: one slixmpp session kept up, its parts put together.

This module owns the session's lifecycle, and only that: connecting, the session starting,
resuming or ending, lost connections, refused credentials or certificates, and reconnecting.
The parts that act on it live beside it, each with one job: :mod:`.rooms` (joining the
rooms), :mod:`.delivery` (sending with confirmation), :mod:`.dispatch` (commands and VOEvents
received) and :mod:`.quiet` (no stanza in the log).

* **TLS**: STARTTLS on the c2s port (or direct TLS when configured), the server certificate
  always checked, against ``ca_file`` when given (private servers), else the system's store.
* **Staying up**: :meth:`XmppConnection.run` connects, and after every failure or lost
  connection waits (``reconnect_delay``, doubling up to ``reconnect_max_delay``, with jitter)
  and connects again — slixmpp's own retry loop and its ping plugin's ``reconnect`` are not
  used, so there is one place that decides. XEP-0199 pings to the server every
  ``ping_interval`` drop a silent connection. XEP-0198 stream management resumes a session
  after a short cut (the server kept it; slixmpp re-sends what the server had not
  acknowledged); when resumption fails, the session is new: every room is joined again.
* **Resource**: ``<resource>-<random>``, new per process, so two instances never clash.
* **Delivery** (:meth:`deliver`, :class:`~burstbus.bridges.xmpp.delivery.Delivery`): returns
  once the server acknowledged every message of the batch; a session that ends before that
  fails the call with :class:`SessionLost`, so the caller re-sends from its checkpoint, first
  asking each room's archive (:mod:`.archive`, :meth:`already_posted`) what it already has.
* **Intake** (:class:`~burstbus.bridges.xmpp.dispatch.Dispatcher`): commands go to the bot one
  at a time, in arrival order, and the answer goes back where the command came from.

It is the :class:`~burstbus.chat.Messenger` the bot uses for pages outside a reply and
for the raw VOEvent of a trigger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from burstbus.bridges.xmpp.archive import archived_ids
from burstbus.bridges.xmpp.config import XmppSection
from burstbus.bridges.xmpp.delivery import Delivery, NotConnected, SessionLost
from burstbus.bridges.xmpp.dispatch import Dispatcher
from burstbus.bridges.xmpp.intake import Intake, Rooms, bare
from burstbus.bridges.xmpp.quiet import quiet_slixmpp_logging
from burstbus.bridges.xmpp.rooms import RoomMembership, room_passwords
from burstbus.bridges.xmpp.stanzas import MessageType, Outgoing
from burstbus.chat import ChatBot
from burstbus.component import StartupError
from burstbus.config import resolve_secret
from burstbus.events import utc_now
from burstbus.tasks import cancel_and_wait

__all__ = ["PLUGINS", "BotClient", "NotConnected", "Outgoing", "SessionLost", "XmppConnection"]

log = logging.getLogger(__name__)

#: Seconds a connection that never had a session keeps trying before the configuration is
#: reported as unable to work (StartupError: ``burstbus run`` exits at start with that line).
START_WINDOW = 10.0
#: Failures that are the configuration's at once: a wrong password, an untrusted certificate.
FATAL_AT_START = ("xmpp.password", "xmpp.ca_file")
#: xep_0313/xep_0059: the room archive, asked before a re-send (archive.py).
PLUGINS = ("xep_0030", "xep_0045", "xep_0059", "xep_0198", "xep_0199", "xep_0280", "xep_0297", "xep_0203", "xep_0313")


class BotClient(slixmpp.ClientXMPP):
    """slixmpp's client with the plugins the bot needs; the policy lives in XmppConnection."""

    def __init__(self, jid: str, password: str, section: XmppSection):
        super().__init__(jid, password)
        self.enable_direct_tls = section.direct_tls
        self.enable_starttls = not section.direct_tls
        self.enable_plaintext = False
        if section.ca_file is not None:
            self.ca_certs = section.ca_file
        self.ssl_context.verify_mode = ssl.CERT_REQUIRED
        self.ssl_context.check_hostname = True
        for plugin in PLUGINS:
            self.register_plugin(plugin)
        self.plugin["xep_0198"].allow_resume = True
        # Our own keepalive (XmppConnection._keepalive) decides about dead connections.
        self.whitespace_keepalive = True
        self.whitespace_keepalive_interval = max(int(section.ping_interval), 1)


class XmppConnection:
    """The bot's connection: session state and reconnects, composing rooms, delivery, intake."""

    def __init__(
        self,
        section: XmppSection,
        *,
        bot: ChatBot | None = None,
        find_bot: Callable[[], ChatBot | None] | None = None,
        on_voevent: Callable[[Intake], Awaitable[str]] | None = None,
    ):
        self.section = section
        self.resource = f"{section.resource}-{secrets.token_hex(4)}"
        self.rooms = Rooms({r.jid: section.room_nick(r) for r in section.rooms})
        passwords = room_passwords(section)
        password = resolve_secret(section.password, "xmpp.password")
        self.client = BotClient(f"{section.jid}/{self.resource}", password, section)
        quiet_slixmpp_logging()
        self.up = asyncio.Event()
        self._down = asyncio.Event()
        self._failed = asyncio.Event()
        #: The setting the last failure to get a session points at (for StartupError).
        self._failed_setting = "xmpp.host"
        self.delivery = Delivery(self.client, self.up, ack_timeout=section.ack_timeout)
        self.membership = RoomMembership(self.client, self.rooms, passwords, self.up, retry_every=section.reconnect_max_delay)
        self.dispatcher = Dispatcher(self.client, self.rooms, section.nick, self.send, bot=bot, find_bot=find_bot, on_voevent=on_voevent)
        # State for health() and the ``status`` command.
        self.connected_since: str | None = None
        self.last_activity: str | None = None
        self.last_error: str | None = None
        self.connects = 0
        self.resumes = 0
        self._install_handlers()

    # -- what the parts count, read here (node, metrics, tests) ----------------------------

    @property
    def bot(self) -> ChatBot | None:
        """Who answers commands (set later when the bot is built after the connection)."""
        return self.dispatcher.bot

    @bot.setter
    def bot(self, value: ChatBot | None) -> None:
        self.dispatcher.bot = value

    @property
    def commands_total(self) -> int:
        return self.dispatcher.commands_total

    @property
    def dropped_total(self) -> int:
        return self.dispatcher.dropped_total

    @property
    def dropped(self) -> Counter[str]:
        """Why messages were not commands (reason → count), for health and tests."""
        return self.dispatcher.dropped

    # -- slixmpp events ------------------------------------------------------------------

    def _install_handlers(self) -> None:
        c = self.client
        c.add_event_handler("session_start", self._session_start)
        c.add_event_handler("session_resumed", self._session_resumed)
        c.add_event_handler("session_end", self._session_end)
        c.add_event_handler("disconnected", self._disconnected)
        c.add_event_handler("connection_failed", self._connection_failed)
        c.add_event_handler("failed_all_auth", self._auth_failed)
        c.add_event_handler("ssl_invalid_chain", self._untrusted)
        c.add_event_handler("stanza_acked", self.delivery.acked)
        c.register_handler(Callback("burstbus intake", MatchXPath("{jabber:client}message"), self._message))
        c.register_handler(Callback("burstbus rooms", MatchXPath("{jabber:client}presence"), self._presence))

    def _session_start(self, _: Any) -> None:
        """A new session (first login, or after resumption failed): rooms are joined anew."""
        self.delivery.new_session()
        self.connects += 1
        self.connected_since = utc_now()
        self.last_error = None
        self.client.send_presence(ppriority=1)
        self.membership.join_all()
        self._down.clear()
        self.up.set()
        log.info("XMPP session started as %s", self.client.boundjid.full)

    def _session_resumed(self, _: Any) -> None:
        self.resumes += 1
        self.connected_since = utc_now()
        self._down.clear()
        self.membership.join_missing()
        self.up.set()
        log.info("XMPP session resumed (%s)", self.client.boundjid.full)

    def _session_end(self, _: Any) -> None:
        self.delivery.fail_pending(SessionLost("the session ended before the server acknowledged"))

    def _disconnected(self, reason: Any) -> None:
        if self.up.is_set():
            log.warning("XMPP connection lost: %s", reason or "closed")
        self.up.clear()
        self.connected_since = None
        if reason:
            self.last_error = str(reason)
        self._down.set()

    def _connection_failed(self, reason: Any) -> None:
        self.last_error = f"connection to {self.section.host or self.section.domain}:{self.section.port} failed: {reason}"
        self._failed_setting = "xmpp.host"
        self._failed.set()

    def _auth_failed(self, _: Any) -> None:
        self.last_error = "authentication failed (check xmpp.jid and xmpp.password)"
        self._failed_setting = "xmpp.password"
        self._failed.set()

    def _untrusted(self, error: Any) -> None:
        """The server's certificate does not verify: never go on with it."""
        self.last_error = f"the server certificate is not trusted ({error}); check xmpp.ca_file"
        self._failed_setting = "xmpp.ca_file"
        log.error("XMPP: %s", self.last_error)
        self._failed.set()
        self.client.abort()

    def _presence(self, presence: Any) -> None:
        self.last_activity = utc_now()
        self.membership.presence(presence)

    def _message(self, message: Any) -> None:
        self.last_activity = utc_now()
        self.dispatcher.received(message)

    # -- connection loop --------------------------------------------------------------------

    async def run(self) -> None:
        """Connect and stay connected until cancelled; also runs intake and keepalive."""
        helpers = [
            asyncio.create_task(self.dispatcher.run(), name="burstbus-xmpp-intake"),
            asyncio.create_task(self._keepalive(), name="burstbus-xmpp-keepalive"),
            asyncio.create_task(self.membership.rejoin_refused(), name="burstbus-xmpp-rejoin"),
        ]
        try:
            await self._stay_connected()
        finally:
            await cancel_and_wait(helpers)
            await self.close()

    async def _stay_connected(self) -> None:
        s = self.section
        delay = s.reconnect_delay
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + START_WINDOW
        while True:
            self._failed.clear()
            self._down.clear()
            address = (s.host or s.domain, s.port)
            self.client.connect(*address)
            up = asyncio.ensure_future(self.up.wait())
            failed = asyncio.ensure_future(self._failed.wait())
            down = asyncio.ensure_future(self._down.wait())
            try:
                await asyncio.wait({up, failed, down}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for f in (up, failed, down):
                    f.cancel()
            if self.up.is_set():
                delay = s.reconnect_delay
                await self._down.wait()
                # A cut connection: try again at once (the server may still hold the session
                # for XEP-0198 resumption), then back off if that fails.
                await asyncio.sleep(random.uniform(0, min(s.reconnect_delay, 0.5)))
                continue
            self.client.cancel_connection_attempt()
            if self.client.transport is not None:
                self.client.abort()
            if self.last_error is None:
                self.last_error = "the connection closed before a session started"
            if self.connects == 0 and (self._failed_setting in FATAL_AT_START or loop.time() >= give_up_at):
                # Never had a session: the configuration cannot work here (see StartupError).
                raise StartupError(self._failed_setting, self.last_error)
            wait = delay * random.uniform(0.8, 1.2)
            log.warning("XMPP: %s; retrying in %.1fs", self.last_error or "not connected", wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, s.reconnect_max_delay)

    async def _keepalive(self) -> None:
        """XEP-0199 ping to our server; no answer in time → drop the connection (we reconnect)."""
        s = self.section
        while True:
            await asyncio.sleep(s.ping_interval)
            if not self.up.is_set():
                continue
            try:
                await self.client.plugin["xep_0199"].ping(jid=slixmpp.JID(self.client.boundjid.domain), timeout=s.ping_timeout)
                self.last_activity = utc_now()
            except IqTimeout:
                log.warning("XMPP: no answer to a ping within %.0fs; reconnecting", s.ping_timeout)
                self.last_error = "ping timeout"
                self.client.abort()
            except IqError:
                self.last_activity = utc_now()  # an error reply is still an answer

    async def close(self) -> None:
        """Leave politely if connected; never raises."""
        self.client.cancel_connection_attempt()
        if self.client.transport is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self.client.disconnect(wait=1.0)
            if self.client.transport is not None:
                self.client.abort()
        self.up.clear()
        self.delivery.fail_pending(SessionLost("closed"))
        # slixmpp leaves its outgoing-filter task pending after a disconnect; end it here so
        # it is not destroyed pending when the loop closes.
        filters = getattr(self.client, "_run_out_filters", None)
        if filters is not None and not filters.done():
            filters.cancel()

    # -- delivery ---------------------------------------------------------------------------

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Until the session is up and every room is joined or has refused us."""
        async def ready() -> None:
            while True:
                await self.up.wait()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.section.ack_timeout):
                        await self.membership.settled.wait()
                if self.up.is_set():
                    return

        if timeout is None:
            await ready()
        else:
            async with asyncio.timeout(timeout):
                await ready()

    def joined_rooms(self) -> set[str]:
        return self.membership.joined()

    async def deliver(self, messages: Sequence[Outgoing]) -> None:
        """Send and return once the server acknowledged all of them (see :mod:`.delivery`).
        Raises NotConnected (nothing sent), SessionLost or TimeoutError (send again)."""
        await self.delivery.deliver(messages)

    async def already_posted(self, room: str, ids: Collection[str], *, since: datetime) -> set[str]:
        """The ids among ``ids`` the room archived from us since ``since`` (see :mod:`.archive`)."""
        if not self.up.is_set():
            raise NotConnected("the XMPP session is down")
        nick = self.rooms.by_jid[bare(room)].nick if bare(room) in self.rooms.by_jid else self.section.nick
        return await archived_ids(self.client, room, nick, ids, since=since, timeout=self.section.ack_timeout)

    async def send(self, to: str, body: str, *, type: MessageType = "chat",
                   id: str | None = None, voevent: bytes | None = None) -> None:
        await self.deliver([Outgoing(to, type, body, id or secrets.token_hex(12), voevent)])

    # -- Messenger (for the bot) --------------------------------------------------------------

    async def send_direct(self, jid: str, text: str) -> None:
        await self.send(jid, text, type="chat")

    async def send_voevent(self, jid: str, xml: bytes, summary: str) -> None:
        await self.send(jid, summary, type="chat", voevent=xml)

    def health(self) -> Mapping[str, object]:
        sm = self.client.plugin["xep_0198"]
        return {
            "up": self.up.is_set(),
            "last_activity": self.last_activity,
            "jid": self.client.boundjid.full if self.up.is_set() else f"{self.section.jid}/{self.resource}",
            "connected_since": self.connected_since,
            "stream_management": bool(sm.enabled_out) if self.up.is_set() else False,
            "sessions": self.connects,
            "resumed": self.resumes,
            "last_error": self.last_error,
            "rooms": self.membership.health(),
            "commands": self.commands_total,
            "ignored_messages": dict(self.dropped),
        }
