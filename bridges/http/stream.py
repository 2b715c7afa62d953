"""``GET {base}/api/stream``: the log as server-sent events, for live pages and scripts.

One follower per application, not one per client: the :class:`EventHub` follows the log once
(a :class:`~burstbus.store.consumer.Follower` without checkpoint, from the head, when the first
client arrives; a failed read is retried from where it was), serialises each record once, and
hands the frame to every client's bounded queue. A client that falls too far behind (its
queue overflows) is closed; a browser's ``EventSource`` then reconnects with
``Last-Event-ID`` and resumes exactly where it stopped.

A client that resumes (``after`` or ``Last-Event-ID`` below the hub's position) first reads
its gap from the log itself, in pages, up to the hub's position at the moment it joined;
from there its queue has every later record. Records are deduplicated by ``seq``, so the
seam has no gap and no repeat.

``projected`` events tell a page when the read models show what it has seen: after the
projections have applied every event (of the types they read) up to seq N, each client gets
``event: projected`` with ``{"seq": N}``. N comes from the projection checkpoints (the
``ProjectionRunner``'s in-memory position when the service passes it, else the
``projection_checkpoints`` table polled through the reader), and is never above what the
hub has sent, so a page that re-fetches on ``projected`` sees at least what it was told.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from burstbus.bridges.http.errors import ApiError, InvalidQueryString, Unavailable
from burstbus.events import RecordedEvent
from burstbus.store.base import EventLog, LogError, ReadFilter
from burstbus.store.consumer import Batch, Follower, Start
from burstbus.store.read.lists import projected_seq
from burstbus.store.reader import ProjectionReader

log = logging.getLogger(__name__)

#: Data keys left out of streamed and listed events (the packet bytes; fetch them from
#: ``/apiv1/packet/xml/<ivorn>``).
STRIPPED_KEYS = ("xml", "xml_base64")
KEEPALIVE_SECONDS = 15.0
#: Records a client may have waiting before it is closed as too slow …
QUEUE_SIZE = 2000
#: … or bytes of frames (a few large events must not hold megabytes per stalled client).
QUEUE_BYTES = 2 * 1024 * 1024
#: Most bytes handed to one write: the transport buffers what the client has not read yet,
#: so a write is what a stalled client can pin besides its queue.
WRITE_CHUNK = 64 * 1024
#: A write that cannot finish for this long (the client stopped reading, its window is full)
#: closes the client: it reconnects with ``Last-Event-ID`` when it reads again.
STALL_SECONDS = 30.0
#: Most events a resuming client may be behind; further back, page with ``/api/log``.
MAX_BACKLOG = 100_000
MAX_CLIENTS = 1000
_CATCH_UP_PAGE = 500
#: How often an idle stream checks that its client is still connected.
_CHECK_SECONDS = 1.0


class _Runner(Protocol):
    applied_seq: int


def event_json(record: RecordedEvent) -> dict[str, Any]:
    """A log record as the API shows it: everything but the packet bytes."""
    data: Mapping[str, Any] = record.data
    return {
        "seq": record.seq,
        "id": record.id,
        "type": record.type,
        "stream": record.stream,
        "actor": record.actor,
        "occurred_at": record.occurred_at,
        "recorded_at": record.recorded_at,
        "hash": record.hash,
        "prev_hash": record.prev_hash,
        "data": {k: v for k, v in data.items() if k not in STRIPPED_KEYS},
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def event_frame(record: RecordedEvent) -> bytes:
    kind = record.type.replace("\r", " ").replace("\n", " ")
    return f"id: {record.seq}\nevent: {kind}\ndata: {_dumps(event_json(record))}\n\n".encode()


def projected_frame(seq: int) -> bytes:
    return f"event: projected\ndata: {_dumps({'seq': seq})}\n\n".encode()


@dataclass(slots=True)
class _Item:
    seq: int
    type: str | None  # None: a ``projected`` notice (sent whatever the client's type filter)
    frame: bytes


class StreamClient:
    """One connected client: its type filter and its bounded queue of frames."""

    def __init__(self, types: frozenset[str] | None, maxsize: int, transport: asyncio.Transport | None,
                 max_bytes: int = QUEUE_BYTES):
        self.types = types
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self.transport = transport
        self.items: deque[_Item] = deque()
        #: Bytes of the frames in ``items`` (frames are shared between clients, not copied).
        self.queued_bytes = 0
        self.wake = asyncio.Event()
        self.dropped = False
        self.writing = False

    def offer(self, item: _Item) -> bool:
        """Queue ``item`` if the client wants it; False when the client had to be dropped."""
        if item.type is not None and self.types is not None and item.type not in self.types:
            return True
        if len(self.items) >= self.maxsize or self.queued_bytes + len(item.frame) > self.max_bytes:
            self.drop()
            return False
        self.items.append(item)
        self.queued_bytes += len(item.frame)
        self.wake.set()
        return True

    def take(self, limit: int) -> list[_Item]:
        """Items from the front, up to about ``limit`` bytes (at least one)."""
        taken: list[_Item] = []
        size = 0
        while self.items and (not taken or size + len(self.items[0].frame) <= limit):
            item = self.items.popleft()
            self.queued_bytes -= len(item.frame)
            size += len(item.frame)
            taken.append(item)
        return taken

    def drop(self) -> None:
        """Close this client: it ends its response (or, stuck writing to a client that stopped
        reading, has its connection aborted)."""
        if self.dropped:
            return
        self.dropped = True
        self.wake.set()
        if self.writing and self.transport is not None:
            self.transport.abort()


class EventHub:
    """The one log follower behind every SSE client of an application."""

    def __init__(
        self,
        event_log: EventLog,
        reader: ProjectionReader | None = None,
        *,
        runner: _Runner | None = None,
        projected_types: frozenset[str] | None = None,
        queue_size: int = QUEUE_SIZE,
        queue_bytes: int = QUEUE_BYTES,
        poll_interval: float = 0.5,
    ):
        self.log = event_log
        self.reader = reader
        self.runner = runner
        self.projected_types = projected_types if projected_types is not None else _projected_types()
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes
        self.poll_interval = poll_interval
        self.clients: set[StreamClient] = set()
        #: The last seq handed to the clients (None until the follower starts).
        self.position: int | None = None
        self.follower: Follower[RecordedEvent] | None = None
        #: The last ``projected`` seq announced.
        self.projected: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        self._closed = False
        #: Counters for /metrics.
        self.events_total = 0
        self.dropped_total = 0
        self.connections_total = 0

    # -- clients -----------------------------------------------------------------------

    async def join(self, client: StreamClient) -> int:
        """Register ``client``; returns the position after which its queue gets every record
        (it reads anything before that itself). Starts the follower on first use."""
        async with self._lock:
            if self._closed:
                raise Unavailable("the server is shutting down")
            if not self._tasks or all(t.done() for t in self._tasks):
                follower = Follower(self.log, self._fan_out_batch, name="sse", start=Start.HEAD,
                                    batch_size=_CATCH_UP_PAGE, retry_delay=0.5, max_retry_delay=5.0)
                self.position = await follower.begin()
                self.follower = follower
                self._tasks = [
                    asyncio.create_task(self._follow(follower), name="burstbus-sse-follow"),
                    asyncio.create_task(self._watch_projections(), name="burstbus-sse-projected"),
                ]
        assert self.position is not None
        # No await between reading the position and registering: the follower cannot move
        # in between, so nothing is missed and nothing comes twice.
        self.clients.add(client)
        self.connections_total += 1
        if self.projected is not None:
            client.offer(_Item(self.projected, None, projected_frame(self.projected)))
        return self.position

    def leave(self, client: StreamClient) -> None:
        self.clients.discard(client)

    def _fan_out(self, item: _Item) -> None:
        for client in list(self.clients):
            if not client.offer(item):
                self.clients.discard(client)
                self.dropped_total += 1
                log.info("SSE client dropped: more than %d events or %d bytes waiting", client.maxsize, client.max_bytes)

    # -- the follower ------------------------------------------------------------------

    async def _fan_out_batch(self, batch: Batch[RecordedEvent]) -> None:
        # No await here: ``join`` reads the position and registers a client in between batches.
        for record in batch.records:
            self._fan_out(_Item(record.seq, record.type, event_frame(record)))
            self.position = record.seq
            self.events_total += 1

    async def _follow(self, follower: Follower[RecordedEvent]) -> None:
        try:
            await follower.run()  # returns when the log closes
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the SSE log follower stopped; clients will reconnect")
        finally:
            # The log closed or failed: every client reconnects (and resumes) later.
            for client in list(self.clients):
                client.drop()
            self.clients.clear()
            for task in self._tasks:
                if task is not asyncio.current_task():
                    task.cancel()

    async def _checkpoint(self, tick: int) -> int | None:
        """The projections' applied seq: the runner's in-memory position (cheap, every
        tick) and the checkpoint table (every tick without a runner, else now and then)."""
        seq: int | None = None
        if self.runner is not None:
            seq = int(self.runner.applied_seq)
        if self.reader is not None and (self.runner is None or tick % 20 == 0):
            try:
                stored = await self.reader.run(projected_seq)
            except Exception as exc:  # a missing file, a closed reader: try again next time
                log.debug("projection checkpoints unreadable: %s", exc)
                stored = None
            if stored is not None:
                seq = stored if seq is None else max(seq, stored)
        return seq

    async def _effective(self, applied: int, position: int) -> int:
        """The largest N ≤ ``position`` such that every event the projections read up to N
        is applied: events of other types after the checkpoint do not hold it back."""
        if applied >= position:
            return position
        pending = await self.log.read(applied, ReadFilter.of(types=sorted(self.projected_types)), limit=1)
        if pending and pending[0].seq <= position:
            return pending[0].seq - 1
        return position

    async def _watch_projections(self) -> None:
        interval = 0.05 if self.runner is not None else self.poll_interval
        seen: tuple[int | None, int | None] = (None, None)
        tick = 0
        while True:
            await asyncio.sleep(interval if tick else 0)
            tick += 1
            if not self.clients:
                continue
            position = self.position
            applied = await self._checkpoint(tick)
            if applied is None or position is None or (applied, position) == seen:
                continue
            seen = (applied, position)
            try:
                seq = await self._effective(applied, position)
            except LogError:
                continue
            if self.projected is None or seq > self.projected:
                self.projected = seq
                self._fan_out(_Item(seq, None, projected_frame(seq)))

    async def close(self) -> None:
        """Stop following and end every client's response (app shutdown)."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        for client in list(self.clients):
            client.drop()
        self.clients.clear()


