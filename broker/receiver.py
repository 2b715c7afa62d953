"""The VTP author port: one packet per connection, ACK only once it is durably in the log.

Comet's own receiver validates, ACKs, *then* stores (an ACK does not mean stored), answers some
bad packets with silence and drops frames over 99,999 bytes without a word. This receiver keeps
Comet's wire behaviour that authors rely on (one packet per connection, then the broker closes;
ACK/NAK built with ``comet.protocol.messages``; ``comet-sendvo`` works unchanged) and changes
what happens in between:

* every complete frame goes through :meth:`burstbus.ingest.Ingest.submit`; the ACK is sent
  only after it returns (the append is durable), a NAK carries the ingest's reason;
* a log that is briefly unavailable (``LogUnavailable``: a JetStream election) is waited out
  for up to ``UNAVAILABLE_RETRY_FOR`` seconds while the author waits: such an append may have
  been stored although its confirmation was lost, and submitting again is safe (the event id
  comes from the IVORN), so the author gets the ACK for a stored packet, never a NAK saying
  "not stored";
* a length prefix over ``max_bytes`` is answered with a NAK at once, the rest of that frame is
  read and discarded (so the author can read the NAK instead of a reset), then we close;
* an author that does not finish its frame within ``receive_timeout`` is cut off;
* a frame cut short (connection closed or timed out mid-frame) or refused for size is recorded
  as a ``voevent.rejected`` with what was read, so every refusal is in the log;
* authors outside ``author_allow`` (CIDR list, like Comet's ``--author-whitelist``) are
  refused at connect time with a log line.

Import only after :func:`burstbus.broker.reactor.install`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Iterable
from typing import Any

from burstbus.broker.reactor import require_installed

require_installed()

from comet.protocol.base import ElementSender  # noqa: E402
from comet.protocol.messages import ack, nak  # noqa: E402
from twisted.internet.protocol import ServerFactory  # noqa: E402
from twisted.protocols.policies import TimeoutMixin  # noqa: E402

from burstbus.broker.reactor import running_reactor, stop_listening, wait_until  # noqa: E402
from burstbus.broker.stats import ReceiverStats  # noqa: E402
from burstbus.ingest import Ingest, IngestResult  # noqa: E402
from burstbus.store.base import LogUnavailable  # noqa: E402

log = logging.getLogger(__name__)

#: How long one packet's submission is retried while the log is briefly unavailable (an
#: election takes 4-9 s, and an append in flight when the leader died gives up only after
#: ``[log] timeout``), before the author gets a NAK; the wait between tries, doubling.
UNAVAILABLE_RETRY_FOR = 30.0
RETRY_DELAY = 0.25
MAX_RETRY_DELAY = 2.0

Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def parse_networks(values: Iterable[str]) -> Networks:
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


def allowed(host: str, networks: Networks) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


async def record_refusal(ingest: Ingest, raw: bytes, via: str, peer: str, reason: str, code: str, **extra: Any) -> None:
    """Record a frame-level refusal (the ingest never saw a whole packet) through ``Ingest.refuse``;
    a failure to record is logged, never raised into Twisted's callback."""
    try:
        await ingest.refuse(raw, via=via, peer=peer, reason=reason, code=code, **extra)
    except Exception:
        log.exception("could not record the refusal of a %s frame from %s", via, peer)


