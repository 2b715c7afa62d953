"""Who reads what over HTTP (issue 11): the event log, trigger requests, the audit page and the
stream's non-public event types need a read credential — the read token, the API token, or the
cookie ``POST /signin`` sets; the archive, the notices/processes/bursts pages and APIs (without
trigger details) and operations stay open. ``public_read = true`` opens everything.

Every check is what a client sees: status, JSON error or page text, cookies, stream frames.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio

from burstbus.bridges.http.access import COOKIE, SESSION_SECONDS, Access, FailureThrottle
from burstbus.bridges.http.app import ACCESS
from burstbus.bridges.http.signin import safe_next
from burstbus.events import Event
from tests.http.conftest import AUTH, READ_TOKEN, SWIFT, TOKEN, Archive, corpus, open_archive
from tests.http.test_stream import stream
from tests.http.world import TRIGGERS, open_world
from tests.packets import voevent
from tests.waiting import wait_for

pytestmark = pytest.mark.asyncio(loop_scope="package")

WRITE_AUTH = {"Authorization": f"Bearer {TOKEN}"}
WRONG_AUTH = {"Authorization": "Bearer not-the-token"}
BURST = "sb26112001"  # the world's burst with two trigger requests
PUBLIC = "voevent.accepted,burst.identified,burst.none"

#: Protected API reads: refused without a read credential.
PROTECTED_API = [
    "/api/triggers",
    "/api/triggers?state=requested",
    "/api/log",
    "/api/log?type=ba.command",
    "/api/stream",
    "/api/stream?type=ba.command",
    "/api/stream?type=trigger.requested",
    f"/api/stream?type={PUBLIC},trigger.approved",
    "/api/processes",  # signed-in readers unless [http] public_processes
    "/api/stream?type=process.status",
]
PROTECTED_PAGES = ["/log", "/log?type=trigger.requested", "/log?fragment=results"]
#: The process table's page: the sign-in form in its place (not "the audit log").
PROCESS_PAGES = ["/processes", "/processes?status=failed"]
#: Open to anyone, whatever the settings.
PUBLIC_PATHS = [
    "/apiv1/",
    "/apiv1/count",
    "/apiv1/list/ivorn?limit=5",
    "/apiv1/packet/synopsis/" + quote(f"{SWIFT}#BAT_GRB_Pos_700000-0", safe=""),
    "/api/bursts",
    f"/api/bursts/{BURST}",
    "/api/openapi.json",
    "/healthz",
    "/metrics",
    "/static/burstbus.css",
    "/static/live.js",
    "/",
    "/notices",
    "/bursts",
    f"/bursts/{BURST}",
    "/signin",
]


def jar() -> aiohttp.CookieJar:
    return aiohttp.CookieJar(unsafe=True)  # keep cookies from 127.0.0.1, as a browser does


@pytest_asyncio.fixture(scope="module", loop_scope="package")
async def world(tmp_path_factory: Any) -> AsyncIterator[Archive]:
    """The API world (triggers for BURST) plus a bot command and a trigger request in the
    burst's log stream, as the bot would append them."""
    opened = await open_world(tmp_path_factory.mktemp("access"))
    # These tests send many wrong tokens on purpose; the throttle has its own tests below.
    opened.app[ACCESS].throttle = FailureThrottle(max_failures=10_000)
    await opened.log.append(
        [
            Event(
                "ba.command",
                {"jid": "alice@fsc.example", "text": "trigger colibri sb26112001", "outcome": "ok"},
                stream=BURST,
                actor="xmpp:alice@fsc.example",
            ),
            Event(
                "trigger.requested",
                {
                    "request_id": "d" * 32,
                    "telescope": "colibri",
                    "burst_id": BURST,
                    "requested_by": "alice@fsc.example",
                },
                stream=BURST,
                actor="xmpp:alice@fsc.example",
            ),
        ]
    )
    try:
        yield opened
    finally:
        await opened.close()


