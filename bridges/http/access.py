"""Who may read what over HTTP: read credentials, the sign-in cookie, the failure throttle.

The log, the trigger requests and the live stream say who is on duty, which trigger requests
are pending (and their ids) and what every Burst Advocate typed. They are not public by
default: a reader shows ``Authorization: Bearer <token>`` (the ``read_token``, or the write
``token``) or the session cookie that ``POST /signin`` set. ``public_read`` is an operator's
explicit choice to serve everything openly. The process table (runs, their statuses and who
asked for one by hand) is for signed-in readers too unless ``public_processes``. What stays
open whatever the settings (the voeventdb archive, notices, bursts without their trigger
details and runs, operations) is decided by the routes, not here.

The cookie holds ``<expiry>.<HMAC-SHA256(token, expiry)>``, never the token: nothing is kept
on the server, a restart keeps people signed in, and changing the token ends every session.
A failed token (bearer or sign-in form) counts against the client's address; too many in a
minute and that address is refused for a while (429), whatever it sends.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from burstbus.acl import Role
from burstbus.bridges.http.errors import ApiError
from burstbus.bridges.http.identity import CSRF_HEADER, People, Person, csrf_ok, found
from burstbus.bridges.http.permissions import PERMISSIONS, Action, role_may
from burstbus.bridges.http.throttle import FailureThrottle, Forbidden, Throttled, Unauthorized

__all__ = ["Access", "Forbidden", "Throttled", "Unauthorized", "Viewer", "Writer", "FailureThrottle", "PUBLIC_TYPES"]
from burstbus.catalogue import (
    BURST_IDENTIFIED,
    BURST_NONE,
    DATA_AVAILABLE,
    PROCESS_DISPATCHED,
    PROCESS_GAVE_UP,
    PROCESS_STATUS,
    VOEVENT_ACCEPTED,
)

#: Event types anyone may read from the stream and the log embedded in a burst's answer:
#: what the public pages show (notices, burst decisions, pipeline runs). Both decisions of the
#: burst identifier are public: ``burst.none`` says no more about a notice than
#: ``burst.identified`` does. ``projected`` notifications of the stream carry only a seq and
#: are always sent.
#: (The orchestrator's data, dispatch answers and give-ups are public like statuses; its
#: requests and idling runs name the person who asked by hand, so they are not.)
#: The pipeline's public types, open only with ``[http] public_processes``.
PROCESS_TYPES: frozenset[str] = frozenset({PROCESS_STATUS, DATA_AVAILABLE, PROCESS_DISPATCHED, PROCESS_GAVE_UP})
#: Always open: notices and burst decisions.
ALWAYS_PUBLIC_TYPES: frozenset[str] = frozenset({VOEVENT_ACCEPTED, BURST_IDENTIFIED, BURST_NONE})
#: The most that can be public (with ``public_processes``); :attr:`Access.public_types` is
#: what is public here.
PUBLIC_TYPES: frozenset[str] = ALWAYS_PUBLIC_TYPES | PROCESS_TYPES
#: What a refusal tells a caller it may ask for without a token (at most).
PUBLIC_TYPES_TEXT = ",".join(sorted(PUBLIC_TYPES))

COOKIE = "burstbus_session"
#: How long a sign-in lasts (a shift and then some).
SESSION_SECONDS = 12 * 3600


def _session_mac(token: str, expires: int) -> str:
    return hmac.new(
        token.encode(), f"burstbus-session:{expires}".encode(), hashlib.sha256
    ).hexdigest()


@dataclass(frozen=True)
class Viewer:
    """Who is asking: ``full`` may read everything; ``by_cookie``: signed in through the form;
    ``person``: a signed-in person (session, API token or single sign-on), else None."""

    full: bool
    by_cookie: bool = False
    person: Person | None = None
    #: May read the process table (``full``, or ``[http] public_processes``).
    processes: bool = False

    def may(self, action: Action) -> bool:
        return self.person is not None and role_may(self.person.role, action)


@dataclass(frozen=True)
class Writer:
    """Who a state-changing request acts as: the log's actor and the role it acts with."""

    actor: str
    role: Role
    person: Person | None
    #: ``via``/``peer`` for the ingest and the intakes (``web``/the person, or ``http``/the address).
    via: str
    peer: str


