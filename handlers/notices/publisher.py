"""The notice publisher: each ``publication.requested`` → one decision → one packet through the
ingest → its outcome. A log follower (consumer ``handler.notices``) from its checkpoint.

Per request, in the log's order:

1. **Decide** (:func:`~.decide.decide`) from the burst's earlier ``publication.issued`` events
   and record ``publication.issued`` (or ``publication.declined``) under the request's one
   decision id. If that id is already in the log — a crash after the append, another node —
   the recorded decision is adopted, never a second one.
2. **Render** the recorded decision (:func:`~.render.render_notice`, deterministic) and submit
   it through the ordinary ingest as ``local:notices`` (:data:`~burstbus.authority.NOTICES_SOURCE`):
   schema, IVORN dedupe and the authority rule as for any packet — the publisher may publish
   only under the centre's reserved authorities. Once accepted it is archived and goes out on
   every transport (VTP, NATS, XMPP, Slack) like any accepted notice.
3. **Record the outcome**, ``publication.sent`` (the accepted packet's seq) or
   ``publication.failed`` (the ingest's reason), under the request's one delivery id.

Crash safety: the checkpoint moves after a batch is handled, so a crash anywhere repeats the
batch. Step 1 then finds its decision; step 2 renders the same bytes, which the ingest answers
``duplicate`` if it already holds them; step 3 appends nothing twice (derived ids). A packet
under the decided IVORN that the publisher did not submit (its actor is not
``local:notices``) is never taken for ours: the request ends ``publication.failed``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from burstbus.authority import NOTICES_PEER, NOTICES_SOURCE, NOTICES_VIA
from burstbus.catalogue import (
    PUBLICATION_DECLINED,
    PUBLICATION_FAILED,
    PUBLICATION_ISSUED,
    PUBLICATION_REQUESTED,
    PUBLICATION_SENT,
)
from burstbus.events import Event, RecordedEvent, derived_event_id
from burstbus.ingest import Ingest, accepted_event_id
from burstbus.state import StateStore
from burstbus.store.base import EventLog, ReadFilter
from burstbus.store.consumer import Batch, Follower

from .config import NoticesSection
from .decide import Author, Declined, Prior, decide
from .instruments import Instrument
from .render import render_notice

log = logging.getLogger(__name__)

CONSUMER = "handler.notices"
ACTOR = "system:notices"


def decision_id(request_id: str) -> str:
    """The one id of a request's decision (``publication.issued`` or ``.declined``)."""
    return derived_event_id("publication.decision", request_id)


def delivery_id(request_id: str) -> str:
    """The one id of a request's outcome (``publication.sent`` or ``.failed``)."""
    return derived_event_id("publication.delivery", request_id)


def author_of(section: NoticesSection) -> Author:
    return Author(section.author, section.title, section.short_name, section.contact_name, section.contact_email)


async def issued_notices(event_log: EventLog, burst: str) -> list[Prior]:
    """The burst's issued notices, in the order of their requests, without those whose packet
    was refused (they never existed for anybody)."""
    records = await event_log.read(0, ReadFilter.of(types=[PUBLICATION_ISSUED, PUBLICATION_FAILED], stream=burst))
    failed = {r.data.get("request_id") for r in records if r.type == PUBLICATION_FAILED}
    issued = [r for r in records if r.type == PUBLICATION_ISSUED and r.data.get("request_id") not in failed]
    priors = []
    for record in issued:
        try:
            priors.append(Prior.of(record.data))
        except (KeyError, TypeError, ValueError):
            log.error("publication.issued at seq %d is malformed; not cited", record.seq)
    return sorted(priors, key=lambda p: p.request_seq)


def _as_drafted(issued: dict[str, Any], draft: Mapping[str, Any]) -> dict[str, Any] | Declined:
    """A request from an approved draft publishes exactly the packet its approver saw, or
    nothing: if the burst's notices changed since (another notice cited, a revision), the
    decision now renders other bytes and is declined — draft it again."""
    try:
        sha256 = hashlib.sha256(render_notice(issued)).hexdigest()
    except Exception as exc:
        return Declined(f"the draft's packet cannot be rendered: {exc}")
    if sha256 != draft.get("sha256"):
        return Declined(f"the burst's notices changed since draft {str(draft.get('id'))[:8]} was made (the packet "
                        "would differ from the one approved); draft it again")
    return issued


