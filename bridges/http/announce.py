"""``POST /api/data`` and ``POST /api/processes/status``: what pipelines and services tell the
orchestrator over HTTP, with the rules NATS request/reply has.

The log first: the answer comes after the durable append. The body is validated by the same
pure functions as NATS (``burstbus.handlers.orchestrator.messages``), so a message is judged
the same way whichever transport brought it; a refused one is answered 422 with the reason
and recorded (``data.rejected`` / ``process.rejected``, ``via`` = ``http``). The write token
is checked before the body is read. ``Idempotency-Key`` plays ``Nats-Msg-Id``'s part: a
message re-sent with the same key is recorded once.

=====  ==========================================================
201    recorded (``id``, ``seq``)
200    already recorded (the same announcement, or the same ``Idempotency-Key``)
422    refused: the reason (also recorded)
401    missing or wrong token; 403 no token configured; 429 throttled
413    body over the limit (also recorded)
408    the body did not arrive within ``[http] body_timeout`` (also recorded, ``code`` ``timeout``)
400    the client closed the connection mid-body (recorded, ``truncated``; it reads no answer)
503    the log cannot take it now: nothing was stored, send it again
=====  ==========================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from burstbus.bridges.http.access import Access, Forbidden
from burstbus.bridges.http.errors import ApiError, Unavailable, error_body, json_response
from burstbus.bridges.http.permissions import Action
from burstbus.bridges.http.server import BODY_CUT, body_cut, read_bounded
from burstbus.bridges.http.spec import Route
from burstbus.events import Event
from burstbus.handlers.orchestrator import messages
from burstbus.store.base import EventLog, LogError

MAX_BYTES = 1_048_576
IDEMPOTENCY_KEY = "Idempotency-Key"


class _TooLarge(ApiError):
    status = 413
    description = "Payload too large"


class _Cut(Exception):
    """The body stopped short (``error``, one of :data:`~.server.BODY_CUT`) after ``partial``."""

    def __init__(self, error: BaseException, partial: bytes):
        super().__init__(str(error))
        self.error = error
        self.partial = partial


_OUTCOME = {"type": "object", "properties": {
    "outcome": {"type": "string", "enum": ["accepted", "duplicate", "rejected"]},
    "id": {"type": ["string", "null"]}, "seq": {"type": ["integer", "null"]}, "reason": {"type": "string"}}}
_RESPONSES = {201: "recorded", 200: "already recorded (same announcement or Idempotency-Key)",
              400: "the connection closed mid-body (recorded as refused)",
              408: "the body did not arrive within [http] body_timeout (recorded as refused)",
              401: "missing or wrong token", 403: "no write token is configured",
              413: "body over the limit (recorded as refused)", 422: "refused: the reason (recorded)",
              429: "too many wrong tokens from this address (Retry-After)", 503: "the log is unavailable: nothing stored"}


class Announce:
    """The two routes; ``log`` is where they append."""

    def __init__(self, log: EventLog | None, token: str | None, access: Access | None = None, max_bytes: int = MAX_BYTES):
        self.log = log
        self.token = token
        self.access = access
        self.max_bytes = max_bytes

    def routes(self) -> list[Route]:
        json_body = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
        return [
            Route("POST", "/api/data", self.post_data, "Announce data or a product", "orchestrator",
                  description=("A data set or a pipeline's product is available: burst_id, kind and location (a URI) "
                               "required; obs_id, pass_id, size, checksum (algorithm:hex), produced_by (the request id "
                               "of the run that made it), version, occurred_at. Recorded as data.available, then "
                               "answered; the orchestrator starts the pipelines whose inputs are then complete."),
                  request_body=json_body, security="write", schema=_OUTCOME, allow_head=False, responses=_RESPONSES),
            Route("POST", "/api/processes/status", self.post_status, "Report a process status", "orchestrator",
                  description=("What burstbus.in.process takes over NATS: process and status required; burst_id, "
                               "obs_id, pass_id, pipeline, request_id (the attempt dispatched), version, log, occurred_at."),
                  request_body=json_body, security="write", schema=_OUTCOME, allow_head=False, responses=_RESPONSES),
        ]  # fmt: skip

    async def post_data(self, request: web.Request) -> web.Response:
        return await self._take(request, messages.parse_data_announcement, messages.data_event, messages.data_refused,
                                "announcing data over HTTP")  # fmt: skip

    async def post_status(self, request: web.Request) -> web.Response:
        return await self._take(request, messages.parse_process_status, messages.status_event, messages.status_refused,
                                "reporting process statuses over HTTP")  # fmt: skip

    async def _take(
        self,
        request: web.Request,
        parse: Callable[..., messages.Parsed],
        accepted: Callable[..., Event],
        refused: Callable[..., Event],
        what: str,
    ) -> web.Response:
        access = self.access if self.access is not None else Access(())
        writer = access.writer(request, Action.ANNOUNCE_DATA, what, self.token if self.log is not None else None)
        if self.log is None:
            raise Forbidden(f"{what} is off here")
        peer = request.remote or "unknown"
        actor = writer.actor
        key = request.headers.get(IDEMPOTENCY_KEY) or None
        extra: dict[str, Any] = {"via": "http", "peer": peer, "path": request.path}
        try:
            raw, complete = await self._body(request)
        except _Cut as cut:  # the client closed, was too slow, or broke the framing: recorded, like VTP's truncated
            refusal = body_cut(cut.error, len(cut.partial), request.content_length)
            refusal.extra["seq"] = await self._append_refusal(
                refused(cut.partial, refusal.message, actor=actor, msg_id=key, extra={**extra, "code": refusal.extra["code"]}))
            raise refusal from None
        if not complete:
            reason = f"the body has more than {self.max_bytes:,} bytes, the limit"
            seq = await self._append_refusal(refused(raw, reason, actor=actor, msg_id=key, extra=extra))
            raise _TooLarge(reason, outcome="rejected", seq=seq)
        try:
            parsed = parse(raw, max_bytes=self.max_bytes)
        except messages.InvalidMessage as exc:
            seq = await self._append_refusal(refused(raw, exc.reason, actor=actor, msg_id=key, extra=extra))
            body = {"outcome": "rejected", "id": None, "seq": seq, "reason": exc.reason,
                    **error_body(422, "Refused", exc.reason)}
            return json_response(body, status=422)
        event = accepted(parsed, actor=actor, event_id=messages.message_event_id("http", request.path, key))
        try:
            [where] = await self.log.append([event])
        except LogError as exc:
            raise Unavailable(f"the event log cannot take it now ({exc}); nothing was stored") from None
        if where.new:
            return json_response({"outcome": "accepted", "id": where.id, "seq": where.seq}, status=201)
        return json_response({"outcome": "duplicate", "id": where.id, "seq": where.seq,
                              "reason": "already in the log; nothing appended"}, status=200)

    async def _append_refusal(self, event: Event) -> int | None:
        assert self.log is not None
        try:
            [where] = await self.log.append([event])
        except LogError:
            return None  # still refused; the answer says so
        return where.seq

    async def _body(self, request: web.Request) -> tuple[bytes, bool]:
        """The body and whether it was within the limit (else its first bytes); :class:`_Cut`
        with what was read when it stops short."""
        received: list[bytes] = []
        try:
            return await read_bounded(request, self.max_bytes, excerpt=messages.EXCERPT_BYTES, received=received)
        except BODY_CUT as exc:
            raise _Cut(exc, b"".join(received)) from exc
