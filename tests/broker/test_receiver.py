"""Authors submitting to burstbus: real ``comet-sendvo`` and raw VTP clients for broken input."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest

from burstbus.payload import xml_bytes
from tests.broker.harness import (
    Node,
    exchange,
    frame,
    read_frame,
    sendvo,
    transport,
    unique_ivorn,
    wait_for,
)
from tests.packets import voevent

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_comet_sendvo_gets_ack_only_once_stored_and_nak_with_reasons(node: Node, tmp_path: Path) -> None:
    ivorn = unique_ivorn("good")
    good = tmp_path / "good.xml"
    good.write_bytes(voevent(ivorn))
    code, out = await sendvo(node.receive_port, good)
    assert code == 0, out
    accepted = await node.events("voevent.accepted")
    # the ACK came after the append: the packet is in the log, with its exact bytes
    assert [e.data["ivorn"] for e in accepted] == [ivorn]
    assert xml_bytes(accepted[0].data) == good.read_bytes()
    assert accepted[0].actor == "vtp:127.0.0.1"

    code, out = await sendvo(node.receive_port, good)  # the same packet again: ACK, nothing new
    assert code == 0, out
    assert len(await node.events("voevent.accepted")) == 1

    bad = {
        "conflict": voevent(ivorn, ra=1.0),
        "schema": voevent(unique_ivorn("schema")).replace(b"<Who>", b"<Bogus/><Who>"),
        "ivorn": voevent("ivo://test.example/no-local-id"),
    }
    for name, packet in bad.items():
        path = tmp_path / f"{name}.xml"
        path.write_bytes(packet)
        code, out = await sendvo(node.receive_port, path)
        assert code == 1, out
        assert "Nak received" in out and f"Event rejected ({name})" in out, out
    assert "line" in out or "ivorn" in out.lower()
    rejected = await node.events("voevent.rejected")
    assert sorted(e.data["code"] for e in rejected) == sorted(bad)
    assert node.vtp.receiver is not None
    assert node.vtp.receiver.stats.outcomes["accepted"] == 1
    assert node.vtp.receiver.stats.last_received_at is not None  # /healthz last activity


async def test_schema_nak_names_the_line(node: Node) -> None:
    packet = voevent(unique_ivorn("line")).replace(b"<Who>", b"<Bogus/><Who>")
    answer = await exchange(node.receive_port, frame(packet))
    assert answer is not None
    role, reason = answer
    assert role == "nak" and reason is not None and "line 3" in reason, reason


@pytest.mark.parametrize(
    "payload, code",
    [
        (b"this is not XML at all", "not_xml"),
        (
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
            b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
            b'<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" ivorn="ivo://x/y#bomb" role="test" version="2.0">&c;</voe:VOEvent>',
            "doctype",
        ),
        (b"", "empty"),
    ],
    ids=["non-xml", "entity-bomb", "empty"],
)
async def test_bad_packets_are_nakked_and_recorded(node: Node, payload: bytes, code: str) -> None:
    answer = await exchange(node.receive_port, frame(payload))
    assert answer is not None and answer[0] == "nak", answer
    assert f"({code})" in (answer[1] or "")
    rejected = await node.events("voevent.rejected")
    assert [e.data["code"] for e in rejected] == [code]


async def test_oversized_length_prefix_is_refused_cleanly(tmp_path: Path) -> None:
    node = await Node.start(tmp_path / "data", max_bytes=4096)
    try:
        # a prefix far over the limit: NAK at once, without waiting for the bytes
        answer = await exchange(node.receive_port, struct.pack("!i", 2_000_000_000) + b"<?xml")
        assert answer is not None
        role, reason = answer
        assert role == "nak" and "2,000,000,000 bytes is larger than the limit of 4,096" in (reason or "")
        # an author that sends a whole (too large) frame reads the NAK, not a reset
        answer = await exchange(node.receive_port, frame(voevent(unique_ivorn("big"), description="x" * 5000)))
        assert answer is not None and answer[0] == "nak" and "(too_large)" in (answer[1] or "")
        rejected = await wait_for(lambda: _rejected(node, "too_large", 2), "two too_large refusals")
        assert {e.data["declared_size"] for e in rejected} == {2_000_000_000, len(voevent(unique_ivorn("big"), description="x" * 5000))}
        # and the broker still serves others
        answer = await exchange(node.receive_port, frame(voevent(unique_ivorn("after"))))
        assert answer is not None and answer[0] == "ack"
    finally:
        await node.stop()


async def _rejected(node: Node, code: str, n: int) -> list | None:
    found = [e for e in await node.events("voevent.rejected") if e.data["code"] == code]
    return found if len(found) >= n else None


async def test_truncated_frame_is_recorded(node: Node) -> None:
    packet = voevent(unique_ivorn("cut"))
    answer = await exchange(node.receive_port, frame(packet)[:200], close_after_send=True)
    assert answer is None  # nothing to answer: the author hung up mid-frame
    [event] = await wait_for(lambda: _rejected(node, "truncated", 1), "truncated refusal")
    assert "connection closed mid-frame (196 of" in event.data["reason"]
    answer = await exchange(node.receive_port, frame(voevent(unique_ivorn("after"))))
    assert answer is not None and answer[0] == "ack"


async def test_slow_author_times_out_while_others_are_served(tmp_path: Path) -> None:
    node = await Node.start(tmp_path / "data", receive_timeout=0.5)
    try:
        packet = voevent(unique_ivorn("slow"))
        reader, writer = await asyncio.open_connection("127.0.0.1", node.receive_port)
        writer.write(frame(packet)[:100])  # ... and never the rest
        await writer.drain()
        answer = await exchange(node.receive_port, frame(voevent(unique_ivorn("fast"))))
        assert answer is not None and answer[0] == "ack"
        message = await asyncio.wait_for(read_frame(reader), 60)
        assert message is not None
        role, reason = transport(message)
        assert role == "nak" and "no complete packet within 0.5 s" in (reason or "")
        assert await asyncio.wait_for(reader.read(), 60) == b""  # and the broker closed the connection
        writer.close()
        [event] = await wait_for(lambda: _rejected(node, "timeout", 1), "timeout refusal")
        assert "96 of" in event.data["reason"]
    finally:
        await node.stop()


async def test_author_allow_list(tmp_path: Path) -> None:
    node = await Node.start(tmp_path / "data", author_allow=["10.0.0.0/8"])
    try:
        answer = await exchange(node.receive_port, frame(voevent(unique_ivorn("denied"))))
        assert answer is None
        assert node.vtp.receiver is not None and node.vtp.receiver.stats.refused_connections == 1
        assert await node.events("voevent.accepted") == []
    finally:
        await node.stop()
