"""The Notice Creator's core: one person drafts a notice, a second one publishes it.

The same two-person rule and event trail as triggers: ``publication.drafted`` (who, the request,
and the exact packet it would publish now: its bytes, IVORN and SHA-256), then
``publication.draft_approved`` by somebody else — one decision per draft under one derived id,
so two racing approvals end as one — then an ordinary ``publication.requested`` (request id
``draft:<draft id>``) that the publisher turns into the notice. The packet published is the
one the approver saw, byte for byte, or none: if the burst's notices changed in between, the
publisher declines the request (``publication.declined``) and the draft must be made again.

Identity is the person's, established by the door they came through: the bot's server-stamped
bare JID (``retract BURST reason``, ``publish DRAFT``), or the web's signed-in person (the
Notice Creator at ``/notices/new`` and ``/notices/drafts/…``, ``POST /api/notices/drafts``).
Either way ``by`` is the bare JID, so a draft made in chat cannot be approved on the web by the
same person either.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from burstbus.catalogue import (
    PUBLICATION_DECLINED,
    PUBLICATION_DRAFT_APPROVED,
    PUBLICATION_DRAFTED,
    PUBLICATION_FAILED,
    PUBLICATION_ISSUED,
    PUBLICATION_REQUESTED,
    PUBLICATION_SENT,
)
from burstbus.component import PortKey
from burstbus.events import Event, canonical_json, derived_event_id, format_time
from burstbus.store.base import EventLog, ReadFilter

from .config import NoticesSection
from .decide import Declined, decide
from .instruments import Instrument
from .publisher import author_of, decision_id, delivery_id, issued_notices
from .render import render_notice
from .request import InvalidNoticeRequest, parse_notice_request, requested_event_id

#: How far back a draft id is looked for.
LOOKBACK = timedelta(days=2)


def draft_decision_id(draft_id: str) -> str:
    """The one id of a draft's decision (approved)."""
    return derived_event_id("publication.draft_decision", draft_id)


@dataclass(frozen=True)
class DraftResult:
    """What a door tells the person: ``ok``, the text, the draft (or request) concerned."""

    ok: bool
    text: str
    draft_id: str | None = None
    drafted_by: str | None = None
    xml: bytes | None = None
    ivorn: str | None = None


async def find_draft(event_log: EventLog, typed: str, now: datetime) -> Mapping[str, Any] | None:
    """The draft (``publication.drafted`` data) of the last :data:`LOOKBACK` whose id starts
    with ``typed`` — 4 to 32 hex digits, matching one draft only — or None."""
    wanted = typed.strip().lower()
    if not 4 <= len(wanted) <= 32 or not set(wanted) <= set("0123456789abcdef"):
        return None
    since = format_time(now - LOOKBACK)
    found = [r.data for r in await event_log.read(0, ReadFilter.of(types=[PUBLICATION_DRAFTED], since=since))
             if str(r.data.get("draft_id", "")).startswith(wanted)]
    return found[0] if len(found) == 1 else None


def draft_request_id(draft_id: str) -> str:
    """The request id a published draft is handed to the publisher under."""
    return f"draft:{draft_id}"


#: A draft's state, from its events: waiting for a second person, then the publisher's steps.
_STATES = {PUBLICATION_DRAFT_APPROVED: "approved", PUBLICATION_ISSUED: "issued", PUBLICATION_DECLINED: "declined",
           PUBLICATION_SENT: "sent", PUBLICATION_FAILED: "failed"}


@dataclass(frozen=True)
class DraftStatus:
    """What became of a draft: ``state`` is ``drafted`` (waiting for a second person),
    ``approved`` (handed to the publisher), ``issued``/``declined`` (the publisher's decision:
    declined when the burst's notices changed since the draft), ``sent``/``failed``."""

    draft: Mapping[str, Any]
    state: str
    approved_by: str | None
    reason: str | None
    #: (type, seq, recorded_at) of each event so far, in order.
    steps: tuple[tuple[str, int, str], ...]


async def draft_status(event_log: EventLog, draft: Mapping[str, Any]) -> DraftStatus:
    """The draft's state, read by the derived ids of its later events (one lookup each)."""
    request_id = draft_request_id(str(draft["draft_id"]))
    found = [await event_log.find(i) for i in (draft_decision_id(str(draft["draft_id"])), decision_id(request_id),
                                               delivery_id(request_id))]
    later = [e for e in found if e is not None]
    drafted = await event_log.find(derived_event_id(PUBLICATION_DRAFTED, str(draft["draft_id"])))
    steps = tuple((e.type, e.seq, e.recorded_at) for e in ([drafted] if drafted is not None else []) + later)
    approved = found[0]
    state = _STATES.get(later[-1].type, "drafted") if later else "drafted"
    return DraftStatus(draft, state, str(approved.data.get("approved_by")) if approved is not None else None,
                       str(later[-1].data["reason"]) if later and later[-1].data.get("reason") else None, steps)


