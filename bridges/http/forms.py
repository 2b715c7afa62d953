"""The Burst Advocate's web forms: the flow every form shares, and Request Process.

The science centre's own pages let a BA ask for a pipeline run and draft a notice from the
browser; these do the same through exactly the code the API uses (``ProcessRequests.record``;
the Notice Creator, :mod:`~.creator`, the notice drafts), so a request from the form, the API,
NATS or the bot is judged by one set of rules and recorded with its person as actor
(``web:alice@fsc.example``).

Who may: the permission table (:mod:`~.permissions`) through ``Access.writer``, which also
checks the form's CSRF token. Nobody signed in gets the sign-in form (401); a person without
the role gets a page saying which role is needed and which they have (403), never the form
and never a stack trace. A shared read token is no person: it cannot use the forms.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from burstbus.bridges.http.access import Throttled, Unauthorized, Viewer, Writer
from burstbus.bridges.http.errors import ApiError
from burstbus.bridges.http.identity import CSRF_FIELD
from burstbus.bridges.http.permissions import PERMISSIONS, Action
from burstbus.bridges.http.signin import FormError, read_form
from burstbus.store.base import LogError

if TYPE_CHECKING:
    from burstbus.bridges.http.process_request import ProcessRequests
    from burstbus.bridges.http.ui import Pages

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: A form's page: the viewer, a status, and what to show (message, outcome, fields).
FormPage = Callable[..., web.Response]
_PARAM_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.-]{0,63})\s*=\s*(.{0,500}?)\s*$")


class FormFlow:
    """Who may see a form, and its POST: the same gate, CSRF check and refusal pages for
    every form (Request Process here, the Notice Creator in :mod:`~.creator`)."""

    def __init__(self, pages: Pages):
        self.pages = pages
        self.access = pages.access

    def gate(self, request: web.Request, action: Action, what: str) -> Viewer | web.Response:
        """The viewer when they may ``action``; else the page that says why not."""
        try:
            viewer = self.access.viewer(request)
        except (Unauthorized, Throttled) as exc:
            return self.pages.signin_page(request, Viewer(False), exc.status, message=exc.message, headers=exc.headers)
        if viewer.person is None:
            return self.pages.signin_page(request, viewer, 401 if self.access.configured else 403, needed=what)
        if not viewer.may(action):
            rule = PERMISSIONS[action]
            needed = rule.role.label if rule.role is not None else "none"
            return self.pages.render(request, viewer, "refused.html", 403, page="refused", title=f"{what}: not allowed",
                                     what=what, needed=needed, person=viewer.person, problem=None)
        return viewer

    async def show(self, request: web.Request, action: Action, title: str, page: FormPage) -> web.StreamResponse:
        gate = self.gate(request, action, title)
        return gate if isinstance(gate, web.Response) else page(request, gate)

    async def submit(self, request: web.Request, action: Action, title: str, doing: str, page: FormPage,
                     record: Callable[[Writer, dict[str, str]], Awaitable[Any]]) -> web.StreamResponse:
        """The form's POST: who may (role and CSRF token), then ``record``; every refusal is the
        form again with the reason and the fields as typed, never a JSON error or a 500. A
        ``record`` that returns a response (a redirect to what it made) is answered with it."""
        gate = self.gate(request, action, title)
        if isinstance(gate, web.Response):
            return gate
        try:
            form = await read_form(request)
        except FormError as exc:
            return page(request, gate, exc.status, message=exc.message)
        try:
            writer = self.access.writer(request, action, doing, None, csrf=form.get(CSRF_FIELD, ""))
            outcome = await record(writer, form)
        except ApiError as exc:
            return page(request, gate, exc.status, message=exc.message, fields=form)
        except ValueError as exc:
            return page(request, gate, 422, message=str(exc), fields=form)
        except LogError as exc:
            return page(request, gate, 503, message=f"the event log cannot take it now ({exc}); nothing was stored: "
                                                    "send it again", fields=form)
        if isinstance(outcome, web.StreamResponse):
            return outcome
        return page(request, gate, 202, outcome=outcome, fields={})


class ProcessForm:
    """Request Process: a BA asks for a pipeline run (``/processes/request``)."""

    def __init__(self, flow: FormFlow, processes: ProcessRequests):
        self.flow = flow
        self.pages = flow.pages
        self.processes = processes

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("GET", "/processes/request", self.process_form), ("POST", "/processes/request", self.process_submit)]

    def _pipelines(self) -> list[Any]:
        return list(self.processes.pipelines.pipelines)

    def _process_page(self, request: web.Request, viewer: Viewer, status: int = 200, **context: Any) -> web.Response:
        values = {"pipelines": self._pipelines(), "fields": dict(request.query), "message": None, "outcome": None,
                  "problem": None}
        values.update(context)
        return self.pages.render(request, viewer, "process_request.html", status, page="process-request",
                                 title="Request process", **values)

    async def process_form(self, request: web.Request) -> web.StreamResponse:
        return await self.flow.show(request, Action.REQUEST_PROCESS, "Request process", self._process_page)

    async def process_submit(self, request: web.Request) -> web.StreamResponse:
        async def record(writer: Writer, form: dict[str, str]) -> Any:
            value = {"pipeline": form.get("pipeline", ""), "burst_id": form.get("burst_id", ""),
                     "obs_id": form.get("obs_id") or None, "parameters": _parameters(form.get("parameters", ""))}
            return await self.processes.record(writer, value)

        return await self.flow.submit(request, Action.REQUEST_PROCESS, "Request process", "requesting a process",
                                     self._process_page, record)


def _parameters(text: str) -> dict[str, str]:
    """``key=value`` per line (the bot's ``process`` takes the same pairs)."""
    out: dict[str, str] = {}
    for line in text.splitlines()[:50]:
        if not line.strip():
            continue
        match = _PARAM_LINE.match(line)
        if match is None:
            raise ValueError(f"a parameter is 'name=value' on its own line, not {line.strip()[:60]!r}")
        out[match.group(1)] = match.group(2)
    return out
