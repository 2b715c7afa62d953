"""NATS into the log: ``<prefix>.in.voevent`` and ``<prefix>.in.process``, request/reply.

The log first: a reply goes out only after the append returned (durable). ``ACK`` means the
message is in the log (for a VOEvent: accepted now or already); ``NAK <reason>`` means it was
refused, and the refusal itself is in the log (``voevent.rejected`` via the ingest,
``process.rejected`` and ``nats.rejected`` here). A message without a reply subject is handled
the same way, silently. A message carrying a ``Burstbus-Origin`` header was published by a
burstbus node (this one or another bridged through the same NATS) and is never taken in: no
relay loops, whatever the subjects and mappings.

Operators add inputs with ``[[nats.mappings]]``: JSON objects on a subject become events of
a configured type (:func:`parse_mapped`, pure), with the same reply and refusal rules.

``process.status`` messages are JSON objects validated by :func:`parse_process_status`, a
pure function; its reasons are what the sender reads after ``NAK``. A message carrying a
``Nats-Msg-Id`` header gets an event id derived from it, so a pipeline that re-sends the same
message (after a timeout) is recorded once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from burstbus.bridges.nats.config import SubjectMapping
from burstbus.bridges.nats.confirm import confirm_sent
from burstbus.bridges.nats.outbound import MSG_ID, ORIGIN
from burstbus.catalogue import NATS_REJECTED, PROCESS_REJECTED, PROCESS_STATUS
from burstbus.events import Event, derived_event_id, new_event_id, normalise_time, utc_now
from burstbus.ingest import Ingest
from burstbus.store.base import EventLog
from burstbus.store.projections.processes import STATUSES

log = logging.getLogger(__name__)

#: How much of a refused message is kept in its ``process.rejected`` event.
EXCERPT_BYTES = 4096
#: Longest log excerpt kept in a ``process.status`` event (its tail: the end says what failed).
MAX_LOG_CHARS = 16_384
MAX_ID_CHARS = 200

_ID_FIELDS = ("process", "burst_id", "obs_id", "pass_id", "pipeline")
KNOWN_FIELDS = frozenset({*_ID_FIELDS, "status", "log", "occurred_at"})


class InvalidProcessStatus(ValueError):
    """A ``process.status`` message that is refused; ``reason`` is one sentence for the sender."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ProcessStatus:
    """A validated status message: ``data`` is the event's data, ``occurred_at`` when given."""

    data: dict[str, Any]
    occurred_at: str | None

    @property
    def burst_id(self) -> str:
        return str(self.data.get("burst_id") or "")