async def answer(
    url: str, *, headers: dict[str, str] | None = None, session: aiohttp.ClientSession | None = None
) -> tuple[int, str, Any, Any]:
    """(status, content type, body, headers) of a GET; a stream is read up to its first line."""
    own = session is None
    client = aiohttp.ClientSession(cookie_jar=jar()) if session is None else session
    try:
        async with client.get(url, headers=headers or {}, allow_redirects=False) as response:
            if response.content_type == "text/event-stream":
                body: Any = (await response.content.readline()).decode()
            elif response.content_type == "application/json":
                body = await response.json()
            else:
                body = (await response.read()).decode("utf-8", "replace")
            return response.status, response.content_type, body, response.headers
    finally:
        if own:
            await client.close()


async def form_csrf(session: aiohttp.ClientSession, url: str) -> str:
    """The sign-in form's CSRF token (the form sets the cookie it is bound to; a ``Secure``
    one, behind https, is kept by hand: these tests speak plain HTTP to the server)."""
    async with session.get(url) as response:
        html = await response.text()
        seed = response.cookies.get("burstbus_form")
        if seed is not None and seed["secure"]:
            session.cookie_jar.update_cookies({"burstbus_form": seed.value})
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:2000]
    return found.group(1)


async def sign_in(
    session: aiohttp.ClientSession, archive: Archive, token: str, next_: str = "", base: str = ""
) -> aiohttp.ClientResponse:
    csrf = await form_csrf(session, f"{archive.url}{base}/signin")
    async with session.post(
        f"{archive.url}{base}/signin", data={"token": token, "next": next_, "csrf": csrf}, allow_redirects=False
    ) as response:
        await response.read()
        return response


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# -- refused without a credential --------------------------------------------------------------


@pytest.mark.parametrize("path", PROTECTED_API)
async def test_protected_api_is_refused_without_credentials(world: Archive, path: str) -> None:
    status, kind, body, headers = await answer(world.url + path)
    assert (status, kind) == (401, "application/json"), body
    assert body["error"]["code"] == 401 and "needs a read token" in body["error"]["message"]
    assert "Authorization: Bearer <token>" in body["error"]["message"]
    assert headers["WWW-Authenticate"].startswith('Bearer realm="burstbus"')


@pytest.mark.parametrize("path", PROTECTED_API)
async def test_protected_api_is_refused_with_a_wrong_token(world: Archive, path: str) -> None:
    status, kind, body, headers = await answer(world.url + path, headers=WRONG_AUTH)
    assert (status, kind) == (401, "application/json"), body
    assert body["error"]["message"] == "the token is not valid"
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    # Not a bearer token at all: said so, too.
    status, _, body, _ = await answer(
        world.url + path, headers={"Authorization": f"Basic {READ_TOKEN}"}
    )
    assert status == 401 and "must be 'Bearer <token>'" in body["error"]["message"]


@pytest.mark.parametrize("path", PROTECTED_PAGES)
async def test_protected_page_without_credentials_is_the_signin_form(
    world: Archive, path: str
) -> None:
    status, kind, html, headers = await answer(world.url + path)
    assert (status, kind) == (401, "text/html"), html[:300]
    assert "<!doctype html>" in html and 'id="signin-form"' in html and 'name="token"' in html
    assert "The audit log is not public" in _text(html)
    assert "Traceback" not in html and 'class="cards log"' not in html  # no events shown
    assert 'name="next" value="log' in html  # back to this page after signing in
    # The page keeps the CSP: no inline script or style.
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert (
        not re.search(r"<script(?![^>]*\bsrc=)", html)
        and " style=" not in html
        and "<style" not in html
    )


@pytest.mark.parametrize("path", PROTECTED_PAGES)
async def test_protected_page_with_a_wrong_token_says_so(world: Archive, path: str) -> None:
    status, kind, html, _ = await answer(world.url + path, headers=WRONG_AUTH)
    assert (status, kind) == (401, "text/html")
    assert "the token is not valid" in _text(html) and 'id="signin-form"' in html


# -- served with a credential ------------------------------------------------------------------


