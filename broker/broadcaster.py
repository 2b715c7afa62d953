"""The VTP subscriber port: every ``voevent.accepted`` in the log, to every subscriber that wants it.

The broadcaster is a log consumer, not a hook on the receiver: whatever way a packet arrived
(VTP author, upstream broker, NATS, import), once it is accepted in the log it goes out, with
its exact received bytes. It follows the log (:class:`~burstbus.store.consumer.Follower`, no
checkpoint) from the head at start; a subscriber gets what is accepted while it is connected
(as with Comet; VTP has no resume).

Per subscriber, as Comet does: an ``authenticate`` on connect, whose reply carries the
subscriber's XPath filters (``Meta/Param[@name="xpath-filter"]`` or old-style
``Meta/filter[@type="xpath"]``); ``iamalive`` every ``iamalive_interval`` and the subscriber is
dropped if it did not answer the previous one or has too many events unacknowledged; a NAK
drops it. Differences: events are held (not sent unfiltered) until the subscriber's
authenticate reply arrives or ``authenticate_wait`` passes; the operator can add filters per
subscriber network (``[[vtp.subscriber_filters]]``); filters run on the loop against one parse
per event (Comet runs each XPath in a thread per event per subscriber); per-subscriber counters
(:class:`~burstbus.broker.stats.SubscriberStats`) are kept for the HTTP API and metrics.

On the TLS port (``broadcast_tls_port``, :mod:`burstbus.broker.tls`) a subscriber is one only
once its handshake completed (with ``broadcast_client_certificate = "required"``: once its
certificate verified against ``tls_client_ca``); a failed handshake is logged once and counted
(``tls_refused``), not recorded in the log: a subscriber submits nothing, as with the
``subscriber_allow`` refusals.

Import only after :func:`burstbus.broker.reactor.install`.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable, Sequence
from itertools import chain
from typing import Any

from burstbus.broker.reactor import require_installed

require_installed()

from comet.protocol.base import ElementSender  # noqa: E402
from comet.protocol.messages import authenticate, iamalive  # noqa: E402
from lxml import etree  # noqa: E402
from twisted.internet.interfaces import IHandshakeListener  # noqa: E402
from twisted.internet.protocol import ServerFactory  # noqa: E402
from zope.interface import implementer  # noqa: E402

from burstbus.broker import tls  # noqa: E402
from burstbus.broker.catchup import CatchUp  # noqa: E402
from burstbus.broker.config import SubscriberFilter  # noqa: E402
from burstbus.broker.reactor import running_reactor, stop_listening, wait_until  # noqa: E402
from burstbus.broker.receiver import (  # noqa: E402
    DEFAULT_BACKLOG,
    Networks,
    allowed,
    listen_ports,
    parse_networks,
)
from burstbus.broker.sending import write_now  # noqa: E402
from burstbus.broker.stats import SubscriberStats, stamp_now  # noqa: E402
from burstbus.events import RecordedEvent, utc_now  # noqa: E402
from burstbus.ingest import ACCEPTED  # noqa: E402
from burstbus.payload import xml_bytes  # noqa: E402
from burstbus.store.base import EventLog, LogUnavailable  # noqa: E402
from burstbus.store.consumer import Batch, Follower, Start  # noqa: E402
from burstbus.tasks import cancel_and_wait  # noqa: E402

log = logging.getLogger(__name__)

#: Transport messages from subscribers are small; a bigger frame is a broken peer.
SUBSCRIBER_MAX_LENGTH = 65_536
#: Events held for a subscriber that has not yet sent its filters.
MAX_HELD = 1000
#: Records per log read of a catch-up replay.
REPLAY_PAGE = 200
#: Retry of a log read that failed: quick, since a subscriber waits on it (seconds).
RETRY_DELAY = 0.25
MAX_RETRY_DELAY = 2.0

_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
#: Subscribers' transport messages (ack, iamalive, authenticate), parsed on the loop: one parser
#: for all of them. Comet's ``xml_document`` built a parser per message, 10% of the
#: broadcaster's CPU with 1,000 subscribers ACKing (py-spy). Entities are not expanded.
_MESSAGE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


class OutgoingEvent:
    """One accepted packet on its way out: exact bytes and its VTP frame (length prefix and
    bytes) built once and written to every subscriber; the parsed tree for XPath filters is
    built on first use, once for all subscribers. Most subscribers have no filter: parsing
    every packet anyway cost ~0.4 ms of the loop per alert, ahead of the write (py-spy,
    bench/kafka.py at 50 alerts/s: 5% of the event loop thread)."""

    __slots__ = ("seq", "ivorn", "raw", "frame", "_element")

    def __init__(self, record: RecordedEvent):
        self.seq = record.seq
        self.ivorn = str(record.data.get("ivorn", ""))
        self.raw = xml_bytes(record.data)
        self.frame = struct.pack("!I", len(self.raw)) + self.raw  # Int32StringReceiver's framing
        self._element: Any = None

    @property
    def element(self) -> Any:
        """The packet's tree (lxml), for the filters. Accepted packets always parse; one that
        does not is logged and filtered as an empty document."""
        if self._element is None:
            try:
                self._element = etree.fromstring(self.raw, _SAFE_PARSER)
            except etree.XMLSyntaxError as exc:
                log.error("cannot filter log seq %d: %s", self.seq, exc)
                self._element = etree.Element("unparsed")
        return self._element


def _selects(xpath: etree.XPath, element: Any) -> bool:
    try:
        return bool(xpath(element))
    except etree.XPathError:
        return False


@implementer(IHandshakeListener)
class VTPBroadcastProtocol(ElementSender):
    factory: VTPBroadcasterFactory
    MAX_LENGTH = SUBSCRIBER_MAX_LENGTH
    #: Set once the subscriber is one (at connect; on the TLS port after the handshake).
    started = False

    def connectionMade(self) -> None:
        if not tls.is_tls(self.transport):
            self._start()
            return
        # On the TLS port nothing is sent or counted before the handshake: a client that fails
        # it never was a subscriber. A handshake that never ends is cut off like a silent peer.
        self.factory.handshaking.add(self)
        self._handshake_wait = running_reactor().callLater(
            max(self.factory.authenticate_wait, self.factory.iamalive_interval), self.transport.abortConnection
        )

    def handshakeCompleted(self) -> None:
        tls.mark_handshake_done(self.transport)
        self.factory.handshaking.discard(self)
        if self._handshake_wait.active():
            self._handshake_wait.cancel()
        try:
            certificate = tls.peer_certificate(self.transport)
        except Exception:
            log.exception("VTP subscriber %s: cannot read its client certificate; dropping it", self.transport.getPeer().host)
            self.transport.abortConnection()
            return
        self._start(certificate)

    def _start(self, certificate: tls.PeerCertificate | None = None) -> None:
        self.started = True
        peer = self.transport.getPeer()
        self.host = peer.host
        self.stats = SubscriberStats(peer=f"{peer.host}:{peer.port}", connected_at=utc_now())
        self.filters: list[etree.XPath] = []
        self.operator_filters = [etree.XPath(f.xpath) for f in self.factory.filters_for(peer.host)]
        self.stats.operator_filters = tuple(f.path for f in self.operator_filters)
        self.stats.tls = tls.is_tls(self.transport)
        self.stats.certificate = certificate.subject if certificate is not None else None
        self.alive_count = 0
        self.held: list[OutgoingEvent] | None = []  # None once filters are known
        #: Events sent and not yet acknowledged, IVORN → seq (a VTP ack names the IVORN).
        self.unacked: dict[str, int] = {}
        #: The seq of the last event offered (sent, or filtered out); None before the first.
        self.offered: int | None = None
        #: Set when this subscriber is one of ``[[vtp.catch_up]]`` (its IVORN).
        self.catch_up_ivo: str | None = None
        self.replaying = False
        self._acked = asyncio.Event()
        self.factory.subscribers.append(self)
        log.info("VTP subscriber %s connected%s", self.stats.peer,
                 f" over TLS (certificate {certificate.subject!r})" if certificate else " over TLS" if self.stats.tls else "")
        self.send_xml(authenticate(self.factory.local_ivo))
        self._auth_wait = running_reactor().callLater(self.factory.authenticate_wait, self._start_sending)

    def connectionLost(self, reason: Any = None) -> None:
        if not self.started:
            self._handshake_failed(reason)
            return super().connectionLost(reason)
        if self._auth_wait.active():
            self._auth_wait.cancel()
        if self in self.factory.subscribers:
            self.factory.subscribers.remove(self)
        self.remember_position()
        self._acked.set()  # a replay waiting for room ends
        log.info("VTP subscriber %s disconnected (sent %d, acked %d)", self.stats.peer, self.stats.sent, self.stats.acked)
        return super().connectionLost(reason)

    def _handshake_failed(self, reason: Any) -> None:
        """Logged once per connection and counted; a port probe (nothing sent, nothing failed) is not."""
        self.factory.handshaking.discard(self)
        if self._handshake_wait.active():
            self._handshake_wait.cancel()
        received = int(getattr(self.transport, "received_before_handshake", 0))
        if not received and not tls.is_tls_error(reason):
            return
        self.factory.tls_refused += 1
        text = tls.failure_text(reason) if tls.is_tls_error(reason) else "closed during the TLS handshake"
        notes = list(getattr(self.transport, "verify_notes", []))
        captured = bytes(getattr(self.transport, "before_handshake", b""))
        plain = " (not TLS: a plain-TCP client on the TLS port?)" if captured and captured[0] != 0x16 else ""
        log.warning("VTP subscriber %s refused on the TLS port%s: %s", self.transport.getPeer().host, plain,
                    "; ".join([text, *notes]))

    def lengthLimitExceeded(self, length: int) -> None:
        log.warning("VTP subscriber %s sent a %d-byte frame; dropping it", self.stats.peer, length)
        self.transport.loseConnection()

    def stringReceived(self, data: bytes) -> None:
        try:
            incoming = etree.fromstring(data, _MESSAGE_PARSER)
        except etree.XMLSyntaxError as exc:
            log.warning("unparsable message from VTP subscriber %s: %s", self.stats.peer, exc)
            return
        role = incoming.get("role")
        if role == "iamalive":
            self.alive_count = 0
            self.stats.last_alive_at = stamp_now()
        elif role == "ack":
            self.stats.acked += 1
            self.stats.outstanding = max(0, self.stats.outstanding - 1)
            self.stats.last_ack_at = stamp_now()
            self.unacked.pop(incoming.findtext("Origin") or "", None)
            self._acked.set()
        elif role == "nak":
            self.stats.naks += 1
            reason = incoming.findtext("Meta/Result") or "no reason given"
            log.warning("VTP subscriber %s sent a NAK (%s); dropping it, as VTP requires", self.stats.peer, reason)
            self.transport.loseConnection()
        elif role == "authenticate":
            self._authenticated(incoming)
        else:
            log.warning("VTP subscriber %s sent a message with role %r; ignored", self.stats.peer, role)

    def _authenticated(self, incoming: Any) -> None:
        self.stats.authenticated = True
        self.stats.ivo = incoming.findtext("Response") or None
        filters: list[etree.XPath] = []
        texts: list[str] = []
        for text in chain(
            [e.get("value") for e in incoming.findall('Meta/Param[@name="xpath-filter"]')],
            [e.text for e in incoming.findall('Meta/filter[@type="xpath"]')],
        ):
            if not text:
                continue
            try:
                filters.append(etree.XPath(text))
                texts.append(text)
            except etree.XPathSyntaxError:
                log.warning("VTP subscriber %s sent an invalid XPath filter %r; ignored", self.stats.peer, text)
        self.filters = filters
        self.stats.filters = tuple(texts)
        log.info("VTP subscriber %s is %s, filters %s", self.stats.peer, self.stats.ivo, texts or "none")
        catch_up = self.factory.catch_up
        if catch_up is not None and catch_up.eligible(self.stats.ivo, self.host):
            self.catch_up_ivo = self.stats.ivo
            after = catch_up.resume_from(self.stats.ivo or "")
            upto = self.factory.position()
            if after is not None and upto is not None and after < upto:
                if self._auth_wait.active():
                    self._auth_wait.cancel()
                self.replaying = True
                self._replay = asyncio.ensure_future(self._catch_up(after, upto))
                return
            if self.offered is None and upto is not None:
                self.offered = upto  # had everything before now: a later gap is owed, not the past
        self._start_sending()

    async def _catch_up(self, after: int, upto: int) -> None:
        """Send what was accepted in (after, upto] that this subscriber wants, in order, at the
        pace of its acks; then what arrived live meanwhile (held), then live."""
        factory, sent, position = self.factory, 0, after
        assert factory.replay_read is not None and factory.catch_up is not None
        log.info("VTP subscriber %s (%s) catches up from log seq %d to %d", self.stats.peer, self.catch_up_ivo, after, upto)
        delay = RETRY_DELAY
        try:
            while position < upto and self in factory.subscribers:
                try:
                    page = await factory.replay_read(position)
                except LogUnavailable as exc:
                    # A failover (a subscriber reconnecting during a JetStream election is
                    # the usual case): the log answers again within seconds. Giving up here
                    # would go live and skip what is owed for good; wait, as the follower does.
                    log.warning("VTP subscriber %s: catch-up read after log seq %d failed (%s); retrying in %.2fs",
                                self.stats.peer, position, exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, MAX_RETRY_DELAY)
                    continue
                delay = RETRY_DELAY
                records = [r for r in page if r.seq <= upto]
                if not records:
                    break
                for record in records:
                    try:
                        event = OutgoingEvent(record)
                    except Exception as exc:  # as publish: never let one packet stop the replay
                        log.error("cannot replay log seq %d: %s", record.seq, exc)
                        continue
                    if not await self._room():
                        return
                    sent += self._offer(event)
                position = records[-1].seq
        except Exception as exc:
            # Going live now would move its position past what it is still owed: drop it
            # instead, so that it reconnects and its replay starts again from its position.
            log.error("VTP subscriber %s: catch-up stopped at log seq %d: %s; dropping it so that it "
                      "reconnects and catches up again", self.stats.peer, position, exc)
            self.catch_up_ivo = None  # its stored position stays where the replay began
            self.transport.loseConnection()
        finally:
            factory.catch_up.replays += 1
            factory.catch_up.replayed += sent
            log.info("VTP subscriber %s caught up: %d events replayed", self.stats.peer, sent)
            self.replaying = False
            held, self.held = self.held, None
            for event in held or ():
                if event.seq > position:
                    self.deliver(event)

    async def _room(self) -> bool:
        """Wait until fewer than ``max_outstanding`` events are unacknowledged (False: the
        subscriber went away, or acknowledged nothing for an iamalive interval)."""
        while self.stats.outstanding >= self.factory.max_outstanding:
            if self not in self.factory.subscribers:
                return False
            self._acked.clear()
            try:
                async with asyncio.timeout(self.factory.iamalive_interval):
                    await self._acked.wait()
            except TimeoutError:
                log.warning("VTP subscriber %s acknowledged nothing during its catch-up; dropping it", self.stats.peer)
                self.transport.loseConnection()
                return False
        return self in self.factory.subscribers

    def position(self) -> int | None:
        """Everything up to this seq was acknowledged by this subscriber or not meant for it."""
        if self.unacked:
            return min(self.unacked.values()) - 1
        return self.offered

    def remember_position(self) -> None:
        catch_up, position = self.factory.catch_up, self.position()
        if catch_up is not None and self.catch_up_ivo and position is not None:
            catch_up.remember(self.catch_up_ivo, position)

    def _start_sending(self) -> None:
        if self._auth_wait.active():
            self._auth_wait.cancel()
        held, self.held = self.held, None
        for event in held or ():
            self.deliver(event)

    def wants(self, event: OutgoingEvent) -> bool:
        if self.operator_filters and not any(_selects(x, event.element) for x in self.operator_filters):
            return False
        return not self.filters or any(_selects(x, event.element) for x in self.filters)

    def deliver(self, event: OutgoingEvent) -> None:
        if self.held is not None:
            if len(self.held) < MAX_HELD or self.replaying:  # a replay ends with what it held
                self.held.append(event)
            return
        self._offer(event)

    def _offer(self, event: OutgoingEvent) -> int:
        """Send it if wanted (1), else count it filtered out (0)."""
        self.offered = max(self.offered or 0, event.seq)
        if not self.wants(event):
            self.stats.filtered_out += 1
            return 0
        write_now(self.transport, event.frame)
        self.unacked[event.ivorn] = event.seq
        self.stats.sent += 1
        self.stats.outstanding += 1
        self.stats.last_sent_at = stamp_now()
        return 1

    def send_iamalive(self) -> None:
        if self.alive_count >= 1:
            log.warning("VTP subscriber %s did not answer the last iamalive; dropping it", self.stats.peer)
            self.transport.loseConnection()
        elif self.stats.outstanding >= self.factory.max_outstanding:
            log.warning("VTP subscriber %s has %d events unacknowledged; dropping it", self.stats.peer, self.stats.outstanding)
            self.transport.loseConnection()
        else:
            self.send_xml(iamalive(self.factory.local_ivo))
            self.alive_count += 1


class VTPBroadcasterFactory(ServerFactory):
    protocol = VTPBroadcastProtocol

    def __init__(
        self,
        *,
        local_ivo: str,
        allow: Sequence[str] = ("0.0.0.0/0", "::/0"),
        filters: Sequence[SubscriberFilter] = (),
        max_outstanding: int = 10,
        authenticate_wait: float = 5.0,
        iamalive_interval: float = 60.0,
        catch_up: CatchUp | None = None,
    ):
        self.local_ivo = local_ivo
        self.iamalive_interval = iamalive_interval
        self.catch_up = catch_up
        #: Set by the broadcaster: the last seq handed to subscribers, and a read of accepted
        #: packets after a seq (for catch-up).
        self.position: Callable[[], int | None] = lambda: None
        self.replay_read: Callable[[int], Awaitable[Sequence[RecordedEvent]]] | None = None
        self.allow: Networks = parse_networks(allow)
        self.filters = [(parse_networks([f.network])[0], f) for f in filters]
        self.max_outstanding = max_outstanding
        self.authenticate_wait = authenticate_wait
        self.subscribers: list[VTPBroadcastProtocol] = []
        self.refused_connections = 0
        #: Connections to the TLS port whose handshake failed (see the module doc).
        self.tls_refused = 0
        #: Connections to the TLS port still in their handshake (not subscribers yet).
        self.handshaking: set[VTPBroadcastProtocol] = set()

    def filters_for(self, host: str) -> list[SubscriberFilter]:
        return [f for network, f in self.filters if allowed(host, (network,))]

    def buildProtocol(self, addr: Any) -> Any:
        if not allowed(addr.host, self.allow):
            self.refused_connections += 1
            log.warning("VTP subscriber connection from %s refused: not in vtp.subscriber_allow", addr.host)
            return None
        return super().buildProtocol(addr)


class Broadcaster:
    """The subscriber port plus the log consumer that feeds it."""

    def __init__(
        self,
        event_log: EventLog,
        *,
        host: str,
        port: int | None,
        tls_port: int | None = None,
        tls_options: Any = None,
        iamalive_interval: float = 60.0,
        backlog: int = DEFAULT_BACKLOG,
        **options: Any,
    ):
        if tls_port is not None and tls_options is None:
            raise ValueError("a TLS subscriber port needs its TLS options")
        self.log = event_log
        self.backlog = backlog
        self.host = host
        self.requested_port = port
        self.requested_tls_port = tls_port
        self.tls_options = tls_options
        self.iamalive_interval = iamalive_interval
        self.factory = VTPBroadcasterFactory(iamalive_interval=iamalive_interval, **options)
        self.listening: Any = None
        self.listening_tls: Any = None
        #: No checkpoint: the head at the first start, then the position in memory (a
        #: supervised restart of the broadcaster resumes where it was).
        #: A log that does not answer (a JetStream election) is retried quickly and never
        #: ends the run: the subscribers stay connected and get what they missed, in order,
        #: once it answers again.
        self.follower: Follower[RecordedEvent] = Follower(
            event_log, self._broadcast_batch, name="vtp-broadcast", start=Start.HEAD, types=[ACCEPTED],
            retry_delay=RETRY_DELAY, max_retry_delay=MAX_RETRY_DELAY,
        )
        self.broadcast = 0  # events taken from the log
        self.factory.position = lambda: self.follower.position
        self.factory.replay_read = lambda after: event_log.read(after, self.follower.filter, REPLAY_PAGE)

    @property
    def catch_up(self) -> CatchUp | None:
        return self.factory.catch_up

    @property
    def position(self) -> int | None:
        """The last log seq handed to the subscribers (None until following starts)."""
        return self.follower.position

    @property
    def port(self) -> int:
        return int(self.listening.getHost().port)

    @property
    def tls_port(self) -> int:
        return int(self.listening_tls.getHost().port)

    def subscribers(self) -> list[SubscriberStats]:
        """A snapshot of every connected subscriber's counters."""
        return [p.stats for p in self.factory.subscribers]

    async def start(self) -> None:
        """Listen. Where in the log broadcasting starts is the follower's business: it waits
        out a log that is not answering yet, while subscribers may already connect."""
        if self.catch_up is not None:
            await self.catch_up.load()
        self.listening, self.listening_tls = await listen_ports(
            self.factory, self.host, self.requested_port, self.requested_tls_port, self.tls_options,
            setting="vtp.broadcast", what="VTP broadcaster", backlog=self.backlog,
        )

    async def stop(self, grace: float = 2.0) -> None:
        """Close the port and every subscriber connection: gracefully (what was sent is
        flushed), then, after ``grace`` seconds, by force (a subscriber that stopped reading
        would otherwise hold its connection, and its timers, for ever)."""
        factory = self.factory
        for name in ("listening", "listening_tls"):
            port = getattr(self, name)
            if port is not None:
                setattr(self, name, None)
                await stop_listening(port)
        for pending in list(factory.handshaking):
            pending.transport.abortConnection()
        for subscriber in list(factory.subscribers):
            subscriber.transport.loseConnection()
        if not await wait_until(lambda: not factory.subscribers, timeout=grace):
            for subscriber in list(factory.subscribers):
                log.warning("VTP subscriber %s did not close within %gs; aborting it", subscriber.stats.peer, grace)
                subscriber.transport.abortConnection()
            await wait_until(lambda: not factory.subscribers, timeout=5)

    async def run(self, ready: Callable[[], None] | None = None) -> None:
        """Listen, follow the log and keep subscribers alive until cancelled (or the log
        closes); then :meth:`stop`. A failure of either loop ends the run with its error."""
        await self.start()
        tasks = [
            asyncio.create_task(self.follow(), name="burstbus-vtp-broadcast-follow"),
            asyncio.create_task(self.keep_alive(), name="burstbus-vtp-iamalive"),
        ]
        if self.catch_up is not None and self.catch_up.enabled:
            tasks.append(asyncio.create_task(self.keep_positions(), name="burstbus-vtp-positions"))
        try:
            # Ready once the start position is known: what is accepted from then on goes out.
            positioned = asyncio.ensure_future(self.follower.positioned.wait())
            await asyncio.wait([positioned, tasks[0]], return_when=asyncio.FIRST_COMPLETED)
            positioned.cancel()
            if tasks[0].done():
                tasks[0].result()
            log.info("VTP broadcaster follows the log from seq %d", self.position)
            if ready:
                ready()
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            await cancel_and_wait(tasks)
            await self.stop()
            if self.catch_up is not None:
                await self.catch_up.flush()  # the subscribers' last positions, for after the restart

    async def follow(self) -> None:
        await self.follower.run()

    async def _broadcast_batch(self, batch: Batch[RecordedEvent]) -> None:
        for record in batch.records:
            self.publish(record)

    def publish(self, record: RecordedEvent) -> None:
        try:
            event = OutgoingEvent(record)
        except Exception as exc:  # accepted packets always parse; never let one stop the stream
            log.error("cannot broadcast log seq %d: %s", record.seq, exc)
            return
        self.broadcast += 1
        for subscriber in list(self.factory.subscribers):
            subscriber.deliver(event)

    async def keep_positions(self, every: float = 1.0) -> None:
        """Store where each catch-up subscriber is, about every second."""
        assert self.catch_up is not None
        while True:
            for subscriber in list(self.factory.subscribers):
                if not subscriber.replaying:
                    subscriber.remember_position()
            await self.catch_up.flush()
            await asyncio.sleep(every)

    async def keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self.iamalive_interval)
            for subscriber in list(self.factory.subscribers):
                subscriber.send_iamalive()
