"""NATS into the log: ``<prefix>.in.voevent``, ``<prefix>.in.process`` and ``<prefix>.in.data``, request/reply.

The log first: a reply goes out only after the append returned (durable). ``ACK`` means the
message is in the log (for a VOEvent: accepted now or already); ``NAK <reason>`` means it was
refused, and the refusal itself is in the log (``voevent.rejected`` via the ingest,
``process.rejected``, ``data.rejected`` and ``nats.rejected`` here). A message without a reply subject is handled
the same way, silently. A message carrying a ``Burstbus-Origin`` header was published by a
burstbus node (this one or another bridged through the same NATS) and is never taken in: no
relay loops, whatever the subjects and mappings.

Operators add inputs with ``[[nats.mappings]]``: JSON objects on a subject become events of
a configured type (:func:`parse_mapped`, pure), with the same reply and refusal rules.

``process.status`` messages and data announcements (``data.available``) are JSON objects
validated by :func:`parse_process_status` and :func:`parse_data_announcement`, pure functions
shared with HTTP (``burstbus.handlers.orchestrator.messages``); their reasons are what the
sender reads after ``NAK``. A message carrying a
``Nats-Msg-Id`` header gets an event id derived from it, so a pipeline that re-sends the same
message (after a timeout) is recorded once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from burstbus.bridges.nats.config import SubjectMapping
from burstbus.bridges.nats.confirm import confirm_sent
from burstbus.bridges.nats.outbound import MSG_ID, ORIGIN
from burstbus.catalogue import DATA_REJECTED, NATS_REJECTED, PROCESS_REJECTED
from burstbus.events import Event, derived_event_id, new_event_id, utc_now
from burstbus.handlers.notices.intake import NoticeIntake
from burstbus.handlers.orchestrator import messages
from burstbus.handlers.orchestrator.messages import (  # noqa: F401  (re-exported: the names NATS users import)
    KNOWN_FIELDS,
    MAX_LOG_CHARS,
    InvalidAnnouncement,
    InvalidProcessStatus,
    ProcessStatus,
    parse_data_announcement,
    parse_process_status,
)
from burstbus.ingest import Ingest
from burstbus.store.base import EventLog
from burstbus.untrusted import UntrustedJson, parse_json_object

log = logging.getLogger(__name__)

#: How much of a refused message is kept in its rejection event.
EXCERPT_BYTES = messages.EXCERPT_BYTES
MAX_ID_CHARS = messages.MAX_ID_CHARS


def process_rejected_event(raw: bytes, reason: str, *, subject: str, msg_id: str | None) -> Event:
    """The record of a refused process message: why, and what was received (first 4 KiB)."""
    return rejected_event(PROCESS_REJECTED, raw, reason, subject=subject, msg_id=msg_id)


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching (pure): ``*`` one token, a final ``>`` one or more."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(have) == len(want)


class InvalidMessage(ValueError):
    """A message on a mapped subject that is refused; ``reason`` is one sentence for the sender."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason



