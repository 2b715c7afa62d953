"""Data announcements over a real nats-server (request/reply) and over HTTP POST: ACK after the
durable append, NAK with the reason and a ``data.rejected`` event; statuses over HTTP too."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest_asyncio
from nats.aio.client import Client as NATS

from burstbus.bridges.nats.inbound import Inbound
from burstbus.bridges.nats.server import EmbeddedNatsServer
from burstbus.store.base import ReadFilter
from tests.http.conftest import TOKEN, Archive, open_archive
from tests.nats.conftest import Core

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def announcement(**changes: object) -> bytes:
    value: dict[str, object] = {"burst_id": "sb26112001", "obs_id": "01", "kind": "vhf.eclairs",
                                "location": "file:///data/sb26112001/vhf_001.fits", "size": 2048,
                                "checksum": "sha256:" + "ab" * 32}
    value.update(changes)
    return json.dumps(value).encode()


@pytest_asyncio.fixture
async def inbound(server: EmbeddedNatsServer, core: Core) -> AsyncIterator[Inbound]:
    nc = await nats.connect(server.url)
    bridge = Inbound(nc, core.log, core.ingest, origin="node-a")
    await bridge.start()
    try:
        yield bridge
    finally:
        await bridge.stop()
        await nc.close()


async def ask(client: NATS, payload: bytes, headers: dict[str, str] | None = None) -> str:
    return (await client.request("burstbus.in.data", payload, timeout=30, headers=headers)).data.decode()


async def test_data_over_nats_is_acked_after_the_append_and_recorded_once(inbound: Inbound, client: NATS, core: Core) -> None:
    assert await ask(client, announcement()) == "ACK"
    [event] = await core.log.read(filter=ReadFilter.of(types=["data.available"]))
    assert event.actor == "nats:burstbus.in.data" and event.stream == "sb26112001"
    assert event.data["kind"] == "vhf.eclairs" and event.data["size"] == 2048
    assert await ask(client, announcement()) == "ACK"  # the same announcement again: one event
    assert await ask(client, announcement(location="file:///other"), {"Nats-Msg-Id": "m-1"}) == "ACK"
    assert await ask(client, announcement(location="file:///other2"), {"Nats-Msg-Id": "m-1"}) == "ACK"
    assert len(await core.log.read(filter=ReadFilter.of(types=["data.available"]))) == 2
    assert inbound.counts[("data", "accepted")] == 4


async def test_a_bad_announcement_over_nats_is_naked_with_the_reason_and_recorded(inbound: Inbound, client: NATS, core: Core) -> None:
    reply = await ask(client, announcement(location="no scheme"))
    assert reply.startswith("NAK 'location' must be a URI")
    [refused] = await core.log.read(filter=ReadFilter.of(types=["data.rejected"]))
    assert refused.data["reason"] == reply[4:]
    assert refused.data["via"] == "nats" and refused.data["subject"] == "burstbus.in.data"
    assert refused.actor == "nats:burstbus.in.data"
    assert not await core.log.read(filter=ReadFilter.of(types=["data.available"]))


@pytest_asyncio.fixture
async def archive(tmp_path: Path) -> AsyncIterator[Archive]:
    served = await open_archive(tmp_path / "http", [])
    try:
        yield served
    finally:
        await served.close()


async def post(archive: Archive, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(
        archive.url + path, data=body, headers=AUTH if headers is None else headers
    ) as response:
        return response.status, await response.json()


async def test_data_over_http_is_recorded_then_answered(archive: Archive) -> None:
    status, body = await post(archive, "/api/data", announcement())
    assert status == 201 and body["outcome"] == "accepted", body
    record = await archive.log.get(body["seq"])
    assert record is not None and record.type == "data.available" and record.actor == "http:127.0.0.1"
    status, again = await post(archive, "/api/data", announcement())
    assert status == 200 and again["outcome"] == "duplicate" and again["id"] == body["id"]
    keyed = {**AUTH, "Idempotency-Key": "k-1"}
    assert (await post(archive, "/api/data", announcement(location="file:///a"), keyed))[0] == 201
    assert (await post(archive, "/api/data", announcement(location="file:///b"), keyed))[0] == 200


async def test_a_bad_announcement_over_http_is_422_with_the_reason_and_recorded(archive: Archive) -> None:
    status, body = await post(archive, "/api/data", announcement(size=-5))
    assert status == 422 and body["outcome"] == "rejected"
    assert "'size' must be a number of bytes" in body["reason"]
    refused = await archive.log.get(body["seq"])
    assert refused is not None and refused.type == "data.rejected"
    assert refused.data["reason"] == body["reason"] and refused.data["via"] == "http"
    status, big = await post(archive, "/api/data", b"{" + b" " * 1_100_000 + b"}")
    assert status == 413
    too_large = await archive.log.get(big["error"]["seq"])
    assert too_large is not None and too_large.type == "data.rejected" and too_large.data["size"] == 4096
    assert (await post(archive, "/api/data", announcement(), {}))[0] == 401
    assert (await post(archive, "/api/data", announcement(), {"Authorization": "Bearer wrong"}))[0] == 401
    assert not await archive.log.read(filter=ReadFilter.of(types=["data.available"]))


async def test_a_status_over_http_shows_in_the_process_table(archive: Archive) -> None:
    payload = json.dumps({"process": "ecl-loc", "burst_id": "sb26112001", "status": "running", "log": "go\n"}).encode()
    status, body = await post(archive, "/api/processes/status", payload)
    assert status == 201, body
    await archive.project()
    code, listed, _ = await archive.get("/api/processes?burst_id=sb26112001", headers=AUTH)
    assert code == 200 and [p["status"] for p in listed["result"]] == ["running"]
    status, body = await post(archive, "/api/processes/status", b'{"process": "x", "status": "finished"}')
    assert status == 422 and "'status' must be one of" in body["reason"]
    refused = await archive.log.get(body["seq"])
    assert refused is not None and refused.type == "process.rejected" and refused.data["via"] == "http"