@pytest.mark.parametrize(
    "credential", ["read token", "write token", "cookie", "cookie from the write token"]
)
async def test_protected_reads_are_served_with_each_credential(
    world: Archive, credential: str
) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as session:
        headers: dict[str, str] = {}
        if credential == "read token":
            headers = AUTH
        elif credential == "write token":
            headers = WRITE_AUTH
        else:
            signed = await sign_in(session, world, READ_TOKEN if credential == "cookie" else TOKEN)
            assert signed.status == 303
        for path in PROTECTED_API + PROTECTED_PAGES + PROCESS_PAGES:
            status, kind, body, _ = await answer(world.url + path, headers=headers, session=session)
            assert status == 200, (credential, path, body)
            if path.startswith("/api/stream"):
                assert kind == "text/event-stream" and body.startswith("retry:")
        _, _, triggers, _ = await answer(
            world.url + "/api/triggers", headers=headers, session=session
        )
        assert [t["request_id"] for t in triggers["result"]] == [
            t["request_id"] for t in reversed(TRIGGERS)
        ]
        _, _, page, _ = await answer(
            world.url + "/log?type=ba.command", headers=headers, session=session
        )
        assert "ba.command" in page and "xmpp:alice@fsc.example" in page


@pytest.mark.parametrize("path", PROCESS_PAGES)
async def test_the_process_table_is_for_signed_in_readers_by_default(world: Archive, path: str) -> None:
    status, kind, html, _ = await answer(world.url + path)
    assert (status, kind) == (401, "text/html") and 'id="signin-form"' in html
    assert "The process table" in _text(html) and 'class="cards processes"' not in html


async def test_without_a_credential_a_burst_and_the_overview_show_no_runs(world: Archive) -> None:
    _, _, burst, _ = await answer(f"{world.url}/api/bursts/{BURST}")
    assert burst["processes"] is None and "process runs" in burst["restricted"]
    assert all(e["type"] in PUBLIC.split(",") for e in burst["log"]["result"]), burst["log"]
    _, _, page, _ = await answer(f"{world.url}/bursts/{BURST}")
    assert 'id="processes-restricted"' in page
    _, _, overview, _ = await answer(f"{world.url}/")
    assert 'id="processes-restricted"' in overview and "processes?status=" not in overview
    _, _, signed, _ = await answer(f"{world.url}/api/bursts/{BURST}", headers=AUTH)
    assert isinstance(signed["processes"], list)


async def test_public_processes_opens_the_process_table_to_anyone(tmp_path: Path) -> None:
    archive = await open_archive(tmp_path, corpus()[:2], public_processes=True)
    try:
        for path in ("/api/processes", "/processes", "/api/stream?type=process.status,voevent.accepted"):
            assert (await answer(archive.url + path))[0] == 200, path
        _, _, overview, _ = await answer(archive.url + "/")
        assert 'id="processes-restricted"' not in overview
        assert (await answer(archive.url + "/api/log"))[0] == 401  # the rest stays closed
    finally:
        await archive.close()


# -- open to anyone ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PUBLIC_PATHS)
async def test_public_reads_stay_open(world: Archive, path: str) -> None:
    status, _, body, _ = await answer(world.url + path)
    assert status == 200, (path, body if isinstance(body, dict) else str(body)[:300])


async def test_public_event_types_stream_without_a_token(world: Archive) -> None:
    status, kind, first, _ = await answer(f"{world.url}/api/stream?type={PUBLIC}")
    assert (status, kind) == (200, "text/event-stream") and first.startswith("retry:")


async def test_both_burst_decisions_are_public(world: Archive) -> None:
    # burst.none (a notice belongs to no burst) says no more than burst.identified does
    status, kind, first, _ = await answer(f"{world.url}/api/stream?type=burst.none,burst.identified")
    assert (status, kind) == (200, "text/event-stream") and first.startswith("retry:")