def parse_mapped(raw: bytes, mapping: SubjectMapping, *, max_bytes: int = 1_048_576) -> tuple[dict[str, Any], str]:
    """Validate one message on a mapped subject (pure): a JSON object (UTF-8, finite numbers),
    returned as the event's data with the event's stream (``stream_field``'s value, or "")."""
    try:
        value = parse_json_object(raw, max_bytes=max_bytes)
    except UntrustedJson as exc:
        raise InvalidMessage(str(exc)) from None
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
        notices: Callable[[], NoticeIntake | None] | None = None,
    ):
        self.nc = nc
        self.log = event_log
        self.ingest = ingest
        self.origin = origin
        self.prefix = prefix
        self.queue = queue
        self.max_bytes = max_bytes
        self.mappings = mappings
        #: The notice intake (the ``notices.intake`` port, asked per message: None = notices off).
        self.notices = notices or (lambda: None)
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

    @property
    def data_subject(self) -> str:
        return f"{self.prefix}.in.data"

    @property
    def notice_subject(self) -> str:
        return f"{self.prefix}.in.notice"

    async def start(self) -> None:
        self._subscriptions.append(await self.nc.subscribe(self.voevent_subject, queue=self.queue, cb=self._on_voevent))
        self._subscriptions.append(await self.nc.subscribe(self.process_subject, queue=self.queue, cb=self._on_process))
        self._subscriptions.append(await self.nc.subscribe(self.data_subject, queue=self.queue, cb=self._on_data))
        self._subscriptions.append(await self.nc.subscribe(self.notice_subject, queue=self.queue, cb=self._on_notice))
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

    def _is_input(self, subject: str) -> bool:
        """One of the subjects burstbus takes in: a reply sent there would come back as a message."""
        return subject.startswith(f"{self.prefix}.in.") or any(subject_matches(m.subject, subject) for m in self.mappings)

    async def _reply(self, msg: Msg, text: str) -> None:
        if not msg.reply:
            return
        if self._is_input(msg.reply):  # a loop a sender built, by mistake or on purpose
            log.warning("not replying on %s (from %s): it is one of burstbus's input subjects", msg.reply, msg.subject)
            return
        try:
            # Marked as ours, like everything this node publishes: never taken back in.
            await self.nc.publish(msg.reply, text.encode("utf-8"), headers={ORIGIN: self.origin})
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
            event = messages.status_event(status, actor=f"nats:{msg.subject}",
                                          event_id=messages.message_event_id("nats", msg.subject, msg_id))
            reply = "ACK"
            outcome = "accepted"
        await self._record("process", msg, event, reply, outcome)

    async def _record(self, kind: str, msg: Msg, event: Event, reply: str, outcome: str) -> None:
        """Append, then answer: ``ACK`` (or the refusal's ``NAK``) only once it is durable."""
        try:
            await self.log.append([event])
        except Exception as exc:
            log.error("NATS %s message not recorded: %s", kind, exc)
            self._count(kind, "error")
            await self._reply(msg, f"NAK not recorded: {exc}")
            return
        self._count(kind, outcome)
        await self._reply(msg, reply)

    # -- data announcements ----------------------------------------------------------------

    async def _on_data(self, msg: Msg) -> None:
        """One at a time, in arrival order, like statuses: a product follows its run's status."""
        if self._ours(msg):
            self._count("data", "ignored_own")
            return
        msg_id = _msg_id(msg.headers)
        try:
            announced = parse_data_announcement(msg.data, max_bytes=self.max_bytes)
        except InvalidAnnouncement as exc:
            event = rejected_event(DATA_REJECTED, msg.data, exc.reason, subject=msg.subject, msg_id=msg_id,
                                   extra={"via": "nats", "peer": msg.subject})
            reply = f"NAK {exc.reason}"
            outcome = "rejected"
        else:
            event = messages.data_event(announced, actor=f"nats:{msg.subject}",
                                        event_id=messages.message_event_id("nats", msg.subject, msg_id))
            reply = "ACK"
            outcome = "accepted"
        await self._record("data", msg, event, reply, outcome)

    # -- notice requests (handlers/notices) ---------------------------------------------

    async def _on_notice(self, msg: Msg) -> None:
        """One at a time, in arrival order: a burst's wake-up before its refinement. Judged and
        recorded by the notice intake; ``ACK <request id>`` once durable, else ``NAK <reason>``."""
        if self._ours(msg):
            self._count("notice", "ignored_own")
            return
        intake = self.notices()
        if intake is None:
            self._count("notice", "off")
            await self._reply(msg, "NAK notices are off here ([notices] enabled = false)")
            return
        msg_id = _msg_id(msg.headers)
        try:
            result = await intake.submit(msg.data, via="nats", peer=msg.subject,
                                         key=f"nats:{msg.subject}:{msg_id}" if msg_id else None)
        except Exception as exc:
            log.error("NATS notice request not recorded: %s", exc)
            self._count("notice", "error")
            await self._reply(msg, f"NAK not recorded: {exc}")
            return
        self._count("notice", result.outcome)
        await self._reply(msg, result.reply())

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