class NoticePublisher:
    """Follows notice requests and publishes each as one notice; :meth:`run` is the component."""

    def __init__(self, event_log: EventLog, state: StateStore, ingest: Ingest, section: NoticesSection,
                 instruments: Mapping[str, Instrument]):
        self.log = event_log
        self.ingest = ingest
        self.section = section
        self.instruments = instruments
        self.sent_total = 0
        self.failed_total = 0
        self.declined_total = 0
        self.follower: Follower[RecordedEvent] = Follower(
            event_log, self._handle, name=CONSUMER, checkpoint=state.checkpoint(CONSUMER),
            types=[PUBLICATION_REQUESTED], batch_size=100,
        )

    async def run(self) -> None:
        await self.follower.run()

    async def catch_up(self) -> None:
        """Publish everything requested up to the log's head (tests, tools)."""
        await self.follower.catch_up()

    async def _handle(self, batch: Batch[RecordedEvent]) -> None:
        for record in batch.records:
            if record.type == PUBLICATION_REQUESTED:
                await self.publish(record)

    async def publish(self, request: RecordedEvent) -> RecordedEvent | None:
        """Decide, submit and record the outcome of one request; returns the outcome event
        (None when declined or malformed)."""
        request_id = request.data.get("request_id")
        if not isinstance(request_id, str) or not request.data.get("burst_id"):
            log.error("notice request at seq %d has no request_id or burst_id; skipped", request.seq)
            return None
        decision = await self._decision(request, request_id)
        if decision.type != PUBLICATION_ISSUED:
            return None
        done = await self.log.find(delivery_id(request_id))
        if done is not None:
            return done
        return await self._submit(decision)

    async def _decision(self, request: RecordedEvent, request_id: str) -> RecordedEvent:
        existing = await self.log.find(decision_id(request_id))
        if existing is not None:
            return existing
        burst = str(request.data["burst_id"])
        prior = await self._prior(burst)
        outcome = decide(request.data, request_seq=request.seq, recorded_at=request.recorded_at, prior=prior,
                         stream=self.section.stream, author=author_of(self.section), instruments=self.instruments)
        if not isinstance(outcome, Declined) and isinstance(request.data.get("draft"), dict):
            outcome = _as_drafted(outcome, request.data["draft"])
        if isinstance(outcome, Declined):
            event = Event(PUBLICATION_DECLINED, {"request_id": request_id, "burst_id": burst, "request_seq": request.seq,
                                                 "reason": outcome.reason},
                          stream=burst, actor=ACTOR, id=decision_id(request_id))
        else:
            event = Event(PUBLICATION_ISSUED, outcome, stream=burst, actor=ACTOR, id=decision_id(request_id))
        [where] = await self.log.append([event])
        recorded = await self.log.get(where.seq)
        assert recorded is not None
        if where.new:
            if isinstance(outcome, Declined):
                self.declined_total += 1
                log.warning("notice request %s declined: %s", request_id, outcome.reason)
            else:
                log.info("notice %s issued for request %s", outcome["ivorn"], request_id)
        return recorded

    async def _prior(self, burst: str) -> list[Prior]:
        return await issued_notices(self.log, burst)

    async def _submit(self, decision: RecordedEvent) -> RecordedEvent:
        data = decision.data
        request_id, burst, ivorn = str(data["request_id"]), str(data["burst_id"]), str(data["ivorn"])
        common = {"request_id": request_id, "burst_id": burst, "ivorn": ivorn}
        try:
            xml = render_notice(data)
        except Exception as exc:  # a decision the renderer cannot take is a bug: record it, never crash
            log.exception("notice %s could not be rendered", ivorn)
            return await self._outcome(PUBLICATION_FAILED, common | {"reason": f"could not be rendered: {exc}", "code": "render"}, burst)
        result = await self.ingest.submit(xml, via=NOTICES_VIA, peer=NOTICES_PEER)
        if not result.acknowledged:
            log.error("notice %s refused by the ingest: %s", ivorn, result.reason)
            return await self._outcome(PUBLICATION_FAILED, common | {"reason": result.reason, "code": result.code,
                                                                   "rejected_seq": result.seq}, burst)
        if result.outcome == "duplicate":
            existing = await self.log.find(accepted_event_id(ivorn))
            if existing is None or existing.actor != NOTICES_SOURCE:
                reason = f"a packet the notice publisher did not submit holds {ivorn} (from {existing.actor if existing else '?'})"
                return await self._outcome(PUBLICATION_FAILED, common | {"reason": reason, "code": "foreign"}, burst)
        return await self._outcome(PUBLICATION_SENT, common | {"accepted_seq": result.seq, "packet_type": data.get("packet_type")},
                                   burst)

    async def _outcome(self, kind: str, data: dict[str, Any], burst: str) -> RecordedEvent:
        [where] = await self.log.append([Event(kind, data, stream=burst, actor=ACTOR, id=delivery_id(str(data["request_id"])))])
        if where.new:
            if kind == PUBLICATION_SENT:
                self.sent_total += 1
            else:
                self.failed_total += 1
        recorded = await self.log.get(where.seq)
        assert recorded is not None
        return recorded

    def health(self) -> dict[str, Any]:
        return {**self.follower.health(), "sent": self.sent_total, "failed": self.failed_total,
                "declined": self.declined_total}
