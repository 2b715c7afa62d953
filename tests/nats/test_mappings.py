"""Operator mappings (``[[nats.mappings]]``): JSON on a subject of theirs becomes an event of theirs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS

from burstbus.bridges.nats.config import NatsSection, SubjectMapping, check_nats
from burstbus.bridges.nats.inbound import Inbound, InvalidMessage, parse_mapped
from burstbus.bridges.nats.server import EmbeddedNatsServer
from burstbus.config import ConfigError, _build
from burstbus.store.base import ReadFilter
from tests.nats.conftest import Core

VHF = SubjectMapping(subject="svom.vhf.status", type="vhf.status", stream_field="burst_id")
GROUND = SubjectMapping(subject="svom.ground.*.alarm", type="ground.alarm")


@pytest_asyncio.fixture
async def inbound(server: EmbeddedNatsServer, core: Core) -> AsyncIterator[Inbound]:
    nc = await nats.connect(server.url)
    bridge = Inbound(nc, core.log, core.ingest, origin="node-a", mappings=(VHF, GROUND))
    await bridge.start()
    try:
        yield bridge
    finally:
        await bridge.stop()
        await nc.close()


async def ask(client: NATS, subject: str, payload: bytes, headers: dict[str, str] | None = None) -> str:
    return (await client.request(subject, payload, timeout=30, headers=headers)).data.decode()


def test_the_mapping_table_is_read_and_checked_like_every_other_key() -> None:
    built = _build(NatsSection, {"mappings": [{"subject": "svom.vhf.status", "type": "vhf.status", "stream_field": "burst_id"}]}, "nats.")
    check_nats(built)
    assert built.mappings == (VHF,)
    for bad, key in [
        ({"subject": "burstbus.events.>", "type": "x.y"}, "nats.mappings[0].subject"),  # our own output: a loop
        ({"subject": "svom..x", "type": "x.y"}, "nats.mappings[0].subject"),
        ({"subject": "svom.>.x", "type": "x.y"}, "nats.mappings[0].subject"),
        ({"subject": "svom.x", "type": "voevent.accepted"}, "nats.mappings[0].type"),  # no forging core events
        ({"subject": "svom.x", "type": "Status"}, "nats.mappings[0].type"),
        ({"subject": "svom.x", "type": "x.y", "stream_field": "a b"}, "nats.mappings[0].stream_field"),
    ]:
        with pytest.raises(ConfigError) as caught:
            check_nats(_build(NatsSection, {"mappings": [bad]}, "nats."))
        assert caught.value.key == key
    with pytest.raises(ConfigError, match="mapped twice"):
        check_nats(_build(NatsSection, {"mappings": [{"subject": "a.b", "type": "x.y"}, {"subject": "a.b", "type": "x.z"}]}, "nats."))


def test_a_mapped_message_must_be_a_json_object() -> None:
    assert parse_mapped(b'{"burst_id": "sb1", "snr": 7.5}', VHF) == ({"burst_id": "sb1", "snr": 7.5}, "sb1")
    assert parse_mapped(b'{"snr": 7.5}', VHF) == ({"snr": 7.5}, "")
    for payload, reason in [(b"", "empty"), (b"[1]", "expected a JSON object, got list"), (b"{", "not JSON"),
                            (b'{"x": NaN}', "not JSON"), (b'{"burst_id": [1]}', "'burst_id' must be a string")]:
        with pytest.raises(InvalidMessage, match=reason):
            parse_mapped(payload, VHF)


async def test_a_mapped_subject_becomes_events_of_the_configured_type(inbound: Inbound, client: NATS, core: Core) -> None:
    body = {"burst_id": "sb26112001", "station": "kourou", "snr": 12.5}
    assert await ask(client, "svom.vhf.status", json.dumps(body).encode(), {"Nats-Msg-Id": "vhf-1"}) == "ACK"
    assert await ask(client, "svom.vhf.status", json.dumps(body).encode(), {"Nats-Msg-Id": "vhf-1"}) == "ACK"  # re-sent
    assert await ask(client, "svom.ground.kourou.alarm", b'{"level": "red"}') == "ACK"
    [vhf] = await core.log.read(filter=ReadFilter.of(types=["vhf.status"]))
    assert (vhf.data, vhf.stream, vhf.actor) == (body, "sb26112001", "nats:svom.vhf.status")
    [alarm] = await core.log.read(filter=ReadFilter.of(types=["ground.alarm"]))
    assert (alarm.data, alarm.stream, alarm.actor) == ({"level": "red"}, "", "nats:svom.ground.kourou.alarm")


async def test_a_refused_mapped_message_gets_a_nak_and_an_event_and_nothing_else_breaks(
    inbound: Inbound, client: NATS, core: Core
) -> None:
    reply = await ask(client, "svom.vhf.status", b"station kourou ok")
    assert reply.startswith("NAK not JSON")
    [rejected] = await core.log.read(filter=ReadFilter.of(types=["nats.rejected"]))
    assert rejected.data["reason"] == reply[4:]
    assert (rejected.data["type"], rejected.data["subject"], rejected.data["excerpt"]) == (
        "vhf.status", "svom.vhf.status", "station kourou ok")
    assert await ask(client, "svom.vhf.status", b'{"station": "kourou"}') == "ACK"
    assert await ask(client, "burstbus.in.process", b'{"process": "x", "status": "queued"}') == "ACK"
    assert [r.type for r in await core.log.read()] == ["nats.rejected", "vhf.status", "process.status"]


async def test_messages_from_burstbus_nodes_are_not_taken_in_on_mapped_subjects(inbound: Inbound, client: NATS, core: Core) -> None:
    await client.publish("svom.vhf.status", b'{"loop": true}', headers={"Burstbus-Origin": "node-b"})
    await client.publish("svom.vhf.status", b'{"from": "a pipeline"}')  # no reply subject: taken silently
    assert await ask(client, "svom.vhf.status", b'{"after": 1}') == "ACK"
    assert [r.data for r in await core.log.read()] == [{"from": "a pipeline"}, {"after": 1}]
    assert inbound.counts[("mapped:vhf.status", "ignored_own")] == 1
