"""NATS into the log: what a pipeline or an author on NATS sees, and what the log then holds."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS

from burstbus.bridges.nats.inbound import Inbound, InvalidProcessStatus, parse_process_status
from burstbus.bridges.nats.server import EmbeddedNatsServer
from burstbus.ingest import accepted_event_id
from burstbus.store.base import ReadFilter
from tests.nats.conftest import Core
from tests.packets import voevent

NODE = "node-a"


@pytest_asyncio.fixture
async def inbound(server: EmbeddedNatsServer, core: Core) -> AsyncIterator[Inbound]:
    nc = await nats.connect(server.url)
    bridge = Inbound(nc, core.log, core.ingest, origin=NODE)
    await bridge.start()
    try:
        yield bridge
    finally:
        await bridge.stop()
        await nc.close()


def status(state: str, process: str = "ecl-loc", **extra: object) -> bytes:
    body: dict[str, object] = {"process": process, "burst_id": "sb26112001", "obs_id": "01", "pass_id": "p1",
                               "pipeline": "eclairs-pipeline", "status": state}
    body.update(extra)
    return json.dumps(body).encode()


async def ask(client: NATS, subject: str, payload: bytes, headers: dict[str, str] | None = None) -> str:
    reply = await client.request(subject, payload, timeout=30, headers=headers)
    return reply.data.decode()


# -- the pure validation -------------------------------------------------------------------


def test_a_valid_status_becomes_event_data() -> None:
    parsed = parse_process_status(status("Running", log="start\nreading L1\n", obs_id=7, occurred_at="2026-11-20T03:04:05+01:00"))
    assert parsed.data == {"process": "ecl-loc", "burst_id": "sb26112001", "obs_id": "7", "pass_id": "p1",
                           "pipeline": "eclairs-pipeline", "status": "running", "log": "start\nreading L1\n"}
    assert parsed.occurred_at == "2026-11-20T02:04:05.000000Z"
    assert parse_process_status(b'{"process": "x", "status": "queued"}').data == {"process": "x", "status": "queued"}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty message"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b'{"status": "running"}', "'process' is required"),
        (b'{"process": "x"}', "'status' is required"),
        (b'{"process": "x", "status": "done"}', "'status' must be one of queued, running, complete, failed, vanished"),
        (b'{"process": "x", "status": "running", "stauts": 1}', "unknown field(s) stauts"),
        (b'{"process": ["x"], "status": "running"}', "'process' must be a string"),
        (b'{"process": "a/b", "status": "running"}', "must not contain '/'"),
        (b'{"process": "x", "status": "running", "log": 3}', "'log' must be text"),
        (b'{"process": "x", "status": "running", "occurred_at": "yesterday"}', "'occurred_at' must be an ISO-8601 time"),
    ],
)
def test_malformed_status_is_refused_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(InvalidProcessStatus) as caught:
        parse_process_status(payload)
    assert reason in caught.value.reason


def test_a_long_log_keeps_its_tail() -> None:
    parsed = parse_process_status(status("failed", log="x" * 20_000 + "IOError: no attitude"))
    assert parsed.data["log"].endswith("IOError: no attitude")
    assert parsed.data["log_truncated"] == 20_020


# -- over a real nats-server ---------------------------------------------------------------


async def test_a_published_process_status_shows_in_the_process_table(inbound: Inbound, client: NATS, core: Core) -> None:
    assert await ask(client, "burstbus.in.process", status("queued")) == "ACK"
    assert await ask(client, "burstbus.in.process", status("running", log="starting\nreading L1 data\n")) == "ACK"
    rows = await core.process_rows()
    row = rows["ecl-loc/sb26112001/01/p1"]
    # id, date, process, burst, obs, pass, pipeline, status, attempts, last_log, first, updated, retry, seq
    assert (row[2], row[3], row[6], row[7], row[8], row[9]) == (
        "ecl-loc", "sb26112001", "eclairs-pipeline", "running", 1, "reading L1 data")
    assert await ask(client, "burstbus.in.process", status("complete", log="done")) == "ACK"
    rows = await core.process_rows()
    assert rows["ecl-loc/sb26112001/01/p1"][7] == "complete"
    [event] = await core.log.read(filter=ReadFilter.of(types=["process.status"]), after=2)
    assert event.actor == "nats:burstbus.in.process"
    assert event.stream == "sb26112001"


async def test_a_malformed_message_gets_a_nak_with_the_reason_and_an_event(inbound: Inbound, client: NATS, core: Core) -> None:
    reply = await ask(client, "burstbus.in.process", b'{"process": "ecl-loc", "status": "finished"}')
    assert reply.startswith("NAK ")
    assert "'status' must be one of queued, running, complete, failed, vanished, not 'finished'" in reply
    [rejected] = await core.log.read(filter=ReadFilter.of(types=["process.rejected"]))
    assert rejected.data["reason"] == reply[4:]
    assert rejected.data["excerpt"] == '{"process": "ecl-loc", "status": "finished"}'
    assert rejected.actor == "nats:burstbus.in.process"
    assert (await ask(client, "burstbus.in.process", b"\x00garbage")).startswith("NAK not JSON")
    # nothing else breaks: the next good message is taken, and the table has only it
    assert await ask(client, "burstbus.in.process", status("running")) == "ACK"
    rows = await core.process_rows()
    assert list(rows) == ["ecl-loc/sb26112001/01/p1"]
    assert inbound.counts[("process", "rejected")] == 2
    assert inbound.last_received_at is not None  # /healthz last activity


async def test_a_resent_message_id_is_recorded_once(inbound: Inbound, client: NATS, core: Core) -> None:
    headers = {"Nats-Msg-Id": "orchestrator-42"}
    assert await ask(client, "burstbus.in.process", status("running"), headers) == "ACK"
    assert await ask(client, "burstbus.in.process", status("running"), headers) == "ACK"
    assert len(await core.log.read(filter=ReadFilter.of(types=["process.status"]))) == 1


async def test_voevent_request_is_acked_after_the_append_and_refusals_are_naked(inbound: Inbound, client: NATS, core: Core) -> None:
    ivorn = f"ivo://test.example/nats#in-{uuid.uuid4().hex[:8]}"
    packet = voevent(ivorn)
    assert await ask(client, "burstbus.in.voevent", packet) == "ACK"
    found = await core.log.find(accepted_event_id(ivorn))
    assert found is not None and found.data["via"] == "nats" and found.data["xml"].encode() == packet
    assert await ask(client, "burstbus.in.voevent", packet) == "ACK"  # duplicate: acknowledged, not re-appended
    assert len(await core.log.read(filter=ReadFilter.of(types=["voevent.accepted"]))) == 1
    reply = await ask(client, "burstbus.in.voevent", b"<VOEvent broken")
    assert reply.startswith("NAK ")
    [rejected] = await core.log.read(filter=ReadFilter.of(types=["voevent.rejected"]))
    assert rejected.data["reason"] == reply[4:]
    assert rejected.data["via"] == "nats"


async def test_messages_published_by_any_burstbus_node_are_never_taken_in(inbound: Inbound, client: NATS, core: Core) -> None:
    """Ours or another node's (two nodes bridged through one NATS): no relay loops."""
    await client.publish("burstbus.in.process", status("running", process="echo"), headers={"Burstbus-Origin": NODE})
    await client.publish("burstbus.in.voevent", voevent("ivo://test.example/nats#echo"), headers={"Burstbus-Origin": NODE})
    await client.publish("burstbus.in.process", status("running", process="relay"), headers={"Burstbus-Origin": "node-b"})
    # Sent after the echoes on the same connection, so their ACKs mean the echoes were seen.
    assert await ask(client, "burstbus.in.process", status("running", process="other")) == "ACK"
    assert await ask(client, "burstbus.in.voevent", voevent("ivo://test.example/nats#after-echo")) == "ACK"
    records = await core.log.read()
    assert [(r.type, r.data.get("process") or r.data.get("ivorn")) for r in records] == [
        ("process.status", "other"), ("voevent.accepted", "ivo://test.example/nats#after-echo")]
    assert inbound.counts[("process", "ignored_own")] == 2
    assert inbound.counts[("voevent", "ignored_own")] == 1