async def test_a_burst_without_credentials_has_no_trigger_details(world: Archive) -> None:
    status, _, body, _ = await answer(f"{world.url}/api/bursts/{BURST}")
    assert status == 200
    assert body["triggers"] is None and "need a read token" in body["restricted"]
    types = {e["type"] for e in body["log"]["result"]}
    assert types and types <= {"voevent.accepted", "burst.identified", "process.status"}
    assert "alice@fsc.example" not in str(body) and "d" * 32 not in str(body)
    # With the token: the triggers and every event of the burst's stream.
    _, _, full, _ = await answer(f"{world.url}/api/bursts/{BURST}", headers=AUTH)
    # Newest request first: the read side's one order (store/read/bursts.py).
    assert [t["request_id"] for t in full["triggers"]] == [
        "b" * 32,
        "a" * 32,
    ] and "restricted" not in full
    assert {"ba.command", "trigger.requested"} <= {e["type"] for e in full["log"]["result"]}
    # A wrong token is a 401, not quietly the public view.
    status, _, wrong, _ = await answer(f"{world.url}/api/bursts/{BURST}", headers=WRONG_AUTH)
    assert status == 401 and wrong["error"]["message"] == "the token is not valid"


async def test_burst_pages_without_credentials_show_no_trigger_details(world: Archive) -> None:
    for path in (f"/bursts/{BURST}", f"/bursts/{BURST}?fragment=results"):
        status, _, html, _ = await answer(world.url + path)
        assert status == 200
        for secret in (
            "alice@fsc.example",
            "bob@fsc.example",
            "carol@fsc.example",
            "a" * 32,
            "too low",
            "colibri",
        ):
            assert secret not in html, (path, secret)
        assert 'id="triggers-restricted"' in html and "signin?next=bursts%2Fsb26112001" in html
    _, _, html, _ = await answer(f"{world.url}/bursts/{BURST}")
    # Its live updates follow only what its reader may see.
    live = re.search(r'data-types="([^"]*)"', html)
    assert live is not None and set(live.group(1).split(",")) == {"burst.identified"}  # runs: signed in
    # Signed in: the trigger table, and the trigger events followed live.
    _, _, html, _ = await answer(f"{world.url}/bursts/{BURST}", headers=AUTH)
    assert (
        "bob@fsc.example" in html and "too low" in html and 'id="triggers-restricted"' not in html
    )
    live = re.search(r'data-types="([^"]*)"', html)
    assert live is not None and "trigger.requested" in live.group(1)
    # The lists show no trigger counts to anonymous readers.
    for path in ("/bursts", "/"):
        _, _, html, _ = await answer(world.url + path)
        assert "<th>Triggers</th>" not in html and 'data-label="Triggers"' not in html, path
        _, _, html, _ = await answer(world.url + path, headers=AUTH)
        assert "<th>Triggers</th>" in html, path


# -- the live stream ---------------------------------------------------------------------------


async def test_stream_without_token_never_delivers_bot_or_trigger_events(tmp_path: Path) -> None:
    archive = await open_archive(tmp_path, [], public_processes=True)  # process.status public too
    public_types = f"{PUBLIC},process.status"
    try:
        before = (await archive.log.head()).seq
        secret = [
            Event(
                "ba.command",
                {"jid": "alice@fsc.example", "text": "approve 7Q2K", "outcome": "ok"},
                stream="sb26112099",
                actor="xmpp:alice@fsc.example",
            ),
            Event(
                "trigger.requested",
                {"request_id": "e" * 32, "telescope": "colibri", "burst_id": "sb26112099"},
                stream="sb26112099",
                actor="xmpp:alice@fsc.example",
            ),
        ]
        public = Event(
            "process.status",
            {"process": "p1", "burst_id": "sb26112099", "status": "running"},
            stream="sb26112099",
        )
        # Without a token, a stream that could carry them is refused outright...
        for query in (
            "",
            "?type=ba.command",
            "?type=trigger.requested",
            f"?type={PUBLIC},ba.command",
        ):
            status, _, body, _ = await answer(f"{archive.url}/api/stream{query}")
            assert status == 401, (query, body)
        # ...and the one it may open (the public types) gets the public events and nothing else.
        async with (
            stream(archive, f"?type={public_types}", auth=False) as anonymous,
            stream(archive) as reader,
        ):
            await archive.log.append(secret)
            await archive.submit(voevent("ivo://test.example/access#1"))
            await archive.log.append([public])
            await wait_for(lambda: len(reader.events()) == 4, "every event on the token's stream")
            await wait_for(
                lambda: len(anonymous.events()) == 2, "the public events on the anonymous stream"
            )
            assert [m.event for m in reader.events()] == [
                "ba.command",
                "trigger.requested",
                "voevent.accepted",
                "process.status",
            ]
            assert [m.event for m in anonymous.events()] == ["voevent.accepted", "process.status"]
        # Replayed from before them (the catch-up path reads the log itself): only public ones.
        async with stream(archive, f"?type={public_types}&after={before}", auth=False) as replay:
            await wait_for(lambda: len(replay.events()) == 2, "the replay")
            assert [m.event for m in replay.events()] == ["voevent.accepted", "process.status"]
            assert "approve 7Q2K" not in str([m.data for m in replay.messages])
    finally:
        await archive.close()


