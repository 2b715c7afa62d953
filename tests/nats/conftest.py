"""Real nats-server processes on loopback for the NATS tests, and a burstbus core beside them.

Every server is an :class:`EmbeddedNatsServer` (``-a 127.0.0.1``, a free port, JetStream
store under ``tmp_path``) registered with the ``servers`` fixture, whose finalizer stops each
by pid, whatever the test did with it.
"""

from __future__ import annotations

import asyncio
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


class ClusterNode(EmbeddedNatsServer):
    """A nats-server cluster node that keeps its server name across restarts.

    JetStream knows a Raft peer by (a hash of) its server name; :class:`EmbeddedNatsServer`
    picks a fresh name at each start (to tell its own INFO from another server's), so a node
    restarted that way would come back as a different peer, not as the stream's lost replica.
    The first start picks the name; later starts (same port, same store) reuse it."""

    @property  # type: ignore[override]
    def server_name(self) -> str:
        return self._fixed_name

    @server_name.setter
    def server_name(self, value: str) -> None:
        if not getattr(self, "_fixed_name", ""):
            self._fixed_name = value


async def start_restartable_cluster(servers: Servers, root: Path, name: str = "burstbus-test") -> list[ClusterNode]:
    """Three :class:`ClusterNode` processes on loopback (ephemeral client and route ports, one
    store each, one cluster), registered with ``servers``: each can be SIGKILLed (``kill``)
    and started again (``start``) as the same peer."""
    client_ports = [free_port() for _ in range(3)]
    route_ports = [free_port() for _ in range(3)]
    nodes: list[ClusterNode] = []
    for i in range(3):
        routes = ",".join(f"nats://127.0.0.1:{p}" for j, p in enumerate(route_ports) if j != i)
        args = ("--cluster_name", name, "--cluster", f"nats://127.0.0.1:{route_ports[i]}", "--routes", routes)
        node = ClusterNode(root / f"node{i}", port=client_ports[i], extra_args=args)
        servers.track(node)
        nodes.append(node)
    await asyncio.gather(*(node.start() for node in nodes))
    return nodes
