"""The voeventdb-compatible REST API (``/apiv1/...``), served from the voeventdb projection.

It answers as 4pisky's voeventdb server does, so ``voeventdb.remote`` works unchanged:

* the same endpoints, filters (:class:`~burstbus.store.projections.voeventdb.Filters`) and
  paging keys (``limit``, default 100, at most 10,000; ``offset``; ``order``);
* the same JSON envelope: ``{"endpoint": <the route rule>, "querystring": {key: [values]},
  "result": ..., "url": <the request URL>}``, plus ``"limit"`` on list endpoints;
* IVORNs URL-encoded in the path (``quote_plus``, as ``voeventdb.remote`` sends them);
* ``packet/xml`` gives the exact bytes received, read back from the log, with their charset.

Differences, on purpose: an unknown IVORN is 404 (4pisky: 422); ``role`` accepts all four
VOEvent roles (4pisky forgot ``prediction``); ``ivorn_contains`` and friends match their text
literally (4pisky builds a LIKE pattern, so ``%`` and ``_`` were wildcards there); every
error says what was wrong (4pisky's error ``message`` is empty); the synopsis carries a few
extra fields (``instrument``, ``mission``, ``via``, ``sha256``, ``size``, ``cited_by``);
a cone written with numpy reprs (``[np.float64(10.0), ...]``, what ``voeventdb.remote``
sends under numpy 2) is read as the plain list.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from typing import Any, TypeVar
from urllib.parse import unquote, unquote_plus

from aiohttp import web

from burstbus.bridges.http.errors import (
    InvalidQueryString,
    IvornNotFound,
    IvornNotSupplied,
    LimitMaxExceeded,
    Unavailable,
    json_response,
)
from burstbus.bridges.http.spec import Param, Route, limit_param
from burstbus.events import parse_time
from burstbus.payload import xml_bytes
from burstbus.store.base import EventLog
from burstbus.store.read import voeventdb as vdb
from burstbus.store.read.rows import IvornCount, Synopsis
from burstbus.store.reader import ProjectionReader

T = TypeVar("T")

#: As 4pisky's server: rows per list request when ``limit`` is absent, and the most allowed.
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
#: Largest ``offset`` accepted (SQLite takes 64-bit integers).
MAX_OFFSET = 2**62

PAGING_KEYS = ("limit", "offset", "order")

_INTEGER = re.compile(r"\s*\+?([0-9]+)\s*")
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]*)["']""")

# The route rules as 4pisky's Flask app names them (the envelope's "endpoint").
_SYNOPSIS_RULE = "/apiv1/packet/synopsis/<path:url_encoded_ivorn>"


def _text(key: str, value: str) -> str:
    """Refuse text SQLite cannot bind (lone surrogates from broken percent-encoding)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        shown = value.encode("utf-8", "replace").decode("utf-8")
        raise InvalidQueryString("the text is not valid UTF-8 once percent-decoded", key, shown) from None
    return value


#: voeventdb.remote 1.1 formats a cone as ``str([ra, dec, radius])`` of numpy floats, which
#: with numpy >= 2 reads ``[np.float64(10.0), ...]``: not JSON. Accept that spelling.
_NUMPY_FLOAT = re.compile(r"\b(?:np|numpy)\.float(?:16|32|64|128)?\(\s*([^()]*?)\s*\)")


def _cone_text(value: str) -> str:
    return _NUMPY_FLOAT.sub(r"\1", value) if "float" in value else value


def parse_filters(request: web.Request) -> vdb.Filters:
    """The request's filters; a bad key or value is a 400 naming the key."""
    items = [(_text(k, k), _text(k, v)) for k, v in request.query.items()]
    items = [(k, _cone_text(v) if k == "cone" else v) for k, v in items]
    try:
        return vdb.Filters.from_query(items, ignore=PAGING_KEYS)
    except (ValueError, TypeError, OverflowError) as exc:
        reason = str(exc)
    # Find which key is to blame, so the answer names it.
    for key in dict.fromkeys(k for k, _ in items if k not in PAGING_KEYS):
        mine = [(k, v) for k, v in items if k == key]
        try:
            vdb.Filters.from_query(mine, ignore=PAGING_KEYS)
        except (ValueError, TypeError, OverflowError):
            raise InvalidQueryString(reason, key, mine[0][1]) from None
    raise InvalidQueryString(reason)


