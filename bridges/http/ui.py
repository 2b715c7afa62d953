"""The web pages: notices, processes, bursts, one burst, and the audit log.

Server-side rendering with jinja2 (autoescape on) from ``templates/``, one CSS file and small
scripts from ``static/`` (no build, no CDN: the Aladin Lite sky view is vendored at build time,
``vendor.py``): pages work without JavaScript, and with it they follow the log live through
``{base}/api/stream`` (see ``static/live.js``).

* Every link is relative (``./notices``, ``../bursts/x``), so the pages work under any base
  path a reverse proxy puts them at, and never name the host.
* Filters are GET parameters, checked like the API's (``ui_queries``); a bad one is shown as
  a message above the form (status 400), never a 500. A projection that is not there yet
  (a fresh install) is a message too (503).
* ``?fragment=results`` answers only the part of a page that changes, with the same filters:
  what the live script fetches after the projections have caught up with a new event.
* The audit page's chain state comes from a :class:`ChainVerifier` running in the background.
* The audit page, and a burst's trigger requests, are for readers with a read credential
  (:mod:`~.access`): a bearer token, or the cookie the sign-in form sets (:mod:`~.signin`).
  Without one, the audit page is the sign-in form (401) and the burst pages leave the trigger
  details out; a page never follows event types its reader may not see.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web
from markupsafe import Markup

from burstbus.bridges.http import flow, sky
from burstbus.bridges.http import ui_queries as q
from burstbus.bridges.http.access import Access, Throttled, Unauthorized, Viewer
from burstbus.bridges.http.chaincheck import ChainVerifier
from burstbus.bridges.http.errors import ApiError
from burstbus.bridges.http.permissions import Action
from burstbus.bridges.http.staticfiles import add_static
from burstbus.catalogue import (
    BURST_IDENTIFIED,
    CATALOGUE,
    DATA_AVAILABLE,
    PROCESS_DISPATCHED,
    PROCESS_GAVE_UP,
    PROCESS_IDLING,
    PROCESS_REQUESTED,
    PROCESS_RETRY_REQUESTED,
    PROCESS_STATUS,
    TRIGGER_TYPES,
    VOEVENT_ACCEPTED,
)
from burstbus.events import RecordedEvent
from burstbus.handlers.orchestrator.core import fold
from burstbus.handlers.orchestrator.runs import FOLLOWED
from burstbus.store.base import EventLog, ReadFilter
from burstbus.store.projections.processes import TABLE_STATUSES
from burstbus.store.projections.voeventdb import ROLES
from burstbus.store.read import bursts as read_burst
from burstbus.store.reader import ProjectionReader, ReadModelError

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

VERIFIER = web.AppKey("chain_verifier", ChainVerifier)

#: What the orchestrator writes that changes the process table and a burst's graph.
ORCHESTRATOR_TYPES = (DATA_AVAILABLE, PROCESS_REQUESTED, PROCESS_IDLING, PROCESS_DISPATCHED, PROCESS_GAVE_UP)
#: Event types each page follows live (the burst page filters further by burst id).
LIVE_TYPES: dict[str, tuple[str, ...]] = {
    "overview": (VOEVENT_ACCEPTED, BURST_IDENTIFIED, PROCESS_STATUS),
    "notices": (VOEVENT_ACCEPTED, BURST_IDENTIFIED),
    "processes": (PROCESS_STATUS, PROCESS_RETRY_REQUESTED, *ORCHESTRATOR_TYPES),
    "bursts": (BURST_IDENTIFIED, PROCESS_STATUS, *TRIGGER_TYPES),
    "burst": (BURST_IDENTIFIED, PROCESS_STATUS, PROCESS_RETRY_REQUESTED, *ORCHESTRATOR_TYPES, *TRIGGER_TYPES),
}

#: Every event type the catalogue names (docs/events.md): the audit page follows them all
#: when it has no type filter (an EventSource listens by name; ``projected`` covers the rest).
ALL_TYPES: tuple[str, ...] = tuple(kind.name for kind in CATALOGUE)

#: How far back (in seqs) the audit page looks for its newest matching events at most; a
#: rarer filter beyond that says so and offers ``after``.
LOG_SCAN_LIMIT = 200_000

Page = Callable[[web.Request, Viewer], Awaitable[web.StreamResponse]]


# -- formatting (jinja filters) -------------------------------------------------------------


def utc(value: Any, seconds: bool = True) -> str:
    """``2026-11-20T03:04:05.670000Z`` → ``2026-11-20 03:04:05`` (always UTC)."""
    if not value:
        return ""
    text = str(value)
    if len(text) >= 19 and text[10] == "T":
        return text[:10] + " " + text[11:19 if seconds else 16]
    return text


def degrees(value: Any, digits: int = 3) -> str:
    if value is None:
        return ""
    return f"{float(value):.{digits}f}°"


def error_text(value: Any) -> str:
    if value is None:
        return "?"
    number = float(value)
    return sky.angle_text(number) if number > 0 else "0"


def quote_all(value: Any) -> str:
    return quote(str(value), safe="")


def asset_version(name: str) -> str:
    """A short hash of a static file, for cache-busting URLs (``?v=``)."""
    try:
        return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:10]
    except OSError:
        return "0"


def make_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(utc=utc, deg=degrees, err=error_text, q=quote_all, hms=sky.ra_hms, dms=sky.dec_dms,
                       ago=q.relative_time)  # fmt: skip
    env.globals.update(STATUSES=TABLE_STATUSES, ROLES=ROLES,
                       assets={name: asset_version(name) for name in ("burstbus.css", "live.js", "skyview.js")})  # fmt: skip
    return env


# -- pages ---------------------------------------------------------------------------------


def relative_root(base: str, path: str) -> str:
    """The relative URL of the base from a page at ``path`` (``./`` or ``../`` …)."""
    rest = path[len(base):] if path.startswith(base) else path
    depth = rest.count("/") - 1
    return "../" * depth if depth > 0 else "./"


def query_string(items: Sequence[tuple[str, str]] | Mapping[str, Any], **changes: Any) -> str:
    """``?k=v…`` of ``items`` with ``changes`` applied (None removes a key); empty values dropped."""
    pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
    pairs = [(k, v) for k, v in pairs if k not in changes and k != "fragment" and v not in ("", None)]
    for key, value in changes.items():
        if value is not None and value != "":
            pairs.append((key, str(value)))
    return "?" + urlencode(pairs) if pairs else "?"


@dataclass
class Live:
    """What the live script needs: which events, after which seq, matched how."""

    types: tuple[str, ...]
    after: int
    projected: bool = True  # wait for ``event: projected`` before re-fetching
    match: dict[str, str] | None = None  # e.g. {"burst_id": "sb…"}: stream or data.burst_id
    enabled: bool = True  # False on pages that show a fixed window (an older page)


class Pages:
    """The page handlers, over the projections reader and the log."""

    def __init__(self, reader: ProjectionReader, log_: EventLog, base: str, verifier: ChainVerifier,
                 access: Access | None = None):  # fmt: skip
        self.reader = reader
        self.log = log_
        self.base = base
        self.verifier = verifier
        self.access = access if access is not None else Access(())
        self.env = make_environment()

    def routes(self) -> list[tuple[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]]:
        return [
            ("/", self.guard(self.overview)),
            ("/notices", self.guard(self.notices)),
            ("/processes", self.guard(self.processes)),
            ("/bursts", self.guard(self.bursts)),
            ("/bursts/{burst_id}", self.guard(self.burst)),
            ("/log", self.guard(self.audit_log, protected="The audit log")),
        ]

    def guard(self, page: Page, protected: str | None = None) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """``page`` with its reader's :class:`Viewer`; a wrong token (or a throttled address) is
        the sign-in form saying so, and a ``protected`` page without a read credential is the
        sign-in form saying what is needed — never the page, never a JSON error."""

        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                viewer = self.access.viewer(request)
            except (Unauthorized, Throttled) as exc:
                return self.signin_page(request, Viewer(False), exc.status, message=exc.message,
                                        headers=exc.headers)  # fmt: skip
            if protected and not viewer.full:
                return self.signin_page(request, viewer, 401 if self.access.configured else 403, needed=protected)
            return await page(request, viewer)

        return handler

    def signin_page(self, request: web.Request, viewer: Viewer, status: int = 200, *, needed: str | None = None,
                    message: str | None = None, next_: str | None = None,
                    headers: Mapping[str, str] | None = None) -> web.Response:  # fmt: skip
        """The sign-in form: on its own (``/signin``), after a wrong token (``message``), or in
        place of a protected page (``needed``: what the page is; ``next_``: where to go after)."""
        if next_ is None:
            next_ = self.here(request) if needed or message else ""
        response = self.render(request, viewer, "signin.html", status, page="signin", title="Sign in",
                               needed=needed, message=message, next=next_, problem=None,
                               configured=self.access.configured, tokens_configured=bool(self.access.tokens))  # fmt: skip
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="burstbus"'
        for key, value in (headers or {}).items():
            if key.lower() in ("retry-after", "www-authenticate"):
                response.headers[key] = value
        return response

    def here(self, request: web.Request) -> str:
        """This page relative to the base (``log?type=x``), for the sign-in form's way back."""
        raw = request.rel_url.raw_path  # still percent-encoded: a burst id survives the trip
        path = raw[len(self.base):] if raw.startswith(self.base) else raw
        items = [(k, v) for k, v in request.query.items() if k != "fragment"]
        return path.lstrip("/") + (query_string(items) if items else "")

    # -- rendering --

    def render(self, request: web.Request, viewer: Viewer, template: str, status: int = 200,
               **context: Any) -> web.Response:  # fmt: skip
        """The page, or only its results block when ``?fragment=results`` asks for it."""
        fragment = request.query.get("fragment") == "results"
        root = relative_root(self.base, request.path)
        live: Live | None = context.pop("live", None)
        if live is not None and not viewer.full:
            live.types = tuple(t for t in live.types if t in self.access.public_types)  # what its reader may follow
            live.enabled = live.enabled and bool(live.types)
        values = {
            "root": root,
            "query": list(request.query.items()),
            "qs": lambda **changes: query_string(list(request.query.items()), **changes),
            "live": live,
            "live_attrs": self._live_attrs(root, live),
            "error": None,
            "form": {},
            "viewer": viewer,
            "can_sign_in": self.access.configured and (not self.access.public_read or self.access.accounts),
            "here": self.here(request),
            "accounts": self.access.accounts,
            **context,
        }
        people = self.access.people
        seed, new_seed = people.form_seed(request) if people is not None else ("", False)
        person = viewer.person
        values["csrf"] = (person.csrf if person is not None and person.csrf is not None
                          else people.form_csrf(seed) if people is not None else "")
        name = template.replace(".html", "_results.html") if fragment else template
        try:
            text = self.env.get_template(name).render(values)
        except jinja2.TemplateNotFound:
            text = self.env.get_template(template).render(values)
        response = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
        if new_seed and people is not None:
            people.set_seed(response, seed, secure=request.secure)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        )
        return response

    def _live_attrs(self, root: str, live: Live | None) -> Markup:
        if live is None or not live.enabled:
            return Markup("")
        attrs = {
            "data-live": "1",
            "data-stream": root + "api/stream",
            "data-types": ",".join(live.types),
            "data-after": str(live.after),
            "data-projected": "1" if live.projected else "0",
        }
        if live.match:
            attrs["data-match"] = json.dumps(live.match)
        return Markup(" ").join(Markup('{}="{}"').format(k, v) for k, v in attrs.items())

    async def _read(self, fn: Callable[..., Any], *args: Any) -> tuple[Any, str | None, int]:
        """Run a projection query; a read model that cannot answer is a message, not a crash."""
        try:
            return await self.reader.run(fn, *args), None, 200
        except ApiError as exc:
            return None, exc.message, exc.status
        except ReadModelError as exc:
            return None, exc.message, 503

    # -- handlers --

    async def overview(self, request: web.Request, viewer: Viewer) -> web.Response:
        self.verifier.nudge()
        data, problem, status = await self._read(q.overview)
        data = data or {"bursts": [], "notices": [], "by_status": {}, "projected": 0,
                        "burst_total": 0, "notice_total": 0}  # fmt: skip
        _hide_trigger_counts(data["bursts"], viewer)
        if not viewer.processes:
            data["by_status"] = None  # the process table is for signed-in readers here
        chain = self.verifier.state
        return self.render(request, viewer, "overview.html", status, page="overview", title="Overview", data=data,
                           problem=problem, chain=chain, verifying=self.verifier.running_since,
                           live=Live(LIVE_TYPES["overview"], data["projected"]))  # fmt: skip

    async def notices(self, request: web.Request, viewer: Viewer) -> web.Response:
        """SVOM's columns, each sortable (``sort``, validated: an unknown key is the form with a
        message, 400), the event time newest first by default; the page's error circles on the
        sky (Aladin Lite when vendored and reachable, else the SVG chart)."""
        try:
            query = q.NoticeQuery.from_items(list(request.query.items()))
        except q.FilterError as exc:
            return self.render(request, viewer, "notices.html", 400, page="notices", title="Notices",
                               error=exc, form=_form(request), data=None, problem=None, cone=None,
                               sort=q.DEFAULT_NOTICE_SORT, sky_view=None)  # fmt: skip
        data, problem, status = await self._read(q.notices, query)
        cone = query.filters.cone
        markers = [sky.Marker(n["ra"], n["dec"], n["err"], n["ivorn"]) for n in (data or {}).get("rows", ())
                   if n["ra"] is not None and n["dec"] is not None]  # fmt: skip
        chart = Markup(sky.allsky_svg(markers, title=f"The {len(markers)} positioned notices of this page")) if markers else None  # noqa: S704 - built and escaped by sky
        view = _sky_view(relative_root(self.base, request.path), markers, chart) if data else None
        response = self.render(request, viewer, "notices.html", status, page="notices", title="Notices",
                               form=query.form, data=data, problem=problem, cone=cone, paging=query.paging,
                               sort=query.sort, sky_view=view,
                               live=_live(LIVE_TYPES["notices"], data, query.paging.offset == 0))  # fmt: skip
        return _sky_policy(response, view)

    async def processes(self, request: web.Request, viewer: Viewer) -> web.Response:
        if not viewer.processes:  # signed-in readers, unless [http] public_processes
            return self.signin_page(request, viewer, 401 if self.access.configured else 403, needed="The process table")
        try:
            query = q.ProcessQuery.from_items(list(request.query.items()))
        except q.FilterError as exc:
            return self.render(request, viewer, "processes.html", 400, page="processes", title="Processes",
                               error=exc, form=_form(request, multi=("status",)), data=None, problem=None)  # fmt: skip
        data, problem, status = await self._read(q.processes, query)
        return self.render(request, viewer, "processes.html", status, page="processes", title="Processes",
                           form=query.form, data=data, problem=problem, paging=query.paging,
                           live=_live(LIVE_TYPES["processes"], data, query.paging.offset == 0))  # fmt: skip

    async def bursts(self, request: web.Request, viewer: Viewer) -> web.Response:
        """Newest trigger first (``sort`` changes it), with times relative to now beside UTC."""
        try:
            query = q.BurstQuery.from_items(list(request.query.items()))
        except q.FilterError as exc:
            return self.render(request, viewer, "bursts.html", 400, page="bursts", title="Bursts", error=exc,
                               form=_form(request), data=None, problem=None, sort=q.DEFAULT_BURST_SORT)  # fmt: skip
        data, problem, status = await self._read(q.bursts, query)
        if data:
            _hide_trigger_counts(data["rows"], viewer)
        return self.render(request, viewer, "bursts.html", status, page="bursts", title="Bursts", form=query.form,
                           data=data, problem=problem, paging=query.paging, sort=query.sort,
                           live=_live(LIVE_TYPES["bursts"], data, query.paging.offset == 0))  # fmt: skip

    async def burst(self, request: web.Request, viewer: Viewer) -> web.StreamResponse:
        burst_id = request.match_info["burst_id"]
        data, problem, status = await self._read(q.burst, burst_id)
        if data is None and problem is None:
            meant, _, _ = await self._read(read_burst.resolve_burst_id, burst_id)  # another case, or another name
            if meant and meant != burst_id:  # e.g. the SVOM id of a notice that joined a Fermi burst
                raise web.HTTPFound(relative_root(self.base, request.path) + "bursts/" + quote(meant, safe=""))
            status, problem = 404, f"no burst {burst_id!r} is known (yet)"
        if data is not None and not viewer.full:
            data["triggers"] = None  # who asked, who approved, pending ids: for signed-in readers
        if data is not None and not viewer.processes:
            data["processes"] = None  # runs and who asked for one: signed-in readers (public_processes)
        charts = _charts(data) if data else None
        if charts is not None:
            link = relative_root(self.base, request.path) + "api/provenance/"
            charts["flow"] = await self._flow(burst_id, link) if viewer.processes else None
        view = _sky_view(relative_root(self.base, request.path), _burst_markers(data), None) if data else None
        live_after = data["projected"] if data else 0
        acts = {"draft": viewer.may(Action.ASK_NOTICE), "process": viewer.may(Action.REQUEST_PROCESS)}  # their links
        response = self.render(request, viewer, "burst.html", status, page="bursts", title=burst_id, acts=acts,
                               burst_id=burst_id, data=data, problem=problem, charts=charts, sky_view=view,
                               live=Live(LIVE_TYPES["burst"], live_after, match={"burst_id": burst_id}))  # fmt: skip
        return _sky_policy(response, view)

    async def _flow(self, burst_id: str, link: str) -> Markup | None:
        """The burst's processing graph (inputs → runs → products) from its orchestrator events."""
        try:
            records = await self.log.read(filter=ReadFilter.of(types=FOLLOWED, stream=burst_id))
        except Exception:  # the log is failing: the page shows the rest
            log.exception("the burst page could not read %s's processing events", burst_id)
            return None
        drawn = flow.graph_svg(fold(burst_id, records), link) if records else None
        return Markup(drawn) if drawn else None  # noqa: S704 - built and escaped by flow

    async def audit_log(self, request: web.Request, viewer: Viewer) -> web.Response:
        self.verifier.nudge()
        chain = self.verifier.state
        common = {"page": "log", "title": "Audit log", "chain": chain, "verifying": self.verifier.running_since}
        try:
            query = q.LogQuery.from_items(list(request.query.items()))
        except q.FilterError as exc:
            return self.render(request, viewer, "log.html", 400, error=exc, form=_form(request), data=None,
                               problem=None, **common)  # fmt: skip
        try:
            data = await read_log(self.log, query)
        except Exception as exc:  # the log is closed or failing: say so on the page
            log.exception("the audit page could not read the log")
            return self.render(request, viewer, "log.html", 503, form=query.form, data=None,
                               problem=f"the log cannot be read now: {exc}", **common)  # fmt: skip
        newest_view = query.after is None and query.before is None
        live = Live(query.types or ALL_TYPES, data["head"], projected=False, enabled=newest_view)
        return self.render(request, viewer, "log.html", form=query.form, data=data, problem=None, query_=query,
                           live=live, **common)  # fmt: skip


