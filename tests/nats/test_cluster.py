"""The JetStream log on a real 3-node nats-server cluster (R3): losing a node loses nothing acknowledged.

Three nats-server processes on loopback (``-a 127.0.0.1``, ephemeral client and route ports,
one store directory each, one cluster name), all stopped by pid by the ``servers`` fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import nats.errors

from burstbus.bridges.nats.server import EmbeddedNatsServer, free_port
from burstbus.events import Event
from burstbus.store.base import LogError
from burstbus.store.jetstream import JetStreamEventLog
from tests.nats.conftest import Servers
from tests.waiting import wait_for

CLUSTER = "burstbus-test"
TOTAL = 300
PER_CALL = 5


async def start_cluster(servers: Servers, root: Path) -> list[EmbeddedNatsServer]:
    client_ports = [free_port() for _ in range(3)]
    route_ports = [free_port() for _ in range(3)]
    nodes = []
    for i in range(3):
        routes = ",".join(f"nats://127.0.0.1:{p}" for j, p in enumerate(route_ports) if j != i)
        args = ("--cluster_name", CLUSTER, "--cluster", f"nats://127.0.0.1:{route_ports[i]}", "--routes", routes)
        nodes.append(servers.track(EmbeddedNatsServer(root / f"node{i}", port=client_ports[i], extra_args=args)))
    await asyncio.gather(*(node.start() for node in nodes))
    return nodes


async def open_log(urls: list[str], *, stream: str = "BURSTBUS_LOG", replicas: int = 3) -> JetStreamEventLog | None:
    """The log, once the cluster has a JetStream meta leader (None until then)."""
    try:
        return await JetStreamEventLog.open(urls, stream=stream, replicas=replicas, timeout=3.0, poll_interval=0.05)
    except (nats.errors.Error, LogError, OSError, TimeoutError):
        return None


async def replicas_current(event_log: JetStreamEventLog) -> bool:
    info = await event_log.js.stream_info(event_log.stream)
    cluster = info.cluster
    return bool(cluster and cluster.leader and cluster.replicas and len(cluster.replicas) == 2
                and all(r.current for r in cluster.replicas))


def event(n: int) -> Event:
    return Event("process.status", {"process": f"p{n}", "status": "running"}, stream="sb26112001", actor="test")


async def test_an_r3_stream_keeps_every_acknowledged_append_when_its_leader_is_killed(servers: Servers, tmp_path: Path) -> None:
    nodes = await start_cluster(servers, tmp_path / "cluster")
    seeds = [node.url for node in nodes]
    writer = await wait_for(lambda: open_log(seeds), "the cluster's JetStream to elect a meta leader")
    try:
        await wait_for(lambda: replicas_current(writer), "three current replicas")
        events = [event(n) for n in range(TOTAL)]
        acknowledged: dict[str, int] = {}
        failures = 0

        async def keep_appending() -> None:
            nonlocal failures
            for start in range(0, TOTAL, PER_CALL):
                chunk = events[start:start + PER_CALL]
                while True:  # a client retries what was not acknowledged; ids make it idempotent
                    try:
                        results = await writer.append(chunk)
                        break
                    except LogError:
                        failures += 1
                        await asyncio.sleep(0.05)
                for e, result in zip(chunk, results, strict=True):
                    acknowledged[e.id] = result.seq

        appender = asyncio.create_task(keep_appending())
        try:
            await wait_for(lambda: len(acknowledged) >= 60 or appender.done(), "appends before the kill")
            info = await writer.js.stream_info(writer.stream)
            assert info.cluster is not None
            leader = next(node for node in nodes if node.server_name == info.cluster.leader)
            leader.kill()  # SIGKILL, mid-stream
            killed_at = len(acknowledged)
            await wait_for(lambda: appender.done(), "the appends to finish on the surviving nodes")
            appender.result()
        finally:
            if not appender.done():
                appender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await appender
        assert killed_at < TOTAL, "the kill came during the stream of appends"
        survivors = [node for node in nodes if node is not leader]
        assert not leader.running and all(node.running for node in survivors)
        info = await writer.js.stream_info(writer.stream)
        assert info.cluster is not None and info.cluster.leader != leader.server_name
    finally:
        await writer.close()

    # Every acknowledged append, once, in order, readable through each surviving node alone.
    for node in survivors:
        reader = await wait_for(lambda node=node: open_log([node.url]), f"a connection to {node.server_name}")
        try:
            records = await reader.read()
            assert [r.id for r in records] == [e.id for e in events]
            assert all(records[seq - 1].id == event_id for event_id, seq in acknowledged.items())
            verification = await reader.verify()
            assert verification.ok and verification.count == TOTAL, verification
            assert (await reader.find(events[-1].id)) is not None
        finally:
            await reader.close()
