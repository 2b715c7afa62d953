"""The NATS outbox: every log event out to NATS, driven from a stored checkpoint.

* Every record goes out as JSON (:meth:`RecordedEvent.to_json_dict`: seq, id, hash …) on
  ``<prefix>.events.<type>``; every ``voevent.accepted`` also goes out as its exact received
  bytes on ``<prefix>.voevent.<role>``.
* Headers: ``Nats-Msg-Id`` (the event id; ``<event id>:xml`` for the raw packet, so that one
  stream may capture both subjects without deduping one against the other),
  ``Burstbus-Event-Id``, ``Burstbus-Seq``, ``Burstbus-Type`` and ``Burstbus-Origin`` (this
  node; the inbound side ignores messages carrying its own origin).
* Records go in batches, written as pre-built protocol frames in one go (:func:`frame`). The
  position moves past a batch only once the server confirmed it: with ``stream`` configured,
  every JetStream publish ack of the batch (all in flight at once, answers on our own reply
  subjects); otherwise a ``flush`` (PING/PONG: the server has processed everything before
  it). The log's follower (:class:`~burstbus.store.consumer.Follower`, records undecoded)
  writes the checkpoint (``state.sqlite``, consumer ``bridge.nats.out``) behind the
  confirmed position, one write in flight (``Save.BEHIND``), so an fsync never holds up the
  next batch.
* A NATS outage (or a crash of burstbus) never moves the checkpoint past an unconfirmed
  message: the batch is re-sent from the checkpoint once the connection is back, so nothing is
  lost; what had reached the server before is re-sent with the same ``Nats-Msg-Id``, which a
  JetStream stream drops as a duplicate (within its duplicate window) and a core subscriber
  can drop by ``Burstbus-Event-Id``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import StorageType, StreamConfig

from burstbus.bridges.nats.confirm import confirm_sent
from burstbus.catalogue import VOEVENT_ACCEPTED
from burstbus.events import RecordedEvent, StoredRecord, utc_now
from burstbus.payload import xml_bytes
from burstbus.state import StateStore
from burstbus.store.base import EventLog
from burstbus.store.consumer import Batch, Follower, Save

log = logging.getLogger(__name__)

CONSUMER = "bridge.nats.out"

MSG_ID = "Nats-Msg-Id"
ORIGIN = "Burstbus-Origin"
EVENT_ID = "Burstbus-Event-Id"
SEQ = "Burstbus-Seq"
TYPE = "Burstbus-Type"
IVORN = "Burstbus-Ivorn"

#: Errors that mean "NATS is not reachable or did not confirm": retry the batch later.
RETRYABLE: tuple[type[BaseException], ...] = (nats.errors.Error, TimeoutError, OSError)

_NOT_TOKEN = re.compile(r"[^A-Za-z0-9_.-]+")


@functools.lru_cache(maxsize=1024)
def subject_tokens(text: str) -> str:
    """Text made safe as subject tokens (no spaces, wildcards or empty tokens)."""
    cleaned = ".".join(t for t in _NOT_TOKEN.sub("_", text).split(".") if t)
    return cleaned or "_"


def _header_text(value: str) -> str:
    if "\r" not in value and "\n" not in value:
        return value
    return value.replace("\r", " ").replace("\n", " ")


#: Types and origins repeat on every message: clean them once.
_cached_header_text = functools.lru_cache(maxsize=1024)(_header_text)


@dataclass(frozen=True, slots=True)
class OutMessage:
    subject: str
    payload: bytes
    headers: dict[str, str]
    seq: int


def _json_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # integers beyond 64 bits, which the canonical encoder allows
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def frame(subject: str, headers: dict[str, str], payload: bytes, reply: str = "") -> bytes:
    """One message in NATS's wire protocol (``HPUB``), built once per message (pure).

    The outbox writes a batch of these in one go instead of one ``nc.publish`` per message:
    nats-py re-checks and re-encodes every header on every call, which measured as half the
    cost of publishing a record. Header values here are already single-line (see
    :func:`messages_for`), subjects already safe tokens."""
    head = "NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    block = head.encode("utf-8")
    size = len(block)
    target = f"{subject} {reply} " if reply else f"{subject} "
    return b"".join((f"HPUB {target}{size} {size + len(payload)}\r\n".encode(), block, payload, b"\r\n"))


#: JSON string literal of a str (the C encoder ``json.dumps`` uses with ensure_ascii=False).
_quote: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]


def stored_event_payload(row: StoredRecord) -> bytes:
    """The ``events`` message's JSON built around the stored data text (pure).

    The same object as :meth:`RecordedEvent.to_json_dict` encodes, key for key, without
    decoding the data and encoding it again; byte-identical to what :func:`messages_for`
    sends unless the data holds floats, which the stored text writes as Python does."""
    return (
        f'{{"seq":{int(row.seq)},"id":{_quote(row.id)},"type":{_quote(row.type)},"stream":{_quote(row.stream)},'
        f'"actor":{_quote(row.actor)},"occurred_at":{_quote(row.occurred_at)},"recorded_at":{_quote(row.recorded_at)},'
        f'"data":{row.data_json},"prev_hash":{_quote(row.prev_hash)},"hash":{_quote(row.hash)}}}'
    ).encode()


def stored_event_frame(row: StoredRecord, payload: bytes, *, prefix: str, origin: str) -> bytes:
    """:func:`frame` of the ``events`` message for a stored record, headers in the order
    :func:`messages_for` gives them, built in one go (pure). ``origin`` already single-line."""
    event_id = _header_text(row.id)
    head = (
        f"NATS/1.0\r\n{MSG_ID}: {event_id}\r\n{EVENT_ID}: {event_id}\r\n{SEQ}: {int(row.seq)}\r\n"
        f"{TYPE}: {_cached_header_text(row.type)}\r\n{ORIGIN}: {origin}\r\n\r\n"
    ).encode()
    size = len(head)
    return b"".join((
        f"HPUB {prefix}.events.{subject_tokens(row.type)} {size} {size + len(payload)}\r\n".encode(), head, payload, b"\r\n",
    ))


def _base_headers(record: RecordedEvent | StoredRecord, origin: str) -> dict[str, str]:
    """The headers every message of a record carries (``Nats-Msg-Id`` goes first, per message)."""
    return {
        EVENT_ID: _header_text(record.id),
        SEQ: str(record.seq),
        TYPE: _cached_header_text(record.type),
        ORIGIN: _cached_header_text(origin),
    }


def messages_for(record: RecordedEvent, *, prefix: str, origin: str, max_payload: int | None = None) -> list[OutMessage]:
    """The NATS messages that carry one log record (pure)."""
    base = _base_headers(record, origin)
    event_id = base[EVENT_ID]
    body = record.to_json_dict()
    payload = _json_bytes(body)
    if max_payload is not None and len(payload) > max_payload:
        # Too big for this server (a packet near the ingest limit): the JSON goes without the
        # XML, which follows on the voevent subject when it fits, and the record says so.
        data = {k: v for k, v in body["data"].items() if k not in ("xml", "xml_base64")}
        data["xml_omitted"] = True
        payload = _json_bytes({**body, "data": data})
    out = [OutMessage(f"{prefix}.events.{subject_tokens(record.type)}", payload, {MSG_ID: event_id, **base}, record.seq)]
    if record.type == VOEVENT_ACCEPTED and ("xml" in record.data or "xml_base64" in record.data):
        role = subject_tokens(str(record.data.get("role") or "unknown"))
        headers = {MSG_ID: f"{event_id}:xml", **base}
        if record.data.get("ivorn"):
            headers[IVORN] = _header_text(str(record.data["ivorn"]))
        raw = xml_bytes(record.data)
        if max_payload is not None and len(raw) > max_payload:
            log.error("VOEvent at seq %d (%d bytes) exceeds the NATS max payload (%d); not sent raw", record.seq, len(raw), max_payload)
        else:
            out.append(OutMessage(f"{prefix}.voevent.{role}", raw, headers, record.seq))
    return out


class Outbound:
    """Follows the log from its checkpoint and publishes every record to NATS."""

    def __init__(
        self,
        nc: NATS,
        event_log: EventLog,
        state: StateStore,
        *,
        origin: str,
        prefix: str = "burstbus",
        stream: str = "",
        stream_replicas: int = 1,
        duplicate_window: float = 120.0,
        batch_size: int = 500,
        ack_timeout: float = 10.0,
        retry_delay: float = 1.0,
        name: str = CONSUMER,
    ):
        self.nc = nc
        self.log = event_log
        self.state = state
        self.origin = origin
        self.prefix = prefix
        self.stream = stream
        self.stream_replicas = stream_replicas
        self.duplicate_window = duplicate_window
        self.batch_size = batch_size
        self.ack_timeout = ack_timeout
        self.retry_delay = retry_delay
        self.name = name
        self.js = nc.jetstream(timeout=ack_timeout) if stream else None
        #: A failed batch is retried from the last confirmed one, never skipped.
        self.follower: Follower[StoredRecord] = Follower(
            event_log, self._publish_batch, name=name, checkpoint=state.checkpoint(name), stored=True,
            batch_size=batch_size, save=Save.BEHIND, prepare=self.ensure_stream,
            retryable=lambda exc: isinstance(exc, RETRYABLE),
            retry_delay=retry_delay, max_retry_delay=max(retry_delay, 5.0),
        )
        #: Progress and trouble, for metrics and tests.
        self.published_total = 0
        #: When the server last confirmed a batch (``/healthz`` last activity).
        self.last_published_at: str | None = None
        self.duplicates_total = 0
        #: Batches go out as pre-built frames through the client's own buffer (see _send_frames).
        self._fast = callable(getattr(nc, "_send_command", None)) and callable(getattr(nc, "_flush_pending", None))
        self._reply_prefix: str | None = None
        self._reply_counter = 0
        self._waiting: dict[str, asyncio.Future[Msg]] = {}

    @property
    def subjects(self) -> list[str]:
        return [f"{self.prefix}.events.>", f"{self.prefix}.voevent.>"]

    async def ensure_stream(self) -> None:
        """Create the target stream if it does not exist (an existing one is left as it is)."""
        if self.js is None:
            return
        try:
            await self.js.stream_info(self.stream)
            return
        except nats.js.errors.NotFoundError:
            pass
        await self.js.add_stream(
            StreamConfig(
                name=self.stream,
                subjects=self.subjects,
                storage=StorageType.FILE,
                num_replicas=self.stream_replicas,
                duplicate_window=self.duplicate_window,
            )
        )

    @property
    def position(self) -> int:
        """The last seq the server confirmed (0 before the first)."""
        return self.follower.position or 0

    @property
    def failures(self) -> int:
        return self.follower.failures

    @property
    def last_error(self) -> str | None:
        return self.follower.last_error

    async def run(self) -> None:
        """Publish forever; a failed batch is retried from the last confirmed one, never skipped."""
        await self.follower.run()

    async def _publish_batch(self, batch: Batch[StoredRecord]) -> None:
        try:
            await self.publish(batch.records)
        except asyncio.CancelledError:
            # A stop does not wait for the confirmation (a core flush or JetStream acks can
            # take ack_timeout): the checkpoint stays before this batch, so the next start
            # sends it again with the same ids, which JetStream's duplicate window and
            # Burstbus-Event-Id make harmless. Said, so the repeat is not a surprise.
            log.warning("NATS outbox stopped before the server confirmed seq %d..%d; they are sent again on the next start",
                        batch.records[0].seq, batch.last)
            raise

    async def publish(self, records: Sequence[RecordedEvent | StoredRecord]) -> None:
        """Publish one batch and return only once the server confirmed all of it."""
        if not self.nc.is_connected:
            raise nats.errors.ConnectionReconnectingError
        if self.js is None and self._fast:
            frames = [f for r in records for f in self._frames(r)]
            await self._send_frames(frames)
            await confirm_sent(self.nc, self.ack_timeout)
            self.published_total += len(frames)
            self.last_published_at = utc_now()
            return
        messages = [m for r in records for m in self._messages(r)]
        if self.js is None:
            for m in messages:
                await self.nc.publish(m.subject, m.payload, headers=m.headers)
            await confirm_sent(self.nc, self.ack_timeout)
            self.published_total += len(messages)
            self.last_published_at = utc_now()
            return
        acks = await self._publish_to_stream(messages)
        self.published_total += len(acks)
        self.last_published_at = utc_now()
        self.duplicates_total += sum(1 for a in acks if a.get("duplicate"))

    def _spliced(self, record: RecordedEvent | StoredRecord) -> tuple[StoredRecord, bytes] | None:
        """The record and its ``events`` payload built from the stored text, when that is all
        it needs: not a VOEvent (which also goes out raw) and within the server's max payload."""
        if not isinstance(record, StoredRecord) or record.type == VOEVENT_ACCEPTED:
            return None
        payload = stored_event_payload(record)
        limit = self.nc.max_payload
        return (record, payload) if limit is None or len(payload) <= limit else None

    def _messages(self, record: RecordedEvent | StoredRecord) -> list[OutMessage]:
        spliced = self._spliced(record)
        if spliced is not None:
            base = _base_headers(record, self.origin)
            headers = {MSG_ID: base[EVENT_ID], **base}
            return [OutMessage(f"{self.prefix}.events.{subject_tokens(record.type)}", spliced[1], headers, record.seq)]
        decoded = record.decoded() if isinstance(record, StoredRecord) else record
        return messages_for(decoded, prefix=self.prefix, origin=self.origin, max_payload=self.nc.max_payload)

    def _frames(self, record: RecordedEvent | StoredRecord) -> list[bytes]:
        spliced = self._spliced(record)
        if spliced is not None:
            return [stored_event_frame(*spliced, prefix=self.prefix, origin=_cached_header_text(self.origin))]
        return [frame(m.subject, m.headers, m.payload) for m in self._messages(record)]

    async def _send_frames(self, frames: Sequence[bytes]) -> None:
        """Hand pre-built frames to nats-py's outgoing buffer, in order, about 1 MiB at a time.

        Uses the client's ``_send_command``/``_flush_pending`` (the path its own ``publish``
        ends in); :attr:`_fast` is False, and ``publish`` is used, if a nats-py lacks them."""
        chunk: list[bytes] = []
        size = 0
        for item in frames:
            chunk.append(item)
            size += len(item)
            if size >= 1 << 20:
                await self.nc._send_command(b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            await self.nc._send_command(b"".join(chunk))
        await self.nc._flush_pending()

    async def _publish_to_stream(self, messages: Sequence[OutMessage]) -> list[dict[str, Any]]:
        """JetStream publishes with our own reply subjects; the answers in order.

        Not nats-py's ``publish_async``: its reply handler raises, instead of failing the
        future, on the server's 4xx errors (the batch would only time out)."""
        if self._reply_prefix is None:
            self._reply_prefix = self.nc.new_inbox()
            await self.nc.subscribe(f"{self._reply_prefix}.*", cb=self._on_reply)
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Msg]] = []
        frames: list[bytes] = []
        for m in messages:
            self._reply_counter += 1
            token = str(self._reply_counter)
            future: asyncio.Future[Msg] = loop.create_future()
            self._waiting[token] = future
            futures.append(future)
            headers = {**m.headers, "Nats-Expected-Stream": self.stream}
            reply = f"{self._reply_prefix}.{token}"
            if self._fast:
                frames.append(frame(m.subject, headers, m.payload, reply))
            else:
                await self.nc.publish(m.subject, m.payload, reply=reply, headers=headers)
        try:
            if frames:
                await self._send_frames(frames)
            async with asyncio.timeout(self.ack_timeout):
                answers = await asyncio.gather(*futures)
        finally:
            for future in futures:
                future.cancel()
            self._waiting.clear()
        acks = []
        for answer in answers:
            if (answer.headers or {}).get("Status") == "503":
                raise nats.js.errors.NoStreamResponseError
            body = orjson.loads(answer.data)
            if "error" in body:
                error = body["error"]
                raise nats.js.errors.APIError(code=error.get("code"), err_code=error.get("err_code"),
                                              description=error.get("description"), stream=self.stream)
            acks.append(body)
        return acks

    async def _on_reply(self, msg: Msg) -> None:
        future = self._waiting.pop(msg.subject.rpartition(".")[2], None)
        if future is not None and not future.done():
            future.set_result(msg)
