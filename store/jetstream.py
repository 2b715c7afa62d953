"""The event log on a NATS JetStream stream: the scale-out backend (R3 in a cluster).

Layout and why:

* **One stream, the stream sequence is the log seq.** The stream captures only
  ``<prefix>.log.>``, refuses deletes and purges (``deny_delete``/``deny_purge``: append-only,
  like the SQLite triggers) and every write goes through the optimistic check below, so its
  sequence is gap-free and *is* ``seq``.
* **Subject per event:** ``<prefix>.log.<id token>.<type>``. The type makes one-type reads a
  subject filter (``<prefix>.log.*.<type>``); the id token makes ``find(id)`` one
  ``last_by_subj`` lookup (``<prefix>.log.<id token>.>``), which is also the idempotency check
  that holds forever, not only within the stream's duplicate window. ``Nats-Msg-Id`` = event
  id covers the window anyway (a retried publish whose ack was lost).
* **Hash chain with optimistic concurrency.** Each publish carries
  ``Nats-Expected-Last-Sequence: <head seq>`` and the record hashed as ``seq = head + 1``,
  ``prev_hash = head hash``. If another writer (another node) got there first the server
  refuses it (err_code 10071); we re-read the head, check whether that writer appended the
  same id, and retry. Within one process a lock orders appends, so one call's events stay
  consecutive; across nodes they may interleave.
* **Payload**: JSON with the record's fields and ``data_json``, the exact canonical text that
  was hashed (so ``verify`` hashes the stored bytes, not a re-encoding).

Durability: a publish ack means the stream leader stored the message (and, with R3, that a
quorum of replicas did). nats-server fsyncs its files every ``sync_interval`` (2 minutes by
default): on a single node an acked append survives a process crash but may be lost on power
loss unless ``sync_interval: always``; with R3 it survives the loss of one node outright.

Reads fetch one message per request (``next_by_subj``); a consumer- or batch-based read is the
obvious next step for rebuilds of large logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import nats
import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client as NATS
from nats.js.api import StorageType, StreamConfig

from burstbus.events import GENESIS_HASH, Appended, Event, RecordedEvent, normalise_time, utc_now
from burstbus.store.base import Head, LogClosed, LogError, ReadFilter, Verification
from burstbus.store.chain import record_hash
from burstbus.store.follow import follow

WRONG_LAST_SEQUENCE = 10071
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NOT_TOKEN = re.compile(r"[^A-Za-z0-9_.-]+")


def id_token(event_id: str) -> str:
    """The event id as one subject token (ids that are not safe tokens are hashed)."""
    if _TOKEN.match(event_id):
        return event_id
    return "h" + hashlib.sha256(event_id.encode("utf-8")).hexdigest()[:40]


def type_tokens(event_type: str) -> str:
    cleaned = ".".join(t for t in _NOT_TOKEN.sub("_", event_type).split(".") if t)
    return cleaned or "_"


def _payload(seq: int, e: Event, data_json: str, recorded_at: str, prev_hash: str, digest: str) -> bytes:
    return orjson.dumps({
        "seq": seq, "id": e.id, "type": e.type, "stream": e.stream, "actor": e.actor,
        "occurred_at": e.occurred_at, "recorded_at": recorded_at, "data_json": data_json,
        "prev_hash": prev_hash, "hash": digest,
    })


def _decode(payload: bytes) -> tuple[RecordedEvent, str]:
    body = orjson.loads(payload)
    text = body["data_json"]
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:  # integers beyond 64 bits
        import json

        data = json.loads(text)
    record = RecordedEvent(
        body["seq"], body["id"], body["type"], body["stream"], body["actor"], body["occurred_at"],
        body["recorded_at"], data, body["prev_hash"], body["hash"],
    )
    return record, text


def _matches(record: RecordedEvent, filter: ReadFilter | None) -> bool:
    if filter is None:
        return True
    if filter.types and record.type not in filter.types:
        return False
    if filter.stream is not None and record.stream != filter.stream:
        return False
    if filter.since is not None and record.recorded_at < normalise_time(filter.since):
        return False
    return not (filter.until is not None and record.recorded_at > normalise_time(filter.until))


class JetStreamEventLog:
    """The JetStream backend of :class:`burstbus.store.base.EventLog`."""

    def __init__(self, nc: NATS, *, stream: str, prefix: str, poll_interval: float, own_connection: bool, timeout: float):
        self.nc = nc
        self.js = nc.jetstream(timeout=timeout)
        self.stream = stream
        self.prefix = prefix
        self._poll_interval = poll_interval
        self._own_connection = own_connection
        self._lock = asyncio.Lock()
        self._head: Head | None = None
        self._closed = False
        self._appended = asyncio.Event()
        self.conflicts_total = 0

    @classmethod
    async def open(
        cls,
        servers: str | list[str] | NATS,
        *,
        stream: str = "BURSTBUS_LOG",
        prefix: str = "burstbus",
        replicas: int = 1,
        poll_interval: float = 0.5,
        timeout: float = 10.0,
        connect_options: dict[str, Any] | None = None,
    ) -> JetStreamEventLog:
        """Connect (or use ``servers`` if it is a client) and create the stream if missing."""
        own = not isinstance(servers, NATS)
        nc = await nats.connect(servers, **(connect_options or {})) if own else servers  # type: ignore[arg-type]
        log = cls(nc, stream=stream, prefix=prefix, poll_interval=poll_interval, own_connection=own, timeout=timeout)  # type: ignore[arg-type]
        try:
            await log.js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            await log.js.add_stream(StreamConfig(
                name=stream, subjects=[f"{prefix}.log.>"], storage=StorageType.FILE, num_replicas=replicas,
                deny_delete=True, deny_purge=True,
            ))
        return log

    def _subject(self, e: Event) -> str:
        return f"{self.prefix}.log.{id_token(e.id)}.{type_tokens(e.type)}"

    # -- writing ---------------------------------------------------------------------------

    async def append(self, events: Sequence[Event]) -> list[Appended]:
        if self._closed:
            raise LogClosed("the event log is closed")
        if not events:
            return []
        encoded = [(e, e.data_json()) for e in events]  # encoding errors fail this caller only
        results: list[Appended] = []
        async with self._lock:
            seen: dict[str, Appended] = {}
            for e, data_json in encoded:
                if e.id in seen:
                    first = seen[e.id]
                    results.append(Appended(first.seq, e.id, first.hash, False))
                    continue
                done = await self._append_one(e, data_json)
                seen[e.id] = done
                results.append(done)
        if any(r.new for r in results):
            self._wake_subscribers()
        return results

    async def _append_one(self, e: Event, data_json: str) -> Appended:
        try:
            while True:
                existing = await self.find(e.id)
                if existing is not None:
                    return Appended(existing.seq, e.id, existing.hash, False)
                head = self._head or await self.head()
                seq = head.seq + 1
                recorded_at = max(utc_now(), head.recorded_at or "")
                digest = record_hash(
                    prev_hash=head.hash, seq=seq, id=e.id, type=e.type, stream=e.stream, actor=e.actor,
                    occurred_at=e.occurred_at, recorded_at=recorded_at, data_json=data_json,
                )
                headers = {"Nats-Msg-Id": e.id, "Nats-Expected-Last-Sequence": str(head.seq)}
                try:
                    ack = await self.js.publish(
                        self._subject(e), _payload(seq, e, data_json, recorded_at, head.hash, digest),
                        stream=self.stream, headers=headers,
                    )
                except nats.js.errors.APIError as exc:
                    if exc.err_code == WRONG_LAST_SEQUENCE:  # another writer appended: re-read and retry
                        self.conflicts_total += 1
                        self._head = None
                        continue
                    raise
                if ack.duplicate:
                    self._head = None
                    continue  # find() now returns the original
                if ack.seq != seq:
                    raise LogError(f"stream {self.stream} stored seq {ack.seq} where {seq} was expected")
                self._head = Head(seq, digest, recorded_at)
                return Appended(seq, e.id, digest, True)
        except (nats.errors.Error, OSError) as exc:
            self._head = None
            if isinstance(exc, LogError):
                raise
            raise LogError(f"append failed: {type(exc).__name__}: {exc}") from exc

    def _wake_subscribers(self) -> None:
        waiting, self._appended = self._appended, asyncio.Event()
        waiting.set()

    # -- reading ---------------------------------------------------------------------------

    async def _load(self, seq: int, subject: str | None = None, next: bool = False) -> tuple[RecordedEvent, str] | None:
        try:
            msg = await self.js.get_msg(self.stream, seq=seq, subject=subject, next=next)
        except nats.js.errors.NotFoundError:
            return None
        if msg.data is None:
            return None
        record, text = _decode(msg.data)
        if msg.seq != record.seq:
            raise LogError(f"stream seq {msg.seq} holds a record claiming seq {record.seq}")
        return record, text

    async def read(self, after: int = 0, filter: ReadFilter | None = None, limit: int | None = None) -> list[RecordedEvent]:
        if self._closed:
            raise LogClosed("the event log is closed")
        subject = f"{self.prefix}.log.>"
        if filter is not None and filter.types and len(filter.types) == 1:
            subject = f"{self.prefix}.log.*.{type_tokens(filter.types[0])}"
        out: list[RecordedEvent] = []
        position = after + 1
        while limit is None or len(out) < limit:
            found = await self._load(position, subject, next=True)
            if found is None:
                break
            record = found[0]
            position = record.seq + 1
            if _matches(record, filter):
                out.append(record)
        return out

    async def subscribe(
        self, after: int = 0, filter: ReadFilter | None = None, batch_size: int = 1000
    ) -> AsyncIterator[list[RecordedEvent]]:
        """Catch up, then follow: "read after my last seq" is exact on a gap-free stream.
        Appends by this process wake the reader; others' are seen within ``poll_interval``."""
        async for batch in follow(
            self.read, self.head, lambda: self._appended, lambda: self._closed,
            self._poll_interval, after, filter, batch_size,
        ):
            yield batch

    async def get(self, seq: int) -> RecordedEvent | None:
        if seq < 1:
            return None
        found = await self._load(seq)
        return found[0] if found else None

    async def find(self, event_id: str) -> RecordedEvent | None:
        try:
            msg = await self.js.get_msg(self.stream, subject=f"{self.prefix}.log.{id_token(event_id)}.>")
        except nats.js.errors.NotFoundError:
            return None
        if msg.data is None:
            return None
        record, _ = _decode(msg.data)
        return record if record.id == event_id else None

    async def head(self) -> Head:
        info = await self.js.stream_info(self.stream)
        last = info.state.last_seq
        if not last:
            return Head(0, GENESIS_HASH, None)
        record = await self.get(last)
        if record is None:
            raise LogError(f"stream {self.stream} has no message at its last seq {last}")
        head = Head(record.seq, record.hash, record.recorded_at)
        self._head = head
        return head

    async def seq_at(self, moment: str) -> int:
        """Binary search: ``recorded_at`` never decreases along seq."""
        target = normalise_time(moment)
        low, high = 0, (await self.head()).seq
        while low < high:
            middle = (low + high + 1) // 2
            record = await self.get(middle)
            if record is not None and record.recorded_at <= target:
                low = middle
            else:
                high = middle - 1
        return low

    async def verify(self, progress: Callable[[int], None] | None = None) -> Verification:
        prev_hash = GENESIS_HASH
        last = Head(0, GENESIS_HASH, None)
        count = 0
        end = (await self.js.stream_info(self.stream)).state.last_seq
        for seq in range(1, end + 1):
            found = await self._load(seq, f"{self.prefix}.log.>", next=True)
            if found is None or found[0].seq != seq:
                return Verification(count, last, seq, f"seq {seq} is missing")
            record, data_json = found
            if record.prev_hash != prev_hash:
                return Verification(count, last, seq, "prev_hash does not match the previous record's hash")
            digest = record_hash(
                prev_hash=record.prev_hash, seq=seq, id=record.id, type=record.type, stream=record.stream,
                actor=record.actor, occurred_at=record.occurred_at, recorded_at=record.recorded_at, data_json=data_json,
            )
            if digest != record.hash:
                return Verification(count, last, seq, "stored content does not match its hash")
            count += 1
            prev_hash = record.hash
            last = Head(seq, record.hash, record.recorded_at)
            if progress and count % 5000 == 0:
                progress(count)
        if progress:
            progress(count)
        return Verification(count, last)

    async def close(self) -> None:
        if self._closed:
            return
        async with self._lock:  # pending appends finish first
            self._closed = True
        self._wake_subscribers()
        if self._own_connection:
            with contextlib.suppress(Exception):
                await self.nc.close()