async def test_a_reply_subject_that_is_one_of_our_inputs_gets_no_reply_and_makes_no_loop(inbound: Inbound, client: NATS, core: Core) -> None:
    """A request asking to be answered on burstbus.in.process would have burstbus take its own
    ACK/NAK in as a new (refused) message, and answer that, and so on."""
    await client.publish("burstbus.in.process", status("running", process="looped"), reply="burstbus.in.process")
    await client.publish("burstbus.in.process", b"{not json", reply="burstbus.in.data")
    # Sent after them on the same connection: its ACK means both were handled.
    assert await ask(client, "burstbus.in.process", status("running", process="after")) == "ACK"
    records = await core.log.read()
    assert [(r.type, r.data.get("process")) for r in records] == [
        ("process.status", "looped"), ("process.rejected", None), ("process.status", "after")]


async def test_deep_json_and_huge_integers_get_a_nak_not_silence(inbound: Inbound, client: NATS, core: Core) -> None:
    """Issue 16's fuzz: these got no reply at all (a RecursionError escaped), the requester timed out."""
    deep = await ask(client, "burstbus.in.process", b'{"process": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    assert deep.startswith("NAK ") and "nested more than" in deep
    huge = await ask(client, "burstbus.in.process", b'{"process": "x", "obs_id": ' + b"9" * 5000 + b"}")
    assert huge.startswith("NAK ") and "digits" in huge
    assert len(await core.log.read(filter=ReadFilter.of(types=["process.rejected"]))) == 2
