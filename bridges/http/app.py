"""The HTTP read side: one aiohttp application over the log and the projections file.

Routes (under ``base_path`` when served behind a reverse proxy at a sub-path):

* ``/apiv1/...``: the voeventdb-compatible API (:mod:`burstbus.bridges.http.apiv1`);
* ``/api/...``: processes, bursts, triggers, the log (:mod:`burstbus.bridges.http.api`) and
  live events as server-sent events (:mod:`burstbus.bridges.http.stream`); the triggers, the
  log and non-public event types need a read credential (:mod:`~.access`);
* ``POST /api/voevents``: submit a VOEvent (:mod:`burstbus.bridges.http.submit`);
* ``GET /api/openapi.json``: the OpenAPI 3.1 description of every ``/api`` and ``/apiv1``
  route, built from the same route table the app is served from (:mod:`~.spec`);
* ``/healthz``, ``/metrics``: operations (:mod:`burstbus.bridges.http.ops`);
* the web pages, ``/signin`` and ``/signout`` (:mod:`~.ui`, :mod:`~.signin`).

Every error is JSON saying what was wrong; a caller's mistake is always a 4xx. Projections
are read on a thread pool of read-only SQLite connections, so nothing blocks the loop; the
log is read through its own (aiosqlite) reader.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from burstbus.acl import Acl, AclSection, Role
from burstbus.bridges.http.access import Access
from burstbus.bridges.http.announce import Announce
from burstbus.bridges.http.api import Api
from burstbus.bridges.http.apiv1 import DEFAULT_LIMIT, MAX_LIMIT, ApiV1, route_table
from burstbus.bridges.http.creator import NoticeCreator
from burstbus.bridges.http.errors import ApiError, error_body, json_response
from burstbus.bridges.http.forms import FormFlow, ProcessForm
from burstbus.bridges.http.identity import People, identity_middleware
from burstbus.bridges.http.jsonnotices import JsonNotices
from burstbus.bridges.http.notices import NoticeRequests
from burstbus.bridges.http.ops import Components, HttpStats, Ops
from burstbus.bridges.http.process_request import ProcessRequests
from burstbus.bridges.http.provenance import Provenance
from burstbus.bridges.http.providers import stream_metrics
from burstbus.bridges.http.server import BodyTimeout, Limits, start
from burstbus.bridges.http.spec import Route, openapi_document
from burstbus.bridges.http.stream import EventHub, StreamHandler
from burstbus.bridges.http.submit import Submit
from burstbus.bridges.http.ui import add_ui
from burstbus.component import bind_failure
from burstbus.handlers.notices.drafts import NoticeDrafts
from burstbus.handlers.notices.intake import NoticeIntake
from burstbus.handlers.orchestrator.config import PipelinesSection
from burstbus.ingest import Ingest
from burstbus.metrics import Metrics
from burstbus.state import StateStore
from burstbus.store.base import EventLog
from burstbus.store.reader import ProjectionReader, ReadModelError

log = logging.getLogger(__name__)

#: Application keys: what the service (or a test) may reach after ``make_app``.
COMPONENTS = web.AppKey("components", MutableMapping)
READER = web.AppKey("reader", ProjectionReader)
HTTP_STATS = web.AppKey("http_stats", HttpStats)
METRICS = web.AppKey("metrics", MutableMapping)
EVENT_HUB = web.AppKey("event_hub", EventHub)
ACCESS = web.AppKey("access", Access)
#: The documented routes (``/api`` and ``/apiv1``), as served and as ``openapi.json`` says.
ROUTES = web.AppKey("routes", list)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def normal_base_path(base_path: str) -> str:
    """``""`` or ``/a/b`` (leading slash, no trailing one); refuses what cannot be a path."""
    path = (base_path or "").strip()
    if not path or path == "/":
        return ""
    if any(c in path for c in "?#% ") or "//" in path:
        raise ValueError(f"base_path must be a plain URL path like /burstbus (got {base_path!r})")
    return "/" + path.strip("/")


def _route_name(request: web.Request) -> str:
    """A bounded label for metrics: the matched route's pattern, never the raw path."""
    info = request.match_info
    resource = info.route.resource if info.route is not None else None
    if resource is None or info.http_exception is not None:
        return "unmatched"
    return resource.canonical


