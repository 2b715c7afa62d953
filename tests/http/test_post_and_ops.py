"""``POST /api/voevents`` outcomes, ``/healthz`` and ``/metrics``, each on its own archive."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import voeventdb.remote.apiv1 as apiv1

from burstbus.bridges.http import COMPONENTS, make_app
from burstbus.events import Event
from burstbus.store.base import LogError
from tests.http.conftest import TOKEN, Archive, open_archive
from tests.packets import voevent

pytestmark = pytest.mark.asyncio(loop_scope="package")

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest_asyncio.fixture(loop_scope="package")
async def fresh(tmp_path: Path) -> AsyncIterator[Archive]:
    archive = await open_archive(tmp_path, [voevent("ivo://test.example/seed#1")])
    try:
        yield archive
    finally:
        await archive.close()


async def post(
    archive: Archive, body: bytes | Any, headers: dict[str, str] | None = None, path: str = "/api/voevents"
) -> tuple[int, Any, Any]:
    async with aiohttp.ClientSession() as session, session.post(
        archive.url + path, data=body, headers=headers if headers is not None else AUTH
    ) as response:
        return response.status, await response.json(), response.headers


async def rejections(archive: Archive) -> list[dict[str, Any]]:
    return [dict(r.data) for r in await archive.log.read() if r.type == "voevent.rejected"]


async def test_post_outcomes(fresh: Archive) -> None:
    packet = voevent("ivo://test.example/posted#1", description="posted over HTTP")
    status, body, headers = await post(fresh, packet)
    assert status == 201, body
    assert body["outcome"] == "accepted" and body["ivorn"] == "ivo://test.example/posted#1"
    assert headers["Location"] == "/apiv1/packet/synopsis/ivo%3A%2F%2Ftest.example%2Fposted%231"
    record = await fresh.log.get(body["seq"])
    assert record is not None and record.type == "voevent.accepted"
    assert record.data["via"] == "http" and record.data["peer"] == "127.0.0.1"

    # Visible through the API once projected, byte for byte.
    await fresh.project()
    got = await asyncio.to_thread(apiv1.packet_xml, "ivo://test.example/posted#1", host=fresh.url)
    assert got == packet

    status, body, _ = await post(fresh, packet)
    assert status == 200 and body["outcome"] == "duplicate" and "already in the log" in body["reason"]

    changed = voevent("ivo://test.example/posted#1", description="changed")
    status, body, _ = await post(fresh, changed)
    assert status == 409, body
    assert body["outcome"] == "rejected" and body["code"] == "conflict"
    assert "different content" in body["reason"] and body["error"]["code"] == 409

    for bad, code in ((b"not xml at all", None), (voevent("ivo://test.example/posted#2", role="rumour"), "role"), (b"", None)):
        status, body, _ = await post(fresh, bad)
        assert status == 422, body
        assert body["outcome"] == "rejected" and body["reason"] and body["error"]["message"] == body["reason"]
        if code:
            assert body["code"] == code
    assert len(await rejections(fresh)) == 4  # the conflict and the three refusals are in the log
    assert fresh.ingest.counts[("http", "accepted")] == 1
    assert fresh.ingest.counts[("http", "duplicate")] == 1
    assert fresh.ingest.counts[("http", "rejected")] == 4


@pytest.mark.parametrize(
    ("headers", "text"),
    [
        ({}, "needs a token"),
        ({"Authorization": "Bearer wrong"}, "not valid"),
        ({"Authorization": f"Basic {TOKEN}"}, "must be 'Bearer <token>'"),
        ({"Authorization": "Bearer "}, "must be 'Bearer <token>'"),
        ({"Authorization": f"Bearer {TOKEN}x"}, "not valid"),
    ],
)
async def test_post_needs_the_token(fresh: Archive, headers: dict[str, str], text: str) -> None:
    head = (await fresh.log.head()).seq
    status, body, response_headers = await post(fresh, voevent("ivo://test.example/posted#3"), headers)
    assert status == 401
    assert text in body["error"]["message"]
    assert response_headers["WWW-Authenticate"].startswith("Bearer")
    assert (await fresh.log.head()).seq == head  # nothing read, nothing recorded


async def test_post_too_large(fresh: Archive) -> None:
    limit = fresh.ingest.max_bytes
    status, body, _ = await post(fresh, b"<" + b"x" * (limit + 10))
    assert status == 413
    assert f"limit is {limit:,} bytes" in body["error"]["message"]

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted while reading
        for _ in range(limit // 1000 + 2):
            yield b"y" * 1000

    status, body, _ = await post(fresh, chunked())
    assert status == 413
    refused = await rejections(fresh)
    assert [r["code"] for r in refused] == ["too_large", "too_large"]
    assert refused[0]["declared_size"] == limit + 11 and refused[1]["declared_size"] is None

    status, body, _ = await post(fresh, voevent("ivo://test.example/posted#4"))  # still serving
    assert status == 201


async def test_post_too_large_is_refused_through_the_ingest(tmp_path: Path) -> None:
    """Recorded by ``Ingest.refuse`` (counted once); a log that cannot record the refusal still
    refuses the body (413, seq null) and counts it."""

    class FailingAppend:
        def __init__(self, log: Any):
            self.log = log
            self.failing = False

        async def append(self, events: Any) -> Any:
            if self.failing:
                raise LogError("the disk is full")
            return await self.log.append(events)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.log, name)

    failing: list[FailingAppend] = []

    def configure(ingest: Any) -> None:
        failing.append(FailingAppend(ingest.log))
        ingest.log = failing[0]

    archive = await open_archive(tmp_path, [], configure=configure)
    try:
        limit = archive.ingest.max_bytes
        status, body, _ = await post(archive, b"<" + b"x" * (limit + 10))
        assert status == 413 and body["error"]["code"] == "too_large" and body["error"]["outcome"] == "rejected"
        [refused] = [r for r in await archive.log.read() if r.type == "voevent.rejected"]
        assert body["error"]["seq"] == refused.seq and refused.data["declared_size"] == limit + 11
        assert refused.data["via"] == "http" and refused.data["code"] == "too_large"
        assert archive.ingest.counts[("http", "rejected")] == 1

        failing[0].failing = True
        status, body, _ = await post(archive, b"<" + b"x" * (limit + 10))
        assert status == 413 and body["error"]["seq"] is None and body["error"]["max_bytes"] == limit
        assert archive.ingest.counts[("http", "rejected")] == 2
        assert len([r for r in await archive.log.read() if r.type == "voevent.rejected"]) == 1
    finally:
        await archive.close()


async def test_post_off_without_a_token(tmp_path: Path) -> None:
    archive = await open_archive(tmp_path, [], token=None)
    try:
        status, body, _ = await post(archive, voevent("ivo://test.example/posted#5"))
        assert status == 403 and "no write token is configured" in body["error"]["message"]
    finally:
        await archive.close()


async def test_healthz(fresh: Archive) -> None:
    status, body, _ = await fresh.get("/healthz")
    head = await fresh.log.head()
    assert status == 200 and body["status"] == "ok"
    assert body["log"] == {"up": True, "head_seq": head.seq, "head_hash": head.hash, "last_activity": head.recorded_at}
    assert body["projections"]["projections"]["voeventdb"] == {"applied_seq": head.seq, "version": 2, "lag": 0}
    assert body["components"] == {}

    async def nats_probe() -> dict[str, Any]:
        return {"up": True, "last_activity": "2026-11-20T03:04:05.000000Z", "server": "nats://127.0.0.1:4222"}

    def broken() -> dict[str, Any]:
        raise ConnectionError("xmpp server unreachable")

    registry = fresh.app[COMPONENTS]
    registry["vtp"] = lambda: {"up": True, "last_activity": None}
    registry["nats"] = nats_probe
    try:
        status, body, _ = await fresh.get("/healthz")
        assert status == 200
        assert body["components"]["vtp"] == {"up": True, "last_activity": None}
        assert body["components"]["nats"]["server"] == "nats://127.0.0.1:4222"
        registry["xmpp"] = broken
        registry["slack"] = lambda: {"up": False, "last_activity": None}
        status, body, _ = await fresh.get("/healthz")
        assert status == 503 and body["status"] == "degraded"
        assert body["components"]["xmpp"] == {"up": False, "last_activity": None, "error": "xmpp server unreachable"}
        assert body["components"]["slack"]["up"] is False
    finally:
        registry.clear()


def samples(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


async def test_metrics(fresh: Archive) -> None:
    await post(fresh, voevent("ivo://test.example/metric#1"))
    await post(fresh, voevent("ivo://test.example/metric#1"))
    await post(fresh, b"junk")
    await fresh.get("/apiv1/count")
    status, body, response = await fresh.get("/metrics")
    assert status == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    got = samples(text)
    head = (await fresh.log.head()).seq
    assert got["burstbus_log_head_seq"] == head == got["burstbus_log_events_total"]
    assert got['burstbus_ingest_packets_total{via="http",outcome="accepted"}'] == 1
    assert got['burstbus_ingest_packets_total{via="http",outcome="duplicate"}'] == 1
    assert got['burstbus_ingest_packets_total{via="http",outcome="rejected"}'] == 1
    assert got['burstbus_ingest_packets_total{via="local",outcome="accepted"}'] == 1
    # Two events (accepted, rejected) appended since the last catch-up: voeventdb reads one.
    assert got['burstbus_projection_applied_seq{projection="voeventdb"}'] == head - 2
    assert got['burstbus_projection_lag_events{projection="voeventdb"}'] == 2
    assert got['burstbus_http_requests_total{method="GET",route="/apiv1/count",status="200"}'] == 1
    assert got['burstbus_http_requests_total{method="POST",route="/api/voevents",status="201"}'] == 1
    assert got['burstbus_http_requests_total{method="POST",route="/api/voevents",status="422"}'] == 1
    assert got['burstbus_http_request_duration_seconds_count{route="/apiv1/count"}'] == 1
    # every append call is timed by the log itself (fixture's + the POSTs' appends)
    assert got["burstbus_log_append_seconds_count"] >= 3 and got["burstbus_log_append_seconds_sum"] > 0
    assert "burstbus_log_checkpoints_total" in got and "burstbus_log_checkpoint_seconds_count" in got  # SQLite's background copies
    for line in text.splitlines():  # every sample line is valid exposition syntax
        assert line.startswith("#") or re.fullmatch(r'[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+|.*\+Inf.*', line), line

    await fresh.project()
    got = samples((await fresh.get("/metrics"))[1].decode())
    assert got['burstbus_projection_lag_events{projection="voeventdb"}'] == 0

    # Only a rejection after the checkpoint: nothing the archive reads is waiting.
    await post(fresh, b"junk again")
    got = samples((await fresh.get("/metrics"))[1].decode())
    assert got['burstbus_projection_lag_events{projection="voeventdb"}'] == 0


async def test_metrics_and_healthz_when_projections_are_missing(tmp_path: Path) -> None:
    """Before the projection runner has created its file: answered, reported down, no 5xx crash."""
    from burstbus.store.sqlite import SQLiteEventLog

    log = await SQLiteEventLog.open(tmp_path / "log.sqlite", synchronous="NORMAL")
    await log.append([Event(type="system.started", data={})])
    app = make_app(log, tmp_path / "missing" / "projections.sqlite")
    from aiohttp import web

    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{host}:{port}/healthz") as response:
                body = await response.json()
                assert response.status == 503 and body["projections"]["up"] is False
                assert body["log"]["head_seq"] == 1
            async with session.get(f"http://{host}:{port}/metrics") as response:
                got = samples(await response.text())
                assert got["burstbus_projections_up"] == 0 and got["burstbus_log_head_seq"] == 1
            async with session.get(f"http://{host}:{port}/apiv1/count") as response:
                body = await response.json()
                assert response.status == 503 and "cannot be" in body["error"]["message"]
    finally:
        await runner.cleanup()
        await log.close()


async def test_base_path(tmp_path: Path) -> None:
    archive = await open_archive(tmp_path, [voevent("ivo://test.example/proxied#1")], base_path="/burstbus/")
    try:
        status, body, _ = await archive.get("/burstbus/apiv1/count")
        assert (status, body["result"]) == (200, 1)
        got = await asyncio.to_thread(apiv1.packet_xml, "ivo://test.example/proxied#1", host=archive.url + "/burstbus")
        assert got == archive.submitted["ivo://test.example/proxied#1"]
        status, body, _ = await archive.get("/apiv1/count")
        assert status == 404
        status, body, headers = await post(archive, voevent("ivo://test.example/proxied#2"), path="/burstbus/api/voevents")
        assert status == 201 and headers["Location"].startswith("/burstbus/apiv1/packet/synopsis/")
    finally:
        await archive.close()


async def test_serve_runs_until_cancelled(fresh: Archive) -> None:
    """``serve`` is what the service supervises: it binds, reports its address, stops on cancel."""
    from burstbus.bridges.http import serve

    bound: asyncio.Future[list[tuple[str, int]]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(lambda: make_app(fresh.log, fresh.projections_path), "127.0.0.1", 0, ready=bound.set_result)
    )
    try:
        host, port = (await asyncio.wait_for(bound, 10))[0]
        async with aiohttp.ClientSession() as session, session.get(f"http://{host}:{port}/apiv1/count") as response:
            assert (await response.json())["result"] == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session, session.get(f"http://{host}:{port}/healthz"):
            pass
