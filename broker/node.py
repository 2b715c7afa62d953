"""VTP in the service: the receiver, broadcaster and upstream subscriber as supervised components.

This module imports nothing from Twisted at import time, so the service can build it before
the loop runs. Each component installs the reactor on the running loop (once) and only then
imports the Comet-based modules.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from burstbus.broker.catchup import CatchUp
from burstbus.broker.config import VTPSection
from burstbus.ingest import Ingest
from burstbus.state import StateStore
from burstbus.store.base import EventLog

if TYPE_CHECKING:
    from burstbus.broker.broadcaster import Broadcaster
    from burstbus.broker.receiver import Receiver
    from burstbus.broker.upstream import Upstreams


class VTPNode:
    """burstbus as a VTP broker. Its attributes are what the HTTP/metrics work reads:
    ``receiver.stats``, ``broadcaster.subscribers()``, ``upstreams.stats()``."""

    def __init__(self, event_log: EventLog, ingest: Ingest, config: VTPSection, state: StateStore | None = None):
        self.log = event_log
        self.ingest = ingest
        self.config = config
        #: Where catch-up subscribers' positions are kept (``[[vtp.catch_up]]``), if any.
        self.catch_up = CatchUp(config.catch_up, config.catch_up_window, state) if config.catch_up else None
        self.receiver: Receiver | None = None
        self.broadcaster: Broadcaster | None = None
        self.upstreams: Upstreams | None = None
        #: Set once each enabled port is listening (tests and `ready` callbacks wait on it).
        self.receiver_ready = asyncio.Event()
        self.broadcaster_ready = asyncio.Event()

    def components(self) -> list[tuple[str, Any]]:
        """(name, coroutine factory) for each enabled part, for :meth:`Service.add`."""
        c = self.config
        parts: list[tuple[str, Any]] = []
        if not c.enabled:
            return parts
        if c.receive:
            parts.append(("vtp-receiver", self.run_receiver))
        if c.broadcast:
            parts.append(("vtp-broadcaster", self.run_broadcaster))
        if c.upstreams:
            parts.append(("vtp-upstreams", self.run_upstreams))
        if c.broadcast and c.test_interval > 0:
            parts.append(("vtp-test-events", self.run_test_events))
        return parts

    async def run_test_events(self) -> None:
        from burstbus.broker.testevents import send_test_events

        await send_test_events(self.ingest, self.config.local_ivo, self.config.test_interval)

    async def run_receiver(self) -> None:
        from burstbus.broker import reactor

        reactor.install()
        from burstbus.broker.receiver import Receiver

        c = self.config
        self.receiver = Receiver(
            self.ingest, host=c.receive_host, port=c.receive_port if c.receive_plain else None,
            tls_port=c.receive_tls_port, tls_options=self._tls_options(c.receive_tls_port, c.receive_client_certificate),
            local_ivo=c.local_ivo, max_bytes=c.max_bytes, timeout=c.receive_timeout, allow=c.author_allow,
            backlog=c.listen_backlog,
        )
        try:
            await self.receiver.run(ready=self.receiver_ready.set)
        finally:
            self.receiver_ready.clear()

    async def run_broadcaster(self) -> None:
        from burstbus.broker import reactor

        reactor.install()
        from burstbus.broker.broadcaster import Broadcaster

        c = self.config
        if self.broadcaster is None:  # keep the log position across a supervised restart
            self.broadcaster = Broadcaster(
                self.log, host=c.broadcast_host, port=c.broadcast_port if c.broadcast_plain else None,
                tls_port=c.broadcast_tls_port,
                tls_options=self._tls_options(c.broadcast_tls_port, c.broadcast_client_certificate),
                iamalive_interval=c.iamalive_interval,
                local_ivo=c.local_ivo, allow=c.subscriber_allow, filters=c.subscriber_filters,
                max_outstanding=c.max_outstanding_acks, authenticate_wait=c.authenticate_wait,
                catch_up=self.catch_up, backlog=c.listen_backlog,
            )
        try:
            await self.broadcaster.run(ready=self.broadcaster_ready.set)
        finally:
            self.broadcaster_ready.clear()

    def _tls_options(self, port: int | None, client_certificate: str) -> Any:
        """The TLS context of a listening port (None without one); the files were checked
        with the configuration."""
        if port is None:
            return None
        from burstbus.broker.tls import server_options

        c = self.config
        assert c.tls_certificate is not None and c.tls_key is not None
        return server_options(c.tls_certificate, c.tls_key, c.tls_client_ca, client_certificate)

    async def run_upstreams(self) -> None:
        from burstbus.broker import reactor

        reactor.install()
        from burstbus.broker.upstream import Upstreams

        c = self.config
        self.upstreams = Upstreams(
            self.ingest, c.upstreams, local_ivo=c.local_ivo, max_bytes=c.max_bytes,
            max_delay=c.upstream_max_delay, idle_timeout=c.upstream_idle_timeout,
        )
        await self.upstreams.run()