class VTPReceiverProtocol(ElementSender, TimeoutMixin):
    """One author connection: read one frame, ingest it, answer ACK/NAK, close."""

    factory: VTPReceiverFactory
    #: Int32StringReceiver's buffer of bytes not yet framed (Twisted leaves it unannotated).
    _unprocessed: bytes

    def connectionMade(self) -> None:
        self.peer = self.transport.getPeer().host
        self.MAX_LENGTH = self.factory.max_bytes
        self.answered = False  # a frame was taken (or refused for size): nothing more is read
        self.discard_left = 0  # bytes of an oversized frame still to read and drop
        self.timed_out = False
        self.factory.stats.connections += 1
        self.factory.connections.add(self)
        self.setTimeout(self.factory.timeout)

    def dataReceived(self, data: bytes) -> None:
        if self.discard_left:
            self.discard_left -= min(len(data), self.discard_left)
            if not self.discard_left:
                self.transport.loseConnection()
            return
        if self.answered:
            return  # one packet per connection, as Comet: ignore anything after it
        super().dataReceived(data)

    def stringReceived(self, data: bytes) -> None:
        self.answered = True
        self.setTimeout(None)  # ingest time is ours, not the author's
        self.pauseProducing()  # stops IntNStringReceiver from handing us further frames
        task = asyncio.ensure_future(self._ingest(data))
        self.factory.track(task)

    async def _submit(self, data: bytes) -> IngestResult:
        """The ingest's answer, trying again while the log is briefly unavailable (see the
        module doc) and the author is still waiting."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.factory.unavailable_retry_for
        delay = RETRY_DELAY
        while True:
            try:
                return await self.factory.ingest.submit(data, via="vtp", peer=self.peer)
            except LogUnavailable as exc:
                if loop.time() + delay > deadline or not self.transport.connected:
                    raise
                log.warning("VTP packet from %s: the log is unavailable (%s); trying again in %.2fs", self.peer, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)

    async def _ingest(self, data: bytes) -> None:
        try:
            result = await self._submit(data)
        except Exception as exc:  # the log failed: the author must retry, so no ACK
            log.exception("could not store a packet from %s", self.peer)
            self.factory.stats.count("error")
            self._answer(nak(self.factory.local_ivo, None, f"internal error, packet not stored; retry later ({exc})"))
            return
        self.factory.stats.count(result.outcome)
        if result.acknowledged:
            log.info("VTP %s %s from %s (seq %d)", result.outcome, result.ivorn, self.peer, result.seq)
            self._answer(ack(self.factory.local_ivo, result.ivorn))
        else:
            self._answer(nak(self.factory.local_ivo, result.ivorn, f"Event rejected ({result.code}): {result.reason}"))

    def _answer(self, message: Any) -> None:
        if self.transport.connected:
            self.send_xml(message)
            self.transport.loseConnection()

    def lengthLimitExceeded(self, length: int) -> None:
        limit = self.factory.max_bytes
        reason = f"frame of {length:,} bytes is larger than the limit of {limit:,} bytes"
        log.warning("VTP author %s: %s; refused", self.peer, reason)
        self.factory.stats.count("too_large")
        self.answered = True
        head = self._unprocessed[4:]
        self.factory.track(asyncio.ensure_future(
            record_refusal(self.factory.ingest, head, "vtp", self.peer, reason, "too_large", declared_size=length)
        ))
        self.send_xml(nak(self.factory.local_ivo, None, f"Event rejected (too_large): {reason}"))
        self.discard_left = max(0, length - len(head))
        self._unprocessed = b""
        if not self.discard_left:
            self.transport.loseConnection()

    def timeoutConnection(self) -> None:
        self.timed_out = True
        log.warning("VTP author %s sent no complete packet within %.1fs; closing", self.peer, self.factory.timeout)
        if self._unprocessed:
            reason = f"no complete packet within {self.factory.timeout:g} s"
            self.send_xml(nak(self.factory.local_ivo, None, f"Event rejected (timeout): {reason}"))
        TimeoutMixin.timeoutConnection(self)

    def connectionLost(self, reason: Any = None) -> None:
        self.setTimeout(None)
        self.factory.connections.discard(self)
        partial = self._unprocessed
        if partial and not self.answered:
            code = "timeout" if self.timed_out else "truncated"
            declared = int.from_bytes(partial[:4], "big") if len(partial) >= 4 else None
            body = partial[4:]
            what = f"{len(body):,} of {declared:,} bytes" if declared is not None else f"{len(partial)} bytes of a length prefix"
            text = (
                f"no complete packet within {self.factory.timeout:g} s ({what} received)"
                if self.timed_out
                else f"connection closed mid-frame ({what} received)"
            )
            if not self.timed_out:
                log.warning("VTP author %s: %s", self.peer, text)
            self.factory.stats.count(code)
            self.factory.track(asyncio.ensure_future(
                record_refusal(self.factory.ingest, body, "vtp", self.peer, text, code, declared_size=declared)
            ))
        return super().connectionLost(reason)


class VTPReceiverFactory(ServerFactory):
    protocol = VTPReceiverProtocol

    def __init__(
        self,
        ingest: Ingest,
        *,
        local_ivo: str,
        max_bytes: int = 1_048_576,
        timeout: float = 20.0,
        allow: Iterable[str] = ("0.0.0.0/0", "::/0"),
        unavailable_retry_for: float = UNAVAILABLE_RETRY_FOR,
    ):
        self.ingest = ingest
        self.unavailable_retry_for = unavailable_retry_for
        self.local_ivo = local_ivo
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.allow = parse_networks(allow)
        self.stats = ReceiverStats()
        self.connections: set[VTPReceiverProtocol] = set()
        self.tasks: set[asyncio.Future[Any]] = set()

    def buildProtocol(self, addr: Any) -> Any:
        if not allowed(addr.host, self.allow):
            self.stats.refused_connections += 1
            log.warning("VTP author connection from %s refused: not in vtp.author_allow", addr.host)
            return None
        return super().buildProtocol(addr)

    def track(self, task: asyncio.Future[Any]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


class Receiver:
    """The author port as a service component: listen, serve until cancelled, then close."""

    def __init__(self, ingest: Ingest, *, host: str, port: int, **options: Any):
        self.host = host
        self.requested_port = port
        self.factory = VTPReceiverFactory(ingest, **options)
        self.listening: Any = None

    @property
    def stats(self) -> ReceiverStats:
        return self.factory.stats

    @property
    def port(self) -> int:
        return int(self.listening.getHost().port)

    async def start(self) -> None:
        self.listening = running_reactor().listenTCP(self.requested_port, self.factory, interface=self.host)
        log.info("VTP receiver listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Close the port, let packets already read finish (they may be ACKed: durable), cut off
        every other author, and wait for the refusals that records (truncated frames)."""
        factory = self.factory
        if self.listening is not None:
            port, self.listening = self.listening, None
            await stop_listening(port)
        await _finish(factory.tasks, timeout=10)
        for connection in list(factory.connections):
            if not connection.transport.disconnecting:  # answered ones are flushing their ACK/NAK
                connection.transport.abortConnection()
        # Twisted reports closes on its next turn; connectionLost then records partial frames
        if not await wait_until(lambda: not factory.connections, timeout=2):
            for connection in list(factory.connections):
                connection.transport.abortConnection()
            if not await wait_until(lambda: not factory.connections, timeout=5):
                log.warning("%d VTP author connections did not close", len(factory.connections))
        await _finish(factory.tasks, timeout=5)

    async def run(self, ready: Callable[[], None] | None = None) -> None:
        """Serve authors until cancelled, then :meth:`stop`."""
        await self.start()
        try:
            if ready:
                ready()
            await asyncio.Event().wait()
        finally:
            await self.stop()


async def _finish(tasks: set[asyncio.Future[Any]], timeout: float) -> None:
    """Wait (bounded) for tracked tasks; cancel what is still running after ``timeout``."""
    if not tasks:
        return
    _, late = await asyncio.wait(list(tasks), timeout=timeout)
    for task in late:
        log.warning("VTP receiver task %r still running at stop; cancelled", task)
        task.cancel()