# -- sign-in -----------------------------------------------------------------------------------


async def test_signin_sets_a_strict_httponly_cookie_that_is_not_the_token(world: Archive) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as session:
        response = await sign_in(session, world, READ_TOKEN, next_="log?type=process.status")
        assert response.status == 303 and response.headers["Location"] == "/log?type=process.status"
        raw = response.headers["Set-Cookie"]
        morsel = response.cookies[COOKIE]
        assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/"
        assert not morsel["secure"]  # plain http on loopback, no https public_url
        assert int(morsel["max-age"]) == SESSION_SECONDS
        assert READ_TOKEN not in raw and re.fullmatch(r"[0-9]+\.[0-9a-f]{64}", morsel.value)
        # Signed in: the audit page, with a way to sign out; the API and the stream too.
        status, _, html, _ = await answer(world.url + "/log?type=process.status", session=session)
        assert status == 200 and "Audit log" in html and 'action="./signout"' in html
        assert (await answer(world.url + "/api/log", session=session))[0] == 200
        assert (await answer(world.url + "/api/stream", session=session))[0] == 200
        # The cookie never authorises a write.
        async with session.post(
            world.url + "/api/voevents", data=voevent("ivo://test.example/access#w")
        ) as post:
            assert post.status == 401
        # Sign out: the cookie is cleared and the page is refused again.
        csrf = await form_csrf(session, world.url + "/signin")
        async with session.post(world.url + "/signout", data={"csrf": csrf}, allow_redirects=False) as out:
            assert out.status == 303 and out.headers["Location"] == "/"
            assert out.cookies[COOKIE]["max-age"] == "0"
        status, _, html, _ = await answer(world.url + "/log", session=session)
        assert status == 401 and 'id="signin-form"' in html


@pytest.mark.parametrize("value", ["forged", "expired", "from another token", "garbage"])
async def test_a_cookie_not_made_here_is_not_signed_in(world: Archive, value: str) -> None:
    other = Access(["some-other-token"])
    cookie = {
        "forged": f"{int(time.time()) + 3600}." + "0" * 64,
        "expired": world.app[ACCESS].session_value(
            READ_TOKEN, now=time.time() - SESSION_SECONDS - 120
        ),
        "from another token": other.session_value("some-other-token"),
        "garbage": "x" * 5000,
    }[value]
    status, _, html, _ = await answer(world.url + "/log", headers={"Cookie": f"{COOKIE}={cookie}"})
    assert status == 401 and 'id="signin-form"' in html
    status, _, body, _ = await answer(
        world.url + "/api/log", headers={"Cookie": f"{COOKIE}={cookie}"}
    )
    assert status == 401 and "needs a read token" in body["error"]["message"]


async def test_a_wrong_signin_shows_the_form_with_a_message(world: Archive) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as session:
        for token, says in (
            ("wrong-token-typed", "that token is not valid"),
            ("", "enter the read token"),
        ):
            async with session.post(
                world.url + "/signin", data={"token": token, "next": "log",
                                             "csrf": await form_csrf(session, world.url + "/signin")}
            ) as response:
                html = await response.text()
                assert response.status == 401 and COOKIE not in response.cookies
            assert (
                says in _text(html)
                and 'id="signin-form"' in html
                and 'name="next" value="log"' in html
            )
            assert "wrong-token-typed" not in html  # never echoed
        assert (await answer(world.url + "/log", session=session))[0] == 401


