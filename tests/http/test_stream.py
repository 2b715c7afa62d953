"""``GET /api/stream``: server-sent events from the log, as a browser's EventSource reads them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from burstbus.bridges.http.app import EVENT_HUB
from burstbus.events import Event
from tests.http.conftest import AUTH, Archive, open_archive
from tests.packets import voevent
from tests.waiting import wait_for

pytestmark = pytest.mark.asyncio(loop_scope="package")


@dataclass
class Message:
    event: str
    data: Any
    id: str | None


@dataclass
class SSE:
    """A reader of one event stream: ``messages`` fills as frames arrive."""

    response: aiohttp.ClientResponse
    messages: list[Message] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    closed: bool = False

    async def pump(self) -> None:
        event, data, ident = "message", [], None
        try:
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    break
                line = raw.decode().rstrip("\n")
                if line == "":
                    if data:
                        self.messages.append(Message(event, json.loads("\n".join(data)), ident))
                    event, data, ident = "message", [], None
                elif line.startswith(":"):
                    self.comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "event":
                        event = value
                    elif name == "data":
                        data.append(value)
                    elif name == "id":
                        ident = value
        except (aiohttp.ClientError, ConnectionError):
            pass
        finally:
            self.closed = True

    def events(self) -> list[Message]:
        return [m for m in self.messages if m.event != "projected"]

    def seqs(self) -> list[int]:
        return [m.data["seq"] for m in self.events()]

    def projected(self) -> list[int]:
        return [m.data["seq"] for m in self.messages if m.event == "projected"]


@asynccontextmanager
async def stream(archive: Archive, query: str = "", headers: dict[str, str] | None = None,
                 auth: bool = True) -> AsyncIterator[SSE]:  # fmt: skip
    """The stream as a client reads it; with the read token unless ``auth`` is False (every
    event type but the public ones needs it: ``test_access.py``)."""
    sent = {**(AUTH if auth else {}), **(headers or {})}
    async with aiohttp.ClientSession() as session, session.get(
        f"{archive.url}/api/stream{query}", headers=sent
    ) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/event-stream")
        reader = SSE(response)
        task = asyncio.create_task(reader.pump())
        try:
            await wait_for(lambda: "connected" in reader.comments, "the stream to open")
            yield reader
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def status_event(n: int, burst: str = "sb26112099") -> Event:
    return Event("process.status", {"process": f"p{n}", "burst_id": burst, "status": "running"}, stream=burst)


async def test_new_events_arrive_and_resume_with_last_event_id(tmp_path: Path) -> None:
    archive = await open_archive(tmp_path, [voevent("ivo://test.example/stream#0")])
    try:
        before = (await archive.log.head()).seq
        async with stream(archive) as live:
            appended = await archive.log.append([status_event(i) for i in range(3)])
            await archive.submit(voevent("ivo://test.example/stream#1"))
            await wait_for(lambda: len(live.events()) == 4, "four events")
            assert live.seqs() == [a.seq for a in appended] + [before + 4]
            first = live.events()[0]
            assert first.id == str(appended[0].seq) and first.event == "process.status"
            assert first.data["data"]["process"] == "p0" and first.data["stream"] == "sb26112099"
            accepted = live.events()[3]
            assert accepted.event == "voevent.accepted" and accepted.data["data"]["ivorn"] == "ivo://test.example/stream#1"
            assert "xml" not in accepted.data["data"] and "xml_base64" not in accepted.data["data"]
            last_id = live.events()[1].id
        # Missed while away: resume after the second one.
        more = await archive.log.append([status_event(i) for i in range(3, 5)])
        async with stream(archive, "?after=1", headers={"Last-Event-ID": str(last_id)}) as resumed:
            await wait_for(lambda: len(resumed.events()) >= 4, "the missed events")
            tail = await archive.log.append([status_event(9)])
            await wait_for(lambda: len(resumed.events()) == 5, "the new one too")
            assert resumed.seqs() == [before + 3, before + 4] + [a.seq for a in more] + [tail[0].seq]
        # ?after= alone replays too.
        async with stream(archive, f"?after={before}&type=voevent.accepted") as replay:
            await wait_for(lambda: replay.events(), "the replay")
            assert replay.seqs() == [before + 4]
    finally:
        await archive.close()


async def test_type_filter(tmp_path: Path) -> None:
    archive = await open_archive(tmp_path, [])
    try:
        async with stream(archive, "?type=voevent.accepted,burst.identified") as filtered, stream(archive) as everything:
            await archive.log.append([status_event(1)])
            await archive.submit(voevent("ivo://test.example/stream#2"))
            await archive.log.append([status_event(2)])
            await wait_for(lambda: len(everything.events()) == 3, "all three on the unfiltered stream")
            await wait_for(lambda: filtered.events(), "the accepted one")
            assert [m.event for m in filtered.events()] == ["voevent.accepted"]
            assert [m.event for m in everything.events()] == ["process.status", "voevent.accepted", "process.status"]
            hub = archive.app[EVENT_HUB]
            assert len(hub.clients) == 2 and hub.events_total == 3  # one follower for both
    finally:
        await archive.close()


@pytest.mark.parametrize("with_runner", [False, True], ids=["polling", "runner"])
async def test_projected_follows_the_projections(tmp_path: Path, with_runner: bool) -> None:
    archive = await open_archive(tmp_path, [], projection_runner=None)
    if with_runner:
        archive.app[EVENT_HUB].runner = archive.runner
    try:
        async with stream(archive) as live:
            result = await archive.submit(voevent("ivo://test.example/stream#3"))
            assert result.seq is not None
            await wait_for(lambda: live.seqs() == [result.seq], "the accepted event")
            assert not [s for s in live.projected() if s >= result.seq]  # not projected yet
            await archive.project()
            await wait_for(lambda: result.seq in live.projected(), "projected up to it")
            # What the page then fetches shows it.
            status, body, _ = await archive.get("/apiv1/count")
            assert body["result"] == 1
            # Events no projection reads do not hold `projected` back.
            other = await archive.log.append([Event("test.unprojected", {"text": "hello"})])
            await wait_for(lambda: other[0].seq in live.projected(), "projected past an unprojected type")
            kinds = [(m.event, m.data["seq"]) for m in live.messages]
            assert kinds.index(("test.unprojected", other[0].seq)) < kinds.index(("projected", other[0].seq))
    finally:
        await archive.close()


async def test_slow_client_is_dropped_and_resumes(tmp_path: Path) -> None:
    """A client that stops reading is closed once its queue overflows; it resumes with
    Last-Event-ID and gets everything, once, in order."""
    archive = await open_archive(tmp_path, [])
    hub = archive.app[EVENT_HUB]
    hub.queue_size = 20
    try:
        host, port = archive.url.removeprefix("http://").split(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(f"GET /api/stream HTTP/1.1\r\nHost: {host}\r\nAuthorization: {AUTH['Authorization']}\r\n"
                     "Connection: close\r\n\r\n".encode())  # fmt: skip
        await writer.drain()
        await wait_for(lambda: len(hub.clients) == 1, "the client to join")
        first = (await archive.log.head()).seq
        big = "x" * 4000
        total = 0
        while hub.dropped_total == 0 and total < 20_000:  # until the server gives up on it
            await archive.log.append([Event("test.big", {"n": total + i, "pad": big}) for i in range(200)])
            total += 200
            await asyncio.sleep(0.01)
        assert hub.dropped_total == 1
        await wait_for(lambda: not hub.clients, "the slow client to be gone")
        received = b""
        while chunk := await reader.read(65536):  # what reached it, then the close
            received += chunk
        writer.close()
        seen = complete_frames(received)
        assert len(seen) < total
        # Resume from the last complete event it got.
        async with stream(archive, headers={"Last-Event-ID": str(seen[-1] if seen else first)}) as resumed:
            await wait_for(lambda: len(resumed.events()) == first + total - (seen[-1] if seen else first), "the rest")
            assert resumed.seqs() == list(range((seen[-1] if seen else first) + 1, first + total + 1))
    finally:
        await archive.close()


async def slow_reader(archive, hub):  # type: ignore[no-untyped-def]
    """A client that connects to the stream and then reads nothing (a tiny receive buffer)."""
    host, port = archive.url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(f"GET /api/stream HTTP/1.1\r\nHost: {host}\r\nAuthorization: {AUTH['Authorization']}\r\n"
                 "Connection: close\r\n\r\n".encode())  # fmt: skip
    await writer.drain()
    await wait_for(lambda: len(hub.clients) == 1, "the client to join")
    return reader, writer


async def test_a_stalled_client_holds_a_bounded_number_of_bytes_then_is_closed(tmp_path: Path) -> None:
    """Few but large events: the count bound is never reached, the byte bound is, and the
    server does not keep megabytes for a client that stopped reading."""
    archive = await open_archive(tmp_path, [])
    hub = archive.app[EVENT_HUB]
    hub.queue_bytes = 256 * 1024
    try:
        reader, writer = await slow_reader(archive, hub)
        [client] = hub.clients
        big = "x" * 20_000
        n = 0
        while hub.dropped_total == 0 and n < 2000:
            await archive.log.append([Event("test.big", {"n": n, "pad": big})])
            n += 1
            assert client.queued_bytes <= hub.queue_bytes
            await asyncio.sleep(0.002)
        assert hub.dropped_total == 1 and n < hub.queue_size  # the bytes, not the count
        await wait_for(lambda: not hub.clients, "the stalled client to be gone")
        writer.close()
    finally:
        await archive.close()


async def test_a_client_that_stops_reading_is_closed_after_the_stall_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its queue never overflows (one large event), but its write cannot finish: closed."""
    import burstbus.bridges.http.stream as stream_module

    monkeypatch.setattr(stream_module, "STALL_SECONDS", 0.5)
    archive = await open_archive(tmp_path, [])
    hub = archive.app[EVENT_HUB]
    hub.queue_bytes = 64 * 1024 * 1024  # the byte bound out of the way
    try:
        reader, writer = await slow_reader(archive, hub)
        await archive.log.append([Event("test.big", {"pad": "x" * 12_000_000})])  # more than the kernel buffers hold
        await wait_for(lambda: hub.dropped_total == 1 and not hub.clients, "the stalled client to be closed")
        writer.close()
    finally:
        await archive.close()


def complete_frames(received: bytes) -> list[int]:
    """Seqs of the frames that arrived whole (the connection may be cut mid-frame)."""
    seqs = []
    for block in received.decode(errors="replace").split("\n\n"):
        lines = block.split("\n")
        ident = [line[4:] for line in lines if line.startswith("id: ")]
        data = [line[6:] for line in lines if line.startswith("data: ")]
        if ident and data:
            try:
                json.loads(data[0])
            except ValueError:
                continue
            seqs.append(int(ident[0]))
    return seqs


async def test_shutdown_ends_streams(tmp_path: Path) -> None:
    archive = await open_archive(tmp_path, [])
    hub = archive.app[EVENT_HUB]
    try:
        async with stream(archive) as live:
            await archive.log.append([status_event(1)])
            await wait_for(lambda: live.events(), "an event")
            tasks = list(hub._tasks)
            assert tasks and not any(t.done() for t in tasks)
            await asyncio.wait_for(archive.site_runner.cleanup(), 30)  # a hang here is the bug
            await wait_for(lambda: live.closed, "the stream to end")
            assert all(t.done() for t in tasks) and not hub.clients
    finally:
        await archive.close()
