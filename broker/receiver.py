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
  refused at connect time with a log line;
* on the TLS port (``receive_tls_port``, :mod:`burstbus.broker.tls`) the same protocol runs
  behind Twisted's TLS; an author that presented a verified client certificate submits as
  ``vtp-cert:<subject CN>`` (the certificate's facts and its address go in the event), one
  without as ``vtp:<address>``; a failed handshake (no certificate where one is required, one
  the CA did not sign, a plain-TCP client) is recorded as ``voevent.rejected`` code ``tls``
  with what the client sent before it failed, and logged once.

Import only after :func:`burstbus.broker.reactor.install`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from burstbus.broker.reactor import require_installed

require_installed()

from comet.protocol.base import ElementSender  # noqa: E402
from comet.protocol.messages import ack, nak  # noqa: E402
from twisted.internet.error import CannotListenError  # noqa: E402
from twisted.internet.interfaces import IHandshakeListener  # noqa: E402
from twisted.internet.protocol import ServerFactory  # noqa: E402
from twisted.protocols.policies import TimeoutMixin  # noqa: E402
from zope.interface import implementer  # noqa: E402

from burstbus.broker import tls  # noqa: E402
from burstbus.broker.config import DEFAULT_LISTEN_BACKLOG  # noqa: E402
from burstbus.broker.reactor import running_reactor, stop_listening, wait_until  # noqa: E402
from burstbus.broker.stats import ReceiverStats  # noqa: E402
from burstbus.component import bind_failure  # noqa: E402
from burstbus.ingest import Ingest, IngestResult, Submission  # noqa: E402
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


@implementer(IHandshakeListener)
class VTPReceiverProtocol(ElementSender, TimeoutMixin):
    """One author connection: read one frame, ingest it, answer ACK/NAK, close."""

    factory: VTPReceiverFactory
    #: Int32StringReceiver's buffer of bytes not yet framed (Twisted leaves it unannotated).
    _unprocessed: bytes

    def connectionMade(self) -> None:
        self.peer = self.transport.getPeer().host
        #: The authority source: ``vtp:<address>``, or ``vtp-cert:<CN>`` after a verified
        #: client certificate (set by :meth:`handshakeCompleted`); never what the packet says.
        self.via, self.source = "vtp", self.peer
        #: What the event records of the TLS session (none on the plain port).
        self.extra: dict[str, Any] | None = None
        self.tls = tls.is_tls(self.transport)
        self.handshake_done = not self.tls
        self.refused_tls = False
        self.MAX_LENGTH = self.factory.max_bytes
        self.answered = False  # a frame was taken (or refused for size): nothing more is read
        self.discard_left = 0  # bytes of an oversized frame still to read and drop
        self.timed_out = False
        self.factory.stats.connections += 1
        self.factory.connections.add(self)
        self.setTimeout(self.factory.timeout)  # on the TLS port the handshake counts too

    def handshakeCompleted(self) -> None:
        """The TLS handshake succeeded: the client certificate (if any) verified against
        ``tls_client_ca``. Who the author is follows from it, once, here."""
        tls.mark_handshake_done(self.transport)
        self.handshake_done = True
        session: dict[str, Any] = {"protocol": tls.protocol_version(self.transport)}
        try:
            certificate = tls.peer_certificate(self.transport)
        except Exception as exc:  # an unreadable certificate is a refusal, never a crash
            log.exception("VTP author %s: cannot read its client certificate", self.peer)
            self._refuse_tls(f"its client certificate could not be read ({exc})", abort=True)
            return
        if certificate is not None:
            session["certificate"] = certificate.facts()
            name = tls.identify(certificate)
            if name is None:
                self._refuse_tls(
                    f"client certificate {certificate.subject!r} has no single subject CN to know the author by",
                    abort=True, tls=session,
                )
                return
            self.via, self.source = tls.CERT_VIA, name
            log.info("VTP author %s presented the client certificate %r", self.peer, certificate.subject)
        self.extra = {"address": self.peer, "tls": session} if certificate is not None else {"tls": session}

    def dataReceived(self, data: bytes) -> None:
        if self.refused_tls:
            return
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
                [result] = await self.factory.ingest.submit_many([Submission(data, self.via, self.source, extra=self.extra)])
                return result
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
            record_refusal(self.factory.ingest, head, self.via, self.source, reason, "too_large", declared_size=length,
                           **(self.extra or {}))
        ))
        self.send_xml(nak(self.factory.local_ivo, None, f"Event rejected (too_large): {reason}"))
        self.discard_left = max(0, length - len(head))
        self._unprocessed = b""
        if not self.discard_left:
            self.transport.loseConnection()

    def timeoutConnection(self) -> None:
        self.timed_out = True
        if not self.handshake_done:
            self.transport.abortConnection()  # no TLS shutdown with a client that never finished its hello
            return
        log.warning("VTP author %s sent no complete packet within %.1fs; closing", self.peer, self.factory.timeout)
        if self._unprocessed:
            reason = f"no complete packet within {self.factory.timeout:g} s"
            self.send_xml(nak(self.factory.local_ivo, None, f"Event rejected (timeout): {reason}"))
        TimeoutMixin.timeoutConnection(self)

    def connectionLost(self, reason: Any = None) -> None:
        self.setTimeout(None)
        self.factory.connections.discard(self)
        if not self.handshake_done:
            self._handshake_failed(reason)
            return super().connectionLost(reason)
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
                record_refusal(self.factory.ingest, body, self.via, self.source, text, code, declared_size=declared,
                               **(self.extra or {}))
            ))
        return super().connectionLost(reason)

    def _handshake_failed(self, reason: Any) -> None:
        """The connection ended before its TLS handshake completed: record why, with what the
        client sent meanwhile (a plain-TCP client's packet, a refused certificate), unless it
        sent nothing and nothing failed (a port probe, as on the plain port)."""
        transport = self.transport
        captured = bytes(getattr(transport, "before_handshake", b""))
        received = int(getattr(transport, "received_before_handshake", 0))
        notes = list(getattr(transport, "verify_notes", []))
        if self.refused_tls or (not received and not tls.is_tls_error(reason)):
            return
        if self.timed_out:
            text = f"no TLS handshake within {self.factory.timeout:g} s"
        elif tls.is_tls_error(reason):
            text = f"TLS handshake failed: {tls.failure_text(reason)}"
        else:
            text = "the client closed the connection during the TLS handshake (did it refuse this node's certificate?)"
        if notes:
            text += "; " + "; ".join(notes)
        extra: dict[str, Any] = {}
        if captured and captured[0] != 0x16:  # a TLS record starts with 22 (handshake)
            text = f"not TLS (a plain-TCP client on the TLS author port?): {text}"
            declared = int.from_bytes(captured[:4], "big") if len(captured) >= 4 else 0
            if 0 < declared <= self.factory.max_bytes:  # a VTP frame sent in clear: record its packet
                captured, extra = captured[4:], {"declared_size": declared}
        self._refuse_tls(text, raw=captured, received=received, **extra)

    def _refuse_tls(self, text: str, *, raw: bytes = b"", received: int = 0, abort: bool = False, **extra: Any) -> None:
        """Record one TLS refusal (``voevent.rejected``, code ``tls``) and log it, once per connection."""
        if self.refused_tls:
            return
        self.refused_tls = True
        self.answered = True
        log.warning("VTP author %s refused on the TLS port: %s", self.peer, text)
        self.factory.stats.count(tls.TLS_CODE)
        self.factory.track(asyncio.ensure_future(
            record_refusal(self.factory.ingest, raw, "vtp", self.peer, text, tls.TLS_CODE, received_bytes=received, **extra)
        ))
        if abort:
            self.transport.abortConnection()


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