def _middlewares(stats: HttpStats, people: People) -> list[Middleware]:
    @web.middleware
    async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except ApiError as exc:
            status = exc.status
            return exc.response()
        except ReadModelError as exc:  # the store's "cannot answer now": a 503 saying why
            status = 503
            return ApiError(exc.message, status=503, description=exc.description).response()
        except web.HTTPException as exc:
            status = exc.status
            if exc.status < 400:
                raise  # redirects and other non-errors pass through
            message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
            if exc.status == 404:
                message = f"no such endpoint: {request.method} {request.rel_url.path}"
            elif exc.status == 405:
                message = f"{request.method} is not allowed here (allowed: {exc.headers.get('Allow', '')})"
            headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "www-authenticate")}
            return json_response(error_body(exc.status, exc.reason, message), status=exc.status, headers=headers)
        except asyncio.CancelledError:
            status = 499  # the client went away
            raise
        except BodyTimeout as exc:  # the body was too slow (:mod:`~.server`): the client's doing, not a crash
            status = 408
            response = ApiError(str(exc), status=408, description="Request Timeout").response()
            response.force_close()
            return response
        except web.RequestPayloadError as exc:  # the body's framing broke (a bad chunk): also the client's
            status = 400
            response = ApiError(f"the body's framing is broken ({exc})", description="Malformed body").response()
            response.force_close()
            return response
        except Exception as exc:
            if isinstance(exc, ConnectionResetError) and request.transport is None:
                # The client closed mid-request (an abandoned upload): nothing broke, no one reads an answer.
                status = 499
                log.info("%s %s: the client closed the connection before its request was read",
                         request.method, request.rel_url.path)  # fmt: skip
                return json_response(error_body(400, "Request body incomplete", "the connection closed mid-request"),
                                     status=400)  # fmt: skip
            log.exception("unhandled error answering %s %s", request.method, request.rel_url)
            return json_response(
                error_body(500, "Internal server error", "an unexpected error occurred; it has been logged"),
                status=500,
            )
        finally:
            stats.observe(request.method, _route_name(request), status, time.perf_counter() - started)

    return [json_errors, identity_middleware(people)]


