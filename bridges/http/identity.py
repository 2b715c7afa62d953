"""Who a request comes from: a person's session, API token or single sign-on header.

Resolved once per request, before any handler, by :func:`identity_middleware` (the lookups
are in ``state.sqlite``, so they are awaited here and the handlers' checks stay synchronous:
:meth:`~.access.Access.viewer` reads what was found). Three ways in, each proven by something
the server itself checks — never by what the request claims about itself:

* **a session cookie** (``burstbus_person``) that ``POST /signin`` set after an argon2 password
  check (:mod:`burstbus.accounts`): random, only its hash kept, HttpOnly, SameSite=Strict,
  Secure over https, ending at sign-out, after 12 h, after 2 idle hours, or when the account is
  disabled or its password changed;
* **a per-person API token** (``Authorization: Bearer bbt_…``), hashed at rest, scoped, expiring;
* **a header set by the centre's reverse proxy** after its own single sign-on (oauth2-proxy,
  Apache ``mod_auth_openidc``, nginx ``auth_request``: ``[http] sso_header``), believed only
  when the TCP peer is one of ``[http] sso_proxies``. Why the proxy rather than OIDC in-process:
  observatories already run SSO at their reverse proxy for every service, the proxy keeps the
  client secrets and the IdP's quirks, and burstbus then needs no outbound connection to an IdP.

A session or the proxy's header is *ambient* (the browser sends it by itself), so every
state-changing request on it must carry the CSRF token: the session's own, or for the proxy an
HMAC of the person's name under a key kept in the state. A bearer token is not ambient.
Wrong passwords and wrong API tokens count against the address and the account name.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import secrets
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web

from burstbus import accounts
from burstbus.acl import Acl, Grant, Role
from burstbus.bridges.http.throttle import FailureThrottle, Throttled, Unauthorized
from burstbus.chat import Asker
from burstbus.state import StateStore

log = logging.getLogger(__name__)

PERSON_COOKIE = "burstbus_person"
#: A random per-browser value the sign-in form's CSRF token is bound to (before any session).
FORM_COOKIE = "burstbus_form"
#: Where the middleware leaves its finding for the handlers.
IDENTITY = web.RequestKey("burstbus_identity", object)
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")


@dataclass(frozen=True)
class Person:
    """A signed-in person and what they may do now."""

    name: str
    grant: Grant
    #: ``session``, ``token`` or ``proxy``.
    how: str
    #: The CSRF token a state-changing request must carry (None: a bearer token, not ambient).
    csrf: str | None

    @property
    def role(self) -> Role:
        return self.grant.role

    @property
    def actor(self) -> str:
        return f"web:{self.name}"


@dataclass(frozen=True)
class Found:
    """The middleware's finding: a person, or the refusal to raise when a handler asks."""

    person: Person | None = None
    error: Unauthorized | Throttled | None = None


