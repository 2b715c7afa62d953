"""The burstbus JSON API (``{base}/api/...``): processes, bursts, triggers, the log, live events.

Lists answer ``{"result": [...], "count": <rows matching>, "limit": l, "offset": o}``; the
log pages by seq instead (``after`` → ``next_after``). Processes and bursts are open to read;
the trigger requests, the log and the stream's non-public event types need a read credential
(:mod:`~burstbus.bridges.http.access`), and a burst's answer leaves its trigger requests and
non-public log events out without one. The one write (``POST /api/voevents``,
:mod:`burstbus.bridges.http.submit`) needs the API token. Links in answers are absolute paths
under the base path (no scheme or host), so they are right behind any reverse proxy without
``X-Forwarded-*`` headers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote, quote_plus

from aiohttp import web

from burstbus.bridges.http import queries
from burstbus.bridges.http.access import PUBLIC_TYPES_TEXT, Access
from burstbus.bridges.http.errors import ApiError, InvalidQueryString, Unavailable, json_response
from burstbus.bridges.http.spec import OFFSET, Param, Route, limit_param, parse_query
from burstbus.bridges.http.stream import StreamHandler, event_json
from burstbus.events import format_time, parse_time
from burstbus.store.base import EventLog, LogError, ReadFilter
from burstbus.store.projections.processes import TABLE_STATUSES
from burstbus.store.reader import ProjectionReader

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
LOG_DEFAULT_LIMIT = 100
LOG_MAX_LIMIT = 1000
#: Most log events ``/api/bursts/{id}`` embeds (page on with ``log_after``).
BURST_LOG_LIMIT = 500
MAX_BURST_ID = 200
_EVENT_TYPE = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


class NotFound(ApiError):
    status = 404
    description = "Not found"


def _since_until(what: str) -> tuple[Param, Param]:
    return (
        Param("since", f"only {what} at or after this time (ISO-8601; UTC when no offset)", kind="time",
              example="2026-11-20T00:00:00Z"),
        Param("until", f"only {what} at or before this time (ISO-8601)", kind="time"),
    )  # fmt: skip


def _order(orders: dict[str, str], default: str) -> Param:
    return Param("order", f"sort order (default {default}; '-' is descending)", enum=tuple(orders), default=default)


PROCESS_PARAMS = (
    Param("date_from", "first day of the runs (the day a run was first seen, UTC), inclusive", kind="date",
          example="2026-11-20"),
    Param("date_to", "last day of the runs, inclusive", kind="date"),
    *_since_until("runs updated"),
    Param("process", "process name (repeat or comma-separate for several)", multi=True),
    Param("burst_id", "burst id", multi=True, example=["sb26112001"]),
    Param("obs_id", "observation id", multi=True),
    Param("pass_id", "pass id", multi=True),
    Param("status", "latest status", multi=True, enum=TABLE_STATUSES),
    Param("pipeline", "pipeline name", multi=True),
    Param("q", "custom filter: words found anywhere (names, ids, status, reason, last log line) and key:value terms "
               "(process, pipeline, burst, obs, pass, status, reason, by), all of them", example="status:failed attitude"),
    _order(queries.PROCESS_ORDERS, "-updated_at"),
)  # fmt: skip
BURST_PARAMS = (
    *_since_until("bursts with notices"),
    Param("burst_id", "burst id", multi=True),
    Param("instrument", "bursts seen by this instrument (e.g. Swift/BAT, SVOM/ECLAIRs)", multi=True),
    Param("retracted", "only retracted (true) or not retracted (false) bursts", kind="boolean"),
    Param("has_position", "only bursts with (true) or without (false) a position", kind="boolean"),
    _order(queries.BURST_ORDERS, "-last_notice_at"),
)
TRIGGER_PARAMS = (
    *_since_until("trigger requests made"),
    Param("burst_id", "burst id", multi=True),
    Param("telescope", "telescope name", multi=True),
    Param("state", "current state", multi=True, enum=queries.TRIGGER_STATES),
    Param("requested_by", "bare JID of the requester", multi=True),
    _order(queries.TRIGGER_ORDERS, "-requested_at"),
)
AFTER = Param("after", "only events with a seq above this (paging: pass the previous page's next_after)",
              kind="integer", minimum=0, maximum=2**62, default=0)  # fmt: skip
TYPES = Param("type", "event types (repeat or comma-separate), e.g. voevent.accepted,burst.identified", multi=True)
LOG_PARAMS = (
    AFTER,
    TYPES,
    Param("stream", "one stream (a burst id, or a VOEvent stream such as nasa.gsfc.gcn/SWIFT)"),
    *_since_until("events recorded"),
    limit_param(LOG_DEFAULT_LIMIT, LOG_MAX_LIMIT),
)
STREAM_PARAMS = (
    Param("after", "replay events with a seq above this first (default: only new events); the "
          "Last-Event-ID header, sent by a reconnecting EventSource, takes precedence",
          kind="integer", minimum=0, maximum=2**62),
    TYPES,
    Param("Last-Event-ID", "the seq of the last event received (EventSource sends it when it reconnects)",
          kind="integer", where="header"),
)  # fmt: skip
BURST_DETAIL_PARAMS = (
    Param("burst_id", "the burst id", where="path", example="sb26112001"),
    Param("log_after", "embed the burst's log events with a seq above this (paging)", kind="integer",
          minimum=0, maximum=2**62, default=0),
    Param("log_limit", f"most log events embedded (default {BURST_LOG_LIMIT})", kind="integer",
          minimum=0, maximum=BURST_LOG_LIMIT, default=BURST_LOG_LIMIT, too_large_413=True),
)  # fmt: skip


def _list_schema(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["result", "count", "limit", "offset"],
        "properties": {
            "result": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
            "count": {"type": "integer", "description": "rows matching the filters (all pages)"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        },
    }


_TEXT = {"type": ["string", "null"]}
_NUM = {"type": ["number", "null"]}
SCHEMAS: dict[str, Any] = {
    "Process": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "description": ("the run id for runs the orchestrator started; else "
                                                     "process/burst_id/obs_id/pass_id ('-' for empty parts)")},
            "date": {"type": "string", "format": "date"},
            "process": {"type": "string"}, "burst_id": _TEXT, "obs_id": _TEXT, "pass_id": _TEXT,
            "pipeline": _TEXT, "status": {"type": "string", "enum": list(TABLE_STATUSES)},
            "attempts": {"type": "integer"}, "last_log": _TEXT,
            "first_seen": {"type": "string", "format": "date-time"}, "updated_at": {"type": "string", "format": "date-time"},
            "retry_requested": {"type": ["integer", "null"], "description": "attempt number of a pending retry request"},
            "last_seq": {"type": "integer"},
            "run_id": _TEXT, "request_id": {"type": ["string", "null"], "description": "the current attempt's request id"},
            "reason": {"type": ["string", "null"], "description": "why it idles, failed, is retried or was given up"},
            "requested_by": {"type": ["string", "null"], "description": "who asked for it by hand"},
            "deadline": {"type": ["string", "null"], "format": "date-time",
                         "description": "when the current attempt vanishes without a sign of life"},
        },
    },
    "Position": {
        "type": ["object", "null"],
        "properties": {"ra": {"type": "number"}, "dec": {"type": "number"}, "err": _NUM, "ivorn": _TEXT},
    },
    "Burst": {
        "type": "object",
        "properties": {
            "burst_id": {"type": "string"}, "first_notice_at": {"type": "string"}, "last_notice_at": {"type": "string"},
            "event_time": _TEXT, "notice_count": {"type": "integer"},
            "position": {"$ref": "#/components/schemas/Position"},
            "instruments": {"type": "array", "items": {"type": "string"}}, "retracted": {"type": "boolean"},
            "first_seq": {"type": "integer"}, "last_seq": {"type": "integer"},
        },
    },
    "Notice": {
        "type": "object",
        "properties": {
            "ivorn": {"type": "string"}, "seq": {"type": "integer"}, "rule": {"type": "string"},
            "notice_at": {"type": "string"}, "instrument": _TEXT, "ra": _NUM, "dec": _NUM, "err": _NUM,
            "retraction": {"type": "boolean"}, "role": _TEXT, "stream": _TEXT, "author_datetime": _TEXT, "mission": _TEXT,
            "links": {"type": "object", "properties": {"synopsis": {"type": "string"}, "xml": {"type": "string"}}},
        },
    },
    "Trigger": {
        "type": "object",
        "properties": {
            "request_id": {"type": "string"}, "telescope": {"type": "string"}, "burst_id": {"type": "string"},
            "state": {"type": "string", "enum": list(queries.TRIGGER_STATES)}, "requested_by": {"type": "string"},
            "requested_at": {"type": "string"}, "note": _TEXT, "params": {"type": "object"},
            "two_person": {"type": "boolean"}, "expires_at": _TEXT, "approved_by": _TEXT, "approved_at": _TEXT,
            "denied_by": _TEXT, "denied_at": _TEXT, "reason": _TEXT, "sent_at": _TEXT, "voevent_ivorn": _TEXT,
            "first_seq": {"type": "integer"}, "last_seq": {"type": "integer"},
            "unacknowledged_at": _TEXT, "acknowledged_at": _TEXT, "observing_at": _TEXT, "observed_at": _TEXT,
            "data_uploaded_at": _TEXT, "data_location": _TEXT,
        },
    },
    "Event": {
        "type": "object",
        "description": "a log record; data without the packet bytes (xml, xml_base64)",
        "properties": {
            "seq": {"type": "integer"}, "id": {"type": "string"}, "type": {"type": "string"},
            "stream": {"type": "string"}, "actor": {"type": "string"}, "occurred_at": {"type": "string"},
            "recorded_at": {"type": "string"}, "hash": {"type": "string"}, "prev_hash": {"type": "string"},
            "data": {"type": "object"},
        },
    },
    "BurstDetail": {
        "allOf": [
            {"$ref": "#/components/schemas/Burst"},
            {
                "type": "object",
                "properties": {
                    "notices": {"type": "array", "items": {"$ref": "#/components/schemas/Notice"}},
                    "processes": {"type": ["array", "null"], "items": {"$ref": "#/components/schemas/Process"},
                                  "description": "null without a read credential unless public_processes"},
                    "triggers": {"type": ["array", "null"], "items": {"$ref": "#/components/schemas/Trigger"},
                                 "description": "null without a read credential (see restricted)"},
                    "log": {"$ref": "#/components/schemas/LogPage"},
                    "links": {"type": "object", "additionalProperties": {"type": "string"}},
                    "restricted": {"type": "string", "description": "present when the caller has no read "
                                   "credential: what was left out (triggers, log events other than "
                                   f"{PUBLIC_TYPES_TEXT})"},
                },
            },
        ]
    },
    "LogPage": {
        "type": "object",
        "properties": {
            "result": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
            "count": {"type": "integer", "description": "events in this page"},
            "limit": {"type": "integer"},
            "after": {"type": "integer"},
            "next_after": {"type": "integer", "description": "pass as after for the next page"},
            "head": {"type": "integer", "description": "the newest seq in the log when read"},
            "complete": {"type": "boolean", "description": "true when nothing more matches (until given) or the page "
                                                           "reached the head"},
        },
    },
    "ProcessList": _list_schema("Process"),
    "BurstList": _list_schema("Burst"),
    "TriggerList": _list_schema("Trigger"),
}  # fmt: skip


#: Responses of the routes that need a read credential.
_PROTECTED = {401: "no read credential, or a wrong token", 403: "reads are closed: no read token is configured",
              429: "too many wrong tokens from this address (Retry-After)"}  # fmt: skip
_PARTIAL = {401: "a wrong token (none: the public part is served)",
            429: "too many wrong tokens from this address (Retry-After)"}  # fmt: skip


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


class Api:
    """Handlers of the ``/api`` read endpoints over the projections reader and the log."""

    def __init__(self, reader: ProjectionReader, event_log: EventLog, stream: StreamHandler, *, base_path: str = "",
                 default_limit: int = DEFAULT_LIMIT, max_limit: int = MAX_LIMIT,
                 access: Access | None = None):  # fmt: skip
        self.reader = reader
        #: Who may read the protected parts (closed unless told otherwise).
        self.access = access if access is not None else Access(())
        self.log = event_log
        self.stream = stream
        self.base_path = base_path
        self.default_limit = default_limit
        self.max_limit = max_limit
        self.paging = (limit_param(default_limit, max_limit), OFFSET)

    def routes(self) -> list[Route]:
        paging = self.paging
        return [
            Route("GET", "/api/processes", self.processes, "Process runs (the orchestrator's table)", "burstbus",
                  description=("One row per (process, burst id, obs id, pass id), with its latest status. For "
                               "signed-in readers unless [http] public_processes."),
                  params=(*PROCESS_PARAMS, *paging), schema=_ref("ProcessList"), security="read",
                  responses={200: "a page of process runs", 413: "limit above the maximum", **_PROTECTED}),
            Route("GET", "/api/bursts", self.bursts, "Bursts", "burstbus",
                  description="One row per burst, with its best position (smallest error).",
                  params=(*BURST_PARAMS, *paging), schema=_ref("BurstList"),
                  responses={200: "a page of bursts", 413: "limit above the maximum"}),
            Route("GET", "/api/bursts/{burst_id}", self.burst, "One burst with everything known", "burstbus",
                  description=("The burst, its notices, processes, triggers and its log events (stream = burst id). "
                               "Without a read credential: no triggers (null), no processes (null) unless [http] "
                               "public_processes, and only the log events of the public types "
                               f"({PUBLIC_TYPES_TEXT}; the process types only with public_processes); "
                               "`restricted` says so."),
                  params=BURST_DETAIL_PARAMS, schema=_ref("BurstDetail"), security="partial",
                  responses={200: "the burst", 404: "no such burst", 413: "log_limit above the maximum",
                             **_PARTIAL}),
            Route("GET", "/api/triggers", self.triggers, "Trigger requests", "burstbus",
                  description="Follow-up trigger requests and their outcome (empty until the first one).",
                  params=(*TRIGGER_PARAMS, *paging), schema=_ref("TriggerList"), security="read",
                  responses={200: "a page of trigger requests", 413: "limit above the maximum", **_PROTECTED}),
            Route("GET", "/api/log", self.log_page, "The event log", "burstbus",
                  description="Events in seq order, paged with after/next_after. Times filter recorded_at.",
                  params=LOG_PARAMS, schema=_ref("LogPage"), security="read",
                  responses={200: "a page of events", 413: "limit above the maximum", **_PROTECTED}),
            Route("GET", "/api/stream", self.stream_events, "Live events (server-sent events)", "burstbus",
                  description=("text/event-stream: each event as `id: <seq>`, `event: <type>`, `data: <Event JSON>`; "
                               "`event: projected` with `{\"seq\": N}` once the read models have applied every "
                               "event up to N; a `: keep-alive` comment every 15 s. A client too slow to keep up "
                               "is closed and resumes with Last-Event-ID. Without a read credential only the "
                               f"public types may be asked for (type={PUBLIC_TYPES_TEXT}); no type filter (every "
                               "type) or any other type is a 401, never a silently thinner stream."),
                  params=STREAM_PARAMS, content_type="text/event-stream", schema={"type": "string"},
                  security="partial", allow_head=False,
                  responses={200: "the event stream", 503: "too many clients, or shutting down", **_PROTECTED}),
        ]  # fmt: skip

    # -- lists -------------------------------------------------------------------------

    async def _list(self, request: web.Request, params: tuple[Param, ...], query: Callable[..., Any]) -> web.Response:
        q = parse_query(request, (*params, *self.paging))
        limit, offset = q["limit"], q["offset"]
        rows, total = await self.reader.run(query, q, limit, offset)
        return json_response({"result": rows, "count": total, "limit": limit, "offset": offset})

    async def processes(self, request: web.Request) -> web.Response:
        if not self.access.viewer(request).processes:
            raise self.access.refusal("the process table", "or an operator sets [http] public_processes = true")
        try:
            queries.custom_filter(request.query.get("q"))
        except ValueError as exc:
            raise InvalidQueryString(str(exc), "q", request.query.get("q")) from None
        return await self._list(request, PROCESS_PARAMS, queries.processes)

    async def bursts(self, request: web.Request) -> web.Response:
        return await self._list(request, BURST_PARAMS, queries.bursts)

    async def triggers(self, request: web.Request) -> web.Response:
        self.access.require(request, "the list of trigger requests")
        return await self._list(request, TRIGGER_PARAMS, queries.triggers)

    # -- one burst ---------------------------------------------------------------------

    def _notice_links(self, ivorn: str) -> dict[str, str]:
        encoded = quote_plus(ivorn)
        if not ivorn.startswith("ivo://"):  # a JSON notice from Kafka: its key, in its own archive
            return {"json": f"{self.base_path}/api/json-notices/{quote(ivorn, safe='')}"}
        return {
            "synopsis": f"{self.base_path}/apiv1/packet/synopsis/{encoded}",
            "xml": f"{self.base_path}/apiv1/packet/xml/{encoded}",
        }

    async def burst(self, request: web.Request) -> web.Response:
        viewer = self.access.viewer(request)  # a wrong token is a 401, not the public view
        burst_id = request.match_info["burst_id"]
        try:
            burst_id.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidQueryString("the burst id is not valid UTF-8 once decoded", "burst_id") from None
        if not burst_id.strip() or len(burst_id) > MAX_BURST_ID or "\x00" in burst_id:
            raise InvalidQueryString(f"a burst id is 1 to {MAX_BURST_ID} characters", "burst_id", burst_id)
        q = parse_query(request, BURST_DETAIL_PARAMS)
        found = await self.reader.run(queries.burst_detail, burst_id)
        if found is None:
            raise NotFound(f"no burst {burst_id!r} is known (list them at {self.base_path}/api/bursts)",
                           burst_id=burst_id)  # fmt: skip
        for notice in found["notices"]:
            notice["links"] = self._notice_links(notice["ivorn"])
        types = None if viewer.full else sorted(self.access.public_types)
        found["log"] = await self._read_log(q["log_after"], q["log_limit"], ReadFilter.of(types, stream=burst_id))
        if not viewer.processes:
            found["processes"] = None
        if not viewer.full:
            found["triggers"] = None
            runs = "" if viewer.processes else "process runs, "
            found["restricted"] = (f"trigger requests, {runs}and log events other than {self.access.public_types_text} "
                                   "need a read token ('Authorization: Bearer <token>') or signing in")  # fmt: skip
        path = quote(burst_id, safe="")
        found["links"] = {
            "self": f"{self.base_path}/api/bursts/{path}",
            "page": f"{self.base_path}/bursts/{path}",
            "log": f"{self.base_path}/api/log?stream={quote_plus(burst_id)}",
        }
        return json_response(found)

    # -- the log -----------------------------------------------------------------------

    async def _read_log(self, after: int, limit: int, read_filter: ReadFilter | None, upper: int | None = None,
                        requested_after: int | None = None) -> dict[str, Any]:  # fmt: skip
        """A page of events after ``after`` (at most ``upper``), with where to go on from."""
        try:
            head = (await self.log.head()).seq
            records = []
            if limit > 0 and (upper is None or after < upper):
                records = await self.log.read(after, read_filter, limit)
        except LogError as exc:
            raise Unavailable(f"the event log cannot be read now: {exc}") from None
        if upper is not None:
            records = [r for r in records if r.seq <= upper]
        full = limit > 0 and len(records) == limit
        if full:
            next_after = records[-1].seq
        else:  # nothing else matched up to the head noted before the read
            next_after = max(after, head, records[-1].seq if records else 0)
            if upper is not None:
                next_after = max(after, min(next_after, upper))
        complete = (not full) and (upper is not None or next_after >= head)
        return {
            "result": [event_json(r) for r in records],
            "count": len(records),
            "limit": limit,
            "after": after if requested_after is None else requested_after,
            "next_after": next_after,
            "head": head,
            "complete": complete,
        }

    async def log_page(self, request: web.Request) -> web.Response:
        self.access.require(request, "the event log")
        q = parse_query(request, LOG_PARAMS)
        for kind in q["type"]:
            if not _EVENT_TYPE.fullmatch(kind):
                raise InvalidQueryString("an event type is letters, digits and . _ : - (e.g. voevent.accepted)", "type", kind)
        since, until = q["since"], q["until"]
        if since and until and since > until:
            raise InvalidQueryString(f"since ({since}) is after until ({until})", "since", since)
        after = q["after"]
        upper = None
        try:
            # recorded_at never decreases along seq: a time range is a seq range.
            if since:
                before_since = format_time(parse_time(since) - timedelta(microseconds=1))
                after = max(after, await self.log.seq_at(before_since))
            if until:
                upper = await self.log.seq_at(until)
        except (LogError, ValueError, OverflowError) as exc:
            if isinstance(exc, LogError):
                raise Unavailable(f"the event log cannot be read now: {exc}") from None
            raise InvalidQueryString("the time is out of range", "since", since) from None
        read_filter = ReadFilter.of(types=q["type"] or None, stream=q["stream"]) if (q["type"] or q["stream"]) else None
        page = await self._read_log(after, q["limit"], read_filter, upper, requested_after=q["after"])
        return json_response(page)

    async def stream_events(self, request: web.Request) -> web.StreamResponse:
        viewer = self.access.viewer(request)
        q = parse_query(request, STREAM_PARAMS)
        for kind in q["type"]:
            if not _EVENT_TYPE.fullmatch(kind):
                raise InvalidQueryString("an event type is letters, digits and . _ : - (e.g. voevent.accepted)", "type", kind)
        if not viewer.full:
            # Refused rather than thinned: a client that asked for everything (no filter) or for
            # a type it may not see would otherwise take silence for "nothing happened".
            hidden = [kind for kind in q["type"] if kind not in self.access.public_types]
            if hidden or not q["type"]:
                what = f"the {hidden[0]} events" if hidden else "the stream of every event type"
                raise self.access.refusal(what, f"without one, ask only for ?type={self.access.public_types_text}")
        return await self.stream.handle(request, q["after"], q["type"])