def _integer(key: str, text: str, reason: str, too_large: int) -> int:
    """A non-negative integer; any run of digits above ``too_large`` comes back as
    ``too_large + 1`` (so callers give their own "too large" answer, not a parse error)."""
    match = _INTEGER.fullmatch(text)
    if match is None:
        if _INTEGER.fullmatch(text.strip().removeprefix("-")):
            raise InvalidQueryString("must not be negative", key, text)
        raise InvalidQueryString(reason, key, text)
    digits = match.group(1).lstrip("0") or "0"
    if len(digits) > len(str(too_large)):
        return too_large + 1
    return min(int(digits), too_large + 1)


class Paging:
    """``limit``/``offset``/``order`` of a list request, checked as 4pisky checks them."""

    def __init__(self, request: web.Request, default_limit: int, max_limit: int):
        query = request.query
        text = query.get("limit")
        if not text:
            self.limit = default_limit
        else:
            self.limit = _integer("limit", text, "please supply an integer-valued row limit", max_limit)
            if self.limit > max_limit:
                raise LimitMaxExceeded(text.strip(), max_limit)
        text = query.get("offset")
        self.offset = 0
        if text:
            self.offset = _integer("offset", text, "please supply an integer-valued row offset", MAX_OFFSET)
            if self.offset > MAX_OFFSET:
                raise InvalidQueryString(f"the largest offset is {MAX_OFFSET}", "offset", text)
        order = query.get("order") or None
        if order is not None and order not in vdb.ORDERS:
            raise InvalidQueryString(
                f"not a valid ordering, use one of {', '.join(vdb.ORDERS)}", "order", order
            )
        self.order = order


def envelope(request: web.Request, rule: str, result: Any, **more: Any) -> dict[str, Any]:
    """4pisky's response dictionary."""
    query = request.query
    return {
        "endpoint": rule,
        "querystring": {key: query.getall(key) for key in dict.fromkeys(query.keys())},
        "result": result,
        "url": str(request.url),
        **more,
    }


def _iso(value: str | None) -> str | None:
    """The log's fixed-width UTC text as 4pisky prints datetimes (``isoformat``, +00:00)."""
    if value is None:
        return None
    try:
        return parse_time(value).isoformat()
    except ValueError:
        return value


_SWIFT_GRB_POS = "ivo://nasa.gsfc.gcn/SWIFT#BAT_GRB_Pos_"


def relevant_urls(ivorn: str, refs: Sequence[str]) -> list[str]:
    """Pages about the burst a packet reports, as 4pisky's synopsis lists them: for a Swift
    BAT position (the packet or the last one it cites), the Swift and GCN trigger pages."""
    source = ivorn if ivorn.startswith(_SWIFT_GRB_POS) else None
    if source is None:
        for ref in refs:
            if ref.startswith(_SWIFT_GRB_POS):
                source = ref
    if source is None:
        return []
    trigger = source[len(_SWIFT_GRB_POS) :].split("-", 1)[0]
    return [
        f"http://www.swift.ac.uk/search/summary.php?obsid={trigger}",
        f"http://gcn.gsfc.nasa.gov/other/{trigger}.swift",
    ]


def synopsis_result(found: Synopsis) -> dict[str, Any]:
    """The read side's :func:`~burstbus.store.read.voeventdb.synopsis` in 4pisky's shape."""
    row = asdict(found.voevent)
    del row["id"]  # 4pisky leaves its database id out too
    row["author_datetime"] = _iso(found.voevent.author_datetime)
    row["received"] = _iso(found.voevent.received)
    return {
        "voevent": row,
        "refs": [asdict(ref) for ref in found.refs],
        "coords": [{**asdict(coord), "time": _iso(coord.time)} for coord in found.coords],
        "relevant_urls": relevant_urls(found.voevent.ivorn, [ref.ref_ivorn for ref in found.refs]),
        "cited_by": list(found.cited_by),
    }


