"""The Notice Creator on the web: one person drafts a notice, somebody else publishes it.

The science centre's notices page has a Creator for hand-made notices; here it is the same
two-person rule and event trail as the bot's ``retract``/``publish`` and as triggers
(:mod:`burstbus.handlers.notices.drafts`):

* ``/notices/new`` (a BA; a retraction needs an approver, as in chat): the form, prefilled from
  a burst page's link; its POST records ``publication.drafted`` with the exact packet it would
  publish, pages the approvers in chat, and shows the draft;
* ``/notices/drafts`` (readers of protected data): the recent drafts and what became of each;
* ``/notices/drafts/{id}``: the facts, the exact packet and its SHA-256, the steps so far, and
  for an approver who is not the drafter a Publish button; its POST records
  ``publication.draft_approved`` and hands the draft to the publisher, which publishes exactly
  that packet or declines it (the burst changed since);
* ``POST /api/notices/drafts``, ``GET /api/notices/drafts/{id}`` (the packet, ``text/xml``) and
  ``POST /api/notices/drafts/{id}/publish``: the same for scripts with a person's API token.

Identity is the signed-in person's (a bare JID, the same as in chat), so the drafter cannot
publish their own draft from the web either, nor from chat. The shared write token is nobody in
particular and opens none of this; pipelines ask for notices directly (``POST /api/notices``).
A refused draft or publication is recorded as ``publication.refused`` with its reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote

from aiohttp import web

from burstbus.acl import Role
from burstbus.bridges.http.access import Forbidden, Viewer, Writer
from burstbus.bridges.http.errors import ApiError, Unavailable, json_response
from burstbus.bridges.http.forms import FormFlow, Handler
from burstbus.bridges.http.identity import CSRF_FIELD
from burstbus.bridges.http.permissions import Action
from burstbus.bridges.http.server import read_bounded
from burstbus.bridges.http.signin import FormError, read_form
from burstbus.bridges.http.spec import Param, Route
from burstbus.handlers.notices.drafts import (
    DraftResult,
    NoticeDrafts,
    draft_status,
    find_draft,
    recent_drafts,
)
from burstbus.handlers.notices.intake import refused_event
from burstbus.handlers.notices.kinds import kind_names
from burstbus.store.base import EventLog, LogError
from burstbus.untrusted import UntrustedJson, parse_json_object

if TYPE_CHECKING:
    from burstbus.chat import Messenger

log = logging.getLogger(__name__)

#: The largest draft request taken over the API (a notice request is well under 4 KiB).
MAX_DRAFT_BYTES = 65_536
#: How long paging one approver may take before it is given up (the draft is recorded anyway).
PAGE_TIMEOUT = 10.0

_DRAFTED = {"type": "object", "properties": {
    "draft_id": {"type": "string"}, "burst_id": {"type": "string"}, "ivorn": {"type": "string"},
    "sha256": {"type": "string"}, "packet": {"type": "string"}, "page": {"type": "string"},
    "approvers": {"type": "array", "items": {"type": "string"}}}}  # fmt: skip
_PUBLISHED = {"type": "object", "properties": {
    "draft_id": {"type": "string"}, "ivorn": {"type": "string"}, "request_id": {"type": "string"},
    "status": {"type": "string"}}}  # fmt: skip


class _NotFound(ApiError):
    status = 404
    description = "Not found"


class _Refused(ApiError):
    status = 422
    description = "Refused"


class NoticeCreator:
    """The Creator's pages and API routes over the ``notices.drafts`` port (None: notices off)."""

    def __init__(self, flow: FormFlow, log_: EventLog, drafts: Callable[[], NoticeDrafts | None],
                 approvers: Callable[[], list[str]], messenger: Callable[[], Messenger | None] | None = None,
                 base_path: str = ""):
        self.flow = flow
        self.pages = flow.pages
        self.access = flow.access
        self.log = log_
        self.drafts = drafts
        self.approvers = approvers
        self.messenger = messenger or (lambda: None)
        self.base_path = base_path
        self._paging: set[asyncio.Task[None]] = set()

    def page_routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/notices/new", self.new_form),
            ("POST", "/notices/new", self.new_submit),
            ("GET", "/notices/drafts", self.drafts_page),
            ("GET", "/notices/drafts/{draft_id}", self.draft_page),
            ("POST", "/notices/drafts/{draft_id}", self.publish_submit),
        ]

    def api_routes(self) -> list[Route]:
        draft = Param("draft_id", "the draft's id (or a prefix of 4+ hex digits)", where="path", required=True)
        return [
            Route("POST", "/api/notices/drafts", self.api_draft, "Draft a notice (the Notice Creator)", "notices",
                  description=("A person's notice request (the fields of POST /api/notices): judged and rendered "
                               "now; the draft holds the exact packet. Somebody else with the approver role "
                               "publishes it. Needs a person's credential (an API token), not the shared token."),
                  request_body={"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
                  security="write", schema=_DRAFTED, allow_head=False,
                  responses={201: "drafted", 401: "sign in or send a person's API token",
                             403: "the role is not enough, or notices are off", 413: "body over the limit",
                             422: "refused: the reason (recorded)", 503: "the log is unavailable: nothing stored"}),
            Route("GET", "/api/notices/drafts/{draft_id}", self.api_packet, "A notice draft's exact packet", "notices",
                  description=("The VOEvent a draft would publish, byte for byte: what the second person "
                               "approves."),
                  params=(draft,), security="read", schema={"type": "string"}, content_type="text/xml",
                  responses={200: "the packet (text/xml)", 404: "no such recent draft", 401: "a read credential is needed"}),
            Route("POST", "/api/notices/drafts/{draft_id}/publish", self.api_publish, "Publish a notice draft",
                  "notices", description="The second person: never the drafter; once per draft.",
                  params=(draft,), security="write", schema=_PUBLISHED, allow_head=False,
                  responses={202: "approved: the publisher issues exactly the drafted packet",
                             401: "sign in or send a person's API token", 403: "the role is not enough",
                             404: "no such recent draft", 409: "the drafter's own draft, or already published",
                             503: "the log is unavailable"}),
        ]  # fmt: skip

    # -- the form --

    def _on(self) -> NoticeDrafts:
        drafts = self.drafts()
        if drafts is None:
            raise Forbidden("notices are off here ([notices] enabled = false)")
        return drafts

    def _new_page(self, request: web.Request, viewer: Viewer, status: int = 200, **context: Any) -> web.Response:
        drafts = self.drafts()
        values = {"instruments": sorted(drafts.instruments) if drafts is not None else [], "kinds": kind_names(),
                  "fields": dict(request.query), "message": None, "outcome": None, "notices_on": drafts is not None,
                  "problem": None}
        values.update(context)
        return self.pages.render(request, viewer, "notice_new.html", status, page="notice-new", title="New notice",
                                 **values)

    async def new_form(self, request: web.Request) -> web.StreamResponse:
        return await self.flow.show(request, Action.ASK_NOTICE, "New notice", self._new_page)

    async def new_submit(self, request: web.Request) -> web.StreamResponse:
        async def record(writer: Writer, form: dict[str, str]) -> web.StreamResponse:
            raw = json.dumps({k: v for k, v in form.items() if k != CSRF_FIELD}).encode("utf-8")
            try:
                value = notice_request(form)
            except ValueError as exc:
                await self._refused(writer, raw, str(exc), "invalid")
            result = await self._draft(writer, value, raw)
            return web.Response(status=303, headers={"Location": self._page_url(request, str(result.draft_id))})

        return await self.flow.submit(request, Action.ASK_NOTICE, "New notice", "drafting a notice", self._new_page,
                                      record)

    async def _draft(self, writer: Writer, value: dict[str, Any], raw: bytes) -> DraftResult:
        """Draft ``value`` as the writer's person (a retraction only for an approver), page the
        approvers; a refusal is recorded and raised."""
        drafts = self._on()
        person = writer.person
        if person is None:
            raise Forbidden("a draft needs a person: sign in, or use your own API token (burstbus user token)")
        if value.get("type") == "retraction" and person.role < Role.APPROVER:
            await self._refused(writer, raw, f"drafting a retraction needs the role approver; {person.name} is "
                                             f"{person.role.label}", "role")
        result = await drafts.draft(person.name, writer.actor, value)
        if not result.ok or result.draft_id is None:
            await self._refused(writer, raw, result.text, "draft")
        self._page_approvers(person.name, result)
        return result

    async def _refused(self, writer: Writer, raw: bytes, reason: str, code: str) -> NoReturn:
        await self.log.append([refused_event(raw, reason, code, via=writer.via, peer=writer.peer)])
        raise _Refused(reason)

    def _page_approvers(self, drafter: str, result: DraftResult) -> None:
        """Tell the other approvers in chat (in the background: the draft is recorded already,
        and a chat server that is down must not hold the person's page)."""
        messenger = self.messenger()
        others = [jid for jid in self.approvers() if jid != drafter]
        if messenger is None or not others or result.draft_id is None:
            return
        short = result.draft_id[:8]
        text = (f"{drafter} drafted a notice on the web: {result.ivorn}. To publish it: publish {short} "
                f"(or the draft's page, /notices/drafts/{short}).")

        async def page(jid: str) -> None:
            try:
                async with asyncio.timeout(PAGE_TIMEOUT):
                    await messenger.send_direct(jid, text)
            except Exception as exc:  # noqa: BLE001 - a page is a courtesy; the draft is in the log
                log.warning("could not page %s about draft %s: %s", jid, short, exc)

        async def pages() -> None:
            await asyncio.gather(*(page(jid) for jid in others))

        task = asyncio.get_running_loop().create_task(pages())
        self._paging.add(task)
        task.add_done_callback(self._paging.discard)

    def _page_url(self, request: web.Request, draft_id: str) -> str:
        return f"{self.base_path}/notices/drafts/{quote(draft_id, safe='')}"

    # -- the drafts --

    async def drafts_page(self, request: web.Request) -> web.StreamResponse:
        gate = self.flow.gate(request, Action.READ_PROTECTED, "Notice drafts")
        if isinstance(gate, web.Response):
            return gate
        try:
            found = await recent_drafts(self.log, datetime.now(UTC))
            states = [await draft_status(self.log, d) for d in found]
        except LogError as exc:
            raise Unavailable(f"the event log cannot be read now ({exc})") from None
        return self.pages.render(request, gate, "notice_drafts.html", page="notice-drafts", title="Notice drafts",
                                 drafts=states, problem=None)

    async def draft_page(self, request: web.Request, status: int = 200, message: str | None = None,
                         done: str | None = None) -> web.StreamResponse:
        gate = self.flow.gate(request, Action.READ_PROTECTED, "A notice draft")
        if isinstance(gate, web.Response):
            return gate
        typed = request.match_info["draft_id"]
        draft = await find_draft(self.log, typed, datetime.now(UTC))
        if draft is None:
            raise _NotFound(f"no recent notice draft {typed!r} (drafts are kept findable for two days)")
        state = await draft_status(self.log, draft)
        person = gate.person
        drafter = str(draft.get("drafted_by"))
        may = person is not None and gate.may(Action.PUBLISH_NOTICE) and person.name != drafter
        why_not = None
        if state.state != "drafted":
            why_not = "it was published already" if state.approved_by else None
        elif person is None or not gate.may(Action.PUBLISH_NOTICE):
            why_not = "publishing needs the role approver"
        elif person.name == drafter:
            why_not = "a notice needs two people: somebody other than you must publish your draft"
        return self.pages.render(request, gate, "notice_draft.html", status, page="notice-drafts",
                                 title=f"Draft {str(draft['draft_id'])[:8]}", status_=state, draft=draft,
                                 may_publish=may and state.state == "drafted", why_not=why_not, message=message,
                                 done=done, problem=None)

    async def publish_submit(self, request: web.Request) -> web.StreamResponse:
        gate = self.flow.gate(request, Action.PUBLISH_NOTICE, "Publishing a notice draft")
        if isinstance(gate, web.Response):
            return gate
        try:
            form = await read_form(request)
        except FormError as exc:
            return await self.draft_page(request, exc.status, message=exc.message)
        try:
            writer = self.access.writer(request, Action.PUBLISH_NOTICE, "publishing a notice draft", None,
                                        csrf=form.get(CSRF_FIELD, ""))
            result = await self._publish(writer, request.match_info["draft_id"])
        except ApiError as exc:
            return await self.draft_page(request, exc.status, message=exc.message)
        except LogError as exc:
            return await self.draft_page(request, 503, message=f"the event log cannot take it now ({exc}); "
                                                                "nothing was stored: try again")
        return await self.draft_page(request, 202, done=f"Published: {result.ivorn} goes out once the publisher has it.")

    async def _publish(self, writer: Writer, typed: str) -> DraftResult:
        drafts = self._on()
        person = writer.person
        if person is None:
            raise Forbidden("publishing a draft needs a person: sign in, or use your own API token")
        result = await drafts.publish(person.name, writer.actor, typed)
        if not result.ok:
            raw = json.dumps({"draft": typed, "by": person.name}).encode("utf-8")
            if result.draft_id is None:
                await self.log.append([refused_event(raw, result.text, "unknown_draft", via=writer.via, peer=writer.peer)])
                raise _NotFound(result.text)
            code = "same_person" if result.drafted_by == person.name else "already_published"
            await self.log.append([refused_event(raw, result.text, code, via=writer.via, peer=writer.peer)])
            raise ApiError(result.text, status=409, description="Conflict")
        await self._tell_drafter(person.name, result)
        return result

    async def _tell_drafter(self, by: str, result: DraftResult) -> None:
        messenger = self.messenger()
        if messenger is None or not result.drafted_by or result.draft_id is None:
            return
        try:
            async with asyncio.timeout(PAGE_TIMEOUT):
                await messenger.send_direct(
                    result.drafted_by, f"{by} published your draft {result.draft_id[:8]}: {result.ivorn}.")
        except Exception as exc:  # noqa: BLE001 - a page is a courtesy; the approval is in the log
            log.warning("could not tell %s that draft %s was published: %s", result.drafted_by, result.draft_id[:8], exc)

    # -- the API --

    async def api_draft(self, request: web.Request) -> web.Response:
        writer = self.access.writer(request, Action.ASK_NOTICE, "drafting a notice", None)
        self._on()
        raw, complete = await read_bounded(request, MAX_DRAFT_BYTES)
        try:
            if not complete:
                await self._refused(writer, raw, f"the body has more than {MAX_DRAFT_BYTES:,} bytes", "too_large")
            try:
                value = parse_json_object(raw, max_bytes=MAX_DRAFT_BYTES)
            except UntrustedJson as exc:
                await self._refused(writer, raw, str(exc), "invalid")
            result = await self._draft(writer, value, raw)
        except LogError as exc:
            raise Unavailable(f"the event log cannot take it now ({exc}); nothing was stored") from None
        draft_id = str(result.draft_id)
        return json_response({
            "draft_id": draft_id, "burst_id": value.get("burst_id"), "ivorn": result.ivorn,
            "sha256": hashlib.sha256(result.xml).hexdigest() if result.xml is not None else None,  # as drafted
            "packet": f"{self.base_path}/api/notices/drafts/{draft_id}", "page": self._page_url(request, draft_id),
            "approvers": [j for j in self.approvers() if j != writer.peer],
        }, status=201)

    async def api_packet(self, request: web.Request) -> web.Response:
        self.access.require(request, "notice drafts")
        typed = request.match_info["draft_id"]
        draft = await find_draft(self.log, typed, datetime.now(UTC))
        if draft is None:
            raise _NotFound(f"no recent notice draft {typed!r}")
        return web.Response(body=str(draft["xml"]).encode("utf-8"), content_type="text/xml", charset="utf-8",
                            headers={"X-Burstbus-Draft": str(draft["draft_id"]),
                                     "X-Burstbus-Drafted-By": str(draft["drafted_by"])})

    async def api_publish(self, request: web.Request) -> web.Response:
        writer = self.access.writer(request, Action.PUBLISH_NOTICE, "publishing a notice draft", None)
        try:
            result = await self._publish(writer, request.match_info["draft_id"])
        except LogError as exc:
            raise Unavailable(f"the event log cannot take it now ({exc}); nothing was stored") from None
        request_id = f"draft:{result.draft_id}"
        return json_response({"draft_id": result.draft_id, "ivorn": result.ivorn, "request_id": request_id,
                              "status": f"{self.base_path}/api/notices/{quote(request_id, safe='')}"}, status=202)


def notice_request(form: dict[str, str]) -> dict[str, Any]:
    """The form's fields as a notice request (the API's JSON); numbers must be numbers."""
    value: dict[str, Any] = {}
    for name in ("burst_id", "instrument", "type", "time", "qualifier", "reason", "role"):
        text = form.get(name, "").strip()
        if text:
            value[name] = text
    for name in ("ra", "dec", "err"):
        text = form.get(name, "").strip()
        if text:
            try:
                value[name] = float(text)
            except ValueError:
                raise ValueError(f"'{name}' must be a number in degrees, not {text[:40]!r}") from None
    return value

