"""The whole service through a NATS outage: VTP authors keep sending while nats-server is down.

burstbus runs in this process with VTP (its receiver on an ephemeral port) and the NATS
bridge publishing into a JetStream stream on a real nats-server, so the test can count what
reached NATS by message id. The server is SIGKILLed while authors keep submitting packets,
then restarted on the same port and store: every event must be on NATS exactly once.

VTP needs Twisted's reactor, which is bound to one loop per process: session loop, as in
tests/broker.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import nats
import pytest

from burstbus.bridges.nats.node import NatsNode
from burstbus.broker.client import publish
from burstbus.broker.node import VTPNode
from burstbus.config import load_config
from burstbus.service import Core, build_service
from tests.broker.harness import within
from tests.nats.conftest import Servers
from tests.packets import voevent
from tests.waiting import DEADLINE, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

STREAM = "BURSTBUS_OUT"


async def stream_ids(url: str) -> Counter[str]:
    """How many times each Nats-Msg-Id is in the stream, read by a separate client."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(STREAM)
        ids: Counter[str] = Counter()
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(STREAM, seq)
            ids[(msg.headers or {})["Nats-Msg-Id"]] += 1
        return ids
    finally:
        await nc.close()


async def test_events_arriving_by_vtp_during_a_nats_outage_reach_nats_once_each(servers: Servers, tmp_path: Path) -> None:
    server = await servers.start("nats")
    config = load_config(environ={}, overrides={
        "data": {"dir": str(tmp_path / "data")},
        "vtp": {"receive_port": 0, "broadcast": False},
        "http": {"enabled": False},
        "nats": {"url": server.url, "stream": STREAM, "node_id": "node-a", "reconnect_wait": 0.1, "ack_timeout": 1.0,
                 "batch_size": 20},
    })
    core = await Core.open(config)
    service = build_service(core)
    service.start()
    sent: list[str] = []
    stop = asyncio.Event()

    async def author() -> None:
        """A VTP author sending one packet after another, each awaited to its ACK."""
        while not stop.is_set():
            ivorn = f"ivo://test.example/outage#{len(sent)}-{uuid.uuid4().hex[:6]}"
            answer = await publish("127.0.0.1", port, voevent(ivorn, role="test"), timeout=DEADLINE)
            assert answer.acknowledged, answer.reason
            sent.append(ivorn)

    try:
        vtp, node = service.part(VTPNode), service.part(NatsNode)
        assert vtp is not None and node is not None
        await wait_for(lambda: vtp.receiver_ready.is_set() and node.connected.is_set(), "VTP and NATS up")
        assert vtp.receiver is not None
        port = vtp.receiver.port
        sender = asyncio.create_task(author())
        try:
            await wait_for(lambda: node.outbound is not None and node.outbound.position >= 20, "events out before the outage")
            assert node.outbound is not None
            outbound = node.outbound
            server.kill()
            at_kill = len(sent)
            await wait_for(lambda: len(sent) >= at_kill + 30 or sender.done(), "packets accepted over VTP while NATS is down")
            await server.start()  # same port, same JetStream store
            await wait_for(lambda: len(sent) >= at_kill + 60 or sender.done(), "more packets after the restart")
        finally:
            stop.set()
            await within(sender, DEADLINE, "the author to finish")

        async def settled() -> bool:
            """The burst identifier has decided every packet (it appends a ``burst.*`` event
            for each, after the packet: read before the last one, the stream held an id the
            read did not) and the outbox has published up to the head."""
            records = await core.log.read()
            accepted = sum(r.type == "voevent.accepted" for r in records)
            decided = sum(r.type.startswith("burst.") for r in records)
            return accepted == decided and outbound.position == records[-1].seq

        await wait_for(settled, "the burst decisions and the outbox to reach the head")
        assert outbound.failures >= 1, "the outage was seen"
        records = await core.log.read()
        ids = await stream_ids(server.url)
        expected = [r.id for r in records] + [f"{r.id}:xml" for r in records if r.type == "voevent.accepted"]
        assert sorted(ids) == sorted(expected), "every event is on NATS"
        assert set(ids.values()) == {1}, "each exactly once"
        accepted = [r.data["ivorn"] for r in records if r.type == "voevent.accepted"]
        assert accepted == sent, "and every packet the authors got an ACK for is among them"
    finally:
        service.stop()
        await within(service.wait(), DEADLINE, "the service to stop")
        await within(core.close(), DEADLINE, "the core to close")