async def recent_drafts(event_log: EventLog, now: datetime, limit: int = 100) -> list[Mapping[str, Any]]:
    """The drafts of the last :data:`LOOKBACK`, newest first (at most ``limit``)."""
    since = format_time(now - LOOKBACK)
    found = [r.data for r in await event_log.read(0, ReadFilter.of(types=[PUBLICATION_DRAFTED], since=since))]
    return found[::-1][:limit]


class NoticeDrafts:
    """Draft and publish notices with two people; state from the log alone."""

    def __init__(self, event_log: EventLog, section: NoticesSection, instruments: Mapping[str, Instrument],
                 clock: Callable[[], datetime]):
        self.log = event_log
        self.section = section
        self.instruments = instruments
        self.clock = clock

    async def draft(self, by: str, actor: str, value: Mapping[str, Any]) -> DraftResult:
        """Record a draft of the notice ``value`` (a request, as NATS takes it) by ``by``."""
        now = format_time(self.clock())
        try:
            request = parse_notice_request({**value, "authored": value.get("authored") or now}, self.instruments)
        except InvalidNoticeRequest as exc:
            return DraftResult(False, f"Sorry, that notice cannot be made: {exc.reason}")
        prior = await issued_notices(self.log, request.burst_id)
        head = (await self.log.head()).seq
        decided = decide(request.data, request_seq=head + 1, recorded_at=now, prior=prior, stream=self.section.stream,
                         author=author_of(self.section), instruments=self.instruments)
        if isinstance(decided, Declined):
            return DraftResult(False, f"Sorry, no such notice can be published: {decided.reason}.")
        xml = render_notice(decided)
        draft_id = uuid.uuid4().hex
        data = {
            "draft_id": draft_id, "burst_id": request.burst_id, "drafted_by": by, "request": request.data,
            "ivorn": decided["ivorn"], "citations": decided["citations"], "sha256": hashlib.sha256(xml).hexdigest(),
            "xml": xml.decode("utf-8"),
        }
        await self.log.append([Event(PUBLICATION_DRAFTED, data, stream=request.burst_id, actor=actor,
                                     id=derived_event_id(PUBLICATION_DRAFTED, draft_id), occurred_at=now)])
        return DraftResult(True, "drafted", draft_id, by, xml, str(decided["ivorn"]))

    async def find(self, typed: str) -> Mapping[str, Any] | None:
        """The recent draft whose id starts with ``typed`` (one only), or None."""
        return await find_draft(self.log, typed, self.clock())

    async def publish(self, by: str, actor: str, typed: str) -> DraftResult:
        """Approve draft ``typed`` (its id or a prefix) as ``by`` and hand it to the publisher:
        never the drafter's own, once per draft."""
        draft = await self.find(typed)
        if draft is None:
            return DraftResult(False, f"Sorry, I know no recent draft {typed!r} (the id from the draft's page).")
        draft_id, burst = str(draft["draft_id"]), str(draft["burst_id"])
        if by == draft.get("drafted_by"):
            return DraftResult(False, "Sorry, a notice needs two people: someone other than you must publish your draft.",
                               draft_id, by)
        decision = await self.log.find(draft_decision_id(draft_id))
        if decision is not None:
            return DraftResult(False, f"Sorry, that draft was already published by {decision.data.get('approved_by')}.",
                               draft_id, str(draft.get("drafted_by")))
        now = format_time(self.clock())
        [where] = await self.log.append([Event(
            PUBLICATION_DRAFT_APPROVED, {"draft_id": draft_id, "burst_id": burst, "approved_by": by,
                                         "drafted_by": draft.get("drafted_by"), "sha256": draft.get("sha256")},
            stream=burst, actor=actor, id=draft_decision_id(draft_id), occurred_at=now)])
        if not where.new:  # somebody else approved it first
            won = await self.log.get(where.seq)
            return DraftResult(False, f"Sorry, that draft was already published by {won.data.get('approved_by') if won else '?'}.",
                               draft_id, str(draft.get("drafted_by")))
        request_id = draft_request_id(draft_id)
        request = dict(draft["request"]) | {"request_id": request_id, "draft": {"id": draft_id, "sha256": draft["sha256"]}}
        request["digest"] = hashlib.sha256(canonical_json(request).encode("utf-8")).hexdigest()
        await self.log.append([Event(PUBLICATION_REQUESTED, request, stream=burst, actor=actor,
                                     id=requested_event_id(request_id), occurred_at=now)])
        return DraftResult(True, "published", draft_id, str(draft.get("drafted_by")), ivorn=str(draft.get("ivorn")))


#: The drafts, for the doors people use (offered when ``[notices]`` is on).
NOTICE_DRAFTS: PortKey[NoticeDrafts] = PortKey("notices.drafts", "draft and publish notices with two people")