def _hide_trigger_counts(rows: list[dict[str, Any]], viewer: Viewer) -> None:
    """Even a count says a trigger was asked for on that burst: for signed-in readers only."""
    if not viewer.full:
        for row in rows:
            row.pop("triggers", None)


def _form(request: web.Request, multi: Sequence[str] = ()) -> dict[str, Any]:
    """The submitted values, to show back in a form that had a mistake."""
    form: dict[str, Any] = {k: v for k, v in reversed(list(request.query.items())) if k not in multi}
    for key in multi:
        form[key] = tuple(request.query.getall(key, []))
    return form


def _live(types: tuple[str, ...], data: Mapping[str, Any] | None, enabled: bool) -> Live | None:
    if data is None:
        return None
    return Live(types, int(data.get("projected") or 0), enabled=enabled)


def _burst_markers(data: Mapping[str, Any]) -> list[sky.Marker]:
    """The burst's notices' positions, its best one last (drawn on top)."""
    best = data["burst"]
    others = [
        sky.Marker(n["ra"], n["dec"], n["err"], f"{n['instrument'] or ''} {n['ivorn']}".strip())
        for n in data["timeline"]
        if n["ra"] is not None and n["dec"] is not None and n["ivorn"] != best["best_ivorn"]
    ]
    if best["ra"] is None or best["dec"] is None:
        return others
    return [*others, sky.Marker(best["ra"], best["dec"], best["err"], f"best: {best['best_ivorn'] or ''}", best=True)]