async def test_signin_under_a_base_path_behind_https(tmp_path: Path) -> None:
    archive = await open_archive(
        tmp_path, [], base_path="/burstbus", public_url="https://fsc.example/burstbus"
    )
    try:
        async with aiohttp.ClientSession(cookie_jar=jar()) as session:
            response = await sign_in(session, archive, READ_TOKEN, next_="log", base="/burstbus")
            assert response.status == 303 and response.headers["Location"] == "/burstbus/log"
            morsel = response.cookies[COOKIE]
            assert (
                morsel["secure"]
                and morsel["path"] == "/burstbus/"
                and morsel["samesite"] == "Strict"
            )
            status, _, html, _ = await answer(archive.url + "/burstbus/signin?next=log")
            assert status == 200 and 'action="./signin"' in html and 'value="log"' in html
    finally:
        await archive.close()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("log?type=x", "log?type=x"),
        ("bursts/sb1%2Fx", "bursts/sb1%2Fx"),
        ("", ""),
        ("//evil.example/x", ""),
        ("https://evil.example/", ""),
        ("/\\evil.example", ""),
        ("\\\\evil", ""),
        ("bursts/../../x", ""),
        ("./log", ""),
        ("log\r\nSet-Cookie: x=1", ""),
        ("a" * 3000, ""),
    ],
    ids=[
        "page",
        "encoded",
        "empty",
        "other-host",
        "scheme",
        "backslash",
        "backslashes",
        "dotdot",
        "dot",
        "crlf",
        "long",
    ],
)
async def test_the_way_back_stays_below_the_base(given: str, expected: str) -> None:
    assert safe_next(given) == expected


async def test_signin_never_redirects_off_site(world: Archive) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as session:
        for bad in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            response = await sign_in(session, world, READ_TOKEN, next_=bad)
            assert response.status == 303 and response.headers["Location"] == "/", bad


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        (
            b"token=" + b"x" * 2_000_000,
            "application/x-www-form-urlencoded",
            413,
            "at most 8,192 are read",
        ),
        (b"token=\xff\xfe&next=log", "application/x-www-form-urlencoded", 400, "not valid UTF-8"),
        (b"token=%FF%FE", "application/x-www-form-urlencoded", 400, "not valid UTF-8"),
        (
            b"&".join(b"f%d=1" % i for i in range(50)),
            "application/x-www-form-urlencoded",
            400,
            "more than 10 fields",
        ),
        (b'{"token": "x"}', "application/json", 415, "application/x-www-form-urlencoded"),
        (
            b"--b\r\nContent-Disposition: form-data; name=token\r\n\r\nx\r\n--b--",
            "multipart/form-data; boundary=b",
            415,
            "application/x-www-form-urlencoded",
        ),
    ],
    ids=["huge", "raw-non-utf8", "percent-non-utf8", "many-fields", "json", "multipart"],
)
async def test_bad_signin_bodies_are_a_clear_4xx(
    world: Archive, body: bytes, content_type: str, status: int, says: str
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            world.url + "/signin", data=body, headers={"Content-Type": content_type}
        ) as response,
    ):
        html = await response.text()
        assert response.status == status, html[:300]
        assert (
            response.content_type == "text/html" and says in _text(html) and "Traceback" not in html
        )


