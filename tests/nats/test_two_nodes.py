"""Two burstbus nodes on one JetStream log: each keeps its own SQLite projections following it.

Both are full services (``Core.open`` + ``build_service``) with their own data directories,
on one real nats-server; VTP and HTTP are off, the NATS bridge is on (one queue group).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest_asyncio

from burstbus.bridges.nats.node import NatsNode
from burstbus.bridges.nats.server import EmbeddedNatsServer
from burstbus.config import Config, load_config
from burstbus.service import Core, Service, build_service
from burstbus.store.base import ReadFilter
from tests.packets import voevent
from tests.waiting import wait_for


def node_config(tmp_path: Path, name: str, url: str) -> Config:
    path = tmp_path / f"{name}.toml"
    path.write_text(f"""
[data]
dir = "{tmp_path / name}"
[log]
backend = "jetstream"
jetstream_url = "{url}"
poll_interval = 0.05
[vtp]
enabled = false
[http]
enabled = false
[nats]
url = "{url}"
node_id = "{name}"
queue_group = "burstbus"
""")
    return load_config(path, environ={})


@contextlib.asynccontextmanager
async def running(config: Config) -> AsyncIterator[Service]:
    core = await Core.open(config)
    service = build_service(core)
    service.start()
    try:
        yield service
    finally:
        service.stop()
        await service.wait()
        await core.close()


def table(service: Service, sql: str) -> list[tuple[object, ...]]:
    """What the node's read side shows (its own projections file)."""
    with contextlib.closing(sqlite3.connect(service.core.config.projections_path)) as conn:
        return sorted(conn.execute(sql).fetchall())


@pytest_asyncio.fixture
async def two_nodes(server: EmbeddedNatsServer, tmp_path: Path) -> AsyncIterator[tuple[Service, Service]]:
    async with running(node_config(tmp_path, "a", server.url)) as a, running(node_config(tmp_path, "b", server.url)) as b:
        nats_a, nats_b = a.part(NatsNode), b.part(NatsNode)
        assert nats_a is not None and nats_b is not None
        await wait_for(lambda: nats_a.connected.is_set() and nats_b.connected.is_set(), "both NATS bridges up")
        yield a, b


async def test_an_event_submitted_to_either_node_appears_once_in_both_projections(
    two_nodes: tuple[Service, Service], server: EmbeddedNatsServer
) -> None:
    a, b = two_nodes
    first = await a.core.ingest.submit(voevent("ivo://nodes.example/SWIFT#BAT_1", params={"TrigID": "101"}), via="vtp", peer="127.0.0.1")
    second = await b.core.ingest.submit(voevent("ivo://nodes.example/SWIFT#BAT_2", params={"TrigID": "102"}), via="vtp", peer="127.0.0.1")
    assert first.acknowledged and second.acknowledged
    # and a pipeline's status over NATS, taken by whichever node the queue group picks
    client = await nats.connect(server.url)
    try:
        reply = await client.request("burstbus.in.process", b'{"process": "ecl-loc", "burst_id": "swift-101", "status": "running"}', timeout=30)
        assert reply.data == b"ACK"
    finally:
        await client.close()

    notices = [("ivo://nodes.example/SWIFT#BAT_1",), ("ivo://nodes.example/SWIFT#BAT_2",)]
    bursts = [("swift-101", 1), ("swift-102", 1)]
    for node in (a, b):
        await wait_for(lambda node=node: table(node, "SELECT ivorn FROM voevent") == notices, "both notices on each node")
        await wait_for(lambda node=node: table(node, "SELECT burst_id, notice_count FROM bursts") == bursts, "both bursts on each node")
        await wait_for(lambda node=node: table(node, "SELECT process, status FROM processes") == [("ecl-loc", "running")],
                       "the process status on each node")
    # Both identifiers decided both notices; the shared log holds each decision once.
    identified = await a.core.log.read(filter=ReadFilter.of(types=["burst.identified"]))
    assert sorted(r.data["burst_id"] for r in identified) == ["swift-101", "swift-102"]
    # (each identifier's append returns a moment after its record is visible to the other)
    last = max(first.seq or 0, second.seq or 0)
    await wait_for(lambda: a.core.bursts.position >= last and b.core.bursts.position >= last, "both identifiers past both notices")
    assert a.core.bursts.identified_total + b.core.bursts.identified_total == 2
    assert [r.type for r in await b.core.log.read()].count("voevent.accepted") == 2
    assert (await b.core.log.verify()).ok