def parse_process_status(raw: bytes, *, max_bytes: int = 1_048_576) -> ProcessStatus:
    """Validate one ``<prefix>.in.process`` payload (pure); raise InvalidProcessStatus.

    A JSON object with ``process`` (required), ``status`` (required, one of queued, running,
    complete, failed, vanished), optional ``burst_id``, ``obs_id``, ``pass_id``, ``pipeline``
    (strings; integer ids are taken as their decimal text), ``log`` (text; its last 16 KiB kept)
    and ``occurred_at`` (ISO-8601; default: when recorded). Unknown keys are refused, so a
    misspelt field is reported rather than silently lost.
    """
    if not raw.strip():
        raise InvalidProcessStatus("empty message: expected a JSON object")
    if len(raw) > max_bytes:
        raise InvalidProcessStatus(f"message of {len(raw)} bytes exceeds the limit of {max_bytes}")
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidProcessStatus(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise InvalidProcessStatus(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(value, dict):
        raise InvalidProcessStatus(f"expected a JSON object, got {type(value).__name__}")
    unknown = sorted(set(value) - KNOWN_FIELDS)
    if unknown:
        raise InvalidProcessStatus(f"unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(KNOWN_FIELDS))})")
    data: dict[str, Any] = {}
    for name in _ID_FIELDS:
        item = value.get(name)
        if item is None or item == "":
            if name == "process":
                raise InvalidProcessStatus("'process' is required (the process name)")
            continue
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise InvalidProcessStatus(f"'{name}' must be a string, not {type(item).__name__}")
        text = str(item).strip()
        if not text:
            if name == "process":
                raise InvalidProcessStatus("'process' is required (the process name)")
            continue
        if len(text) > MAX_ID_CHARS:
            raise InvalidProcessStatus(f"'{name}' is longer than {MAX_ID_CHARS} characters")
        if name != "pipeline" and ("/" in text or any(c in text for c in "\r\n\t")):
            raise InvalidProcessStatus(f"'{name}' must not contain '/' or control characters: {text[:60]!r}")
        data[name] = text
    status = value.get("status")
    if status is None:
        raise InvalidProcessStatus(f"'status' is required (one of {', '.join(STATUSES)})")
    if not isinstance(status, str) or status.strip().lower() not in STATUSES:
        raise InvalidProcessStatus(f"'status' must be one of {', '.join(STATUSES)}, not {status!r}")
    data["status"] = status.strip().lower()
    text_log = value.get("log")
    if text_log is not None:
        if not isinstance(text_log, str):
            raise InvalidProcessStatus(f"'log' must be text, not {type(text_log).__name__}")
        if len(text_log) > MAX_LOG_CHARS:
            data["log"] = text_log[-MAX_LOG_CHARS:]
            data["log_truncated"] = len(text_log)
        elif text_log:
            data["log"] = text_log
    occurred_at = None
    if value.get("occurred_at") is not None:
        stamp = value["occurred_at"]
        try:
            if not isinstance(stamp, str):
                raise ValueError
            occurred_at = normalise_time(stamp)
        except ValueError:
            raise InvalidProcessStatus(f"'occurred_at' must be an ISO-8601 time, not {stamp!r}") from None
    return ProcessStatus(data, occurred_at)


def process_rejected_event(raw: bytes, reason: str, *, subject: str, msg_id: str | None) -> Event:
    """The record of a refused process message: why, and what was received (first 4 KiB)."""
    return rejected_event(PROCESS_REJECTED, raw, reason, subject=subject, msg_id=msg_id)


class InvalidMessage(ValueError):
    """A message on a mapped subject that is refused; ``reason`` is one sentence for the sender."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_mapped(raw: bytes, mapping: SubjectMapping, *, max_bytes: int = 1_048_576) -> tuple[dict[str, Any], str]:
    """Validate one message on a mapped subject (pure): a JSON object (UTF-8, finite numbers),
    returned as the event's data with the event's stream (``stream_field``'s value, or "")."""
    if not raw.strip():
        raise InvalidMessage("empty message: expected a JSON object")
    if len(raw) > max_bytes:
        raise InvalidMessage(f"message of {len(raw)} bytes exceeds the limit of {max_bytes}")
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise InvalidMessage(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise InvalidMessage(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:
        raise InvalidMessage(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidMessage(f"expected a JSON object, got {type(value).__name__}")
    stream = ""
    if mapping.stream_field and value.get(mapping.stream_field) not in (None, ""):
        item = value[mapping.stream_field]
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise InvalidMessage(f"'{mapping.stream_field}' must be a string, not {type(item).__name__}")
        stream = str(item).strip()
        if len(stream) > MAX_ID_CHARS or any(c in stream for c in "\r\n\t"):
            raise InvalidMessage(f"'{mapping.stream_field}' must be at most {MAX_ID_CHARS} characters without control characters")
    return value, stream


def rejected_event(
    event_type: str, raw: bytes, reason: str, *, subject: str, msg_id: str | None, extra: Mapping[str, Any] | None = None
) -> Event:
    """The record of a refused message: why, and what was received (first 4 KiB)."""
    excerpt = raw[:EXCERPT_BYTES]
    data: dict[str, Any] = {
        "reason": reason,
        "subject": subject,
        **(extra or {}),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "size": len(raw),
        "truncated": len(raw) > EXCERPT_BYTES,
        "excerpt": excerpt.decode("utf-8", errors="replace"),
    }
    if msg_id:
        data["msg_id"] = msg_id
    return Event(event_type, data, stream="", actor=f"nats:{subject}")


def _msg_id(headers: Mapping[str, str] | None) -> str | None:
    return (headers or {}).get(MSG_ID) or None


class Inbound:
    """The two inbound subscriptions on a connected client."""

    def __init__(
        self,
        nc: NATS,
        event_log: EventLog,
        ingest: Ingest,
        *,
        origin: str,
        prefix: str = "burstbus",
        queue: str = "",
        max_bytes: int = 1_048_576,
        max_inflight: int = 64,
        mappings: tuple[SubjectMapping, ...] = (),
    ):
        self.nc = nc
        self.log = event_log
        self.ingest = ingest
        self.origin = origin
        self.prefix = prefix
        self.queue = queue
        self.max_bytes = max_bytes
        self.mappings = mappings
        self._slots = asyncio.Semaphore(max_inflight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscriptions: list[Subscription] = []
        #: Counters for metrics and tests: (subject kind, outcome) → n.
        self.counts: dict[tuple[str, str], int] = {}
        #: When the last inbound message was handled, whatever its outcome (``/healthz``).
        self.last_received_at: str | None = None

    @property
    def voevent_subject(self) -> str:
        return f"{self.prefix}.in.voevent"

    @property
    def process_subject(self) -> str:
        return f"{self.prefix}.in.process"

    async def start(self) -> None:
        self._subscriptions.append(await self.nc.subscribe(self.voevent_subject, queue=self.queue, cb=self._on_voevent))
        self._subscriptions.append(await self.nc.subscribe(self.process_subject, queue=self.queue, cb=self._on_process))
        for mapping in self.mappings:
            self._subscriptions.append(await self.nc.subscribe(mapping.subject, queue=self.queue, cb=self._mapped_handler(mapping)))
        await confirm_sent(self.nc, 10.0)  # the server has the subscriptions before anyone is told we are up

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            try:
                await subscription.unsubscribe()
            except Exception as exc:  # a closed connection has no subscriptions left to drop
                log.debug("unsubscribe: %s", exc)
        self._subscriptions.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _count(self, kind: str, outcome: str) -> None:
        self.counts[(kind, outcome)] = self.counts.get((kind, outcome), 0) + 1
        self.last_received_at = utc_now()

    def _ours(self, msg: Msg) -> bool:
        """Published by a burstbus node (this one or another): never taken back in."""
        return bool(msg.headers) and bool((msg.headers or {}).get(ORIGIN))

    async def _reply(self, msg: Msg, text: str) -> None:
        if not msg.reply:
            return
        try:
            await self.nc.publish(msg.reply, text.encode("utf-8"))
        except Exception as exc:  # the requester will time out and retry; the log has it
            log.warning("could not reply on %s: %s", msg.subject, exc)

    # -- VOEvents -------------------------------------------------------------------------

    async def _on_voevent(self, msg: Msg) -> None:
        """Examine packets concurrently (the log's group commit batches their appends)."""
        if self._ours(msg):
            self._count("voevent", "ignored_own")
            return
        await self._slots.acquire()
        task = asyncio.create_task(self._voevent(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._slots.release())

    async def _voevent(self, msg: Msg) -> None:
        try:
            result = await self.ingest.submit(msg.data, via="nats", peer=msg.subject)
        except Exception as exc:
            log.error("NATS VOEvent not recorded: %s", exc)
            self._count("voevent", "error")
            await self._reply(msg, f"NAK not recorded: {exc}")
            return
        self._count("voevent", result.outcome)
        await self._reply(msg, "ACK" if result.acknowledged else f"NAK {result.reason}")

    # -- process status --------------------------------------------------------------------

    async def _on_process(self, msg: Msg) -> None:
        """One at a time, in arrival order: a run's queued → running → complete must keep it."""
        if self._ours(msg):
            self._count("process", "ignored_own")
            return
        msg_id = _msg_id(msg.headers)
        try:
            status = parse_process_status(msg.data, max_bytes=self.max_bytes)
        except InvalidProcessStatus as exc:
            event = process_rejected_event(msg.data, exc.reason, subject=msg.subject, msg_id=msg_id)
            reply = f"NAK {exc.reason}"
            outcome = "rejected"
        else:
            event_id = derived_event_id("nats", msg.subject, msg_id) if msg_id else new_event_id()
            event = Event(PROCESS_STATUS, status.data, stream=status.burst_id, actor=f"nats:{msg.subject}", id=event_id)
            if status.occurred_at:
                event = Event(event.type, event.data, event.stream, event.actor, event.id, status.occurred_at)
            reply = "ACK"
            outcome = "accepted"
        try:
            await self.log.append([event])
        except Exception as exc:
            log.error("NATS process message not recorded: %s", exc)
            self._count("process", "error")
            await self._reply(msg, f"NAK not recorded: {exc}")
            return
        self._count("process", outcome)
        await self._reply(msg, reply)

    # -- operator mappings ----------------------------------------------------------------

    def _mapped_handler(self, mapping: SubjectMapping) -> Callable[[Msg], Awaitable[None]]:
        async def handle(msg: Msg) -> None:
            await self._on_mapped(mapping, msg)

        return handle

    async def _on_mapped(self, mapping: SubjectMapping, msg: Msg) -> None:
        """One at a time per mapping, in arrival order, like process status."""
        kind = f"mapped:{mapping.type}"
        if self._ours(msg):
            self._count(kind, "ignored_own")
            return
        msg_id = _msg_id(msg.headers)
        try:
            data, stream = parse_mapped(msg.data, mapping, max_bytes=self.max_bytes)
        except InvalidMessage as exc:
            event = rejected_event(NATS_REJECTED, msg.data, exc.reason, subject=msg.subject, msg_id=msg_id,
                                   extra={"type": mapping.type, "mapping": mapping.subject})
            reply = f"NAK {exc.reason}"
            outcome = "rejected"
        else:
            event_id = derived_event_id("nats", msg.subject, msg_id) if msg_id else new_event_id()
            event = Event(mapping.type, data, stream=stream, actor=f"nats:{msg.subject}", id=event_id)
            reply = "ACK"
            outcome = "accepted"
        try:
            await self.log.append([event])
        except Exception as exc:
            log.error("NATS message on %s not recorded: %s", msg.subject, exc)
            self._count(kind, "error")
            await self._reply(msg, f"NAK not recorded: {exc}")
            return
        self._count(kind, outcome)
        await self._reply(msg, reply)
