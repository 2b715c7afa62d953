"""``POST /api/voevents``: submit a VOEvent over HTTP, through the same ingest as VTP.

The token (``Authorization: Bearer <token>``) is checked before the body is read. The body
is read up to the ingest's size limit; a larger one is refused with 413 and, as the VTP
receiver does for an oversized frame, recorded as a ``voevent.rejected`` with what was read.
Answers (JSON, always with the reason when refused):

=====  ==========================================================
201    accepted (appended to the log; ``Location`` is its synopsis)
200    duplicate (the same IVORN with the same bytes is already in the log)
409    conflict (the IVORN is in the log with different bytes)
422    any other refusal (not XML, schema, IVORN, role, ...)
403    the IVORN is one this source may not publish under ([authority]: a trigger stream,
       a reserved prefix, outside its grants); also: no token configured (writes off)
401    missing or wrong token
429    too many wrong tokens from this address (shared with the read side's throttle)
413    body over the size limit
408    the body did not arrive within ``[http] body_timeout``: recorded as a
       ``voevent.rejected`` (``timeout``) with what was read
400    the client closed the connection mid-body (it reads no answer): recorded as a
       ``voevent.rejected`` (``truncated``) with what was read, as VTP records a cut frame
=====  ==========================================================
"""

from __future__ import annotations

from typing import NoReturn
from urllib.parse import quote_plus

from aiohttp import web

from burstbus.bridges.http.access import Access, Forbidden
from burstbus.bridges.http.errors import ApiError, Unavailable, error_body, json_response
from burstbus.bridges.http.permissions import Action
from burstbus.bridges.http.server import BODY_CUT, BodyCut, body_cut
from burstbus.bridges.http.spec import Route
from burstbus.ingest import REJECTED_EXCERPT_BYTES, Ingest
from burstbus.store.base import LogError

_CHUNK = 65536


class TooLarge(ApiError):
    status = 413
    description = "Payload too large"


class Submit:
    def __init__(self, ingest: Ingest | None, token: str | None, base_path: str = "",
                 access: Access | None = None):  # fmt: skip
        self.ingest = ingest
        self.token = token
        self.base_path = base_path
        #: Shared with the read side: wrong tokens here count against the same address.
        self.access = access

    def routes(self) -> list[Route]:
        outcome = {"type": "object", "properties": {
            "outcome": {"type": "string", "enum": ["accepted", "duplicate", "rejected"]},
            "ivorn": {"type": ["string", "null"]}, "seq": {"type": ["integer", "null"]},
            "reason": {"type": "string"}, "code": {"type": "string"}}}  # fmt: skip
        return [
            Route("POST", "/api/voevents", self.post_voevent, "Submit a VOEvent", "burstbus",
                  description=("Through the same ingest as VTP: validated, appended to the log (durable) and then "
                               "answered. The body is the packet's bytes, at most the ingest's size limit."),
                  request_body={"required": True, "content": {"text/xml": {"schema": {"type": "string"}},
                                                              "application/xml": {"schema": {"type": "string"}}}},
                  security="write", schema=outcome, allow_head=False,
                  responses={201: "accepted (Location: its synopsis)", 200: "duplicate: already in the log, same bytes",
                             401: "missing or wrong token",
                             403: "submission is off (no token configured), or the IVORN is not this source's to publish ([authority])",
                             429: "too many wrong tokens from this address (Retry-After)",
                             409: "the IVORN is in the log with different bytes", 413: "body over the size limit",
                             408: "the body did not arrive within [http] body_timeout (recorded as refused)",
                             400: "the connection closed mid-body (recorded as refused)",
                             422: "refused: not XML, schema, IVORN, role..."}),
        ]  # fmt: skip

    def _authorize(self, request: web.Request) -> None:
        if self.ingest is None:
            raise Forbidden("submitting VOEvents over HTTP is off: no write token is configured")
        access = self.access if self.access is not None else Access(())
        access.writer(request, Action.SUBMIT_VOEVENT, "submitting VOEvents over HTTP", self.token)

    async def _body(self, request: web.Request, ingest: Ingest, peer: str) -> bytes:
        limit = ingest.max_bytes
        declared = request.content_length
        chunks: list[bytes] = []
        try:
            if declared is not None and declared > limit:
                head = await request.content.read(REJECTED_EXCERPT_BYTES)
                await self._refuse_size(ingest, head, peer, declared)
            size = 0
            while True:
                chunk = await request.content.read(_CHUNK)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    await self._refuse_size(ingest, b"".join(chunks)[:REJECTED_EXCERPT_BYTES], peer, declared)
        except BODY_CUT as exc:
            partial = b"".join(chunks)
            await self._refuse_cut(ingest, partial, peer, declared, body_cut(exc, len(partial), declared))

    async def _refuse_cut(self, ingest: Ingest, partial: bytes, peer: str, declared: int | None,
                          cut: BodyCut) -> NoReturn:  # fmt: skip
        """A body that never arrived whole (the client gave up, was too slow, broke the framing):
        recorded as the VTP receiver records a frame cut short (``truncated``) or late
        (``timeout``), with what was received, and refused (an answer the client may not read)."""
        try:
            cut.extra["seq"] = (await ingest.refuse(partial, via="http", peer=peer, reason=cut.message,
                                                    code=cut.extra["code"], declared_size=declared)).seq  # fmt: skip
        except LogError:  # not recorded: still refused, and counted like a recorded refusal
            cut.extra["seq"] = None
            ingest.counts[("http", "rejected")] += 1
        raise cut

    async def _refuse_size(self, ingest: Ingest, head: bytes, peer: str, declared: int | None) -> None:
        limit = ingest.max_bytes
        what = f"{declared:,} bytes" if declared is not None else "more bytes"
        reason = f"the body has {what}; the limit is {limit:,} bytes"
        seq: int | None
        try:
            seq = (await ingest.refuse(head, via="http", peer=peer, reason=reason, code="too_large",
                                       declared_size=declared)).seq  # fmt: skip
        except LogError:  # not recorded: still refused, and counted like a recorded refusal
            seq = None
            ingest.counts[("http", "rejected")] += 1
        raise TooLarge(reason, outcome="rejected", code="too_large", seq=seq, max_bytes=limit)

    async def post_voevent(self, request: web.Request) -> web.Response:
        self._authorize(request)
        ingest = self.ingest
        assert ingest is not None  # _authorize refuses when it is None
        peer = request.remote or "unknown"
        raw = await self._body(request, ingest, peer)
        try:
            result = await ingest.submit(raw, via="http", peer=peer)
        except LogError as exc:
            raise Unavailable(f"the event log cannot take the packet now ({exc}); nothing was stored") from None
        body = {"outcome": result.outcome, "ivorn": result.ivorn, "seq": result.seq}
        if result.outcome == "accepted":
            assert result.ivorn is not None
            location = f"{self.base_path}/apiv1/packet/synopsis/{quote_plus(result.ivorn)}"
            return json_response(body, status=201, headers={"Location": location})
        if result.outcome == "duplicate":
            body["reason"] = "this IVORN is already in the log with identical bytes; nothing appended"
            return json_response(body, status=200)
        status = {"conflict": 409, "authority": 403, "signature": 403}.get(result.code or "", 422)
        description = {409: "Conflict", 403: "Not allowed to publish under this IVORN"}.get(status, "VOEvent refused")
        body.update(reason=result.reason, code=result.code)
        body.update(error_body(status, description, result.reason or "refused"))
        return json_response(body, status=status)
