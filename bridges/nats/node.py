"""NATS in the service: the embedded server (if no URL), one connection, inbound and outbound.

One supervised component (``nats``). It starts the embedded nats-server when ``[nats] url``
is empty, connects (retrying until a server answers; nats-py then reconnects forever),
subscribes the inbound subjects (and the operator's ``[[nats.mappings]]``) and runs the
outbox. If the embedded server dies, the component fails and the supervisor restarts it,
server included; the outbox resumes from its checkpoint. Stopping the component closes the
connection and stops the embedded server.

When the event log itself is on the embedded server (``[log] backend = "jetstream"`` with no
URL), the log owns that server (it must outlive every component): this component uses it,
restarts it if it died, and leaves stopping it to the log's ``close``.

:meth:`NatsNode.publish` is the way other components (the trigger workflow) send a message
out on a subject of their choice over this connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client as NATS

from burstbus.bridges.nats.config import NatsSection, connect_options, resolve_node_id
from burstbus.bridges.nats.confirm import confirm_sent
from burstbus.bridges.nats.inbound import Inbound
from burstbus.bridges.nats.outbound import ORIGIN, RETRYABLE, Outbound
from burstbus.bridges.nats.server import EmbeddedNatsServer
from burstbus.component import RequestNotDelivered, RequestNotSent, RequestUnanswered, StartupError
from burstbus.handlers.notices.intake import NoticeIntake
from burstbus.ingest import Ingest
from burstbus.state import StateStore
from burstbus.store.base import EventLog
from burstbus.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: Seconds a node that never connected keeps trying a configured server before that is a
#: :class:`StartupError` (at start: the configured URL cannot work here).
START_WINDOW = 10.0


class EmbeddedServerExited(RuntimeError):
    """The embedded nats-server is gone; the supervisor restarts the component."""


class NatsNotConnected(RuntimeError):
    """:meth:`NatsNode.publish` was called while no NATS connection is up."""


class NatsNode:
    """burstbus on NATS. ``outbound``, ``inbound`` and ``server`` are there for metrics and tests;
    ``connected`` is set while the inbound subscriptions are live."""

    def __init__(self, event_log: EventLog, ingest: Ingest, state: StateStore, config: NatsSection, data_dir: Path,
                 *, notices: Callable[[], NoticeIntake | None] | None = None):
        self.log = event_log
        self.ingest = ingest
        self.state = state
        self.config = config
        self.data_dir = Path(data_dir)
        #: The notice intake port, asked per request (``<prefix>.in.notice``).
        self.notices = notices
        self.node_id = resolve_node_id(config, data_dir)
        self.server: EmbeddedNatsServer | None = None
        #: The server belongs to the log (JetStream log on the embedded server): not stopped here.
        self.shared_server = False
        self.nc: NATS | None = None
        self.inbound: Inbound | None = None
        self.outbound: Outbound | None = None
        self.connected = asyncio.Event()
        #: Connected at least once: from then on an unreachable server is an outage, not a
        #: configuration that cannot work.
        self.ever_connected = False

    def components(self) -> list[tuple[str, Any]]:
        return [("nats", self.run)] if self.config.enabled else []

    async def connect(self, servers: list[str]) -> NATS:
        """Connect, retrying until a server answers (nats.connect gives up on a first failure).

        Until this node has connected once, the tries last :data:`START_WINDOW` seconds: a
        configured server that never answers is then a :class:`StartupError` naming
        ``[nats] url`` (at the service's start, ``burstbus run`` exits with that line; under
        docker compose or systemd the restart policy tries again). Once it has connected,
        it retries for ever: an outage later is ridden out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_WINDOW
        delay = min(self.config.reconnect_wait, 0.5)
        options = connect_options(self.config, servers=servers, name=f"burstbus {self.node_id}")
        report = options["error_cb"]
        last_error: Exception | None = None

        async def remember(error: Exception) -> None:  # what the first tries met, for the StartupError
            nonlocal last_error
            last_error = error
            await report(error)

        options["error_cb"] = remember
        while True:
            try:
                if self.ever_connected or self.config.embedded:
                    nc = await nats.connect(**options)
                else:  # nats-py itself retries a first connection for ever
                    async with asyncio.timeout(max(deadline - loop.time(), 0.1)):
                        nc = await nats.connect(**options)
                self.ever_connected = True
                return nc
            except RETRYABLE as exc:
                why = exc if last_error is None or not isinstance(exc, TimeoutError) else last_error
                if not self.ever_connected and not self.config.embedded and loop.time() + delay > deadline:
                    raise StartupError("nats.url", f"no NATS server answers at {', '.join(servers)} "
                                                   f"within {START_WINDOW:g}s ({type(why).__name__}: {why})") from exc
                log.warning("NATS not reachable at %s (%s); retrying in %.1fs", ",".join(servers), exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, max(self.config.reconnect_wait, 1.0))

    async def run(self) -> None:
        c = self.config
        if c.embedded:
            shared = getattr(self.log, "server", None)
            if isinstance(shared, EmbeddedNatsServer):
                self.server, self.shared_server = shared, True
            else:
                self.server = EmbeddedNatsServer(self.data_dir, port=c.embedded_port)
            await self.server.start()  # a no-op if it runs (or runs in another burstbus process)
            servers = [self.server.url]
        else:
            servers = c.servers()
        tasks: list[asyncio.Task[None]] = []
        try:
            self.nc = await self.connect(servers)
            if c.inbound:
                self.inbound = Inbound(
                    self.nc, self.log, self.ingest, origin=self.node_id, prefix=c.prefix,
                    queue=c.queue_group, max_bytes=c.max_inbound_bytes, mappings=c.mappings, notices=self.notices,
                )
                await self.inbound.start()
            if c.outbound:
                self.outbound = Outbound(
                    self.nc, self.log, self.state, origin=self.node_id, prefix=c.prefix, stream=c.stream,
                    stream_replicas=c.stream_replicas, duplicate_window=c.duplicate_window,
                    batch_size=c.batch_size, ack_timeout=c.ack_timeout, retry_delay=min(c.reconnect_wait, 1.0),
                )
                tasks.append(asyncio.create_task(self.outbound.run(), name="burstbus-nats-outbound"))
            if self.server is not None:
                tasks.append(asyncio.create_task(self._watch_server(), name="burstbus-nats-server-watch"))
            self.connected.set()
            if not tasks:
                await asyncio.Event().wait()
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # raise what stopped it, for the supervisor
        finally:
            self.connected.clear()
            await cancel_and_wait(tasks)  # the outbox waits in nats-py's flush, which can lose a cancel
            if self.inbound is not None:
                await self.inbound.stop()
            if self.nc is not None:
                with contextlib.suppress(Exception):
                    await self.nc.close()
            if self.server is not None and not self.shared_server:
                await self.server.close()

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str] | None = None) -> None:
        """Publish one message and return once the server has it (a flush).

        Carries this node's ``Burstbus-Origin`` header, so no burstbus node takes it back in.
        Raises :class:`NatsNotConnected` when the component is not connected, and nats-py's
        errors (e.g. ``FlushTimeoutError``) when the server did not confirm in ``ack_timeout``.
        """
        nc = self.nc
        if nc is None or not self.connected.is_set() or not nc.is_connected:
            raise NatsNotConnected(f"not connected to NATS; {subject} not published")
        await nc.publish(subject, payload, headers={**(headers or {}), ORIGIN: self.node_id})
        await confirm_sent(nc, self.config.ack_timeout)

    async def request(self, subject: str, payload: bytes, headers: dict[str, str], timeout: float) -> bytes:
        """A request on this node's connection (the orchestrator's dispatch): the reply's bytes.

        Raises ``RequestNotSent`` (not connected: nothing sent), ``RequestNotDelivered`` (no
        responder: nobody has it) or ``RequestUnanswered`` (no reply within ``timeout``: the
        responder may have it)."""
        nc = self.nc
        if nc is None or not self.connected.is_set() or not nc.is_connected:
            raise RequestNotSent(f"not connected to NATS; {subject} not requested")
        try:
            reply = await nc.request(subject, payload, timeout=timeout, headers={**headers, ORIGIN: self.node_id})
        except nats.errors.NoRespondersError:
            raise RequestNotDelivered(f"no responders on {subject}") from None
        except nats.errors.TimeoutError:
            raise RequestUnanswered(f"no reply on {subject} within {timeout:g} s") from None
        return bytes(reply.data)

    async def _watch_server(self) -> None:
        assert self.server is not None
        while self.server.running:
            await asyncio.sleep(1.0)
        raise EmbeddedServerExited(f"the embedded nats-server on {self.server.url} exited")