def _charts(data: Mapping[str, Any]) -> dict[str, Markup | None]:
    """The burst's all-sky chart and zoom, from its best position and its notices' positions."""
    best = data["burst"]
    if best["ra"] is None or best["dec"] is None:
        return {"allsky": None, "inset": None}
    *others, main = _burst_markers(data)
    title = f"{best['burst_id']}: RA {best['ra']:.3f}°, Dec {best['dec']:+.3f}°"
    allsky = sky.allsky_svg([*others, main], title=title)
    inset = sky.inset_svg(main, others)
    return {"allsky": Markup(allsky), "inset": Markup(inset) if inset else None}  # noqa: S704 - built and escaped by sky


def _sky_view(root: str, markers: Sequence[sky.Marker], chart: Markup | None) -> dict[str, Any]:
    """What ``static/skyview.js`` needs: the vendored widget's URL ("" when not vendored: the
    SVG chart stays), the survey, and the circles."""
    version = sky.aladin_version()
    aladin = f"{root}static/vendor/aladin/{sky.ALADIN_ENTRY}?v={quote(version)}" if version else ""
    return {"aladin": aladin, "survey": sky.SURVEY, "markers": Markup(sky.view_markers(markers)),  # noqa: S704 - JSON escaped by sky
            "count": len(markers), "chart": chart}  # fmt: skip