#: Listen backlog when none is given (``[vtp] listen_backlog``); Twisted's own is 50.
DEFAULT_BACKLOG = DEFAULT_LISTEN_BACKLOG
_SOMAXCONN = Path("/proc/sys/net/core/somaxconn")


def somaxconn() -> int | None:
    """The kernel's cap on a listen backlog (Linux), None where it cannot be read."""
    try:
        return int(_SOMAXCONN.read_text().strip())
    except (OSError, ValueError):
        return None


def effective_backlog(backlog: int) -> int:
    """``backlog`` as the kernel will apply it (capped at ``net.core.somaxconn``), logged
    when the cap cuts it: a storm of reconnecting subscribers larger than that loses SYNs."""
    cap = somaxconn()
    if cap is not None and backlog > cap:
        log.warning("vtp.listen_backlog = %d, but the kernel caps it at net.core.somaxconn = %d", backlog, cap)
        return cap
    return backlog


async def listen_ports(factory: Any, host: str, port: int | None, tls_port: int | None, tls_options: Any, *,
                       setting: str, what: str, backlog: int = DEFAULT_BACKLOG) -> tuple[Any, Any]:
    """Listen on the plain port and the TLS port (each when requested) with one factory; a
    port that cannot be bound is the :class:`StartupError` naming ``<setting>_port`` or
    ``<setting>_tls_port``, and the plain port already opened is closed again."""
    reactor = running_reactor()
    plain = secure = None
    applied = effective_backlog(backlog)
    if port is not None:
        try:
            plain = reactor.listenTCP(port, factory, backlog=backlog, interface=host)
        except CannotListenError as exc:
            raise bind_failure(f"{setting}_port", host, port, exc.socketError) from exc
        log.info("%s listening on %s:%d (listen backlog %d)", what, host, plain.getHost().port, applied)
    if tls_port is not None:
        try:
            secure = reactor.listenTCP(tls_port, tls.server_factory(tls_options, factory), backlog=backlog, interface=host)
        except CannotListenError as exc:
            if plain is not None:
                await stop_listening(plain)
            raise bind_failure(f"{setting}_tls_port", host, tls_port, exc.socketError) from exc
        log.info("%s listening on %s:%d (TLS, listen backlog %d)", what, host, secure.getHost().port, applied)
    return plain, secure