class People:
    """Accounts, sessions and tokens as the web sees them (one per app)."""

    def __init__(self, state: StateStore | None, acl: Acl, *, sso_header: str = "", sso_proxies: Sequence[str] = (),
                 throttle: FailureThrottle | None = None, secure_cookie: bool = False, cookie_path: str = "/"):
        self.state = state
        self.acl = acl
        self.sso_header = sso_header
        self.sso_proxies = [ipaddress.ip_network(p, strict=False) for p in sso_proxies]
        self.throttle = throttle if throttle is not None else FailureThrottle()
        #: Wrong passwords per account name (an attacker spreading guesses over addresses).
        self.account_throttle = FailureThrottle(max_failures=10, window=300.0)
        self.secure_cookie = secure_cookie
        self.cookie_path = cookie_path
        #: The key of CSRF tokens without a session row; the state's own once it is read (so a
        #: restart keeps open forms valid), a process-local one without a state.
        self._secret: bytes = secrets.token_bytes(32)
        self._ready = False

    @property
    def enabled(self) -> bool:
        """Accounts can be used here (a state store is there)."""
        return self.state is not None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T | None:
        """``fn`` on the state's thread (None without a state); the schema and key first."""
        if self.state is None:
            return None
        if not self._ready:
            await self.state.run(accounts.ensure_schema)
            self._secret = await self.state.run(accounts.server_secret)
            self._ready = True
        return await self.state.run(fn)

    def person(self, name: str, how: str, csrf: str | None, scope: Role | None = None) -> Person:
        grant = self.acl.grant(Asker(jid=name, via="dm", transport="web"))
        if scope is not None and scope < grant.role:
            grant = Grant(grant.jid, scope, grant.telescopes, grant.listed, grant.transport)
        return Person(name, grant, how, csrf)

    def proxy_csrf(self, name: str) -> str:
        return hmac.new(self._secret, f"burstbus-proxy-csrf:{name}".encode(), hashlib.sha256).hexdigest()

    def form_csrf(self, seed: str) -> str:
        """The sign-in form's CSRF token, bound to the browser's pre-session cookie ``seed``."""
        return hmac.new(self._secret, f"burstbus-signin-csrf:{seed}".encode(), hashlib.sha256).hexdigest()

    def _from_proxy(self, request: web.Request) -> str | None:
        if not self.sso_header or not self.sso_proxies:
            return None
        value = request.headers.get(self.sso_header)
        if not value:
            return None
        try:
            peer = ipaddress.ip_address(request.remote or "")
        except ValueError:
            return None
        if not any(peer in network for network in self.sso_proxies):
            log.warning("ignored %s from %s: not one of [http] sso_proxies", self.sso_header, request.remote)
            return None
        return value.strip()

    async def identify(self, request: web.Request) -> Found:
        if not self.enabled:
            return Found()
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and accounts.looks_like_token(given.strip()):
            address = request.remote or "unknown"
            wait = self.throttle.wait(address)
            if wait > 0:
                return Found(error=Throttled(wait))
            presented = given.strip()
            held = await self._run(lambda conn: accounts.token_holder(conn, presented))
            if held is None:
                self.throttle.failed(address)
                return Found(error=Unauthorized("the API token is not valid (expired, revoked or unknown)",
                                                error="invalid_token"))
            name, scope = held
            return Found(self.person(name, "token", None, scope))
        proxied = self._from_proxy(request)
        if proxied is not None:
            try:
                name = accounts.account_name(proxied)
            except accounts.AccountError:
                return Found(error=Unauthorized(f"the single sign-on name {proxied[:80]!r} is not a bare JID"))
            return Found(self.person(name, "proxy", self.proxy_csrf(name)))
        cookie = request.cookies.get(PERSON_COOKIE)
        if cookie:
            session = await self._run(lambda conn: accounts.find_session(conn, cookie))
            if isinstance(session, accounts.Session):
                return Found(self.person(session.name, "session", session.csrf))
        return Found()

    # -- sign-in and sign-out --

    async def sign_in(self, request: web.Request, name_typed: str, password: str) -> tuple[str, str] | str:
        """``(cookie value, name)`` or the message to show. Throttled per address and per account."""
        address = request.remote or "unknown"
        try:
            name = accounts.account_name(name_typed)
        except accounts.AccountError as exc:
            return str(exc)
        for throttle, key in ((self.throttle, address), (self.account_throttle, name)):
            wait = throttle.wait(key)
            if wait > 0:
                raise Throttled(wait)
        found = await self._run(lambda conn: accounts.get_account(conn, name))
        stored = found[1] if isinstance(found, tuple) else None
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(None, accounts.password_matches, stored, password)
        account = found[0] if isinstance(found, tuple) else None
        if not ok or account is None or account.disabled:
            self.throttle.failed(address)
            self.account_throttle.failed(name)
            log.info("web sign-in refused for %s from %s", name, address)
            return "that name and password do not match an active account"
        if stored is not None and accounts.needs_rehash(stored):
            fresh = await loop.run_in_executor(None, accounts.hash_password, password)
            await self._run(lambda conn: accounts.set_password(conn, name, fresh))
        opened = await self._run(lambda conn: accounts.open_session(conn, name))
        assert opened is not None  # accounts are on: sign-in is offered only then
        log.info("web sign-in: %s from %s", name, address)
        return opened[0], name

    async def sign_out(self, request: web.Request) -> None:
        cookie = request.cookies.get(PERSON_COOKIE)
        if cookie and self.enabled:
            await self._run(lambda conn: accounts.close_session(conn, cookie))

    async def ready(self) -> None:
        """The schema and the CSRF key (before the first form is rendered)."""
        await self._run(lambda conn: None)

    def form_seed(self, request: web.Request) -> tuple[str, bool]:
        """The browser's pre-session seed, and whether it is new (then set it with :meth:`set_seed`)."""
        seed = request.cookies.get(FORM_COOKIE, "")
        if 20 <= len(seed) <= 64:
            return seed, False
        return secrets.token_urlsafe(24), True

    def set_seed(self, response: web.StreamResponse, seed: str, secure: bool) -> None:
        response.set_cookie(FORM_COOKIE, seed, path=self.cookie_path, httponly=True, samesite="Strict",
                            secure=secure or self.secure_cookie)

    def form_csrf_ok(self, request: web.Request, given: str | None) -> bool:
        seed = request.cookies.get(FORM_COOKIE, "")
        return bool(seed) and bool(given) and hmac.compare_digest(
            str(given).encode("utf-8", "replace"), self.form_csrf(seed).encode())

    def set_cookie(self, response: web.StreamResponse, value: str, secure: bool) -> None:
        response.set_cookie(PERSON_COOKIE, value, max_age=accounts.SESSION_SECONDS, path=self.cookie_path,
                            httponly=True, samesite="Strict", secure=secure or self.secure_cookie)

    def clear_cookie(self, response: web.StreamResponse, secure: bool) -> None:
        response.set_cookie(PERSON_COOKIE, "", max_age=0, path=self.cookie_path, httponly=True, samesite="Strict",
                            secure=secure or self.secure_cookie)


def csrf_ok(person: Person, given: str | None) -> bool:
    """A state-changing request by ``person`` carries their CSRF token (bearer tokens need none)."""
    if person.csrf is None:
        return True
    return bool(given) and hmac.compare_digest(str(given).encode("utf-8", "replace"), person.csrf.encode())


def identity_middleware(people: People) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def identify(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[IDENTITY] = await people.identify(request)
        return await handler(request)

    return identify


def found(request: web.Request) -> Found:
    value = request.get(IDENTITY)
    return value if isinstance(value, Found) else Found()