def _sky_policy(response: web.Response, view: Mapping[str, Any] | None) -> web.Response:
    """A page that serves the widget needs its wider policy (:data:`~.sky.ALADIN_CSP`)."""
    if view is not None and view["aladin"] and view["count"]:
        response.headers["Content-Security-Policy"] = sky.ALADIN_CSP
    return response


# -- the log -------------------------------------------------------------------------------


def _event_row(record: RecordedEvent) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "type": record.type,
        "stream": record.stream,
        "actor": record.actor,
        "occurred_at": record.occurred_at,
        "recorded_at": record.recorded_at,
        "hash": record.hash,
        "summary": summary(record),
    }


def summary(record: RecordedEvent) -> str:
    """One short line saying what the event is about (the page shows no raw XML)."""
    data = record.data
    parts: list[str] = []
    for key in ("ivorn", "burst_id", "process", "status", "telescope", "request_id", "code", "reason",
                "outcome", "command"):  # fmt: skip
        value = data.get(key)
        if value not in (None, "", [], {}) and isinstance(value, str | int | float):
            parts.append(f"{key}={value}")
    text = " ".join(parts)
    return text if len(text) <= 240 else text[:239] + "…"


async def read_log(log_: EventLog, query: q.LogQuery) -> dict[str, Any]:
    """The events the audit page shows: forwards from ``after``, else the newest ones (below
    ``before``), newest first. Reading backwards is done in growing windows, since the log
    reads forwards only."""
    head = (await log_.head()).seq
    filt = ReadFilter.of(query.types or None, query.stream)
    if query.after is not None:
        records = await log_.read(query.after, filt, limit=query.limit)
        rows = [_event_row(r) for r in records]
        return {"rows": rows, "head": head, "order": "asc", "scanned_to": None,
                "more": len(records) == query.limit}  # fmt: skip
    top = head if query.before is None else min(head, query.before - 1)
    window = max(query.limit * 4, 1000)
    found: list[RecordedEvent] = []
    lo = top
    while top > 0:
        lo = max(0, top - window)
        found = await _read_between(log_, filt, lo, top)
        if len(found) >= query.limit or lo == 0 or top - lo >= LOG_SCAN_LIMIT:
            break
        window *= 4
    newest = found[-query.limit:][::-1]
    return {"rows": [_event_row(r) for r in newest], "head": head, "order": "desc",
            "scanned_to": lo if lo > 0 and len(found) < query.limit else None,
            "more": bool(newest) and (len(found) > query.limit or lo > 0)}  # fmt: skip


