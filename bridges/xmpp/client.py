"""The bot's XMPP connection: one slixmpp client kept up, rooms rejoined, deliveries confirmed.

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
* **Delivery** (:meth:`deliver`): a batch of messages is sent only while the session is up,
  then the server is asked for an XEP-0198 acknowledgement; the call returns once the server
  acknowledged every message of the batch (without stream management: after a ping round
  trip, which the server answers only after the earlier stanzas). A session that ends before
  that fails the call with :class:`SessionLost`, so the caller re-sends from its checkpoint.
* **Intake**: every message stanza goes through :func:`intake.classify`; commands go to the
  bot one at a time, in arrival order, and the answer goes back where the command came from
  (in a room, addressed to the asker so their phone notifies); pages go as direct messages.
  VOEvents go to :class:`~burstbus.bridges.xmpp.voevents.VOEventIntake`.

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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream import ET, ElementBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from burstbus.bridges.xmpp.config import XmppSection
from burstbus.bridges.xmpp.intake import NS_VOEVENT, Intake, Origin, Rooms, bare, classify
from burstbus.chat import ChatBot, Command, Reply
from burstbus.config import resolve_secret
from burstbus.events import utc_now

log = logging.getLogger(__name__)

PLUGINS = ("xep_0030", "xep_0045", "xep_0198", "xep_0199", "xep_0280", "xep_0297", "xep_0203")


class _StanzaWithheld(logging.Filter):
    """Keeps slixmpp's log lines but not the stanzas some of them quote ("Parse error: %r",
    "Tried to send stanza without a stream: %s", "Unable to parse stanza"): a message
    stanza's body can be an approval code (a page, or what an approver typed)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str):  # log.exception(exc): its text may quote a stanza
            record.msg = f"{type(record.msg).__name__} (text withheld: it may quote a stanza)"
        elif "<" in record.msg and ">" in record.msg:
            record.msg = f"[a log line quoting XML withheld ({len(record.msg)} characters)]"
        if isinstance(record.args, tuple):
            record.args = tuple(_withheld(a) for a in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {k: _withheld(v) for k, v in record.args.items()}
        return True


def _withheld(value: object) -> object:
    if isinstance(value, ElementBase | ET.Element):
        return f"[{type(value).__name__} stanza withheld]"
    if isinstance(value, str | bytes) and ("<" in value if isinstance(value, str) else b"<" in value):
        return f"[{len(value)} characters of XML withheld]"
    return value


_FILTER = _StanzaWithheld()


def quiet_slixmpp_logging() -> None:
    """slixmpp writes every stanza it sends and receives at DEBUG ("SEND: …", "RECV: …"),
    message bodies included — approval codes in the pages the bot sends and in what approvers
    type. A service run with ``-vv`` (debug) must still never have a code in its log, so
    slixmpp's loggers are capped at INFO here (stanza dumps are not available from this
    process, on purpose), and its few WARNING/ERROR lines that quote a stanza keep the line
    but not the stanza (:class:`_StanzaWithheld`). Loggers of plugins loaded later inherit the
    cap from ``slixmpp``; the filter is added to every slixmpp logger existing at the call
    (after the client registered its plugins), and the call is idempotent."""
    top = logging.getLogger("slixmpp")
    if top.level < logging.INFO:  # NOTSET (inherit the root's level) included
        top.setLevel(logging.INFO)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if (name == "slixmpp" or name.startswith("slixmpp.")) and isinstance(logger, logging.Logger):
            if logging.NOTSET < logger.level < logging.INFO:
                logger.setLevel(logging.INFO)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)


class NotConnected(ConnectionError):
    """The session is down: nothing can be handed to the server now."""


