"""The log out to NATS: what a subscriber receives, and exactly-once by event id across outages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest_asyncio
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from burstbus.bridges.nats.confirm import confirm_sent
from burstbus.bridges.nats.outbound import (
    CONSUMER,
    Outbound,
    frame,
    messages_for,
    stored_event_frame,
    stored_event_payload,
)
from burstbus.bridges.nats.server import EmbeddedNatsServer
from burstbus.events import Event
from burstbus.store.base import ReadFilter
from tests.nats.conftest import Core
from tests.packets import voevent
from tests.waiting import wait_for

STREAM = "BURSTBUS"


def status_event(n: int) -> Event:
    return Event("process.status", {"process": f"p{n}", "burst_id": "sb26112001", "status": "running"},
                 stream="sb26112001", actor="test")


async def connect(server: EmbeddedNatsServer) -> NATS:
    return await nats.connect(server.url, reconnect_time_wait=0.1, max_reconnect_attempts=-1)


@contextlib.asynccontextmanager
async def running(outbound: Outbound) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(outbound.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest_asyncio.fixture
async def bridge_conn(server: EmbeddedNatsServer) -> AsyncIterator[NATS]:
    nc = await connect(server)
    try:
        yield nc
    finally:
        await nc.close()


async def stream_messages(server: EmbeddedNatsServer) -> list[tuple[str, dict[str, str], bytes]]:
    """Every message the stream holds, in stream order, read by a separate client."""
    nc = await connect(server)
    try:
        js = nc.jetstream()
        info = await js.stream_info(STREAM)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(STREAM, seq)
            out.append((msg.subject, dict(msg.headers or {}), msg.data))
        return out
    finally:
        await nc.close()


def test_a_voevent_record_becomes_a_json_message_and_its_exact_bytes() -> None:
    from burstbus.events import RecordedEvent

    record = RecordedEvent(7, "id-7", "voevent.accepted", "x/y", "vtp:1.2.3.4", "t", "t",
                           {"ivorn": "ivo://x/y#1", "role": "observation", "xml": "<VOEvent é/>"}, "0" * 64, "a" * 64)
    event, raw = messages_for(record, prefix="burstbus", origin="node-a")
    assert event.subject == "burstbus.events.voevent.accepted"
    assert json.loads(event.payload) == record.to_json_dict()
    assert event.headers == {"Nats-Msg-Id": "id-7", "Burstbus-Event-Id": "id-7", "Burstbus-Seq": "7",
                             "Burstbus-Type": "voevent.accepted", "Burstbus-Origin": "node-a"}
    assert raw.subject == "burstbus.voevent.observation"
    assert raw.payload == "<VOEvent é/>".encode()
    assert raw.headers["Nats-Msg-Id"] == "id-7:xml"
    assert raw.headers["Burstbus-Ivorn"] == "ivo://x/y#1"


def test_a_stored_record_is_spliced_into_the_same_bytes_as_its_decoded_message() -> None:
    """The outbox's fast path (no decode, no re-encode) sends what messages_for would."""
    import random

    from burstbus.events import StoredRecord, canonical_json

    rng = random.Random(11)
    alphabet = [chr(i) for i in range(32)] + list('ab"\\\u00e9\u2028\U0001f600 /:#.*>\x7f')
    for n in range(1500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
        data = {"text": text, "n": n, "nested": {"list": [text, n, None, True], "z": -n}, text: [n]}
        stored = StoredRecord(n + 1, f"id-{n}{text}", f"t.{text}" if n % 3 else "process.status", text, f"xmpp:{text}",
                              "2026-11-21T03:04:05.000000Z", "2026-11-21T03:04:06.000000Z", canonical_json(data),
                              f"{n:064x}", f"{n + 1:064x}")
        [message] = messages_for(stored.decoded(), prefix="burstbus", origin="node-a")
        payload = stored_event_payload(stored)
        assert payload == message.payload
        assert stored_event_frame(stored, payload, prefix="burstbus", origin="node-a") == frame(message.subject, message.headers, message.payload)
    # floats keep their value (the stored text writes them as Python does, orjson its own way)
    stored = StoredRecord(1, "i", "t", "s", "a", "o", "r", canonical_json({"x": 2.5e-07, "y": 1e16}), "0" * 64, "1" * 64)
    assert json.loads(stored_event_payload(stored)) == stored.decoded().to_json_dict()


async def test_every_event_goes_out_as_json_and_voevents_raw(
    server: EmbeddedNatsServer, bridge_conn: NATS, client: NATS, core: Core
) -> None:
    received: list[Msg] = []

    async def collect(msg: Msg) -> None:
        received.append(msg)

    await client.subscribe("burstbus.events.>", cb=collect)
    await client.subscribe("burstbus.voevent.>", cb=collect)
    await confirm_sent(client, 30)  # nats-py's flush() may overtake the SUB
    packet = voevent(f"ivo://test.example/nats#out-{uuid.uuid4().hex[:8]}", role="test")
    await core.log.append([status_event(1)])
    result = await core.ingest.submit(packet, via="vtp", peer="127.0.0.1")
    await core.log.append([status_event(2)])
    outbound = Outbound(bridge_conn, core.log, core.state, origin="node-a", batch_size=2)
    async with running(outbound):
        await wait_for(lambda: len(received) == 4, "4 messages")
        await wait_for(lambda: outbound.position == 3, "the checkpoint at the head")
    records = await core.log.read()
    events = [m for m in received if m.subject.startswith("burstbus.events.")]
    assert [json.loads(m.data) for m in events] == [r.to_json_dict() for r in records]
    assert [m.subject for m in events] == ["burstbus.events.process.status", "burstbus.events.voevent.accepted",
                                           "burstbus.events.process.status"]
    assert all(m.headers and m.headers["Nats-Msg-Id"] == r.id and m.headers["Burstbus-Origin"] == "node-a"
               for m, r in zip(events, records, strict=True))
    [raw] = [m for m in received if m.subject.startswith("burstbus.voevent.")]
    assert raw.subject == "burstbus.voevent.test"
    assert raw.data == packet
    assert raw.headers and raw.headers["Burstbus-Event-Id"] == records[result.seq - 1].id

    async def stored_at_head() -> bool:
        return await core.state.checkpoint(CONSUMER).load() == 3

    await wait_for(stored_at_head, "the stored checkpoint at the head")


async def test_a_restarted_outbound_resumes_from_its_checkpoint_and_the_stream_drops_resends(
    server: EmbeddedNatsServer, bridge_conn: NATS, core: Core
) -> None:
    await core.log.append([status_event(i) for i in range(10)])
    first = Outbound(bridge_conn, core.log, core.state, origin="node-a", stream=STREAM, batch_size=4)
    async with running(first):
        await wait_for(lambda: first.position == 10, "the first ten out")
    await core.log.append([status_event(i) for i in range(10, 15)])
    # a crash after publishing and before the checkpoint moved: those are re-sent on restart
    await first.publish(await core.log.read(after=10, limit=3))
    second = Outbound(bridge_conn, core.log, core.state, origin="node-a", stream=STREAM, batch_size=4)
    async with running(second):
        await wait_for(lambda: second.position == 15, "the rest out")
    assert second.duplicates_total == 3
    ids = [h["Nats-Msg-Id"] for _, h, _ in await stream_messages(server)]
    assert ids == [r.id for r in await core.log.read()]


async def test_every_event_appears_once_by_id_across_a_nats_server_kill_and_restart(
    server: EmbeddedNatsServer, bridge_conn: NATS, core: Core
) -> None:
    stop = asyncio.Event()
    counts = Counter[str]()

    async def keep_appending() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            if n % 20 == 0:
                await core.ingest.submit(voevent(f"ivo://test.example/nats#outage-{n}-{uuid.uuid4().hex[:6]}"),
                                         via="vtp", peer="127.0.0.1")
                counts["voevent"] += 1
            else:
                await core.log.append([status_event(n)])
            await asyncio.sleep(0.002)

    outbound = Outbound(bridge_conn, core.log, core.state, origin="node-a", stream=STREAM, batch_size=50,
                        ack_timeout=1.0, retry_delay=0.1)
    async with running(outbound):
        appender = asyncio.create_task(keep_appending())
        try:
            await wait_for(lambda: outbound.position >= 100, "some events out before the outage")
            server.kill()
            at_kill = (await core.log.head()).seq
            await wait_for(lambda: bridge_conn.is_reconnecting or not bridge_conn.is_connected, "the client to notice")

            async def appended_during_outage() -> bool:
                return (await core.log.head()).seq >= at_kill + 150

            await wait_for(appended_during_outage, "events appended while NATS is down")
            await server.start()  # same port, same JetStream store
            await wait_for(lambda: outbound.position > at_kill + 150, "the outbox to resume after the restart")
        finally:
            stop.set()
            await appender
        head = (await core.log.head()).seq
        await wait_for(lambda: outbound.position == head, "the outbox to reach the head")
    assert outbound.failures >= 1  # the outage was seen, not skipped
    records = await core.log.read()
    held = await stream_messages(server)
    by_id = Counter(h["Nats-Msg-Id"] for _, h, _ in held)
    expected_ids = [r.id for r in records] + [f"{r.id}:xml" for r in records if r.type == "voevent.accepted"]
    assert sorted(by_id) == sorted(expected_ids), "every event on NATS"
    assert set(by_id.values()) == {1}, "and each exactly once"
    assert counts["voevent"] >= 1
    payloads: dict[str, Any] = {h["Nats-Msg-Id"]: data for _, h, data in held}
    for record in records:
        assert json.loads(payloads[record.id]) == record.to_json_dict()
    for record in await core.log.read(filter=ReadFilter.of(types=["voevent.accepted"])):
        assert payloads[f"{record.id}:xml"] == record.data["xml"].encode()
