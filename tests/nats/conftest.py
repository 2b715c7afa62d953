"""Real nats-server processes on loopback for the NATS tests, and a burstbus core beside them.

Every server is an :class:`EmbeddedNatsServer` (``-a 127.0.0.1``, a free port, JetStream
store under ``tmp_path``) registered with the ``servers`` fixture, whose finalizer stops each
by pid, whatever the test did with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS

from burstbus.bridges.nats.server import EmbeddedNatsServer, free_port
from burstbus.ingest import Ingest
from burstbus.state import StateStore
from burstbus.store.projections.processes import ProcessesProjection
from burstbus.store.projections.runner import ProjectionRunner
from burstbus.store.sqlite import SQLiteEventLog


class Servers:
    """The nats-servers a test started; all stopped by pid at the end."""

    def __init__(self, root: Path):
        self.root = root
        self.started: list[EmbeddedNatsServer] = []

    async def start(self, name: str = "nats", port: int | None = None) -> EmbeddedNatsServer:
        server = EmbeddedNatsServer(self.root / name, port=port or free_port())
        self.track(server)
        await server.start()
        return server

    def track(self, server: EmbeddedNatsServer) -> EmbeddedNatsServer:
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    registry = Servers(tmp_path / "servers")
    try:
        yield registry
    finally:
        registry.stop_all()


@pytest_asyncio.fixture
async def server(servers: Servers) -> EmbeddedNatsServer:
    return await servers.start()


@dataclass
class Core:
    log: SQLiteEventLog
    state: StateStore
    ingest: Ingest
    projections: ProjectionRunner

    async def process_rows(self) -> dict[str, tuple[Any, ...]]:
        await self.projections.catch_up(self.log)
        return {r[0]: r for r in (await self.projections.dump())["processes"]["processes"]}


@pytest_asyncio.fixture
async def core(tmp_path: Path) -> AsyncIterator[Core]:
    log = await SQLiteEventLog.open(tmp_path / "data" / "log.sqlite", poll_interval=0.05)
    state = await StateStore.open(tmp_path / "data" / "state.sqlite")
    ingest = Ingest(log)
    projections = await ProjectionRunner.open(tmp_path / "data" / "projections.sqlite", [ProcessesProjection()])
    try:
        yield Core(log, state, ingest, projections)
    finally:
        await ingest.close()
        await projections.close()
        await state.close()
        await log.close()


@pytest_asyncio.fixture
async def client(server: EmbeddedNatsServer) -> AsyncIterator[NATS]:
    """A plain nats-py client, as a pipeline or a telescope would use."""
    nc = await nats.connect(server.url, reconnect_time_wait=0.1, max_reconnect_attempts=-1)
    try:
        yield nc
    finally:
        await nc.close()