def _projected_types() -> frozenset[str]:
    from burstbus.store.projections.registry import all_projections

    return frozenset().union(*(p.event_types for p in all_projections()))


def parse_last_event_id(text: str) -> int:
    value = text.strip()
    if not value.isdigit() or len(value) > 18:
        raise InvalidQueryString(
            "the Last-Event-ID header must be the seq of the last event received (a whole number)",
            "Last-Event-ID", text,
        )  # fmt: skip
    return int(value)


class StreamHandler:
    """The aiohttp handler of ``/api/stream`` over one hub."""

    def __init__(self, hub: EventHub, *, keepalive: float = KEEPALIVE_SECONDS, max_backlog: int = MAX_BACKLOG,
                 max_clients: int = MAX_CLIENTS, stall_seconds: float | None = None):  # fmt: skip
        self.hub = hub
        self.stall_seconds = STALL_SECONDS if stall_seconds is None else stall_seconds
        self.keepalive = keepalive
        self.max_backlog = max_backlog
        self.max_clients = max_clients

    async def handle(self, request: web.Request, after: int | None, types: tuple[str, ...]) -> web.StreamResponse:
        header = request.headers.get("Last-Event-ID")
        if header is not None and header.strip():
            after = parse_last_event_id(header)  # a reconnecting EventSource: its progress wins
        if len(self.hub.clients) >= self.max_clients:
            raise ApiError(f"too many live clients ({self.max_clients}); try again later", status=503,
                           description="Service unavailable", headers={"Retry-After": "10"})  # fmt: skip
        wanted = frozenset(types) if types else None
        client = StreamClient(wanted, self.hub.queue_size, request.transport, self.hub.queue_bytes)
        try:
            position = await self.hub.join(client)
        except LogError as exc:
            raise Unavailable(f"the event log cannot be read now: {exc}") from None
        try:
            start = position if after is None else after
            if position - start > self.max_backlog:
                raise InvalidQueryString(
                    f"{position - start} events behind the head; the stream replays at most {self.max_backlog}: "
                    f"page through the log with /api/log?after={start} and reconnect from there",
                    "after", str(after),
                )  # fmt: skip
            response = web.StreamResponse(
                headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
                         "X-Accel-Buffering": "no"}  # fmt: skip
            )
            await response.prepare(request)
            with contextlib.suppress(ConnectionError):  # the client went away (or was cut off)
                await self._serve(response, client, start, position, wanted)
            return response
        finally:
            self.hub.leave(client)

    async def _write(self, response: web.StreamResponse, client: StreamClient, data: bytes) -> None:
        """Write ``data`` (at most about :data:`WRITE_CHUNK` at a time); a client that has not
        taken it within ``stall_seconds`` is closed (its connection aborted, its buffers freed)."""
        client.writing = True
        try:
            for start in range(0, len(data), WRITE_CHUNK):
                async with asyncio.timeout(self.stall_seconds):
                    await response.write(data[start:start + WRITE_CHUNK])
        except TimeoutError:
            if not client.dropped:
                self.hub.dropped_total += 1
                log.info("SSE client dropped: stalled for %gs", self.stall_seconds)
            client.drop()  # still writing: aborts the transport
            raise ConnectionError("the client stopped reading") from None
        finally:
            client.writing = False

    async def _serve(self, response: web.StreamResponse, client: StreamClient, start: int, position: int,
                     wanted: frozenset[str] | None) -> None:  # fmt: skip
        await self._write(response, client, b"retry: 2000\n: connected\n\n")
        last = start
        read_filter = ReadFilter.of(types=sorted(wanted)) if wanted else None
        while last < position and not client.dropped:
            records = [r for r in await self.hub.log.read(last, read_filter, _CATCH_UP_PAGE) if r.seq <= position]
            if not records:
                break
            page = [event_frame(r) for r in records]
            for start in range(0, len(page), 64):
                await self._write(response, client, b"".join(page[start:start + 64]))
            last = records[-1].seq
        last = max(last, position)
        idle = 0.0
        while not client.dropped:
            if not client.items:
                client.wake.clear()
                try:
                    async with asyncio.timeout(_CHECK_SECONDS):
                        await client.wake.wait()
                except TimeoutError:
                    # aiohttp does not cancel a handler whose client left: notice it here.
                    if client.transport is None or client.transport.is_closing():
                        return
                    idle += _CHECK_SECONDS
                    if idle >= self.keepalive:
                        idle = 0.0
                        await self._write(response, client, b": keep-alive\n\n")
                continue
            idle = 0.0
            frames: list[bytes] = []
            for item in client.take(WRITE_CHUNK):
                if item.type is None:
                    frames.append(item.frame)
                elif item.seq > last:
                    frames.append(item.frame)
                    last = item.seq
            if frames:
                await self._write(response, client, b"".join(frames))
