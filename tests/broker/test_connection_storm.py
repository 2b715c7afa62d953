"""Many subscribers connecting at the same moment (a restart): every one registered and served.

Twisted's ``listenTCP`` default backlog is 50: a storm of reconnecting subscribers beyond it had
SYNs dropped, which the kernel resends only 1, 3, 7 s later, so those subscribers missed the
first alerts. The VTP ports listen with ``[vtp] listen_backlog`` (default 1024). This test
opens far more than 50 connections at once against a real burstbus listener and waits (never
on a clock) for every one to register and to receive the first packet.
"""

from __future__ import annotations

import asyncio

import pytest

from burstbus.broker.client import _messages, frame, read_frame
from burstbus.broker.config import DEFAULT_LISTEN_BACKLOG as DEFAULT_BACKLOG
from tests.broker.harness import Node, unique_ivorn
from tests.packets import voevent
from tests.waiting import DEADLINE

pytestmark = pytest.mark.asyncio(loop_scope="session")

STORM = 300  # six times Twisted's default backlog


async def subscriber(port: int, ivorn: str, registered: asyncio.Event) -> bytes | None:
    """Connect, answer the broker's authenticate, then return the first frame naming ``ivorn``."""
    messages = _messages()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            payload = await read_frame(reader, 1 << 20)
            if payload is None:
                return None
            if b'role="authenticate"' in payload:
                origin = payload.split(b"<Origin>")[1].split(b"</Origin>")[0].decode()
                writer.write(frame(messages.authenticateresponse("ivo://test/storm", origin, []).raw_bytes))
                registered.set()
            elif ivorn.encode() in payload:
                return payload
    finally:
        writer.close()


async def test_a_storm_of_subscribers_is_registered_and_served(node: Node) -> None:
    assert node.vtp.broadcaster is not None and node.vtp.receiver is not None
    assert node.vtp.broadcaster.listening.backlog == DEFAULT_BACKLOG == node.vtp.config.listen_backlog
    assert node.vtp.receiver.listening.backlog == DEFAULT_BACKLOG

    ivorn = unique_ivorn("storm")
    registered = [asyncio.Event() for _ in range(STORM)]
    clients = [asyncio.ensure_future(subscriber(node.broadcast_port, ivorn, r)) for r in registered]
    await node.wait_subscribers(STORM)
    await asyncio.wait_for(asyncio.gather(*[r.wait() for r in registered]), DEADLINE)

    packet = voevent(ivorn)
    assert (await node.core.ingest.submit(packet, via="import", peer="test")).outcome == "accepted"
    received = await asyncio.wait_for(asyncio.gather(*clients), DEADLINE)
    assert received == [packet] * STORM  # every one of them, the exact bytes


async def test_listen_backlog_is_configurable(tmp_path: object) -> None:
    from burstbus.broker.config import VTPSection
    from burstbus.config import load_config

    config = load_config(environ={"BURSTBUS_VTP_LISTEN_BACKLOG": "2048"}, overrides={})
    assert config.section(VTPSection).listen_backlog == 2048
