"""The NATS outbox: every log event out to NATS, driven from a stored checkpoint.

* Every record goes out as JSON (:meth:`RecordedEvent.to_json_dict`: seq, id, hash …) on
  ``<prefix>.events.<type>``; every ``voevent.accepted`` also goes out as its exact received
  bytes on ``<prefix>.voevent.<role>``.
* Headers: ``Nats-Msg-Id`` (the event id; ``<event id>:xml`` for the raw packet, so that one
  stream may capture both subjects without deduping one against the other),
  ``Burstbus-Event-Id``, ``Burstbus-Seq``, ``Burstbus-Type`` and ``Burstbus-Origin`` (this
  node; the inbound side ignores messages carrying its own origin).
* Records go in batches. The checkpoint (``state.sqlite``, consumer ``bridge.nats.out``) moves
  past a batch only once the server confirmed it: with ``stream`` configured, every JetStream
  publish ack of the batch (pipelined with ``publish_async``); otherwise a ``flush`` (PING/PONG:
  the server has processed everything before it).
* A NATS outage (or a crash of burstbus) never moves the checkpoint past an unconfirmed
  message: the batch is re-sent from the checkpoint once the connection is back, so nothing is
  lost; what had reached the server before is re-sent with the same ``Nats-Msg-Id``, which a
  JetStream stream drops as a duplicate (within its duplicate window) and a core subscriber
  can drop by ``Burstbus-Event-Id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client as NATS
from nats.js.api import StorageType, StreamConfig

from burstbus.events import RecordedEvent
from burstbus.payload import xml_bytes
from burstbus.state import StateStore
from burstbus.store.base import EventLog

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


def subject_tokens(text: str) -> str:
    """Text made safe as subject tokens (no spaces, wildcards or empty tokens)."""
    cleaned = ".".join(t for t in _NOT_TOKEN.sub("_", text).split(".") if t)
    return cleaned or "_"


def _header_text(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")


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


def messages_for(record: RecordedEvent, *, prefix: str, origin: str, max_payload: int | None = None) -> list[OutMessage]:
    """The NATS messages that carry one log record (pure)."""
    base = {
        EVENT_ID: record.id,
        SEQ: str(record.seq),
        TYPE: _header_text(record.type),
        ORIGIN: _header_text(origin),
    }
    body = record.to_json_dict()
    payload = _json_bytes(body)
    if max_payload is not None and len(payload) > max_payload:
        # Too big for this server (a packet near the ingest limit): the JSON goes without the
        # XML, which follows on the voevent subject when it fits, and the record says so.
        data = {k: v for k, v in body["data"].items() if k not in ("xml", "xml_base64")}
        data["xml_omitted"] = True
        payload = _json_bytes({**body, "data": data})
    out = [OutMessage(f"{prefix}.events.{subject_tokens(record.type)}", payload, {MSG_ID: record.id, **base}, record.seq)]
    if record.type == "voevent.accepted" and ("xml" in record.data or "xml_base64" in record.data):
        role = subject_tokens(str(record.data.get("role") or "unknown"))
        headers = {MSG_ID: f"{record.id}:xml", **base}
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
        #: Progress and trouble, for metrics and tests.
        self.position = 0
        self.published_total = 0
        self.duplicates_total = 0
        self.failures = 0
        self.last_error: str | None = None
        self.caught_up = asyncio.Event()

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

    async def run(self) -> None:
        """Publish forever; a failed batch is retried from the checkpoint, never skipped."""
        while True:
            try:
                await self.ensure_stream()
                await self._follow()
            except RETRYABLE as exc:
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.caught_up.clear()
                log.warning("NATS outbound stopped at seq %d (%s); retrying", self.position, self.last_error)
                await asyncio.sleep(self.retry_delay)

    async def _follow(self) -> None:
        self.position = await self.state.checkpoint(self.name)
        async with contextlib.aclosing(self.log.subscribe(after=self.position, batch_size=self.batch_size)) as batches:
            async for batch in batches:
                await self.publish(batch)
                self.position = batch[-1].seq
                await self.state.set_checkpoint(self.name, self.position)
                if (await self.log.head()).seq <= self.position:
                    self.caught_up.set()
                else:
                    self.caught_up.clear()

    async def publish(self, records: Sequence[RecordedEvent]) -> None:
        """Publish one batch and return only once the server confirmed all of it."""
        if not self.nc.is_connected:
            raise nats.errors.ConnectionReconnectingError
        messages = [
            m for r in records for m in messages_for(r, prefix=self.prefix, origin=self.origin, max_payload=self.nc.max_payload)
        ]
        if self.js is None:
            for m in messages:
                await self.nc.publish(m.subject, m.payload, headers=m.headers)
            await self.nc.flush(timeout=self.ack_timeout)  # type: ignore[arg-type]
            self.published_total += len(messages)
            return
        futures = [
            await self.js.publish_async(m.subject, m.payload, headers=m.headers, stream=self.stream, wait_stall=self.ack_timeout)
            for m in messages
        ]
        try:
            acks = await asyncio.wait_for(asyncio.gather(*futures), self.ack_timeout)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        self.published_total += len(acks)
        self.duplicates_total += sum(1 for a in acks if a.duplicate)