class Receiver:
    """The author port(s) as a service component: listen, serve until cancelled, then close.

    ``port`` is the plain-TCP port (``None``: none), ``tls_port`` the TLS one (``None``: none;
    it needs ``tls_options``, :func:`burstbus.broker.tls.server_options`). Both serve the same
    factory: one set of counters, one set of connections."""

    def __init__(self, ingest: Ingest, *, host: str, port: int | None, tls_port: int | None = None,
                 tls_options: Any = None, backlog: int = DEFAULT_BACKLOG, **options: Any):
        if tls_port is not None and tls_options is None:
            raise ValueError("a TLS author port needs its TLS options")
        self.host = host
        self.backlog = backlog
        self.requested_port = port
        self.requested_tls_port = tls_port
        self.tls_options = tls_options
        self.factory = VTPReceiverFactory(ingest, **options)
        self.listening: Any = None
        self.listening_tls: Any = None

    @property
    def stats(self) -> ReceiverStats:
        return self.factory.stats

    @property
    def port(self) -> int:
        return int(self.listening.getHost().port)

    @property
    def tls_port(self) -> int:
        return int(self.listening_tls.getHost().port)

    async def start(self) -> None:
        self.listening, self.listening_tls = await listen_ports(
            self.factory, self.host, self.requested_port, self.requested_tls_port, self.tls_options,
            setting="vtp.receive", what="VTP receiver", backlog=self.backlog,
        )

    async def stop(self) -> None:
        """Close the ports, let packets already read finish (they may be ACKed: durable), cut off
        every other author, and wait for the refusals that records (truncated frames)."""
        factory = self.factory
        for name in ("listening", "listening_tls"):
            port = getattr(self, name)
            if port is not None:
                setattr(self, name, None)
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