class SessionLost(ConnectionError):
    """The session ended before the server acknowledged a delivery: send it again."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to send. ``id`` is stable (derived from the log event) so a re-send after
    an outage carries the same id and clients can drop a repeat."""

    to: str
    type: Literal["chat", "groupchat", "normal"]
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
        import base64

        element.set("encoding", "base64")
        element.text = base64.b64encode(raw).decode("ascii")
    return element


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
    """The bot's connection: state, reconnects, rooms, confirmed delivery, command intake."""

    def __init__(
        self,
        section: XmppSection,
        *,
        bot: ChatBot | None = None,
        find_bot: Callable[[], ChatBot | None] | None = None,
        on_voevent: Callable[[Intake], Awaitable[str]] | None = None,
    ):
        self.section = section
        #: Who answers commands: ``bot``, else whatever ``find_bot`` (the ``chat.bot`` port) gives.
        self.bot = bot
        self.find_bot = find_bot
        self.on_voevent = on_voevent
        self.resource = f"{section.resource}-{secrets.token_hex(4)}"
        self.rooms = Rooms({r.jid: section.room_nick(r) for r in section.rooms})
        self._room_passwords = {bare(r.jid): resolve_secret(r.password, "xmpp.rooms.password") for r in section.rooms if r.password}
        password = resolve_secret(section.password, "xmpp.password")
        self.client = BotClient(f"{section.jid}/{self.resource}", password, section)
        quiet_slixmpp_logging()
        self.up = asyncio.Event()
        self.rooms_settled = asyncio.Event()
        self._down = asyncio.Event()
        self._failed = asyncio.Event()
        self.generation = 0
        self._pending: dict[tuple[str, str], tuple[int, asyncio.Future[None]]] = {}
        self._commands: asyncio.Queue[Intake] = asyncio.Queue()
        # State for health() and the ``status`` command.
        self.connected_since: str | None = None
        self.last_activity: str | None = None
        self.last_error: str | None = None
        self.connects = 0
        self.resumes = 0
        self.commands_total = 0
        self.dropped_total = 0
        #: Why messages were not commands (reason → count), for health and tests.
        self.dropped: Counter[str] = Counter()
        self._install_handlers()

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
        c.add_event_handler("stanza_acked", self._acked)
        c.register_handler(Callback("burstbus intake", MatchXPath("{jabber:client}message"), self._message))
        c.register_handler(Callback("burstbus rooms", MatchXPath("{jabber:client}presence"), self._presence))

    def _session_start(self, _: Any) -> None:
        """A new session (first login, or after resumption failed): rooms are joined anew."""
        self.generation += 1
        self._fail_pending(SessionLost("a new session started before the server acknowledged"))
        self.connects += 1
        self.connected_since = utc_now()
        self.last_error = None
        self.client.send_presence(ppriority=1)
        self.rooms.reset()
        self.rooms_settled.clear()
        for room in self.rooms.by_jid.values():
            self._join(room.jid, room.nick)
        self._check_rooms_settled()
        self._down.clear()
        self.up.set()
        log.info("XMPP session started as %s", self.client.boundjid.full)

    def _session_resumed(self, _: Any) -> None:
        self.resumes += 1
        self.connected_since = utc_now()
        self._down.clear()
        for room in self.rooms.by_jid.values():
            if not room.joined:
                self._join(room.jid, room.nick)
        self._check_rooms_settled()
        self.up.set()
        log.info("XMPP session resumed (%s)", self.client.boundjid.full)

    def _session_end(self, _: Any) -> None:
        self._fail_pending(SessionLost("the session ended before the server acknowledged"))

    def _disconnected(self, reason: Any) -> None:
        if self.up.is_set():
            log.warning("XMPP connection lost: %s", reason or "closed")
        self.up.clear()
        self.connected_since = None
        if reason:
            self.last_error = str(reason)
        self._down.set()

    def _connection_failed(self, reason: Any) -> None:
        self.last_error = f"connection failed: {reason}"
        self._failed.set()

    def _auth_failed(self, _: Any) -> None:
        self.last_error = "authentication failed (check xmpp.jid and xmpp.password)"
        self._failed.set()

    def _untrusted(self, error: Any) -> None:
        """The server's certificate does not verify: never go on with it."""
        self.last_error = f"the server certificate is not trusted ({error}); check xmpp.ca_file"
        log.error("XMPP: %s", self.last_error)
        self._failed.set()
        self.client.abort()

    def _acked(self, stanza: Any) -> None:
        key = (str(stanza["to"]), str(stanza["id"]))
        entry = self._pending.pop(key, None)
        if entry is not None and not entry[1].done():
            entry[1].set_result(None)

    def _fail_pending(self, exc: Exception) -> None:
        pending, self._pending = self._pending, {}
        for _, future in pending.values():
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: a caller may already have given up on it

    def _presence(self, presence: Any) -> None:
        self.last_activity = utc_now()
        room = self.rooms.presence(presence.xml)
        if room is not None:
            if room.error:
                log.error("XMPP room %s: %s", room.jid, room.error)
            self._check_rooms_settled()

    def _message(self, message: Any) -> None:
        self.last_activity = utc_now()
        verdict = classify(message.xml, me=self.client.boundjid.full, rooms=self.rooms, nick=self.section.nick)
        if verdict.kind == "drop":
            self.dropped_total += 1
            self.dropped[verdict.reason] += 1
            if verdict.had_body:
                log.debug("XMPP: not a command (%s) from %s", verdict.reason, message["from"])
            return
        self._commands.put_nowait(verdict)

    # -- rooms -----------------------------------------------------------------------------

    def _join(self, room: str, nick: str) -> None:
        """Join presence with no history requested (history would be delayed messages anyway)."""
        presence = self.client.make_presence(pto=f"{room}/{nick}")
        x = ET.SubElement(presence.xml, "{http://jabber.org/protocol/muc}x")
        history = ET.SubElement(x, "{http://jabber.org/protocol/muc}history")
        history.set("maxchars", "0")
        password = self._room_passwords.get(room)
        if password:
            ET.SubElement(x, "{http://jabber.org/protocol/muc}password").text = password
        presence.send()

    def _check_rooms_settled(self) -> None:
        """Rooms are settled when each is joined or refused us (a refusal is logged and in health)."""
        if all(r.joined or r.error for r in self.rooms.by_jid.values()):
            self.rooms_settled.set()

    async def _rejoin_refused_rooms(self) -> None:
        """Retry rooms that refused us (not yet a member, room not created yet …)."""
        while True:
            await asyncio.sleep(self.section.reconnect_max_delay)
            if self.up.is_set():
                for room in self.rooms.by_jid.values():
                    if room.error and not room.joined:
                        self._join(room.jid, room.nick)

    # -- connection loop --------------------------------------------------------------------

    async def run(self) -> None:
        """Connect and stay connected until cancelled; also runs intake and keepalive."""
        helpers = [
            asyncio.create_task(self._intake(), name="burstbus-xmpp-intake"),
            asyncio.create_task(self._keepalive(), name="burstbus-xmpp-keepalive"),
            asyncio.create_task(self._rejoin_refused_rooms(), name="burstbus-xmpp-rejoin"),
        ]
        try:
            await self._stay_connected()
        finally:
            for task in helpers:
                task.cancel()
            for task in helpers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.close()

    async def _stay_connected(self) -> None:
        s = self.section
        delay = s.reconnect_delay
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
                await asyncio.wait_for(self.client.disconnect(wait=1.0), 5)
            if self.client.transport is not None:
                self.client.abort()
        self.up.clear()
        self._fail_pending(SessionLost("closed"))
        # slixmpp leaves its outgoing-filter task pending after a disconnect; end it here so
        # it is not destroyed pending when the loop closes.
        filters = getattr(self.client, "_run_out_filters", None)
        if filters is not None and not filters.done():
            filters.cancel()

    # -- delivery ---------------------------------------------------------------------------

    def _stanza(self, out: Outgoing) -> Any:
        message = self.client.make_message(mto=out.to, mbody=out.body, mtype=out.type)
        message["id"] = out.id
        if out.voevent is not None:
            message.xml.append(voevent_element(out.voevent))
        return message

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Until the session is up and every room is joined or has refused us."""
        async def ready() -> None:
            while True:
                await self.up.wait()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.section.ack_timeout):
                        await self.rooms_settled.wait()
                if self.up.is_set():
                    return

        if timeout is None:
            await ready()
        else:
            async with asyncio.timeout(timeout):
                await ready()

    def joined_rooms(self) -> set[str]:
        return {r.jid for r in self.rooms.by_jid.values() if r.joined}

    async def deliver(self, messages: Sequence[Outgoing]) -> None:
        """Send and return once the server acknowledged all of them (see the module doc).
        Raises NotConnected (nothing sent), SessionLost or TimeoutError (send again)."""
        if not messages:
            return
        if not self.up.is_set():
            raise NotConnected("the XMPP session is down")
        loop = asyncio.get_running_loop()
        sm = self.client.plugin["xep_0198"]
        use_acks = bool(sm.enabled_out)
        futures = []
        generation = self.generation
        for out in messages:
            stanza = self._stanza(out)
            if use_acks:
                future: asyncio.Future[None] = loop.create_future()
                key = (str(stanza["to"]), str(stanza["id"]))
                old = self._pending.get(key)
                if old is not None and not old[1].done():
                    futures.append(old[1])  # the same message still unacknowledged
                    continue
                self._pending[key] = (generation, future)
                futures.append(future)
            stanza.send()
        # Stanzas go through slixmpp's send queue; the ack request (sent raw) and the ping
        # must follow them on the wire, so wait until the queue has written them.
        await self.client.waiting_queue.join()
        if not use_acks:
            await self.client.plugin["xep_0199"].ping(jid=slixmpp.JID(self.client.boundjid.domain), timeout=self.section.ack_timeout)
            return
        sm.request_ack()
        await self._await_acks(futures)

    async def _await_acks(self, futures: list[asyncio.Future[None]]) -> None:
        """Acknowledgements may arrive after a resumed session; time counts only while up."""
        pending = set(futures)
        while pending:
            done, pending = await asyncio.wait(pending, timeout=self.section.ack_timeout)
            for future in done:
                future.result()  # SessionLost
            if pending and self.up.is_set() and not done:
                raise TimeoutError(f"the server did not acknowledge {len(pending)} message(s) in {self.section.ack_timeout:g}s")
            if pending and not self.up.is_set():
                await self.up.wait()
                if self.client.plugin["xep_0198"].enabled_out:
                    self.client.plugin["xep_0198"].request_ack()

    async def send(self, to: str, body: str, *, type: Literal["chat", "groupchat", "normal"] = "chat",
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
            "rooms": {
                r.jid: {"joined": r.joined, "nick": r.nick, "real_jids": r.non_anonymous, "occupants": len(r.occupants), "error": r.error}
                for r in self.rooms.by_jid.values()
            },
            "commands": self.commands_total,
            "ignored_messages": dict(self.dropped),
        }

    # -- commands ----------------------------------------------------------------------------

    async def _intake(self) -> None:
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
                await self.send_direct(page.to, page.text)
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