async def test_a_huge_streamed_signin_body_is_refused(world: Archive) -> None:
    """No Content-Length (chunked): still cut at the limit, still a page."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b"token="
        for _ in range(64):
            yield b"y" * 65536

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            world.url + "/signin",
            data=chunks(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ) as response,
    ):
        assert response.status == 413 and "longer than 8,192 bytes" in _text(await response.text())


# -- the throttle ------------------------------------------------------------------------------


async def test_failed_signins_are_throttled_per_address(tmp_path: Path) -> None:
    archive = await open_archive(tmp_path, [])
    try:
        async with aiohttp.ClientSession(cookie_jar=jar()) as session:
            for i in range(10):
                assert (await sign_in(session, archive, f"guess-{i}")).status == 401
            # The eleventh try is refused whatever it sends, the right token included.
            csrf = await form_csrf(session, archive.url + "/signin")
            async with session.post(
                archive.url + "/signin", data={"token": READ_TOKEN, "csrf": csrf}
            ) as response:
                html = await response.text()
                assert response.status == 429 and COOKIE not in response.cookies
                assert int(
                    response.headers["Retry-After"]
                ) >= 1 and "too many wrong tokens" in _text(html)
            status, _, body, headers = await answer(archive.url + "/api/log", headers=AUTH)
            assert (
                status == 429
                and "too many wrong tokens" in body["error"]["message"]
                and "Retry-After" in headers
            )
            async with session.post(
                archive.url + "/api/voevents", data=b"<x/>", headers=WRITE_AUTH
            ) as post:
                assert post.status == 429  # the write token's check shares the throttle
            # Public reads are not affected.
            assert (await answer(archive.url + "/apiv1/count"))[0] == 200
            _, _, metrics, _ = await answer(archive.url + "/metrics")
        assert 'burstbus_http_auth_failures_total{kind="signin"} 10' in metrics
        assert re.search(r'burstbus_http_auth_failures_total\{kind="throttled"\} [1-9]', metrics)
    finally:
        await archive.close()


async def test_wrong_bearer_tokens_count_too(tmp_path: Path) -> None:
    archive = await open_archive(tmp_path, [])
    try:
        for _ in range(10):
            assert (await answer(archive.url + "/api/triggers", headers=WRONG_AUTH))[0] == 401
        assert (await answer(archive.url + "/api/triggers", headers=AUTH))[0] == 429
        _, _, metrics, _ = await answer(archive.url + "/metrics")
        assert 'burstbus_http_auth_failures_total{kind="bearer"} 10' in metrics
    finally:
        await archive.close()


async def test_the_throttle_window_and_addresses() -> None:
    throttle = FailureThrottle(max_failures=3, window=60.0, max_addresses=2)
    for t in (0.0, 1.0, 2.0):
        assert throttle.wait("10.0.0.1", now=t) == 0
        throttle.failed("10.0.0.1", now=t)
    assert throttle.wait("10.0.0.1", now=3.0) == pytest.approx(57.0)  # until the first one ages out
    assert throttle.wait("10.0.0.2", now=3.0) == 0  # another address is not held back
    assert throttle.wait("10.0.0.1", now=60.5) == 0
    throttle.failed("10.0.0.2", now=61.0)
    throttle.failed("10.0.0.3", now=62.0)  # memory is bounded: the oldest address is forgotten
    assert len(throttle._failures) == 2


# -- the operator's choices --------------------------------------------------------------------


@pytest.mark.parametrize("tokens", [True, False], ids=["with-tokens", "without-tokens"])
async def test_public_read_opens_everything(tmp_path: Path, tokens: bool) -> None:
    options: dict[str, Any] = {} if tokens else {"token": None, "read_token": None}
    archive = await open_world(tmp_path, public_read=True, **options)
    try:
        for path in PROTECTED_API + PROTECTED_PAGES:
            status, _, body, _ = await answer(archive.url + path)
            assert status == 200, (path, body)
        _, _, burst, _ = await answer(f"{archive.url}/api/bursts/{BURST}")
        assert len(burst["triggers"]) == 2 and "restricted" not in burst
        _, _, html, _ = await answer(f"{archive.url}/bursts/{BURST}")
        assert "bob@fsc.example" in html and 'id="signin-link"' not in html
        _, _, doc, _ = await answer(archive.url + "/api/openapi.json")
        assert "security" not in doc["paths"]["/api/log"]["get"]
        assert doc["paths"]["/api/voevents"]["post"]["security"] == [{"bearer": []}]
    finally:
        await archive.close()


async def test_without_any_token_protected_reads_are_closed(tmp_path: Path) -> None:
    archive = await open_archive(tmp_path, corpus()[:2], token=None, read_token=None)
    try:
        status, _, body, _ = await answer(archive.url + "/api/log", headers=AUTH)
        assert status == 403 and "no read token is configured" in body["error"]["message"]
        assert (
            "read_token" in body["error"]["message"]
            and "public_read = true" in body["error"]["message"]
        )
        status, _, html, _ = await answer(archive.url + "/log")
        assert status == 403 and 'id="signin-off"' in html and 'id="signin-form"' not in html
        async with (
            aiohttp.ClientSession() as session,
            session.post(archive.url + "/signin", data={"token": "x"}) as r,
        ):
            assert r.status == 403 and "signing in is off" in _text(await r.text())
        assert (await answer(f"{archive.url}/api/stream?type={PUBLIC}"))[0] == 200
        assert (await answer(archive.url + "/api/stream"))[0] == 403
        assert (await answer(archive.url + "/notices"))[0] == 200
    finally:
        await archive.close()


async def test_openapi_states_which_routes_need_the_token(world: Archive) -> None:
    _, _, doc, _ = await answer(world.url + "/api/openapi.json")
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer"
    assert schemes["session"] == {
        **schemes["session"],
        "type": "apiKey",
        "in": "cookie",
        "name": COOKIE,
    }
    paths = doc["paths"]
    read = [{"bearer": []}, {"session": []}]
    assert paths["/api/triggers"]["get"]["security"] == read
    assert paths["/api/log"]["get"]["security"] == read
    assert (
        "401" in paths["/api/log"]["get"]["responses"]
        and "429" in paths["/api/log"]["get"]["responses"]
    )
    # Partly public: anonymous callers allowed ({}), more with a credential.
    assert paths["/api/stream"]["get"]["security"] == [{}, *read]
    assert paths["/api/bursts/{burst_id}"]["get"]["security"] == [{}, *read]
    assert paths["/api/voevents"]["post"]["security"] == [{"bearer": []}]
    assert paths["/api/processes"]["get"]["security"] == read
    for path in (
        "/api/bursts",
        "/apiv1/count",
        "/healthz",
        "/metrics",
        "/api/openapi.json",
    ):
        assert "security" not in paths[path]["get"], path
    assert "null" in paths["/api/bursts/{burst_id}"]["get"]["description"] or "restricted" in str(
        doc
    )


async def test_refusals_do_not_wait_for_anything(world: Archive) -> None:
    """A refused stream registers no client (nothing is streamed to it)."""
    from burstbus.bridges.http.app import EVENT_HUB

    hub = world.app[EVENT_HUB]
    await wait_for(lambda: not hub.clients, "earlier streams to be noticed gone")
    before = hub.connections_total
    assert (await asyncio.wait_for(answer(world.url + "/api/stream?type=ba.command"), 10))[0] == 401
    assert hub.connections_total == before and not hub.clients


async def test_the_settings_are_read_and_checked_like_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from burstbus.config import ConfigError, load_config

    monkeypatch.chdir(Path(__file__).parent)  # no ./burstbus.toml here
    monkeypatch.setenv("BURSTBUS_TEST_READ_TOKEN", "from-the-environment")
    config = load_config(
        environ={"BURSTBUS_HTTP_PUBLIC_READ": "true"},
        overrides={"http": {"read_token": "env:BURSTBUS_TEST_READ_TOKEN"}},
    )
    assert (
        config.http.read_token == "env:BURSTBUS_TEST_READ_TOKEN" and config.http.public_read is True
    )
    assert load_config(environ={}).http.public_read is False  # closed unless an operator opts in
    monkeypatch.delenv("BURSTBUS_TEST_READ_TOKEN")
    with pytest.raises(ConfigError, match=r"http\.read_token.*BURSTBUS_TEST_READ_TOKEN is not set"):
        load_config(environ={}, overrides={"http": {"read_token": "env:BURSTBUS_TEST_READ_TOKEN"}})
    monkeypatch.setenv("BURSTBUS_TEST_READ_TOKEN", "  ")
    with pytest.raises(ConfigError, match=r"http\.read_token.*empty"):
        load_config(environ={}, overrides={"http": {"read_token": "env:BURSTBUS_TEST_READ_TOKEN"}})
    with pytest.raises(ConfigError, match=r"http\.public_read"):
        load_config(environ={"BURSTBUS_HTTP_PUBLIC_READ": "perhaps"})
