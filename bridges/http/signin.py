"""``GET/POST {base}/signin`` and ``POST {base}/signout``: a browser's way to the protected pages.

A browser cannot send ``Authorization: Bearer`` from a link or an ``EventSource``, so the
form takes the token once and answers with a cookie (``HttpOnly``, ``SameSite=Strict``,
``Secure`` over https) holding an HMAC-derived session value, never the token itself
(:mod:`~.access`). The cookie then opens the audit page, the trigger details of the burst
pages and the full live stream; it never authorises a write.

The form body is read by hand, up to :data:`MAX_FORM_BYTES`: an oversized, non-UTF-8 or
malformed body is a page saying so with a 4xx, never a 500. Wrong tokens count against the
client's address (:class:`~.access.FailureThrottle`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from aiohttp import web

from burstbus.bridges.http.access import Throttled, Unauthorized, Viewer
from burstbus.bridges.http.identity import CSRF_FIELD, csrf_ok

if TYPE_CHECKING:
    from burstbus.bridges.http.ui import Pages

#: The form has two short fields; anything larger is not our form.
MAX_FORM_BYTES = 8192
_MAX_FIELDS = 10
#: Where the form may send the browser back to: a path below the base (no scheme, no
#: ``//`` host, no ``..``), with an optional query string.
_NEXT = re.compile(r"[A-Za-z0-9_.~%/-]*(\?[^\x00-\x20\x7f]*)?")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FormError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def safe_next(value: str) -> str:
    """``value`` if it is a page below the base (``log?type=x``), else ``""`` (the overview)."""
    if (
        not value
        or len(value) > 2000
        or value.startswith(("/", ".", "\\"))
        or not _NEXT.fullmatch(value)
    ):
        return ""
    path = value.split("?", 1)[0]
    if "//" in path or ".." in path:
        return ""
    return value


async def read_form(request: web.Request) -> dict[str, str]:
    """The urlencoded form body (first value of each field), or a :class:`FormError`."""
    if request.content_type not in (
        "application/x-www-form-urlencoded",
        "application/octet-stream",
    ):
        raise FormError(
            415, "send the form as application/x-www-form-urlencoded (as a browser does)"
        )
    declared = request.content_length
    if declared is not None and declared > MAX_FORM_BYTES:
        raise FormError(
            413, f"the form has {declared:,} bytes; at most {MAX_FORM_BYTES:,} are read"
        )
    body = bytearray()
    while chunk := await request.content.read(MAX_FORM_BYTES + 1 - len(body)):
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormError(413, f"the form is longer than {MAX_FORM_BYTES:,} bytes")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=_MAX_FIELDS, errors="strict")
    except UnicodeDecodeError:
        raise FormError(400, "the form is not valid UTF-8") from None
    except ValueError:
        raise FormError(400, f"the form has more than {_MAX_FIELDS} fields") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    return form


class SignIn:
    """The sign-in and sign-out handlers, rendered by the pages' templates."""

    def __init__(self, pages: Pages):
        self.pages = pages
        self.access = pages.access

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/signin", self.form),
            ("POST", "/signin", self.submit),
            ("POST", "/signout", self.signout),
        ]

    def _viewer(self, request: web.Request) -> Viewer:
        try:
            return self.access.viewer(request)
        except (Unauthorized, Throttled):
            return Viewer(False)

    def _home(self, next_: str) -> str:
        return f"{self.pages.base}/{next_}"

    async def form(self, request: web.Request) -> web.StreamResponse:
        next_ = safe_next(request.query.get("next", ""))
        return self.pages.signin_page(request, self._viewer(request), next_=next_)

    async def submit(self, request: web.Request) -> web.StreamResponse:
        pages, access = self.pages, self.access
        anonymous = Viewer(False)
        try:
            form = await read_form(request)
        except FormError as exc:
            return pages.signin_page(request, anonymous, exc.status, message=exc.message)
        next_ = safe_next(form.get("next", ""))
        people = access.people
        if not access.configured:  # nothing can be signed in to: say that first
            return pages.signin_page(request, anonymous, 403, next_=next_,
                                     message="signing in is off: no read token is configured on this server")
        if people is not None and not people.form_csrf_ok(request, form.get(CSRF_FIELD)):
            return pages.signin_page(request, anonymous, 403, next_=next_,
                                     message="the form has expired or did not come from this site: try again")
        if "name" in form and people is not None and people.enabled:
            return await self._account(request, form, next_)
        if not access.tokens:
            message = ("signing in is off: no read token is configured on this server" if not access.accounts
                       else "enter your name and password")
            return pages.signin_page(request, anonymous, 403 if not access.accounts else 401, next_=next_,
                                     message=message)
        try:
            access.check_throttle(request)
        except Throttled as exc:
            return pages.signin_page(
                request, anonymous, 429, next_=next_, message=exc.message, headers=exc.headers
            )
        token = form.get("token", "").strip()
        if not token or not access.token_matches(token):
            if token:
                access.record_failure(request, "signin")
            message = (
                "that token is not valid" if token else "enter the read token (or the API token)"
            )
            return pages.signin_page(request, anonymous, 401, next_=next_, message=message)
        response = web.Response(
            status=303, headers={"Location": self._home(next_), "Cache-Control": "no-store"}
        )
        access.set_session(response, token, secure=request.secure)
        return response

    async def _account(self, request: web.Request, form: dict[str, str], next_: str) -> web.StreamResponse:
        """Sign-in by name and password: a session of the person's own."""
        pages, access = self.pages, self.access
        people = access.people
        assert people is not None
        anonymous = Viewer(False)
        try:
            outcome = await people.sign_in(request, form.get("name", ""), form.get("password", ""))
        except Throttled as exc:
            access.failures["throttled"] += 1
            return pages.signin_page(request, anonymous, 429, next_=next_, message=exc.message, headers=exc.headers)
        if isinstance(outcome, str):
            access.failures["password"] += 1
            return pages.signin_page(request, anonymous, 401, next_=next_, message=outcome)
        value, _ = outcome
        response = web.Response(status=303, headers={"Location": self._home(next_), "Cache-Control": "no-store"})
        people.set_cookie(response, value, secure=request.secure)
        return response

    async def signout(self, request: web.Request) -> web.StreamResponse:
        try:
            form = await read_form(request)
        except FormError as exc:
            return self.pages.signin_page(request, Viewer(False), exc.status, message=exc.message)
        viewer = self._viewer(request)
        people = self.access.people
        given = form.get(CSRF_FIELD)
        person = viewer.person
        expected_ok = (csrf_ok(person, given) if person is not None and person.csrf is not None
                       else people is None or people.form_csrf_ok(request, given))
        if not expected_ok:
            return self.pages.signin_page(request, viewer, 403, message="sign-out refused: the form has expired "
                                                                         "or did not come from this site")
        if people is not None and person is not None and person.how == "proxy":
            return self.pages.signin_page(request, viewer, 409, message="you are signed in through the centre's "
                                                                         "single sign-on: sign out there")
        if people is not None:
            await people.sign_out(request)
        response = web.Response(
            status=303, headers={"Location": self._home(""), "Cache-Control": "no-store"}
        )
        self.access.clear_session(response, secure=request.secure)
        if people is not None:
            people.clear_cookie(response, secure=request.secure)
        return response