def list_item(row: str | IvornCount) -> str | list[str | int]:
    """One entry of a list endpoint's ``result``: an IVORN, or 4pisky's ``[ivorn, count]``."""
    return row if isinstance(row, str) else [row.ivorn, row.count]


def xml_charset(raw: bytes) -> str:
    """The charset to declare for a packet: its XML declaration's, else by BOM, else UTF-8."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    match = _XML_ENCODING.match(raw.lstrip(b"\xef\xbb\xbf")[:200])
    return match.group(1).decode("ascii").lower() if match else "utf-8"


class ApiV1:
    """The ``/apiv1`` handlers over one projections reader and the log."""

    def __init__(
        self,
        reader: ProjectionReader,
        log: EventLog,
        *,
        base_path: str = "",
        default_limit: int = DEFAULT_LIMIT,
        max_limit: int = MAX_LIMIT,
    ):
        self.reader = reader
        self.log = log
        self.base_path = base_path
        self.default_limit = default_limit
        self.max_limit = max_limit

    def routes(self) -> list[tuple[str, Callable[[web.Request], Any]]]:
        """(path under ``/apiv1``, handler) for every GET endpoint."""
        return [
            ("", self.root),
            ("/", self.root),
            ("/count", self.count),
            ("/list/ivorn", self.list_ivorn),
            ("/list/ivorn_nrefs", self.list_ivorn_nrefs),
            ("/list/ivorn_ncites", self.list_ivorn_ncites),
            ("/map/authored_month_count", self.map_authored_month_count),
            ("/map/role_count", self.map_role_count),
            ("/map/stream_count", self.map_stream_count),
            ("/map/stream_role_count", self.map_stream_role_count),
            ("/packet/synopsis/{ivorn:.*}", self.packet_synopsis),
            ("/packet/xml/{ivorn:.*}", self.packet_xml),
        ]

    # -- summaries ---------------------------------------------------------------------

    async def root(self, request: web.Request) -> web.Response:
        from burstbus import __version__

        rules = ["/apiv1/" + path.strip("/").replace("{ivorn:.*}", "<path:url_encoded_ivorn>")
                 for path, _ in self.routes() if path.strip("/")]  # fmt: skip
        return json_response(
            {
                "message": "Welcome to the voeventdb REST API, interface version 'apiv1' (served by burstbus).",
                "api_version": "apiv1",
                "version_tag": __version__,
                "endpoints": sorted(rules),
                "docs_url": "https://voeventdb.readthedocs.io/",
            }
        )

    async def _summary(self, request: web.Request, rule: str, query: Callable[..., Any]) -> web.Response:
        filters = parse_filters(request)
        result = await self.reader.run(query, filters)
        return json_response(envelope(request, rule, result))

    async def count(self, request: web.Request) -> web.Response:
        return await self._summary(request, "/apiv1/count", vdb.count)

    async def map_authored_month_count(self, request: web.Request) -> web.Response:
        return await self._summary(request, "/apiv1/map/authored_month_count", vdb.authored_month_counts)

    async def map_role_count(self, request: web.Request) -> web.Response:
        return await self._summary(request, "/apiv1/map/role_count", vdb.role_counts)

    async def map_stream_count(self, request: web.Request) -> web.Response:
        return await self._summary(request, "/apiv1/map/stream_count", vdb.stream_counts)

    async def map_stream_role_count(self, request: web.Request) -> web.Response:
        return await self._summary(request, "/apiv1/map/stream_role_count", vdb.stream_role_counts)

    # -- lists -------------------------------------------------------------------------

    async def _list(self, request: web.Request, rule: str,
                    query: Callable[..., Sequence[str | IvornCount]]) -> web.Response:  # fmt: skip
        filters = parse_filters(request)
        paging = Paging(request, self.default_limit, self.max_limit)

        def run(conn: sqlite3.Connection) -> list[Any]:
            return [list_item(row) for row in query(conn, filters, paging.order, paging.limit, paging.offset)]

        result = await self.reader.run(run)
        return json_response(envelope(request, rule, result, limit=paging.limit))

    async def list_ivorn(self, request: web.Request) -> web.Response:
        return await self._list(request, "/apiv1/list/ivorn", vdb.list_ivorns)

    async def list_ivorn_nrefs(self, request: web.Request) -> web.Response:
        return await self._list(request, "/apiv1/list/ivorn_nrefs", vdb.list_ivorn_nrefs)

    async def list_ivorn_ncites(self, request: web.Request) -> web.Response:
        return await self._list(request, "/apiv1/list/ivorn_ncites", vdb.list_ivorn_ncites)

    # -- one packet --------------------------------------------------------------------

    def _path_ivorns(self, request: web.Request, endpoint: str) -> list[str]:
        """The IVORN(s) the path may name, most likely first.

        Read from the raw path and decoded once, so ``%2F`` and ``%23`` inside an IVORN
        survive. ``voeventdb.remote`` encodes with ``quote_plus`` (space → ``+``), others
        with ``quote`` (a ``+`` stays): both readings are tried, the literal one first.
        """
        prefix = f"{self.base_path}/apiv1/packet/{endpoint}/"
        raw = request.rel_url.raw_path
        if raw.startswith(prefix):
            tail = raw[len(prefix) :]
            candidates = [unquote(tail, errors="strict")] if tail else []
            if "+" in tail:
                candidates.append(unquote_plus(tail, errors="strict"))
        else:  # a path spelled in some other encoding: trust the router's decoding
            tail = request.match_info.get("ivorn", "")
            candidates = [tail] if tail else []
        if not candidates:
            raise IvornNotSupplied(
                f"append a URL-encoded IVORN to the URL ({prefix}<ivorn>); "
                f"IVORN listings are at {self.base_path}/apiv1/list/ivorn"
            )
        for ivorn in candidates:
            _text("ivorn", ivorn)
        return candidates

    async def _find(self, request: web.Request, endpoint: str,
                    query: Callable[[sqlite3.Connection, str], T | None]) -> T:  # fmt: skip
        try:
            candidates = self._path_ivorns(request, endpoint)
        except UnicodeDecodeError:
            raise InvalidQueryString("the IVORN in the path is not valid UTF-8 once decoded") from None
        for ivorn in candidates:
            found = await self.reader.run(query, ivorn)
            if found is not None:
                return found
        raise IvornNotFound(candidates[0])

    async def packet_synopsis(self, request: web.Request) -> web.Response:
        found = await self._find(request, "synopsis", vdb.synopsis)
        return json_response(envelope(request, _SYNOPSIS_RULE, synopsis_result(found)))

    async def packet_xml(self, request: web.Request) -> web.Response:
        seq = await self._find(request, "xml", vdb.packet_seq)
        record = await self.log.get(seq)
        if record is None or record.type != vdb.ACCEPTED:
            raise Unavailable(
                f"the archive names log seq {seq} for this IVORN but the log does not hold it"
            )
        raw = xml_bytes(record.data)
        return web.Response(body=raw, content_type="text/xml", charset=xml_charset(raw))


# -- the route table (served by make_app, described in /api/openapi.json) --------------------

_FILTER_DOCS: dict[str, tuple[str, str]] = {
    # name: (kind, description)
    "authored_since": ("time", "Who/Date at or after this time (ISO-8601)"),
    "authored_until": ("time", "Who/Date at or before this time (ISO-8601)"),
    "cited": ("boolean", "notices some other notice cites (true) or none cites (false)"),
    "cone": ("text", "[ra,dec,radius] in degrees (ICRS), e.g. [123.4,-12.5,1.0]"),
    "coord": ("boolean", "notices with (true) or without (false) a position"),
    "dec_gt": ("number", "position declination above this (degrees)"),
    "dec_lt": ("number", "position declination below this (degrees)"),
    "ivorn_contains": ("text", "IVORN contains this text (literally; repeat: all of them)"),
    "ivorn_prefix": ("text", "IVORN starts with this (repeat: any of them)"),
    "ref_any": ("boolean", "notices that cite something (true) or nothing (false)"),
    "ref_contains": ("text", "cites an IVORN containing this (repeat: any of them)"),
    "ref_exact": ("text", "cites exactly this IVORN (repeat: any of them)"),
    "role": ("text", "VOEvent role (repeat: any of them)"),
    "stream": ("text", "IVORN stream, e.g. nasa.gsfc.gcn/SWIFT (repeat: any of them)"),
}


def filter_params() -> tuple[Param, ...]:
    """The voeventdb filters as documented parameters (parsing stays with ``Filters``)."""
    names = [f.name for f in fields(vdb.Filters)]
    out = []
    for name in names:
        kind, text = _FILTER_DOCS.get(name, ("text", name))
        enum = vdb.ROLES if name == "role" else ()
        out.append(Param(name, text, kind=kind, multi=name in vdb.Filters.MULTI, enum=enum))
    return tuple(out)


def paging_params(default_limit: int, max_limit: int) -> tuple[Param, ...]:
    return (
        limit_param(default_limit, max_limit),
        Param("offset", "rows to skip", kind="integer", minimum=0, maximum=MAX_OFFSET, default=0),
        Param("order", "sort order ('-' is descending)", enum=vdb.ORDERS),
    )


def route_table(api: ApiV1) -> list[Route]:
    """Every ``/apiv1`` endpoint with its parameters (4pisky's envelope: ``{"endpoint",
    "querystring", "result", "url"}``)."""
    filters = filter_params()
    paging = paging_params(api.default_limit, api.max_limit)
    envelope_schema = {"type": "object", "required": ["endpoint", "querystring", "result", "url"],
                       "properties": {"endpoint": {"type": "string"}, "querystring": {"type": "object"},
                                      "result": {}, "url": {"type": "string"}, "limit": {"type": "integer"}}}  # fmt: skip
    ivorn = Param("ivorn", "the IVORN, URL-encoded (quote_plus or quote)", where="path",
                  example="ivo%3A%2F%2Fnasa.gsfc.gcn%2FSWIFT%23BAT_GRB_Pos_1234-5")  # fmt: skip
    summaries = {
        "/count": "How many notices match the filters",
        "/list/ivorn": "IVORNs of matching notices",
        "/list/ivorn_nrefs": "IVORNs with how many citations each makes",
        "/list/ivorn_ncites": "IVORNs with how many times each is cited",
        "/map/authored_month_count": "Matching notices per authored month",
        "/map/role_count": "Matching notices per role",
        "/map/stream_count": "Matching notices per stream",
        "/map/stream_role_count": "Matching notices per stream and role",
    }
    routes: list[Route] = []
    for path, handler in api.routes():
        if path in ("", "/"):
            routes.append(Route("GET", f"/apiv1{path}", handler, "API welcome and endpoint list", "voeventdb (apiv1)",
                                schema={"type": "object"}))  # fmt: skip
        elif path.startswith("/packet/"):
            kind = path.split("/")[2]
            xml = kind == "xml"
            routes.append(Route(
                "GET", f"/apiv1{path}", handler,
                "The exact bytes received" if xml else "One notice: its row, citations, positions, who cites it",
                "voeventdb (apiv1)", params=(ivorn,), content_type="text/xml" if xml else "application/json",
                schema={"type": "string"} if xml else envelope_schema,
                responses={200: "the packet" if xml else "the synopsis", 404: "the IVORN is not in the archive"},
            ))  # fmt: skip
        else:
            listing = path.startswith("/list/")
            routes.append(Route(
                "GET", f"/apiv1{path}", handler, summaries.get(path, path), "voeventdb (apiv1)",
                params=(*filters, *paging) if listing else filters, schema=envelope_schema,
                responses={200: "4pisky's envelope", 413: "limit above the maximum"} if listing else {200: "4pisky's envelope"},
            ))  # fmt: skip
    return routes
