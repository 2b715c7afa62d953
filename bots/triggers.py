"""The trigger workflow: request → approval code → approval by an allowed person → delivery.

Why it is built this way:

* **State comes from the log, not memory.** A request is its ``trigger.requested`` event;
  whether it is still pending is decided by folding that request's ``trigger.*`` events read
  from the log (its burst's stream) at the moment of the decision. A restarted bot therefore
  keeps every pending request approvable, and the projection's lag never matters.
* **One decision per request, even under races.** ``approved``, ``denied`` and ``expired``
  share one deterministic event id per request (``derived_event_id("trigger.decision", id)``),
  and ``sent``/``failed`` another. The log's ``UNIQUE(id)`` makes the second of two racing
  decisions a no-op the loser can detect (``Appended.new`` is False), even across processes;
  within the process a per-request lock makes the loser wait and then see the winner.
* **Codes.** 8 symbols from ``secrets`` over an alphabet without look-alikes (typed on
  phones; case, dashes and spaces ignored). The log keeps only an HMAC-SHA256, keyed with
  ``[triggers] code_secret`` or a random key kept in ``state.sqlite``, over the code *and*
  the request's binding (request id, telescope, burst, digest of the parameters and note):
  a code matches one action only, and short codes cannot be brute-forced from the log.
* **Delivery through the log.** The approved trigger VOEvent is submitted through the ingest
  as ``local:triggers``, the only source the authority rule (:mod:`burstbus.authority`) lets
  publish in a trigger stream, so it is schema-checked, archived, and broadcast to VTP
  subscribers like any notice; then sent to the telescope's JIDs and NATS subject. Its IVORN
  (request id plus a random part) is chosen at approval and recorded in ``trigger.approved``,
  so re-delivery after a crash re-uses the same accepted packet, and nobody can know it
  earlier. A packet under that IVORN that the workflow did not submit is never sent: the
  request ends ``trigger.failed`` and the requester and approvers are told.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import sqlite3
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from burstbus.authority import TRIGGER_PEER, TRIGGER_SOURCE, TRIGGER_VIA
from burstbus.bots.acl import Acl, Grant
from burstbus.bots.config import Role, Telescope, TriggersSection
from burstbus.bots.parse import CODE_ALPHABET, CODE_LENGTH, format_code, normalise_code
from burstbus.bots.render import position
from burstbus.bots.voevent import TriggerFacts, render_trigger
from burstbus.catalogue import next_trigger_state
from burstbus.chat import Messenger, Page
from burstbus.config import resolve_secret
from burstbus.events import Event, RecordedEvent, canonical_json, derived_event_id, format_time
from burstbus.ingest import Ingest, accepted_event_id
from burstbus.payload import xml_bytes
from burstbus.state import StateStore
from burstbus.store.base import EventLog, ReadFilter
from burstbus.store.projections.triggers import (
    APPROVED,
    DENIED,
    EXPIRED,
    FAILED,
    REQUESTED,
    SENT,
    TRIGGER_TYPES,
)
from burstbus.store.read import bursts as read_burst
from burstbus.store.read import lists as read_lists
from burstbus.store.read.rows import BurstRow, TriggerRow
from burstbus.store.reader import ReadModelError
from burstbus.voevent.parse import parse_xml

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "system:triggers"
#: ``publish(subject, payload, headers)`` — NatsNode.publish, or None when NATS is off.
Publish = Callable[[str, bytes, dict[str, str]], Awaitable[object]]
#: Runs ``fn(sqlite3.Connection, *args)`` on a read-only projections connection.
Reader = Callable[..., Awaitable[Any]]

#: Wrong codes one person may type within ``FAILURE_WINDOW`` seconds before being told to wait.
MAX_FAILURES = 5
FAILURE_WINDOW = 600.0
#: How far back ``approve``/``deny`` look for the request a code belongs to (beyond that a
#: code is simply unknown: it expired long ago).
LOOKBACK = timedelta(days=1)


# -- codes ---------------------------------------------------------------------------------


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def params_digest(params: Mapping[str, Any], note: str) -> str:
    return hashlib.sha256(canonical_json({"params": dict(params), "note": note}).encode()).hexdigest()


def code_hash(key: bytes, code: str, request_id: str, telescope: str, burst_id: str, digest: str) -> str:
    """The keyed hash the log keeps instead of the code, bound to the one action it approves."""
    message = canonical_json(
        {"code": code, "request_id": request_id, "telescope": telescope, "burst_id": burst_id, "params_sha256": digest}
    )
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


_SECRETS = "CREATE TABLE IF NOT EXISTS bot_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)"


async def load_code_key(state: StateStore, configured: str) -> bytes:
    """The HMAC key: ``[triggers] code_secret`` (resolved), else a random key created once and
    kept in ``state.sqlite`` (so it survives restarts and never appears in the log)."""
    if configured:
        return resolve_secret(configured, "triggers.code_secret").encode("utf-8")
    fresh = secrets.token_hex(32)

    def get_or_create(conn: sqlite3.Connection) -> str:
        conn.execute(_SECRETS)
        conn.execute("INSERT OR IGNORE INTO bot_secrets (name, value) VALUES ('trigger_code_key', ?)", (fresh,))
        return str(conn.execute("SELECT value FROM bot_secrets WHERE name = 'trigger_code_key'").fetchone()[0])

    return bytes.fromhex(await state.transaction(get_or_create))


# -- a request, folded from the log ----------------------------------------------------------


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
        if record.type == APPROVED:
            self.decided_by, self.voevent_ivorn = d.get("approved_by"), d.get("voevent_ivorn")
        elif record.type == DENIED:
            self.decided_by, self.reason = d.get("denied_by"), d.get("reason")
        elif record.type == SENT:
            self.voevent_ivorn, self.channels = d.get("voevent_ivorn"), dict(d.get("channels") or {})
        elif record.type == FAILED:
            self.reason, self.voevent_ivorn = d.get("reason"), d.get("voevent_ivorn")

    @property
    def short(self) -> str:
        return self.request_id[:8]


def decision_id(request_id: str) -> str:
    """The one event id any decision (approved/denied/expired) on a request can have."""
    return derived_event_id("trigger.decision", request_id)


def delivery_id(request_id: str) -> str:
    return derived_event_id("trigger.delivery", request_id)


#: ``trigger.denied`` ``reason`` of a request its requester withdrew (``withdrawn: true``).
WITHDRAWN_REASON = "withdrawn by the requester"


def _not_pending(request: Request) -> str:
    """Why a request can no longer be withdrawn."""
    by = request.decided_by or "someone"
    withdrawn = request.state == "denied" and request.decided_by == request.requested_by
    what = {
        "approved": f"was already approved by {by}",
        "sent": f"was already approved by {by} and sent",
        "failed": f"was already approved by {by} (its delivery failed)",
        "denied": "was already withdrawn" if withdrawn else f"was already refused by {by}",
        "expired": "already expired unapproved",
    }.get(request.state, f"is {request.state}")
    return f"Sorry, request {request.short} ({request.telescope} on {request.burst_id}) {what}: nothing to withdraw."


@dataclass
class Outcome:
    """What a workflow step says back: the answer, pages, and how ``ba.command`` records it.

    ``followup`` runs after the command has been recorded (the delivery of an approved
    trigger), and its text is appended to the answer."""

    ok: bool
    text: str
    reason: str | None = None
    pages: list[Page] = field(default_factory=list)
    request_id: str | None = None
    followup: Callable[[], Awaitable[Outcome]] | None = None

    @staticmethod
    def refused(text: str, reason: str | None = None) -> Outcome:
        return Outcome(False, text, reason or text)


def _hhmm(moment: str) -> str:
    return f"{moment[11:16]} UTC"


def _position(params: Mapping[str, Any]) -> str:
    err = params.get("err")
    return position(float(params["ra"]), float(params["dec"]), None if err is None else float(err))


class TriggerWorkflow:
    """Request, approve, deny, expire and deliver triggers; every step an event in the log."""

    def __init__(
        self,
        log_: EventLog,
        ingest: Ingest,
        read: Reader,
        acl: Acl,
        section: TriggersSection,
        key: bytes,
        *,
        link_base: str,
        publish: Publish | None = None,
        clock: Callable[[], datetime],
    ):
        self.log = log_
        self.ingest = ingest
        self.read = read
        self.acl = acl
        self.section = section
        self.key = key
        self.link_base = link_base
        self.publish = publish
        self.clock = clock
        self.messenger: Messenger | None = None
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)

    def now(self) -> str:
        return format_time(self.clock())

    # -- reading requests from the log ---------------------------------------------------

    async def load(self, request: Request) -> Request:
        """The request's current state, folded from its events in the log."""
        records = await self.log.read(0, ReadFilter.of(types=TRIGGER_TYPES, stream=request.burst_id))
        fresh: Request | None = None
        for record in records:
            if record.data.get("request_id") != request.request_id:
                continue
            if record.type == REQUESTED:
                fresh = Request.of(record)
            elif fresh is not None:
                fresh.fold(record)
        return fresh or request

    async def find_by_code(self, code: str) -> Request | None:
        """The recent request whose keyed hash this code matches (decided or not)."""
        since = format_time(self.clock() - LOOKBACK - timedelta(minutes=self.section.code_minutes))
        records = await self.log.read(0, ReadFilter.of(types=[REQUESTED], since=since))
        for record in reversed(records):
            try:
                request = Request.of(record)
            except (KeyError, TypeError, ValueError):
                continue
            if request.matches(self.key, code):
                return request
        return None

    # -- wrong-code limiter ------------------------------------------------------------------

    def _blocked(self, jid: str) -> bool:
        failures = self._failures[jid]
        horizon = time.monotonic() - FAILURE_WINDOW
        while failures and failures[0] < horizon:
            failures.popleft()
        return len(failures) >= MAX_FAILURES

    def _failed(self, jid: str) -> None:
        self._failures[jid].append(time.monotonic())

    async def _by_code(self, grant: Grant, typed: str, verb: str) -> Request | Outcome:
        assert grant.jid is not None
        if self._blocked(grant.jid):
            return Outcome.refused(
                f"Sorry, too many wrong codes from you in the last {FAILURE_WINDOW / 60:.0f} minutes; "
                "please wait a few minutes and copy the code from the page you received.",
                "too many wrong codes",
            )
        code = normalise_code(typed)
        if code is None:
            self._failed(grant.jid)
            return Outcome.refused(
                f"Sorry, that is not an approval code: codes are {CODE_LENGTH} letters and digits like "
                f"{format_code('K7QXM2PD')}. Usage: {verb} CODE",
                "not a code",
            )
        request = await self.find_by_code(code)
        if request is None:
            self._failed(grant.jid)
            return Outcome.refused(
                "Sorry, no trigger request has that code. Check it against the page you received "
                f"(codes are single use and expire after {self.section.code_minutes} minutes).",
                "no request with that code",
            )
        return request

    # -- request ---------------------------------------------------------------------------

    async def request(self, grant: Grant, telescope_name: str, burst_typed: str, note: str) -> Outcome:
        assert grant.jid is not None
        scope = self.section.telescope(telescope_name)
        if scope is None:
            known = ", ".join(t.name for t in self.section.telescopes) or "none is configured"
            return Outcome.refused(f"Sorry, I know no telescope called {telescope_name!r} (known: {known}).", "unknown telescope")
        if not grant.may_act_on(scope.name):
            mine = ", ".join(grant.telescope_names(self.section)) or "none"
            return Outcome.refused(
                f"Sorry, you may not request {scope.name} triggers (your telescopes: {mine}). An admin can change [acl].",
                f"not allowed on {scope.name}",
            )
        view = await self.read(_burst_for_trigger, burst_typed)
        if view is None:
            return Outcome.refused(
                f"Sorry, I know no burst called {burst_typed!r}. 'bursts' lists the recent ones.", "unknown burst"
            )
        burst, citations = view
        if burst.ra is None or burst.dec is None:
            return Outcome.refused(
                f"Sorry, {burst.burst_id} has no position yet, so there is nothing to point {scope.name} at.",
                "burst has no position",
            )
        approvers = [j for j in self.acl.approvers(scope.name) if not (scope.two_person and j == grant.jid)]
        if not approvers:
            return Outcome.refused(
                f"Sorry, nobody {'else ' if scope.two_person else ''}may approve {scope.name} triggers, "
                "so the request could never be approved. An admin can add an approver in [acl].",
                "no approver",
            )
        now = self.clock()
        request_id = uuid.uuid4().hex
        params = {
            "ra": burst.ra, "dec": burst.dec, "err": burst.err, "position_ivorn": burst.best_ivorn,
            "event_time": burst.event_time,
        }
        code = new_code()
        digest = params_digest(params, note)
        expires_at = format_time(now + timedelta(minutes=self.section.code_minutes))
        data = {
            "request_id": request_id, "telescope": scope.name, "burst_id": burst.burst_id,
            "requested_by": grant.jid, "note": note, "params": params,
            "code_sha256": code_hash(self.key, code, request_id, scope.name, burst.burst_id, digest),
            "expires_at": expires_at, "two_person": scope.two_person, "approvers": approvers,
        }
        await self.log.append([Event(
            type=REQUESTED, data=data, stream=burst.burst_id, actor=grant.actor,
            id=derived_event_id(REQUESTED, request_id), occurred_at=format_time(now),
        )])
        shown = format_code(code)
        link = f"{self.link_base}/bursts/{burst.burst_id}"
        about = f"{scope.name} on {burst.burst_id}" + (f" ({note})" if note else "")
        page = (
            f"Trigger request from {grant.jid}: {about}. {_position(params)}. "
            f"To approve: approve {shown} {scope.name} — to refuse: deny {shown} REASON. "
            f"Code valid until {_hhmm(expires_at)}. {link}"
        )
        pages = [Page(jid, page) for jid in approvers]
        second = " (someone other than you must approve)" if scope.two_person else ""
        names = ", ".join(approvers)
        text = (
            f"Trigger request {request_id[:8]} recorded: {about}, {_position(params)}. "
            f"Approval code sent to {names}{second}; it expires at {_hhmm(expires_at)}."
        )
        log.info("trigger %s requested by %s: %s", request_id, grant.jid, about)
        return Outcome(True, text, pages=pages, request_id=request_id)

    # -- approve ---------------------------------------------------------------------------

    async def approve(self, grant: Grant, typed_code: str, telescope_named: str | None) -> Outcome:
        assert grant.jid is not None
        found = await self._by_code(grant, typed_code, "approve")
        if isinstance(found, Outcome):
            return found
        request = found
        if telescope_named is not None and telescope_named.casefold() != request.telescope.casefold():
            return Outcome.refused(
                f"Sorry, that code approves a {request.telescope} trigger, not {telescope_named}. Nothing was sent.",
                f"code is for {request.telescope}, not {telescope_named}",
            )
        scope = self.section.telescope(request.telescope)
        if scope is None:
            return Outcome.refused(f"Sorry, {request.telescope} is no longer configured, so it cannot be triggered.", "telescope gone")
        if grant.role < Role.APPROVER or not grant.may_act_on(scope.name):
            return Outcome.refused(
                f"Sorry, you may not approve {scope.name} triggers. The approvers were paged: "
                f"{', '.join(request.approvers) or 'none'}.",
                f"not an approver for {scope.name}",
            )
        if (request.two_person or scope.two_person) and grant.jid == request.requested_by:
            return Outcome.refused(
                f"Sorry, {scope.name} needs two people: someone other than you must approve your own request.",
                "self-approval on a two-person telescope",
            )
        async with self._locks[request.request_id]:
            request = await self.load(request)
            if request.state != "requested":
                return Outcome.refused(self._already(request), f"code already used ({request.state})")
            now = self.clock()
            if format_time(now) >= request.expires_at:
                await self._expire(request, now)
                return Outcome.refused(
                    f"Sorry, that code expired at {_hhmm(request.expires_at)}. Ask for a new request: "
                    f"trigger {request.telescope} {request.burst_id}",
                    "code expired",
                )
            ivorn = self._new_ivorn(request)
            appended = await self.log.append([Event(
                type=APPROVED, id=decision_id(request.request_id), stream=request.burst_id,
                actor=grant.actor, occurred_at=format_time(now),
                data=self._common(request) | {
                    "approved_by": grant.jid, "code_sha256": request.code_sha256, "voevent_ivorn": ivorn,
                },
            )])
            if not appended[0].new:  # another process decided first
                request = await self.load(request)
                return Outcome.refused(self._already(request), f"code already used ({request.state})")
        request.state, request.decided_by, request.voevent_ivorn = "approved", grant.jid, ivorn
        log.info("trigger %s approved by %s", request.request_id, grant.jid)
        approver = grant.jid

        async def deliver() -> Outcome:
            return await self.deliver_approved(request, approver)

        return Outcome(
            True, f"Approved: {request.telescope} on {request.burst_id} (request {request.short}).",
            request_id=request.request_id, followup=deliver,
        )

    def _new_ivorn(self, request: Request) -> str:
        """The trigger packet's IVORN, chosen at approval and recorded in ``trigger.approved``.

        It carries a random part, so nobody can know it before the approval is in the log (the
        request id alone was public); forging it would not help anyway: only the workflow may
        publish in a trigger stream (:mod:`burstbus.authority`), and :meth:`_deliver` sends
        only a packet the workflow itself submitted."""
        return f"{self._stream(request)}#{request.request_id}-{secrets.token_hex(6)}"

    def _stream(self, request: Request) -> str:
        scope = self.section.telescope(request.telescope)
        return scope.stream(self.section.authority) if scope else f"ivo://{self.section.authority}/trigger"

    def _already(self, request: Request) -> str:
        by = request.decided_by or "someone"
        what = {
            "approved": f"was approved by {by}",
            "sent": f"was approved by {by} and sent",
            "failed": f"was approved by {by} but could not be delivered",
            "denied": "was withdrawn by its requester" if request.decided_by == request.requested_by and request.reason == WITHDRAWN_REASON
            else f"was refused by {by}",
            "expired": "expired unapproved",
        }.get(request.state, f"is {request.state}")
        return (
            f"Sorry, that code was already used: the {request.telescope} request on {request.burst_id} "
            f"{what}. Codes work once."
        )

    @staticmethod
    def _common(request: Request) -> dict[str, Any]:
        return {"request_id": request.request_id, "telescope": request.telescope, "burst_id": request.burst_id}

    # -- deny ------------------------------------------------------------------------------

    async def deny(self, grant: Grant, typed_code: str, reason: str) -> Outcome:
        assert grant.jid is not None
        found = await self._by_code(grant, typed_code, "deny")
        if isinstance(found, Outcome):
            return found
        request = found
        own = grant.jid == request.requested_by
        if not own and (grant.role < Role.APPROVER or not grant.may_act_on(request.telescope)):
            return Outcome.refused(f"Sorry, you may not refuse {request.telescope} triggers.", f"not an approver for {request.telescope}")
        async with self._locks[request.request_id]:
            request = await self.load(request)
            if request.state != "requested":
                return Outcome.refused(self._already(request), f"code already used ({request.state})")
            appended = await self.log.append([Event(
                type=DENIED, id=decision_id(request.request_id), stream=request.burst_id,
                actor=grant.actor, occurred_at=self.now(),
                data=self._common(request) | {"denied_by": grant.jid, "reason": reason},
            )])
            if not appended[0].new:
                request = await self.load(request)
                return Outcome.refused(self._already(request), f"code already used ({request.state})")
        pages = [] if own else [Page(request.requested_by, (
            f"{grant.jid} refused your {request.telescope} trigger on {request.burst_id}"
            + (f": {reason}" if reason else ".")
        ))]
        return Outcome(True, f"Refused: {request.telescope} on {request.burst_id} (request {request.short}). Nothing was sent.",
                       pages=pages, request_id=request.request_id)

    # -- withdraw (the requester's own request) -----------------------------------------

    async def withdraw(self, grant: Grant, typed: str | None) -> Outcome:
        """The requester takes back their own pending request (``typed``: its short id, or None
        when they have exactly one waiting).

        Recorded as the request's one decision: ``trigger.denied`` with ``withdrawn: true`` and
        ``denied_by`` = the requester, under :func:`decision_id` — so a withdrawal racing an
        approval or the expiry ends as exactly one of them, and every reader (the projection,
        :meth:`Request.fold`, the API) already treats it as final. The approvers who were
        paged the code are told it is void."""
        assert grant.jid is not None
        found = await self._withdrawable(grant.jid, typed)
        if isinstance(found, Outcome):
            return found
        request = found
        async with self._locks[request.request_id]:
            request = await self.load(request)
            if request.state != "requested":
                return Outcome.refused(_not_pending(request), f"request already {request.state}")
            now = self.clock()
            if format_time(now) >= request.expires_at:
                await self._expire(request, now)
                return Outcome.refused(
                    f"Request {request.short} expired at {_hhmm(request.expires_at)} without approval: nothing "
                    "was sent and there is nothing to withdraw.", "request expired",
                )
            appended = await self.log.append([Event(
                type=DENIED, id=decision_id(request.request_id), stream=request.burst_id,
                actor=grant.actor, occurred_at=format_time(now),
                data=self._common(request) | {"denied_by": grant.jid, "reason": WITHDRAWN_REASON, "withdrawn": True},
            )])
            if not appended[0].new:  # another process decided first
                request = await self.load(request)
                return Outcome.refused(_not_pending(request), f"request already {request.state}")
        log.info("trigger %s withdrawn by its requester %s", request.request_id, grant.jid)
        about = f"{request.telescope} trigger request on {request.burst_id} (request {request.short})"
        pages = [
            Page(jid, f"{grant.jid} withdrew the {about}: the approval code you were sent for it is void.")
            for jid in request.approvers
        ]
        told = f" I told {', '.join(request.approvers)}." if request.approvers else ""
        return Outcome(True, f"Withdrawn: your {about}. Nothing was sent.{told}", pages=pages,
                       request_id=request.request_id)

    async def _withdrawable(self, jid: str, typed: str | None) -> Request | Outcome:
        """The request ``jid`` asks to withdraw, or the refusal saying why there is none."""
        since = format_time(self.clock() - LOOKBACK - timedelta(minutes=self.section.code_minutes))
        requests: list[Request] = []
        for record in await self.log.read(0, ReadFilter.of(types=[REQUESTED], since=since)):
            with contextlib.suppress(KeyError, TypeError, ValueError):
                requests.append(Request.of(record))
        if typed is not None:
            wanted = typed.strip().lower()
            if not 4 <= len(wanted) <= 32 or not set(wanted) <= set("0123456789abcdef"):
                return Outcome.refused(
                    "Sorry, that is not a request id: it is the 8 characters after 'Trigger request' in my "
                    "answer to 'trigger' ('triggers' lists them). Usage: withdraw [REQUEST]", "not a request id",
                )
            matches = [r for r in requests if r.request_id.startswith(wanted)]
            if not matches:
                return Outcome.refused("Sorry, no recent trigger request has that id ('triggers' lists them).",
                                       "no request with that id")
            if len(matches) > 1:
                return Outcome.refused(
                    "Sorry, several requests start like that: " + ", ".join(r.request_id[:12] for r in matches)
                    + ". Give more of the id.", "ambiguous request id",
                )
            request = matches[0]
            if request.requested_by != jid:
                return Outcome.refused(
                    f"Sorry, only {request.requested_by}, who asked for it, can withdraw request {request.short}; "
                    "an approver can refuse it with 'deny CODE'.", "not the requester",
                )
            return request
        now = self.now()
        pending = []
        for request in requests:
            if request.requested_by == jid:
                current = await self.load(request)
                if current.state == "requested" and now < current.expires_at:
                    pending.append(current)
        if not pending:
            return Outcome.refused("You have no trigger request waiting for approval.", "nothing to withdraw")
        if len(pending) > 1:
            listed = ", ".join(f"{r.short} ({r.telescope} on {r.burst_id})" for r in pending)
            return Outcome.refused(
                f"You have {len(pending)} requests waiting: {listed}. Say 'withdraw REQUEST' with one of them.",
                "several requests pending",
            )
        return pending[0]

    # -- expiry ----------------------------------------------------------------------------

    async def _expire(self, request: Request, now: datetime) -> bool:
        appended = await self.log.append([Event(
            type=EXPIRED, id=decision_id(request.request_id), stream=request.burst_id, actor=SYSTEM_ACTOR,
            occurred_at=format_time(now), data=self._common(request) | {"expired_at": format_time(now)},
        )])
        if appended[0].new:
            log.info("trigger %s expired unapproved", request.request_id)
        return appended[0].new

    async def expire_due(self) -> int:
        """Record ``trigger.expired`` for every pending request past its expiry; returns how many."""
        now = self.clock()
        due = await self.read(read_lists.due_for_expiry, format_time(now))
        expired = 0
        for row in due:
            async with self._locks[row.request_id]:
                request = await self.load(_stub(row))
                if request.state != "requested" or format_time(now) < request.expires_at:
                    continue
                if await self._expire(request, now):
                    expired += 1
                    await self._tell(request.requested_by, (
                        f"Your {request.telescope} trigger request on {request.burst_id} expired at "
                        f"{_hhmm(request.expires_at)} without approval. Nothing was sent."
                    ))
        return expired

    async def resume_undelivered(self) -> int:
        """Deliver approved requests that have neither ``sent`` nor ``failed`` (a crash in between)."""
        rows = await self.read(read_lists.undelivered)
        done = 0
        for row in rows:
            request = await self.load(_stub(row))
            if request.state == "approved" and request.decided_by:
                outcome = await self.deliver_approved(request, request.decided_by)
                for page in outcome.pages:  # nobody is waiting for a reply here: tell them directly
                    await self._tell(page.to, page.text)
                done += 1
        return done

    async def run_expiry(self, interval: float | None = None) -> None:
        """Forever: finish interrupted deliveries once, then expire due requests every ``interval`` s."""
        every = interval if interval is not None else min(15.0, self.section.code_minutes * 6.0)
        with contextlib.suppress(ReadModelError):  # projections not readable yet: next round
            await self.resume_undelivered()
        while True:
            try:
                await self.expire_due()
            except ReadModelError as exc:
                log.warning("trigger expiry could not read the projections: %s", exc)
            await asyncio.sleep(every)

    async def _tell(self, jid: str, text: str) -> None:
        """A best-effort direct message outside a reply (expiry); the log has the fact anyway."""
        if self.messenger is None:
            return
        try:
            await asyncio.wait_for(self.messenger.send_direct(jid, text), self.section.delivery_timeout)
        except Exception as exc:  # never let a chat hiccup stop the expiry loop
            log.warning("could not tell %s: %s", jid, exc)

    # -- delivery --------------------------------------------------------------------------

    async def deliver_approved(self, request: Request, approver: str) -> Outcome:
        """Render, submit through the ingest, send to every channel, record sent or failed."""
        async with self._locks[request.request_id]:
            request = await self.load(request)
            if request.state != "approved":
                return Outcome(request.state == "sent", f"Already {request.state}.", request_id=request.request_id)
            return await self._deliver(request, approver)

    async def _deliver(self, request: Request, approver: str) -> Outcome:
        scope = self.section.telescope(request.telescope)
        stream = self._stream(request)
        # Requests approved before the IVORN was recorded in trigger.approved used the request id.
        ivorn = request.voevent_ivorn or f"{stream}#{request.request_id}"
        try:
            xml = await self._packet(request, approver, ivorn, scope)
        except ForeignPacket as exc:
            log.error("trigger %s NOT delivered: %s", request.request_id, exc)
            return await self._record_failure(request, str(exc), None, {})
        except Exception as exc:
            log.exception("trigger %s could not be rendered", request.request_id)
            return await self._record_failure(request, f"the trigger VOEvent could not be rendered: {exc}", None, {})
        result = await self.ingest.submit(xml, via=TRIGGER_VIA, peer=TRIGGER_PEER)
        if not result.acknowledged:
            return await self._record_failure(request, f"the trigger VOEvent was refused by the ingest: {result.reason}", None, {})
        if result.outcome == "duplicate":  # a packet under our IVORN was there first: is it ours?
            try:
                await self._existing_own_packet(request, ivorn)
            except ForeignPacket as exc:
                log.error("trigger %s NOT delivered: %s", request.request_id, exc)
                return await self._record_failure(request, str(exc), None, {})
        channels: dict[str, Any] = {"vtp": {"ivorn": ivorn, "stream": stream, "seq": result.seq}}
        problems: list[str] = []
        summary = (
            f"TRIGGER {request.telescope}: {request.burst_id} {_position(request.params)} "
            f"(request {request.short}, by {request.requested_by}, approved by {approver}) {ivorn}"
        )
        timeout = self.section.delivery_timeout
        jids = list(scope.jids) if scope else []
        if jids:
            delivered: list[str] = []
            for jid in jids:
                if self.messenger is None:
                    problems.append(f"XMPP to {jid}: the XMPP bridge is not running")
                    continue
                try:
                    await asyncio.wait_for(self.messenger.send_voevent(jid, xml, summary), timeout)
                    delivered.append(jid)
                except Exception as exc:
                    problems.append(f"XMPP to {jid}: {type(exc).__name__}: {exc}")
            channels["xmpp"] = delivered
        if scope and scope.nats_subject:
            if self.publish is None:
                problems.append(f"NATS {scope.nats_subject}: NATS is off")
            else:
                headers = {
                    "Nats-Msg-Id": f"trigger:{request.request_id}", "Burstbus-Type": "trigger",
                    "Burstbus-Trigger-Request": request.request_id, "Burstbus-Ivorn": ivorn,
                }
                try:
                    await asyncio.wait_for(self.publish(scope.nats_subject, xml, headers), timeout)
                    channels["nats"] = scope.nats_subject
                except Exception as exc:
                    problems.append(f"NATS {scope.nats_subject}: {type(exc).__name__}: {exc}")
        if problems:
            return await self._record_failure(request, "; ".join(problems), ivorn, channels)
        appended = await self.log.append([Event(
            type=SENT, id=delivery_id(request.request_id), stream=request.burst_id, actor=SYSTEM_ACTOR,
            occurred_at=self.now(), data=self._common(request) | {"voevent_ivorn": ivorn, "channels": channels},
        )])
        if not appended[0].new:
            request = await self.load(request)
            return Outcome(request.state == "sent", f"Already {request.state}.", request_id=request.request_id)
        where = ["VTP"] + ([f"XMPP {', '.join(channels['xmpp'])}"] if channels.get("xmpp") else [])
        where += [f"NATS {channels['nats']}"] if "nats" in channels else []
        log.info("trigger %s sent: %s", request.request_id, ivorn)
        text = f"Sent to {request.telescope} via {'; '.join(where)}: {ivorn}"
        pages = [] if approver == request.requested_by else [Page(
            request.requested_by,
            f"{approver} approved your {request.telescope} trigger on {request.burst_id}; sent ({ivorn}).",
        )]
        return Outcome(True, text, pages=pages, request_id=request.request_id)

    async def _packet(self, request: Request, approver: str, ivorn: str, scope: Telescope | None) -> bytes:
        """The trigger VOEvent: the one already accepted under this IVORN (re-delivery after a
        crash), else freshly rendered (and examined off the loop before anything is sent)."""
        existing = await self._existing_own_packet(request, ivorn)
        if existing is not None:
            return existing
        citations = await self.read(read_burst.notice_ivorns, request.burst_id)
        params = request.params
        now = self.now()
        facts = TriggerFacts(
            ivorn=ivorn, author_ivorn=f"ivo://{self.section.authority}/burstbus", author_name=self.section.author_name,
            authored=now, telescope=request.telescope, burst_id=request.burst_id, request_id=request.request_id,
            requested_by=request.requested_by, approved_by=approver, note=request.note,
            ra=float(params["ra"]), dec=float(params["dec"]), err=None if params.get("err") is None else float(params["err"]),
            event_time=str(params.get("event_time") or now), position_ivorn=params.get("position_ivorn"),
            citations=citations,
        )
        return render_trigger(facts, scope.template if scope else "")

    async def _existing_own_packet(self, request: Request, ivorn: str) -> bytes | None:
        """The packet already accepted under ``ivorn`` if the workflow submitted it for this
        request; None if there is none; :class:`ForeignPacket` if somebody else's is there."""
        existing = await self.log.find(accepted_event_id(ivorn))
        if existing is None:
            return None
        if existing.actor != TRIGGER_SOURCE or _request_id_param(existing.data) != request.request_id:
            raise ForeignPacket(
                f"a packet this workflow did not submit holds the trigger IVORN {ivorn} "
                f"(log seq {existing.seq}, from {existing.actor}); it was not sent to {request.telescope}"
            )
        return xml_bytes(existing.data)

    async def _record_failure(self, request: Request, reason: str, ivorn: str | None, channels: Mapping[str, Any]) -> Outcome:
        log.warning("trigger %s failed: %s", request.request_id, reason)
        await self.log.append([Event(
            type=FAILED, id=delivery_id(request.request_id), stream=request.burst_id, actor=SYSTEM_ACTOR,
            occurred_at=self.now(), data=self._common(request) | {"reason": reason, "voevent_ivorn": ivorn, "channels": dict(channels)},
        )])
        told = [request.requested_by, *request.approvers]
        pages = [
            Page(jid, f"The {request.telescope} trigger on {request.burst_id} (request {request.short}) was approved "
                      f"but could not be delivered: {reason}")
            for jid in dict.fromkeys(told) if jid != request.decided_by
        ]
        return Outcome(False, f"Sorry, delivery failed: {reason}", reason=reason, pages=pages, request_id=request.request_id)


class ForeignPacket(Exception):
    """A packet under a trigger IVORN that the workflow did not submit: never delivered."""


def _request_id_param(data: Mapping[str, Any]) -> str | None:
    """The ``RequestId`` Param of a stored trigger packet (the XML, parsed safely)."""
    try:
        root = parse_xml(xml_bytes(data), 1 << 22)
    except Exception:
        return None
    for param in root.iter("Param"):
        if param.get("name") == "RequestId":
            return param.get("value")
    return None


def _stub(row: TriggerRow) -> Request:
    """A placeholder for :meth:`TriggerWorkflow.load` (which re-reads everything from the log)."""
    return Request(row.request_id, row.telescope, row.burst_id, row.requested_by, row.note or "", row.params, "",
                   row.expires_at or "", row.two_person, [], 0, state="unknown")


def _burst_for_trigger(conn: sqlite3.Connection, typed: str) -> tuple[BurstRow, list[str]] | None:
    burst_id = read_burst.resolve_burst_id(conn, typed)
    if burst_id is None:
        return None
    row = read_burst.burst(conn, burst_id)
    return (row, read_burst.notice_ivorns(conn, burst_id)) if row else None

