"""A trigger request as the log says it is now, and the ids its decisions share.

Why state comes from the log, not memory: a request is its ``trigger.requested`` event, and
whether it is still pending is decided by folding that request's ``trigger.*`` events, read
from the log (its burst's stream) at the moment of the decision. A restarted bot therefore
keeps every pending request approvable, and the projection's lag never matters.

Why deterministic ids: ``approved``, ``denied`` and ``expired`` share one event id per request
(:func:`decision_id`), and ``sent``/``failed`` another (:func:`delivery_id`). The log's
``UNIQUE(id)`` makes the second of two racing decisions a no-op the loser can detect
(``Appended.new`` is False), even across processes.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from burstbus.catalogue import (
    TRIGGER_APPROVED,
    TRIGGER_DENIED,
    TRIGGER_FAILED,
    TRIGGER_REQUESTED,
    TRIGGER_SENT,
    TRIGGER_TYPES,
    next_trigger_state,
)
from burstbus.events import RecordedEvent, derived_event_id, format_time
from burstbus.store.base import EventLog, ReadFilter
from burstbus.store.read.rows import TriggerRow

from .codes import code_hash, params_digest

#: ``trigger.denied`` ``reason`` of a request its requester withdrew (``withdrawn: true``).
WITHDRAWN_REASON = "withdrawn by the requester"
#: How far back a code or a request id is looked for (beyond that a code is simply unknown: it
#: expired long ago), on top of the code's own lifetime.
LOOKBACK = timedelta(days=1)


def decision_id(request_id: str) -> str:
    """The one event id any decision (approved/denied/expired) on a request can have."""
    return derived_event_id("trigger.decision", request_id)


def delivery_id(request_id: str) -> str:
    """The one event id the delivery's outcome (sent/failed) of a request can have."""
    return derived_event_id("trigger.delivery", request_id)


@dataclass
class Request:
    request_id: str
    telescope: str
    burst_id: str
    requested_by: str
    note: str
    params: dict[str, Any]
    code_sha256: str
    expires_at: str
    two_person: bool
    approvers: list[str]
    requested_seq: int
    state: str = "requested"
    decided_by: str | None = None
    reason: str | None = None
    voevent_ivorn: str | None = None
    channels: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def of(record: RecordedEvent) -> Request:
        d = record.data
        return Request(
            request_id=str(d["request_id"]), telescope=str(d["telescope"]), burst_id=str(d["burst_id"]),
            requested_by=str(d["requested_by"]), note=str(d.get("note") or ""), params=dict(d.get("params") or {}),
            code_sha256=str(d["code_sha256"]), expires_at=str(d["expires_at"]), two_person=bool(d.get("two_person")),
            approvers=list(d.get("approvers") or []), requested_seq=record.seq,
        )

    @staticmethod
    def stub(row: TriggerRow) -> Request:
        """A placeholder from the projection's row, for :meth:`Requests.load` (which re-reads
        everything from the log): the projection only says which requests to look at."""
        return Request(row.request_id, row.telescope, row.burst_id, row.requested_by, row.note or "", row.params, "",
                       row.expires_at or "", row.two_person, [], 0, state="unknown")

    def matches(self, key: bytes, code: str) -> bool:
        digest = params_digest(self.params, self.note)
        expected = code_hash(key, code, self.request_id, self.telescope, self.burst_id, digest)
        return hmac.compare_digest(expected, self.code_sha256)

    def fold(self, record: RecordedEvent) -> None:
        """Apply one later event of this request through the catalogue's lifecycle table (the
        projection's too): the first decision wins; an event the table ignores changes nothing."""
        after = next_trigger_state(self.state, record.type)
        if after is None:
            return
        d = record.data
        self.state = after
        if record.type == TRIGGER_APPROVED:
            self.decided_by, self.voevent_ivorn = d.get("approved_by"), d.get("voevent_ivorn")
        elif record.type == TRIGGER_DENIED:
            self.decided_by, self.reason = d.get("denied_by"), d.get("reason")
        elif record.type == TRIGGER_SENT:
            self.voevent_ivorn, self.channels = d.get("voevent_ivorn"), dict(d.get("channels") or {})
        elif record.type == TRIGGER_FAILED:
            self.reason, self.voevent_ivorn = d.get("reason"), d.get("voevent_ivorn")

    @property
    def short(self) -> str:
        return self.request_id[:8]

    @property
    def withdrawn(self) -> bool:
        return self.state == "denied" and self.decided_by == self.requested_by and self.reason == WITHDRAWN_REASON

    def common(self) -> dict[str, Any]:
        """The fields every later event of the request repeats."""
        return {"request_id": self.request_id, "telescope": self.telescope, "burst_id": self.burst_id}


class Requests:
    """Requests read from the log: one request's current state, recent ones, the one a code
    belongs to."""

    def __init__(self, log: EventLog, clock: Callable[[], datetime], code_minutes: int):
        self.log = log
        self.clock = clock
        self.code_minutes = code_minutes

    def horizon(self) -> str:
        """The oldest ``trigger.requested`` still looked at (by codes and by ``withdraw``)."""
        return format_time(self.clock() - LOOKBACK - timedelta(minutes=self.code_minutes))

    async def load(self, request: Request) -> Request:
        """The request's current state, folded from its events in the log."""
        records = await self.log.read(0, ReadFilter.of(types=TRIGGER_TYPES, stream=request.burst_id))
        fresh: Request | None = None
        for record in records:
            if record.data.get("request_id") != request.request_id:
                continue
            if record.type == TRIGGER_REQUESTED:
                fresh = Request.of(record)
            elif fresh is not None:
                fresh.fold(record)
        return fresh or request

    async def recent(self) -> list[Request]:
        """Every request since :meth:`horizon`, oldest first (malformed ones skipped)."""
        found: list[Request] = []
        for record in await self.log.read(0, ReadFilter.of(types=[TRIGGER_REQUESTED], since=self.horizon())):
            with contextlib.suppress(KeyError, TypeError, ValueError):
                found.append(Request.of(record))
        return found

    async def by_code(self, key: bytes, code: str) -> Request | None:
        """The recent request whose keyed hash this code matches (decided or not)."""
        for request in reversed(await self.recent()):
            if request.matches(key, code):
                return request
        return None