def make_app(
    log: EventLog,
    projections_path: Path | str,
    ingest: Ingest | None = None,
    token: str | None = None,
    base_path: str = "",
    *,
    components: Components | None = None,
    metrics: Metrics | None = None,
    projection_runner: Any = None,
    read_threads: int = 4,
    query_timeout: float = 10.0,
    default_limit: int = DEFAULT_LIMIT,
    max_limit: int = MAX_LIMIT,
    read_token: str | None = None,
    public_read: bool = False,
    public_processes: bool = False,
    public_url: str = "",
    notices: Callable[[], NoticeIntake | None] | None = None,
    pipelines: PipelinesSection | None = None,
    orchestrator: Callable[[], Any] | None = None,
    state: StateStore | None = None,
    acl: AclSection | None = None,
    sso_header: str = "",
    sso_proxies: Sequence[str] = (),
    drafts: Callable[[], NoticeDrafts | None] | None = None,
    messenger: Callable[[], Any] | None = None,
) -> web.Application:
    """The HTTP application.

    ``components`` is the health registry (name → probe returning ``{"up": bool,
    "last_activity": iso | None}``); it is kept by reference as ``app[COMPONENTS]``, so
    probes may be added after the app is built. ``metrics`` is the metrics-provider registry
    (name → callable returning families, :mod:`~burstbus.metrics`), kept by
    reference too. ``projection_runner`` (optional, anything with ``applied_seq``) lets the
    SSE stream announce ``projected`` without polling the checkpoint table. Without
    ``ingest`` and ``token``, POST is refused (403). ``read_token`` or ``token`` open the
    protected reads (the log, triggers, the full stream); with neither they are closed unless
    ``public_read``. ``public_url`` starting with ``https://`` makes the sign-in cookie
    ``Secure`` even when a proxy speaks plain HTTP to us. The app owns its projections reader
    and its SSE hub and closes them on shutdown; it never closes the log or the ingest.
    """
    base = normal_base_path(base_path)
    stats = HttpStats()
    registry: Components = components if components is not None else {}
    providers: Metrics = metrics if metrics is not None else {}
    reader = ProjectionReader(projections_path, threads=read_threads, timeout=query_timeout)
    hub = EventHub(log, reader, runner=projection_runner)
    providers["sse"] = stream_metrics(hub, log)  # this app's hub (a restarted app replaces it)
    secure = public_url.startswith("https://")
    people_acl = Acl(acl or AclSection())
    people = People(state, people_acl, sso_header=sso_header, sso_proxies=sso_proxies,
                    secure_cookie=secure, cookie_path=f"{base}/")
    app = web.Application(middlewares=_middlewares(stats, people))
    app[COMPONENTS] = registry
    app[READER] = reader
    app[HTTP_STATS] = stats
    app[METRICS] = providers
    app[EVENT_HUB] = hub
    access = Access((read_token, token), public_read=public_read, public_processes=public_processes, secure_cookie=secure,
                    cookie_path=f"{base}/", failures=stats.auth_failures, people=people)  # fmt: skip
    people.throttle = access.throttle  # wrong passwords, API tokens and shared tokens: one count per address
    app[ACCESS] = access
    if not access.configured and not public_read:
        logging.getLogger(__name__).info(  # (``log`` here is the event log)
            "the event log, trigger requests and the audit page are closed: no [http] read_token or "
            "token is configured (set one, or public_read = true)")  # fmt: skip

    apiv1 = ApiV1(reader, log, base_path=base, default_limit=default_limit, max_limit=max_limit)
    api = Api(reader, log, StreamHandler(hub), base_path=base, access=access)
    submit = Submit(ingest, token, base, access=access)
    announce = Announce(log if ingest is not None else None, token, access=access)
    asked = ProcessRequests(log, reader, token if ingest is not None else None, access, pipelines, orchestrator)
    chains = Provenance(log, access)
    ops = Ops(log, reader, ingest, registry, stats, providers)
    notice_requests = NoticeRequests(log, notices or (lambda: None), token if ingest is not None else None,
                                     access=access, base_path=base)
    json_notices = JsonNotices(reader, log, base_path=base)  # JSON notices from Kafka (:mod:`~.jsonnotices`)
    pages = add_ui(app, reader, log, base, access=access)  # the web pages, sign-in and /static/ (:mod:`~.ui`)
    flow = FormFlow(pages)  # the BA forms (:mod:`~.forms`) and the Notice Creator (:mod:`~.creator`)
    creator = NoticeCreator(flow, log, drafts or (lambda: None), lambda: people_acl.with_role(Role.APPROVER),
                            messenger, base_path=base)
    routes: list[Route] = [*route_table(apiv1), *api.routes(), *submit.routes(), *announce.routes(), *asked.routes(),
                           *chains.routes(), *creator.api_routes(), *notice_requests.routes(), *json_notices.routes(),
                           *ops.routes()]

    async def openapi(request: web.Request) -> web.Response:
        from burstbus import __version__

        return json_response(openapi_document(routes, base_path=base, version=__version__, schemas=api_schemas(),
                                              open_reads=public_read))  # fmt: skip

    routes.append(Route("GET", "/api/openapi.json", openapi, "This description (OpenAPI 3.1)", "meta",
                        schema={"type": "object"}))  # fmt: skip
    for route in routes:
        if route.method == "GET":
            app.router.add_get(f"{base}{route.path}", route.handler, allow_head=route.allow_head)
        else:
            app.router.add_route(route.method, f"{base}{route.path}", route.handler)
    app[ROUTES] = routes
    for method, path, handler in [*ProcessForm(flow, asked).routes(), *creator.page_routes()]:
        if method == "GET":
            app.router.add_get(f"{base}{path}", handler, allow_head=True)
        else:
            app.router.add_route(method, f"{base}{path}", handler)

    async def close_hub(_: web.Application) -> None:
        await hub.close()  # before aiohttp waits for handlers: live streams end now

    async def close_reader(_: web.Application) -> None:
        await hub.close()
        await asyncio.get_running_loop().run_in_executor(None, reader.close)

    async def accounts_ready(_: web.Application) -> None:
        await people.ready()

    app.on_startup.append(accounts_ready)
    app.on_shutdown.append(close_hub)
    app.on_cleanup.append(close_reader)
    return app


def api_schemas() -> dict[str, Any]:
    from burstbus.bridges.http.api import SCHEMAS

    return SCHEMAS


async def serve(
    app_factory: Callable[[], web.Application],
    host: str = "127.0.0.1",
    port: int = 8080,
    ready: Callable[[list[tuple[str, int]]], None] | None = None,
    limits: Limits | None = None,
) -> None:
    """Serve a fresh app from ``app_factory`` until cancelled (a supervised component).

    ``ready`` is told the bound addresses (useful with ``port=0``). The server is
    :mod:`~.server`'s: the parser's own refusals answered in JSON, and ``limits`` (the request
    line and header sizes, the head and body timeouts) enforced on every connection.
    """
    try:
        served = await start(app_factory(), host, port, limits)
    except OSError as exc:
        raise bind_failure("http.port", host, port, exc) from exc
    try:
        if ready is not None:
            ready(served.addresses)
        await asyncio.Event().wait()
    finally:
        await served.cleanup()
