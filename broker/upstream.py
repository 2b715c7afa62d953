"""Subscribing to upstream VTP brokers: Comet's subscriber protocol, burstbus's ingest behind it.

Comet's ``VOEventSubscriber`` already does the VTP client side right: it answers
``authenticate`` with our filters and ``iamalive`` with ``iamalive``, drops an idle connection,
and its ``ReconnectingClientFactory`` reconnects with exponential backoff. We plug the ingest in
as Comet's *validator*: Comet sends the ACK when the validators finish, so the ACK goes out only
after the packet is durably in the log. An invalid packet is still ACKed (Comet's
``can_nak=False``: a NAK would make the upstream drop us) and recorded as ``voevent.rejected``
by the ingest. The same packet from two upstreams has one IVORN, so one event id: the second
is a ``duplicate`` and appends nothing.

Changed from Comet: frames up to ``max_bytes`` (Comet: 99,999), and a frame Comet's parser
refuses (not XML, entities) is handed to the ingest too, so it is recorded, not just logged.

Over TLS (``tls = true``, :func:`burstbus.broker.tls.client_options`) the upstream's certificate
is checked against ``ca`` (else the system's trust store) and ``server_name`` (else ``host``);
we are connected only once the handshake completed. A failed handshake is logged once per
attempt with OpenSSL's reason (and counted, ``tls_failures``), then retried with the backoff:
nothing from an unverified upstream reaches the ingest. The authority source stays
``vtp-upstream:host:port``, now with the host name proved.

Import only after :func:`burstbus.broker.reactor.install`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from burstbus.broker.reactor import require_installed

require_installed()

from comet.protocol.subscriber import VOEventSubscriber, VOEventSubscriberFactory  # noqa: E402
from comet.utility import ParseError, xml_document  # noqa: E402
from twisted.internet.defer import Deferred  # noqa: E402
from twisted.internet.interfaces import IHandshakeListener  # noqa: E402
from zope.interface import implementer  # noqa: E402

from burstbus.broker import tls  # noqa: E402
from burstbus.broker.reactor import running_reactor, wait_until  # noqa: E402
from burstbus.broker.stats import UpstreamStats  # noqa: E402
from burstbus.events import utc_now  # noqa: E402
from burstbus.ingest import Ingest  # noqa: E402

log = logging.getLogger(__name__)

VIA = "vtp-upstream"


@implementer(IHandshakeListener)
class UpstreamProtocol(VOEventSubscriber):
    factory: UpstreamFactory
    handshake_done = False

    def connectionMade(self, *args: Any) -> Any:
        self.MAX_LENGTH = self.factory.max_bytes
        self.ALIVE_INTERVAL = self.factory.idle_timeout
        self.factory.protocols.add(self)
        if self.factory.tls_options is None:
            self._connected()
        # Comet's idle check runs from here on: a handshake that hangs is dropped like a silent upstream
        return super().connectionMade(*args)

    def handshakeCompleted(self) -> None:
        self.handshake_done = True
        self._connected(" over TLS")

    def _connected(self, how: str = "") -> None:
        self.factory.stats.connected = True
        self.factory.stats.connects += 1
        log.info("connected to upstream VTP broker %s%s", self.factory.stats.peer, how)

    def connectionLost(self, *args: Any) -> Any:
        reason = args[0] if args else None
        if self.factory.tls_options is not None and not self.handshake_done:
            self.factory.stats.tls_failures += 1
            text = tls.failure_text(reason) if reason is not None else "connection closed"
            self.factory.stats.last_error = f"TLS: {text}"
            log.warning("upstream VTP broker %s: TLS handshake failed (%s); not connected, retrying later",
                        self.factory.stats.peer, text)
        self.factory.stats.connected = False
        self.factory.protocols.discard(self)
        return super().connectionLost(*args)

    def lengthLimitExceeded(self, length: int) -> None:
        log.warning("upstream %s sent a %d-byte frame (limit %d); reconnecting", self.factory.stats.peer, length, self.MAX_LENGTH)
        self.transport.loseConnection()

    def stringReceived(self, data: bytes) -> None:
        self.factory.stats.messages += 1
        try:
            xml_document(data)
        except ParseError:
            # Comet would only log this; we record it (and there is no IVORN to ACK).
            self.resetTimeout()
            self.factory.track(asyncio.ensure_future(self.factory.ingest_packet(data)))
            return
        super().stringReceived(data)


class UpstreamFactory(VOEventSubscriberFactory):
    protocol = UpstreamProtocol

    def __init__(self, ingest: Ingest, *, host: str, port: int, local_ivo: str, filters: Sequence[str] = (),
                 max_bytes: int = 1_048_576, max_delay: float = 60.0, idle_timeout: float = 120.0,
                 tls_options: Any = None):
        super().__init__(local_ivo=local_ivo, validators=[self._validate], filters=list(filters))
        self.ingest = ingest
        self.host, self.port = host, port
        self.peer = f"{host}:{port}"
        #: The client TLS options (:func:`burstbus.broker.tls.client_options`); None: plain TCP.
        self.tls_options = tls_options
        self.max_bytes = max_bytes
        self.maxDelay = max_delay
        self.idle_timeout = idle_timeout
        self.stats = UpstreamStats(peer=self.peer)
        self.protocols: set[UpstreamProtocol] = set()
        self.tasks: set[asyncio.Future[Any]] = set()

    def _validate(self, event: Any) -> Any:
        """Comet calls this for each VOEvent; it ACKs when the Deferred fires (after the append)."""
        task = asyncio.ensure_future(self.ingest_packet(event.raw_bytes))
        self.track(task)
        return Deferred.fromFuture(task)

    async def ingest_packet(self, raw: bytes) -> None:
        self.stats.received += 1
        self.stats.last_received_at = utc_now()
        result = await self.ingest.submit(raw, via=VIA, peer=self.peer)
        self.stats.outcomes[result.outcome] += 1
        if result.outcome == "accepted":
            log.info("VTP upstream %s: accepted %s (seq %d)", self.peer, result.ivorn, result.seq)

    def track(self, task: asyncio.Future[Any]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


class Upstreams:
    """Every configured upstream broker, connected and reconnected until cancelled."""

    def __init__(self, ingest: Ingest, upstreams: Sequence[Any], *, local_ivo: str, max_bytes: int,
                 max_delay: float, idle_timeout: float):
        self.factories = [
            UpstreamFactory(ingest, host=u.host, port=u.port, local_ivo=local_ivo, filters=u.filters,
                            max_bytes=max_bytes, max_delay=max_delay, idle_timeout=idle_timeout,
                            tls_options=_client_options(u))
            for u in upstreams
        ]
        self.connectors: list[Any] = []

    def stats(self) -> list[UpstreamStats]:
        return [f.stats for f in self.factories]

    async def start(self) -> None:
        reactor = running_reactor()
        for factory in self.factories:
            if factory.tls_options is not None:
                self.connectors.append(reactor.connectSSL(factory.host, factory.port, factory, factory.tls_options))
            else:
                self.connectors.append(reactor.connectTCP(factory.host, factory.port, factory))

    async def stop(self) -> None:
        """Stop reconnecting, close every connection, let packets being ingested finish (bounded;
        they are durable, their ACK may not reach the upstream), then cut off what is left."""
        for factory in self.factories:
            factory.stopTrying()
        for connector in self.connectors:
            connector.disconnect()
        self.connectors.clear()
        pending = [t for f in self.factories for t in f.tasks]
        if pending:
            _, late = await asyncio.wait(pending, timeout=10)
            for task in late:
                log.warning("upstream ingest %r still running at stop; cancelled", task)
                task.cancel()
        if not await wait_until(lambda: not any(f.protocols for f in self.factories), timeout=2):
            for factory in self.factories:
                for protocol in list(factory.protocols):
                    protocol.transport.abortConnection()
            await wait_until(lambda: not any(f.protocols for f in self.factories), timeout=5)

    async def run(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()


def _client_options(upstream: Any) -> Any:
    """The TLS client options of one ``[[vtp.upstreams]]`` entry (None: plain TCP)."""
    if not getattr(upstream, "tls", False):
        return None
    return tls.client_options(upstream.server_name or upstream.host, upstream.ca, upstream.certificate, upstream.key)
