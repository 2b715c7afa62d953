"""Telling people what the telescopes did (or did not) after a trigger went out.

* :class:`FollowupPager` — a log follower (consumer ``bot.followup.pages``) of the telescope's
  steps and of the unacknowledged flag: each step is paged to the requester, the flag also to
  the telescope's approvers (the Burst Advocates who can act on it). From the log, so a page
  missed by a crash between a step and its page goes out on the restart (at least once). First
  run: from the log's head (no flood of old news). Without a chat transport there is nobody to
  page: the events are still on the burst page and in ``triggers``.
* :class:`AckWatch` — the timer of a telescope that never acknowledges: a sent trigger whose
  ``[triggers] ack_minutes`` (or the telescope's) passed since its ``trigger.sent`` with no
  step from the telescope gets ``trigger.unacknowledged`` (once: one derived id per request).
  The deadline is a fact of the log (the sent event's time), so a restart loses no timer: one
  that passed while burstbus was down fires at the first check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from burstbus.catalogue import FOLLOWUP_STEPS, FOLLOWUP_TYPES, SENT, TRIGGER_UNACKNOWLEDGED
from burstbus.chat import Messenger
from burstbus.events import Event, RecordedEvent, derived_event_id, format_time, parse_time
from burstbus.state import StateStore
from burstbus.store.base import EventLog
from burstbus.store.consumer import Batch, Follower, Start
from burstbus.store.read import lists as read_lists
from burstbus.store.reader import ReadModelError

from . import texts
from .config import TriggersSection
from .request import Request, Requests

log = logging.getLogger(__name__)

PAGER = "bot.followup.pages"
ACTOR = "system:triggers.followup"
#: Runs ``fn(sqlite3.Connection, *args)`` on a read-only projections connection.
Reader = Callable[..., Awaitable[Any]]


def unacknowledged_id(request_id: str) -> str:
    return derived_event_id(TRIGGER_UNACKNOWLEDGED, request_id)


class FollowupPager:
    """Pages the telescope's steps and silences; :meth:`run` is the supervised component."""

    def __init__(self, event_log: EventLog, state: StateStore, section: TriggersSection, *,
                 messenger: Callable[[], Messenger | None], link_base: Callable[[], str]):
        self.log = event_log
        self.section = section
        self.messenger = messenger
        self.link_base = link_base
        self.paged_total = 0
        self.failed_total = 0
        self.follower: Follower[RecordedEvent] = Follower(
            event_log, self._handle, name=PAGER, checkpoint=state.checkpoint(PAGER), start=Start.HEAD,
            types=[*FOLLOWUP_TYPES, TRIGGER_UNACKNOWLEDGED], batch_size=100,
        )

    async def run(self) -> None:
        await self.follower.run()

    async def _handle(self, batch: Batch[RecordedEvent]) -> None:
        messenger = self.messenger()
        if messenger is None:
            return  # no chat: nobody to page (the log, the pages and `triggers` have it)
        for record in batch.records:
            for jid, text in self.pages(record):
                await self._send(messenger, jid, text)

    def pages(self, record: RecordedEvent) -> list[tuple[str, str]]:
        """(bare JID, text) for one step or flag."""
        d = record.data
        burst, request_id, telescope = str(d.get("burst_id") or ""), str(d.get("request_id") or ""), str(d.get("telescope") or "")
        link = f"{self.link_base()}/bursts/{burst}"
        requester = d.get("requested_by")
        if record.type == TRIGGER_UNACKNOWLEDGED:
            text = texts.unacknowledged_page(telescope, burst, request_id, str(d.get("sent_at") or record.occurred_at),
                                             float(d.get("ack_minutes") or 0), link)
            told = [requester, *(d.get("approvers") or [])]
            return [(str(jid), text) for jid in dict.fromkeys(told) if jid]
        state = next((s for s, kind in FOLLOWUP_STEPS if kind == record.type), record.type)
        text = texts.followup_page(telescope, burst, request_id, state, d.get("data_location"), link)
        return [(str(requester), text)] if requester else []

    async def _send(self, messenger: Messenger, jid: str, text: str) -> None:
        try:
            async with asyncio.timeout(self.section.delivery_timeout):
                await messenger.send_direct(jid, text)
            self.paged_total += 1
        except Exception as exc:  # a chat hiccup never stops the pager; the log has the fact
            self.failed_total += 1
            log.warning("could not page %s about a trigger: %s", jid, exc)

    def health(self) -> dict[str, Any]:
        return {**self.follower.health(), "paged": self.paged_total, "page_failures": self.failed_total}


class AckWatch:
    """Flags sent triggers nobody acknowledged in time; :meth:`run` is the supervised component."""

    def __init__(self, event_log: EventLog, section: TriggersSection, read: Reader, *,
                 clock: Callable[[], datetime], approvers: Callable[[str], list[str]]):
        self.log = event_log
        self.section = section
        self.read = read
        self.clock = clock
        self.approvers = approvers
        self.requests = Requests(event_log, clock, section.code_minutes)
        self.flagged_total = 0
        self.last_error: str | None = None

    def enabled(self) -> bool:
        return bool(self.section.ack_minutes or any(t.ack_minutes for t in self.section.telescopes))

    def interval(self) -> float:
        limits = [m for m in (self.section.ack_minutes, *(t.ack_minutes for t in self.section.telescopes)) if m]
        return max(0.05, min(15.0, min(limits) * 60 / 4)) if limits else 15.0

    async def check(self) -> int:
        """Flag every overdue sent trigger now; returns how many were flagged."""
        now = self.clock()
        limits = [m for m in (self.section.ack_minutes, *(t.ack_minutes for t in self.section.telescopes)) if m]
        if not limits:
            return 0
        rows = await self.read(read_lists.awaiting_acknowledgement, format_time(now - timedelta(minutes=min(limits))))
        flagged = 0
        for row in rows:
            minutes = self.section.ack_minutes_for(row.telescope)
            if not minutes or row.sent_at is None or parse_time(row.sent_at) + timedelta(minutes=minutes) > now:
                continue
            request = await self.requests.load(Request.stub(row))
            if request.state != SENT:  # answered (or flagged) since the projection last saw it
                continue
            data = request.common() | {
                "requested_by": request.requested_by, "sent_at": row.sent_at, "ack_minutes": minutes,
                "deadline": format_time(parse_time(row.sent_at) + timedelta(minutes=minutes)),
                "approvers": self.approvers(row.telescope),
            }
            [where] = await self.log.append([Event(TRIGGER_UNACKNOWLEDGED, data, stream=request.burst_id, actor=ACTOR,
                                                   id=unacknowledged_id(request.request_id), occurred_at=format_time(now))])
            if where.new:
                flagged += 1
                log.warning("trigger %s: %s has not acknowledged within %g minutes", request.request_id, row.telescope, minutes)
        self.flagged_total += flagged
        return flagged

    async def run(self) -> None:
        """Forever, while any acknowledgement time is configured: check, then wait."""
        if not self.enabled():
            await asyncio.Event().wait()
        while True:
            try:
                await self.check()
                self.last_error = None
            except ReadModelError as exc:  # projections not readable yet: next round
                self.last_error = str(exc)
                log.warning("acknowledgement watch could not read the projections: %s", exc)
            await asyncio.sleep(self.interval())

    def health(self) -> dict[str, Any]:
        return {"up": True, "enabled": self.enabled(), "flagged": self.flagged_total, "last_error": self.last_error}
