"""Notice requests into the log: judged (:mod:`.request`), then ``publication.requested`` or
``publication.refused``, durable before the sender hears anything.

Every door (NATS request/reply, HTTP POST, the orchestrator's data) calls :meth:`NoticeIntake.submit`
and answers from its :class:`IntakeResult` only after it returned: ``accepted`` (new in the
log), ``duplicate`` (this request is already there: the same id with the same content — a
retry), or ``refused`` with the reason, itself recorded. A request id reused for a different
request is refused (``conflict``), as the ingest refuses a known IVORN with other bytes.

The transports find the intake through the :data:`NOTICE_INTAKE` port, offered only when
``[notices]`` is on: without it they answer that notices are off.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from burstbus.catalogue import PUBLICATION_REFUSED, PUBLICATION_REQUESTED
from burstbus.component import PortKey
from burstbus.events import Event, canonical_json, derived_event_id
from burstbus.store.base import EventLog

from .instruments import Instrument
from .request import InvalidNoticeRequest, NoticeRequest, parse_notice_json, parse_notice_request

log = logging.getLogger(__name__)

EXCERPT_BYTES = 4096

IntakeOutcome = Literal["accepted", "duplicate", "refused"]


@dataclass(frozen=True)
class IntakeResult:
    """What became of one request; ``seq`` is the log position that records it."""

    outcome: IntakeOutcome
    seq: int
    request_id: str | None = None
    burst_id: str | None = None
    reason: str | None = None
    code: str | None = None

    @property
    def acknowledged(self) -> bool:
        return self.outcome != "refused"

    def reply(self) -> str:
        """The NATS answer: ``ACK <request id>`` or ``NAK <reason>``."""
        return f"ACK {self.request_id}" if self.acknowledged else f"NAK {self.reason}"


def refused_event(raw: bytes, reason: str, code: str, *, via: str, peer: str, key: str | None = None) -> Event:
    """The record of a refused request: why, and what was received (first 4 KiB). ``key``: the
    transport's id of this delivery (a ``Nats-Msg-Id``), so a re-sent refusal is one event."""
    excerpt = raw[:EXCERPT_BYTES]
    data: dict[str, Any] = {
        "reason": reason, "code": code, "via": via, "peer": peer,
        "sha256": hashlib.sha256(raw).hexdigest(), "size": len(raw), "truncated": len(raw) > EXCERPT_BYTES,
        "excerpt": excerpt.decode("utf-8", errors="replace"),
    }
    if key:
        return Event(PUBLICATION_REFUSED, data, stream="", actor=f"{via}:{peer}", id=derived_event_id(PUBLICATION_REFUSED, key))
    return Event(PUBLICATION_REFUSED, data, stream="", actor=f"{via}:{peer}")


class NoticeIntake:
    """Judges requests against the notice types and instruments, and records them."""

    def __init__(self, event_log: EventLog, instruments: Mapping[str, Instrument], *, max_bytes: int = 65_536):
        self.log = event_log
        self.instruments = instruments
        self.max_bytes = max_bytes
        self.counts: dict[str, int] = {}

    async def submit(self, raw: bytes, *, via: str, peer: str, key: str | None = None) -> IntakeResult:
        """A request's bytes (JSON) from a transport; returns once the outcome is durable."""
        try:
            request = parse_notice_json(raw, self.instruments, max_bytes=self.max_bytes)
        except InvalidNoticeRequest as exc:
            return await self._refuse(raw, exc.reason, "invalid", via=via, peer=peer, key=key)
        return await self._record(request, raw, via=via, peer=peer, key=key)

    async def submit_value(self, value: Mapping[str, Any], *, via: str, peer: str, key: str | None = None) -> IntakeResult:
        """A request already decoded (the orchestrator's data announcement)."""
        raw = canonical_json(dict(value)).encode("utf-8")
        try:
            request = parse_notice_request(value, self.instruments)
        except InvalidNoticeRequest as exc:
            return await self._refuse(raw, exc.reason, "invalid", via=via, peer=peer, key=key)
        return await self._record(request, raw, via=via, peer=peer, key=key)

    async def _record(self, request: NoticeRequest, raw: bytes, *, via: str, peer: str, key: str | None) -> IntakeResult:
        event = Event(PUBLICATION_REQUESTED, request.data, stream=request.burst_id, actor=f"{via}:{peer}", id=request.event_id)
        [where] = await self.log.append([event])
        if where.new:
            self._count("accepted")
            log.info("notice request %s for %s recorded (seq %d)", request.request_id, request.burst_id, where.seq)
            return IntakeResult("accepted", where.seq, request.request_id, request.burst_id)
        original = await self.log.get(where.seq)
        if original is not None and original.data.get("digest") == request.digest:
            self._count("duplicate")
            return IntakeResult("duplicate", where.seq, request.request_id, request.burst_id)
        reason = (f"request id {request.request_id!r} was already used (log seq {where.seq}) for a different request; "
                  "a changed request needs a new request_id")
        return await self._refuse(raw, reason, "conflict", via=via, peer=peer, key=key)

    async def refuse(self, raw: bytes, reason: str, code: str, *, via: str, peer: str, key: str | None = None) -> IntakeResult:
        """Record a refusal decided before the request could be judged (a product that cannot
        be read); returns once durable."""
        return await self._refuse(raw, reason, code, via=via, peer=peer, key=key)

    async def _refuse(self, raw: bytes, reason: str, code: str, *, via: str, peer: str, key: str | None) -> IntakeResult:
        [where] = await self.log.append([refused_event(raw, reason, code, via=via, peer=peer, key=key)])
        self._count("refused")
        log.info("notice request from %s:%s refused: %s", via, peer, reason)
        return IntakeResult("refused", where.seq, reason=reason, code=code)

    def _count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1


#: The intake, for the transports that take requests in (offered when ``[notices]`` is on).
NOTICE_INTAKE: PortKey[NoticeIntake] = PortKey("notices.intake", "take notice requests in (validated, recorded)")