async def _read_between(log_: EventLog, filt: ReadFilter, lo: int, hi: int) -> list[RecordedEvent]:
    """Matching records with lo < seq <= hi, in seq order (the log reads forwards only)."""
    out: list[RecordedEvent] = []
    cursor = lo
    while True:
        batch = await log_.read(cursor, filt, limit=1000)
        kept = [r for r in batch if r.seq <= hi]
        out.extend(kept)
        if len(batch) < 1000 or len(kept) < len(batch):
            return out
        cursor = batch[-1].seq


# -- wiring --------------------------------------------------------------------------------


def add_ui(app: web.Application, reader: ProjectionReader, log_: EventLog, base: str = "",
           *, verify_interval: float = 300.0, access: Access | None = None) -> Pages:  # fmt: skip
    """Register the pages, the sign-in form and ``/static/`` under ``base`` and the chain
    verifier's lifetime on ``app``. ``base`` is the normalised base path (``""`` or ``/a/b``);
    ``access`` decides who reads the protected pages (closed when not given)."""
    from burstbus.bridges.http.signin import SignIn

    verifier = ChainVerifier(log_, verify_interval)
    app[VERIFIER] = verifier
    pages = Pages(reader, log_, base, verifier, access)
    for path, handler in pages.routes():
        app.router.add_get(f"{base}{path}", handler, allow_head=True)
    signin = SignIn(pages)
    for method, path, handler in signin.routes():
        if method == "GET":
            app.router.add_get(f"{base}{path}", handler, allow_head=True)
        else:
            app.router.add_route(method, f"{base}{path}", handler)
    if base:
        async def to_root(_: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(f"{base}/")  # "./notices" from "/base" would leave the base

        app.router.add_get(base, to_root)
    add_static(app, f"{base}/static", STATIC)  # a name the OS refuses is a 404, not a 500 (:mod:`~.staticfiles`)

    async def start(_: web.Application) -> None:
        verifier.start()

    async def stop(_: web.Application) -> None:
        await verifier.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return pages
