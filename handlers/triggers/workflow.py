"""The trigger workflow's decisions: request → approval code → approval by an allowed person →
delivery; refusal, withdrawal and expiry. Every step is an event in the log.

Why this module only decides: who may do what comes from :mod:`burstbus.acl`, the state of a
request from the log (:mod:`.request`), the codes from :mod:`.codes`, the wording from
:mod:`.texts`, and the delivery from :mod:`.delivery`. What is left here is the order of the
checks and the one append each step makes.

One decision per request, even under races: decisions share one deterministic event id per
request (:func:`~.request.decision_id`), so the second of two racing decisions is a no-op the
loser detects, even across processes; within the process a per-request lock makes the loser
wait and then see the winner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sqlite3
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

from burstbus.acl import Acl, Grant, Role
from burstbus.catalogue import TRIGGER_APPROVED, TRIGGER_DENIED, TRIGGER_EXPIRED, TRIGGER_REQUESTED
from burstbus.chat import Messenger, Page
from burstbus.events import Event, derived_event_id, format_time
from burstbus.ingest import Ingest
from burstbus.store.base import EventLog
from burstbus.store.read import bursts as read_burst
from burstbus.store.read import lists as read_lists
from burstbus.store.read.rows import BurstRow
from burstbus.store.reader import ReadModelError

from . import texts
from .codes import WrongCodes, code_hash, new_code, params_digest
from .config import TriggersSection
from .delivery import SYSTEM_ACTOR, Delivery, Publish, Reader, already_delivered, trigger_stream
from .outcome import Outcome
from .request import WITHDRAWN_REASON, Request, Requests, decision_id

log = logging.getLogger(__name__)


class TriggerWorkflow:
    """Request, approve, deny, withdraw, expire and deliver triggers."""

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
        self.read = read
        self.acl = acl
        self.section = section
        self.key = key
        self.link_base = link_base
        self.clock = clock
        self.requests = Requests(log_, clock, section.code_minutes)
        self.delivery = Delivery(log_, self.requests, ingest, read, section, clock=clock, publish=publish)
        self.wrong_codes = WrongCodes()
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @property
    def messenger(self) -> Messenger | None:
        """Where pages, direct messages and the telescopes' VOEvents go (None: no chat)."""
        return self.delivery.messenger

    @messenger.setter
    def messenger(self, value: Messenger | None) -> None:
        self.delivery.messenger = value

    def now(self) -> str:
        return format_time(self.clock())

    async def load(self, request: Request) -> Request:
        return await self.requests.load(request)

    async def find_by_code(self, code: str) -> Request | None:
        return await self.requests.by_code(self.key, code)

    async def _by_code(self, grant: Grant, code: str | None, verb: str) -> Request | Outcome:
        """The request ``code`` (already folded by the bot's parser; None: what was typed cannot
        be a code) belongs to, or the refusal; wrong codes count against the person."""
        assert grant.jid is not None
        if self.wrong_codes.blocked(grant.jid):
            return Outcome.refused(texts.too_many_wrong_codes(), "too many wrong codes")
        if code is None:
            self.wrong_codes.failed(grant.jid)
            return Outcome.refused(texts.not_a_code(verb), "not a code")
        request = await self.find_by_code(code)
        if request is None:
            self.wrong_codes.failed(grant.jid)
            return Outcome.refused(texts.no_such_code(self.section.code_minutes), "no request with that code")
        return request

    # -- request ---------------------------------------------------------------------------

    async def request(self, grant: Grant, telescope_name: str, burst_typed: str, note: str) -> Outcome:
        assert grant.jid is not None
        scope = self.section.telescope(telescope_name)
        if scope is None:
            known = [t.name for t in self.section.telescopes]
            return Outcome.refused(texts.unknown_telescope(telescope_name, known), "unknown telescope")
        if not grant.may_act_on(scope.name):
            mine = grant.telescope_names(t.name for t in self.section.telescopes)
            return Outcome.refused(texts.may_not_request(scope.name, mine), f"not allowed on {scope.name}")
        view = await self.read(_burst_for_trigger, burst_typed)
        if view is None:
            return Outcome.refused(texts.unknown_burst(burst_typed), "unknown burst")
        burst = view
        if burst.ra is None or burst.dec is None:
            return Outcome.refused(texts.no_position(burst.burst_id, scope.name), "burst has no position")
        approvers = [j for j in self.acl.approvers(scope.name) if not (scope.two_person and j == grant.jid)]
        if not approvers:
            return Outcome.refused(texts.no_approver(scope.name, scope.two_person), "no approver")
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
            type=TRIGGER_REQUESTED, data=data, stream=burst.burst_id, actor=grant.actor,
            id=derived_event_id(TRIGGER_REQUESTED, request_id), occurred_at=format_time(now),
        )])
        link = f"{self.link_base}/bursts/{burst.burst_id}"
        about = texts.request_about(scope.name, burst.burst_id, note)
        page = texts.approvers_page(grant.jid, about, params, code, scope.name, expires_at, link)
        log.info("trigger %s requested by %s: %s", request_id, grant.jid, about)
        return Outcome(
            True, texts.request_recorded(request_id, about, params, approvers, scope.two_person, expires_at),
            pages=[Page(jid, page) for jid in approvers], request_id=request_id,
        )

    # -- approve ---------------------------------------------------------------------------

    async def approve(self, grant: Grant, code: str | None, telescope_named: str | None) -> Outcome:
        assert grant.jid is not None
        found = await self._by_code(grant, code, "approve")
        if isinstance(found, Outcome):
            return found
        request = found
        if telescope_named is not None and telescope_named.casefold() != request.telescope.casefold():
            return Outcome.refused(texts.code_for_other_telescope(request, telescope_named),
                                   f"code is for {request.telescope}, not {telescope_named}")
        scope = self.section.telescope(request.telescope)
        if scope is None:
            return Outcome.refused(texts.telescope_gone(request.telescope), "telescope gone")
        if grant.role < Role.APPROVER or not grant.may_act_on(scope.name):
            return Outcome.refused(texts.may_not_approve(scope.name, request.approvers), f"not an approver for {scope.name}")
        if (request.two_person or scope.two_person) and grant.jid == request.requested_by:
            return Outcome.refused(texts.needs_two_people(scope.name), "self-approval on a two-person telescope")
        async with self._locks[request.request_id]:
            request = await self.load(request)
            if request.state != "requested":
                return Outcome.refused(texts.already_used(request), f"code already used ({request.state})")
            now = self.clock()
            if format_time(now) >= request.expires_at:
                await self._expire(request, now)
                return Outcome.refused(texts.expired_code(request), "code expired")
            ivorn = self._new_ivorn(request)
            appended = await self.log.append([Event(
                type=TRIGGER_APPROVED, id=decision_id(request.request_id), stream=request.burst_id,
                actor=grant.actor, occurred_at=format_time(now),
                data=request.common() | {
                    "approved_by": grant.jid, "code_sha256": request.code_sha256, "voevent_ivorn": ivorn,
                },
            )])
            if not appended[0].new:  # another process decided first
                request = await self.load(request)
                return Outcome.refused(texts.already_used(request), f"code already used ({request.state})")
        request.state, request.decided_by, request.voevent_ivorn = "approved", grant.jid, ivorn
        log.info("trigger %s approved by %s", request.request_id, grant.jid)
        approver = grant.jid

        async def deliver() -> Outcome:
            return await self.deliver_approved(request, approver)

        return Outcome(True, texts.approved(request), request_id=request.request_id, followup=deliver)

    def _new_ivorn(self, request: Request) -> str:
        """The trigger packet's IVORN, chosen at approval and recorded in ``trigger.approved``.

        It carries a random part, so nobody can know it before the approval is in the log (the
        request id alone was public); forging it would not help anyway: only the workflow may
        publish in a trigger stream (:mod:`burstbus.authority`), and :class:`~.delivery.Delivery`
        sends only a packet the workflow itself submitted."""
        return f"{trigger_stream(self.section, request.telescope)}#{request.request_id}-{secrets.token_hex(6)}"

    # -- deny ------------------------------------------------------------------------------

    async def deny(self, grant: Grant, code: str | None, reason: str) -> Outcome:
        assert grant.jid is not None
        found = await self._by_code(grant, code, "deny")
        if isinstance(found, Outcome):
            return found
        request = found
        own = grant.jid == request.requested_by
        if not own and (grant.role < Role.APPROVER or not grant.may_act_on(request.telescope)):
            return Outcome.refused(texts.may_not_refuse(request.telescope), f"not an approver for {request.telescope}")
        async with self._locks[request.request_id]:
            request = await self.load(request)
            if request.state != "requested":
                return Outcome.refused(texts.already_used(request), f"code already used ({request.state})")
            appended = await self.log.append([Event(
                type=TRIGGER_DENIED, id=decision_id(request.request_id), stream=request.burst_id,
                actor=grant.actor, occurred_at=self.now(),
                data=request.common() | {"denied_by": grant.jid, "reason": reason},
            )])
            if not appended[0].new:
                request = await self.load(request)
                return Outcome.refused(texts.already_used(request), f"code already used ({request.state})")
        pages = [] if own else [Page(request.requested_by, texts.refused_page(grant.jid, request, reason))]
        return Outcome(True, texts.refused(request), pages=pages, request_id=request.request_id)

    # -- withdraw (the requester's own request) -----------------------------------------

    async def withdraw(self, grant: Grant, typed: str | None) -> Outcome:
        """The requester takes back their own pending request (``typed``: its short id, or None
        when they have exactly one waiting).

        Recorded as the request's one decision: ``trigger.denied`` with ``withdrawn: true`` and
        ``denied_by`` = the requester, under :func:`~.request.decision_id` — so a withdrawal
        racing an approval or the expiry ends as exactly one of them, and every reader (the
        projection, :meth:`Request.fold`, the API) already treats it as final. The approvers
        who were paged the code are told it is void."""
        assert grant.jid is not None
        found = await self._withdrawable(grant.jid, typed)
        if isinstance(found, Outcome):
            return found
        request = found
        async with self._locks[request.request_id]:
            request = await self.load(request)
            if request.state != "requested":
                return Outcome.refused(texts.not_pending(request), f"request already {request.state}")
            now = self.clock()
            if format_time(now) >= request.expires_at:
                await self._expire(request, now)
                return Outcome.refused(texts.expired_before_withdrawal(request), "request expired")
            appended = await self.log.append([Event(
                type=TRIGGER_DENIED, id=decision_id(request.request_id), stream=request.burst_id,
                actor=grant.actor, occurred_at=format_time(now),
                data=request.common() | {"denied_by": grant.jid, "reason": WITHDRAWN_REASON, "withdrawn": True},
            )])
            if not appended[0].new:  # another process decided first
                request = await self.load(request)
                return Outcome.refused(texts.not_pending(request), f"request already {request.state}")
        log.info("trigger %s withdrawn by its requester %s", request.request_id, grant.jid)
        about = texts.withdrawn_about(request)
        pages = [Page(jid, texts.withdrawn_page(grant.jid, about)) for jid in request.approvers]
        return Outcome(True, texts.withdrawn(about, request.approvers), pages=pages, request_id=request.request_id)

    async def _withdrawable(self, jid: str, typed: str | None) -> Request | Outcome:
        """The request ``jid`` asks to withdraw, or the refusal saying why there is none."""
        requests = await self.requests.recent()
        if typed is not None:
            wanted = typed.strip().lower()
            if not 4 <= len(wanted) <= 32 or not set(wanted) <= set("0123456789abcdef"):
                return Outcome.refused(texts.NOT_A_REQUEST_ID, "not a request id")
            matches = [r for r in requests if r.request_id.startswith(wanted)]
            if not matches:
                return Outcome.refused(texts.NO_SUCH_REQUEST, "no request with that id")
            if len(matches) > 1:
                return Outcome.refused(texts.ambiguous_request(matches), "ambiguous request id")
            request = matches[0]
            if request.requested_by != jid:
                return Outcome.refused(texts.not_the_requester(request), "not the requester")
            return request
        now = self.now()
        pending = []
        for request in requests:
            if request.requested_by == jid:
                current = await self.load(request)
                if current.state == "requested" and now < current.expires_at:
                    pending.append(current)
        if not pending:
            return Outcome.refused(texts.NOTHING_TO_WITHDRAW, "nothing to withdraw")
        if len(pending) > 1:
            return Outcome.refused(texts.several_pending(pending), "several requests pending")
        return pending[0]

    # -- expiry ----------------------------------------------------------------------------

    async def _expire(self, request: Request, now: datetime) -> bool:
        appended = await self.log.append([Event(
            type=TRIGGER_EXPIRED, id=decision_id(request.request_id), stream=request.burst_id, actor=SYSTEM_ACTOR,
            occurred_at=format_time(now), data=request.common() | {"expired_at": format_time(now)},
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
                request = await self.load(Request.stub(row))
                if request.state != "requested" or format_time(now) < request.expires_at:
                    continue
                if await self._expire(request, now):
                    expired += 1
                    await self._tell(request.requested_by, texts.expired_unapproved(request))
        return expired

    async def resume_undelivered(self) -> int:
        """Deliver approved requests that have neither ``sent`` nor ``failed`` (a crash in between)."""
        rows = await self.read(read_lists.undelivered)
        done = 0
        for row in rows:
            request = await self.load(Request.stub(row))
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
            async with asyncio.timeout(self.section.delivery_timeout):
                await self.messenger.send_direct(jid, text)
        except Exception as exc:  # never let a chat hiccup stop the expiry loop
            log.warning("could not tell %s: %s", jid, exc)

    # -- delivery --------------------------------------------------------------------------

    async def deliver_approved(self, request: Request, approver: str) -> Outcome:
        """Render, submit through the ingest, send to every channel, record sent or failed."""
        async with self._locks[request.request_id]:
            request = await self.load(request)
            if request.state != "approved":
                return already_delivered(request)
            return await self.delivery.deliver(request, approver)


def _burst_for_trigger(conn: sqlite3.Connection, typed: str) -> BurstRow | None:
    burst_id = read_burst.resolve_burst_id(conn, typed)
    return None if burst_id is None else read_burst.burst(conn, burst_id)

