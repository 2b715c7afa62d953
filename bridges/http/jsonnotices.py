"""JSON notices over HTTP: ``GET /api/json-notices`` (a page, newest first) and
``GET /api/json-notices/{ref}`` (one notice's exact bytes, by seq or key).

JSON notices (LVK, Einstein Probe, IceCube … from Kafka) have no IVORN and no XML, so they are
not in voeventdb's ``/apiv1`` (its clients expect VOEvents): these two routes are their
archive. Open to read, as the notices are. The bytes come from the log (the
``notice.accepted`` event at that seq), exactly as received.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any
from urllib.parse import quote

from aiohttp import web

from burstbus.bridges.http.errors import ApiError, Unavailable, json_response
from burstbus.bridges.http.spec import Param, Route, parse_query
from burstbus.catalogue import NOTICE_ACCEPTED
from burstbus.store.base import EventLog, LogError
from burstbus.store.read.jsonnotices import json_notice_seq, json_notices
from burstbus.store.reader import ProjectionReader

_ROW = {"type": "object", "properties": {
    "seq": {"type": "integer"}, "key": {"type": "string"}, "notice_id": {"type": "string"}, "topic": {"type": "string"},
    "schema": {"type": ["string", "null"]}, "role": {"type": ["string", "null"]}, "mission": {"type": ["string", "null"]},
    "instrument": {"type": ["string", "null"]}, "event_time": {"type": ["string", "null"]},
    "authored": {"type": ["string", "null"]}, "received": {"type": "string"}, "ra": {"type": ["number", "null"]},
    "dec": {"type": ["number", "null"]}, "err": {"type": ["number", "null"]}, "superevent_id": {"type": ["string", "null"]},
    "alert_type": {"type": ["string", "null"]}, "size": {"type": ["integer", "null"]}, "burst_id": {"type": ["string", "null"]},
    "links": {"type": "object"}}}  # fmt: skip
_PAGE = {"type": "object", "properties": {"result": {"type": "array", "items": _ROW}, "count": {"type": "integer"},
                                          "limit": {"type": "integer"}, "offset": {"type": "integer"}}}  # fmt: skip
PARAMS = (
    Param("topic", "only this Kafka topic (igwn.gwalert, gcn.notices.einstein_probe.wxt.alert …)"),
    Param("limit", "rows per page", kind="integer", default=100, minimum=1, maximum=1000, too_large_413=True),
    Param("offset", "rows to skip", kind="integer", default=0, minimum=0),
)


class NoticeNotFound(ApiError):
    status = 404
    description = "Notice not found"


class JsonNotices:
    def __init__(self, reader: ProjectionReader, log: EventLog, base_path: str = ""):
        self.reader = reader
        self.log = log
        self.base_path = base_path

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/api/json-notices", self.list, "JSON notices (from Kafka)", "burstbus",
                  description="LVK, Einstein Probe, IceCube, Swift GUANO … notices, newest first, with the facts "
                              "understood and the burst each joined.",
                  params=PARAMS, schema=_PAGE, responses={200: "a page of JSON notices", 413: "limit above the maximum"}),
            Route("GET", "/api/json-notices/{ref}", self.raw, "One JSON notice, its exact bytes", "burstbus",
                  params=(Param("ref", "its seq, or its key <topic>#<notice id> (URL-encoded)", where="path", required=True),),
                  schema={"type": "object"}, responses={404: "no such notice"}),
        ]

    def _row(self, row: Any) -> dict[str, Any]:
        out = asdict(row)
        out["links"] = {"json": f"{self.base_path}/api/json-notices/{row.seq}"}
        if row.burst_id:
            out["links"]["burst"] = f"{self.base_path}/api/bursts/{quote(row.burst_id, safe='')}"
        return out

    async def list(self, request: web.Request) -> web.Response:
        q = parse_query(request, PARAMS)
        page = await self.reader.run(json_notices, q["limit"], q["offset"], q.get("topic") or None)
        return json_response({"result": [self._row(r) for r in page.rows], "count": page.total, "limit": q["limit"],
                              "offset": q["offset"]})

    async def raw(self, request: web.Request) -> web.Response:
        ref = request.match_info["ref"]
        seq = await self.reader.run(json_notice_seq, ref)
        if seq is None:
            raise NoticeNotFound(f"no JSON notice {ref!r} in the archive")
        try:
            record = await self.log.get(seq)
        except LogError as exc:
            raise Unavailable(f"the log cannot be read now: {exc}") from None
        if record is None or record.type != NOTICE_ACCEPTED or "json" not in record.data:
            raise NoticeNotFound(f"no JSON notice at seq {seq}")
        return web.Response(body=str(record.data["json"]).encode("utf-8"), content_type="application/json", charset="utf-8")