class Access:
    """The read side's credentials and what a request presents.

    ``tokens``: every token that authorises protected reads (the read token and the write
    token; empty ones are ignored). With none and without ``public_read``, protected reads are
    off (403, saying which setting turns them on).
    """

    def __init__(
        self,
        tokens: Iterable[str | None],
        *,
        public_read: bool = False,
        public_processes: bool = False,
        secure_cookie: bool = False,
        cookie_path: str = "/",
        throttle: FailureThrottle | None = None,
        failures: Counter[str] | None = None,
        people: People | None = None,
    ):
        self.tokens = tuple(dict.fromkeys(t.strip() for t in tokens if t and t.strip()))
        self.public_read = public_read
        self.public_processes = public_processes or public_read
        #: The event types anyone may read here (the stream, a burst's log).
        self.public_types = ALWAYS_PUBLIC_TYPES | (PROCESS_TYPES if self.public_processes else frozenset())
        self.public_types_text = ",".join(sorted(self.public_types))
        self.secure_cookie = secure_cookie
        self.cookie_path = cookie_path
        self.throttle = throttle if throttle is not None else FailureThrottle()
        #: Wrong tokens by how they came (``bearer``, ``signin``) and refusals while throttled
        #: (``throttled``); the app passes its HTTP stats' counter, so /metrics shows them.
        self.failures: Counter[str] = failures if failures is not None else Counter()
        #: People's own accounts, sessions and API tokens (None: only the shared tokens).
        self.people = people

    @property
    def accounts(self) -> bool:
        """People can sign in with their own accounts here."""
        return self.people is not None and self.people.enabled

    @property
    def configured(self) -> bool:
        """True when some credential can open the protected reads (sign-in is possible)."""
        return bool(self.tokens) or self.accounts

    def token_matches(self, given: str) -> bool:
        """Constant-time comparison against every token (all are compared, always)."""
        raw = given.encode("utf-8", "surrogatepass")
        found = False
        for token in self.tokens:
            found |= hmac.compare_digest(raw, token.encode())
        return found

    # -- throttle --

    def check_throttle(self, request: web.Request) -> None:
        wait = self.throttle.wait(_address(request))
        if wait > 0:
            self.failures["throttled"] += 1
            raise Throttled(wait)

    def record_failure(self, request: web.Request, kind: str) -> None:
        self.failures[kind] += 1
        self.throttle.failed(_address(request))

    # -- sessions --

    def session_value(self, token: str, now: float | None = None) -> str:
        expires = int(time.time() if now is None else now) + SESSION_SECONDS
        return f"{expires}.{_session_mac(token, expires)}"

    def session_valid(self, value: str, now: float | None = None) -> bool:
        expires_text, _, mac = value.partition(".")
        if not expires_text.isdigit() or len(expires_text) > 12 or len(mac) != 64:
            return False
        expires = int(expires_text)
        current = time.time() if now is None else now
        if not current < expires <= current + SESSION_SECONDS + 60:
            return False
        found = False
        for token in self.tokens:
            found |= hmac.compare_digest(
                mac.encode("ascii", "replace"), _session_mac(token, expires).encode()
            )
        return found

    def set_session(self, response: web.StreamResponse, token: str, secure: bool) -> None:
        response.set_cookie(
            COOKIE,
            self.session_value(token),
            max_age=SESSION_SECONDS,
            path=self.cookie_path,
            httponly=True,
            samesite="Strict",
            secure=secure or self.secure_cookie,
        )

    def clear_session(self, response: web.StreamResponse, secure: bool) -> None:
        response.set_cookie(
            COOKIE,
            "",
            max_age=0,
            path=self.cookie_path,
            httponly=True,
            samesite="Strict",
            secure=secure or self.secure_cookie,
        )

    # -- requests --

    def viewer(self, request: web.Request) -> Viewer:
        """What the request may read. A wrong bearer token is a 401 (never quietly the public
        view), a throttled address a 429; a stale or foreign cookie is simply not signed in.
        With no token configured no header can be right: it is ignored, and a refusal says
        that reads are closed until one is configured."""
        finding = found(request)
        if finding.error is not None:
            raise finding.error
        if finding.person is not None:
            person = finding.person
            full = self.public_read or role_may(person.role, Action.READ_PROTECTED)
            return Viewer(full, by_cookie=person.how == "session", person=person,
                          processes=full or self.public_processes)
        header = request.headers.get("Authorization")
        if header is not None and self.tokens:
            scheme, _, given = header.partition(" ")
            if scheme.lower() != "bearer" or not given.strip():
                raise Unauthorized("the Authorization header must be 'Bearer <token>'")
            self.check_throttle(request)
            if not self.token_matches(given.strip()):
                self.record_failure(request, "bearer")
                raise Unauthorized("the token is not valid", error="invalid_token")
            return Viewer(True, processes=True)
        cookie = request.cookies.get(COOKIE)
        if cookie and self.tokens and self.session_valid(cookie):
            return Viewer(True, by_cookie=True, processes=True)
        return Viewer(self.public_read, processes=self.public_processes)

    def require(self, request: web.Request, what: str) -> Viewer:
        """The viewer, if it may read protected data; else the refusal that says what is needed."""
        viewer = self.viewer(request)
        if viewer.full:
            return viewer
        raise self.refusal(what)

    def writer(self, request: web.Request, action: Action, what: str, token: str | None,
               csrf: str | None = None) -> Writer:
        """Who may make this write, or the refusal: a signed-in person whose role the
        permission table allows (with the CSRF token when the credential is ambient: a
        session or the proxy's header), or the shared write ``token`` (an operator: admin).
        ``token`` None: the shared token does not open this write here. Checked before the
        body is read (``csrf`` then comes from the ``X-CSRF-Token`` header; a form passes
        its field)."""
        finding = found(request)
        if finding.error is not None:
            raise finding.error
        person = finding.person
        if person is not None:
            rule = PERMISSIONS[action]
            if not role_may(person.role, action):
                needed = rule.role.label if rule.role is not None else "none"
                raise Forbidden(f"{what} needs the role {needed} or above in [acl]; {person.name} is {person.role.label}")
            if not csrf_ok(person, csrf if csrf is not None else request.headers.get(CSRF_HEADER)):
                raise Forbidden(f"{what}: the CSRF token is missing or wrong (reload the page and try again; "
                                f"scripts send it as {CSRF_HEADER} or use an API token)")
            return Writer(person.actor, person.role, person, "web", person.name)
        if not token and self.accounts:
            header = request.headers.get("Authorization")
            if not header:
                raise Unauthorized(f"{what} needs you signed in (/signin) or an API token "
                                   "('Authorization: Bearer <token>')")
        check_shared_token(request, token, self, what)
        peer = request.remote or "unknown"
        return Writer(f"http:{peer}", Role.ADMIN, None, "http", peer)

    def refusal(self, what: str, hint: str = "") -> ApiError:
        """403 when no token is configured (nothing the caller sends can help), else 401."""
        tail = f"; {hint}" if hint else ""
        if not self.tokens:
            return Forbidden(
                f"{what} is not public and no read token is configured: an operator sets "
                f"[http] read_token (or token), or public_read = true{tail}"
            )
        return Unauthorized(
            f"{what} needs a read token: send 'Authorization: Bearer <token>' "
            f"(the read token or the API token), or sign in at /signin{tail}"
        )


def _address(request: web.Request) -> str:
    return request.remote or "unknown"


def check_shared_token(request: web.Request, token: str | None, access: Access | None, what: str) -> None:
    """The shared write token (``Authorization: Bearer``) of a POST that appends: checked before
    the body is read; wrong tokens count against the address (shared throttle)."""
    if not token:
        raise Forbidden(f"{what} is off: no write token is configured")
    header = request.headers.get("Authorization")
    if not header:
        raise Unauthorized("this endpoint needs a token: send 'Authorization: Bearer <token>'")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    if access is not None:
        access.check_throttle(request)
    if not hmac.compare_digest(given.strip().encode("utf-8", "surrogatepass"), token.encode()):
        if access is not None:
            access.record_failure(request, "bearer")
        raise Unauthorized("the token is not valid", error="invalid_token")
