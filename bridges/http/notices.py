"""``POST /api/notices``: ask the centre to issue a notice, and ``GET /api/notices/{request_id}``:
what became of the request.

This is the notice pipeline's door (the shared write token, or an admin): the request is
published with no second person. People draft instead (:mod:`~.creator`: the Notice Creator,
``POST /api/notices/drafts``), and somebody else publishes the draft.

The request is judged and recorded by the notice intake (``burstbus.handlers.notices``, the
``notices.intake`` port; the same as NATS ``<prefix>.in.notice``), and answered only once that
is durable. Publishing follows from the log (the notice publisher): the answer gives the
request id to ask about. The write token is checked before the body is read.

=====  ==========================================================
202    recorded: the notice will be issued (``request_id``, ``seq``)
200    already recorded (the same request re-sent)
409    the request id was used for a different request (recorded as refused)
422    refused: the reason (recorded as ``publication.refused``)
413    body over ``[notices] max_request_bytes`` (recorded)
401    missing or wrong token; 403 no token configured, or notices off; 429 throttled
503    the log cannot take it now: nothing was stored, send it again
=====  ==========================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from burstbus.bridges.http.access import Access, Forbidden
from burstbus.bridges.http.errors import ApiError, Unavailable, error_body, json_response
from burstbus.bridges.http.permissions import Action
from burstbus.bridges.http.server import read_bounded
from burstbus.bridges.http.spec import Param, Route
from burstbus.catalogue import (
    PUBLICATION_DECLINED,
    PUBLICATION_FAILED,
    PUBLICATION_ISSUED,
    PUBLICATION_REQUESTED,
    PUBLICATION_SENT,
)
from burstbus.handlers.notices.intake import NoticeIntake, refused_event
from burstbus.handlers.notices.publisher import decision_id, delivery_id
from burstbus.handlers.notices.request import requested_event_id
from burstbus.store.base import EventLog, LogError

IDEMPOTENCY_KEY = "Idempotency-Key"


class _TooLarge(ApiError):
    status = 413
    description = "Payload too large"


class _NotFound(ApiError):
    status = 404
    description = "Not found"


_OUTCOME = {"type": "object", "properties": {
    "outcome": {"type": "string", "enum": ["accepted", "duplicate", "refused"]},
    "request_id": {"type": ["string", "null"]}, "seq": {"type": ["integer", "null"]},
    "reason": {"type": "string"}, "status": {"type": "string"}}}  # fmt: skip
_STATUS = {"type": "object", "properties": {
    "request_id": {"type": "string"}, "burst_id": {"type": "string"},
    "state": {"type": "string", "enum": ["requested", "issued", "declined", "sent", "failed"]},
    "ivorn": {"type": ["string", "null"]}, "reason": {"type": ["string", "null"]},
    "events": {"type": "array", "items": {"type": "object"}}}}  # fmt: skip


class NoticeRequests:
    """The two routes; ``intake`` is asked per request (None: ``[notices]`` is off)."""

    def __init__(self, log: EventLog, intake: Callable[[], NoticeIntake | None], token: str | None,
                 access: Access | None = None, base_path: str = ""):
        self.log = log
        self.base_path = base_path
        self.intake = intake
        self.token = token
        self.access = access

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/api/notices", self.post_notice, "Ask for a notice of the centre's own", "notices",
                  description=("A JSON notice request (burst_id, instrument, type, time, ra/dec/err, params, "
                               "qualifier, authored, role, reason, request_id): judged, recorded, then answered; "
                               "the notice publisher issues the VOEvent through the ingest (archived, on every "
                               "transport). Idempotency-Key acts as Nats-Msg-Id does for a refusal."),
                  request_body={"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
                  security="write", schema=_OUTCOME, allow_head=False,
                  responses={202: "recorded: the notice will be issued", 200: "already recorded (the same request)",
                             401: "missing or wrong token", 403: "no write token is configured, or notices are off",
                             409: "request_id already used for a different request", 413: "body over the limit",
                             422: "refused: the reason", 429: "too many wrong tokens from this address",
                             503: "the log is unavailable: nothing stored"}),
            Route("GET", "/api/notices/{request_id}", self.get_notice, "What became of a notice request", "notices",
                  params=[Param("request_id", "the request's id (the POST's answer)", where="path", required=True)],
                  schema=_STATUS, security="read",
                  responses={404: "no such request", 401: "a read credential is needed"}),
        ]  # fmt: skip

    async def post_notice(self, request: web.Request) -> web.Response:
        access = self.access if self.access is not None else Access(())
        writer = access.writer(request, Action.REQUEST_NOTICE, "asking for notices over HTTP", self.token)
        intake = self.intake()
        if intake is None:
            raise Forbidden("notices are off here ([notices] enabled = false)")
        via, peer = writer.via, writer.peer
        key = request.headers.get(IDEMPOTENCY_KEY) or None
        key = f"{via}:{peer}:{key}" if key else None
        raw, complete = await read_bounded(request, intake.max_bytes)
        try:
            if not complete:
                reason = f"the body has more than {intake.max_bytes:,} bytes, the limit ([notices] max_request_bytes)"
                [where] = await self.log.append([refused_event(raw, reason, "too_large", via=via, peer=peer, key=key)])
                raise _TooLarge(reason, outcome="refused", seq=where.seq)
            result = await intake.submit(raw, via=via, peer=peer, key=key)
        except LogError as exc:
            raise Unavailable(f"the event log cannot take it now ({exc}); nothing was stored") from None
        body: dict[str, Any] = {"outcome": result.outcome, "request_id": result.request_id, "seq": result.seq}
        if result.outcome == "accepted":
            body["status"] = f"{self.base_path}/api/notices/{quote(str(result.request_id), safe='')}"
            return json_response(body, status=202)
        if result.outcome == "duplicate":
            body["reason"] = "this request is already in the log; nothing appended"
            return json_response(body, status=200)
        status = 409 if result.code == "conflict" else 422
        body.update(reason=result.reason, **error_body(status, "Refused", result.reason or "refused"))
        return json_response(body, status=status)

    async def get_notice(self, request: web.Request) -> web.Response:
        if self.access is not None:
            self.access.require(request, "notice requests")
        request_id = request.match_info["request_id"]
        requested = await self.log.find(requested_event_id(request_id))
        if requested is None:
            raise _NotFound(f"no notice request {request_id!r}")
        events = [requested]
        decision = await self.log.find(decision_id(request_id))
        outcome = await self.log.find(delivery_id(request_id))
        events += [e for e in (decision, outcome) if e is not None]
        state = {PUBLICATION_REQUESTED: "requested", PUBLICATION_ISSUED: "issued", PUBLICATION_DECLINED: "declined",
                 PUBLICATION_SENT: "sent", PUBLICATION_FAILED: "failed"}[events[-1].type]
        last = events[-1].data
        return json_response({
            "request_id": request_id, "burst_id": requested.data.get("burst_id"), "state": state,
            "ivorn": (decision.data.get("ivorn") if decision is not None else None), "reason": last.get("reason"),
            "events": [{"seq": e.seq, "type": e.type, "recorded_at": e.recorded_at} for e in events],
        })
