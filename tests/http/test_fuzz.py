"""A property-based sweep (Hypothesis) of every route ``/api/openapi.json`` lists, four times:
signed out, signed in as a viewer (a person's session, with its CSRF token), as a Burst Advocate
with a write credential (a per-person ``bbt_`` token), and with the shared ``[http] token`` the
pipelines write with (most write routes are the pipelines' and refuse a BA: 403).

Each operation gets random path parameters, query strings (the route's own keys and others,
repeated keys, deeply nested JSON, integers thousands of digits long, NULs, bytes that are not
UTF-8, unicode), headers and, for POSTs, bodies. Whatever is sent: never a 5xx, and every answer
has the content type the description documents for its status — JSON unless it names another
(a draft's or a packet's XML, the live stream, the metrics) — and a JSON answer parses, with an
``error`` saying what was wrong when it is a 4xx.

Hypothesis drives a blocking client (``http.client``, which sends what it is given) from a worker
thread while the server runs on the test's loop; examples are few and derandomised (the same
requests in every run), so the sweep stays well under a minute.
"""

from __future__ import annotations

import asyncio
import functools
import http.client
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_from_bytes

import aiohttp
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from burstbus import accounts
from burstbus.acl import AclSection, AclUser
from burstbus.bridges.http.app import ACCESS
from burstbus.state import StateStore
from tests.http.conftest import SVOM, TOKEN, Archive, corpus, open_archive
from tests.http.test_bad_input import NASTY

pytestmark = pytest.mark.asyncio(loop_scope="package")

#: Examples per operation and identity (31 operations × 4 identities).
EXAMPLES = 12
PASSWORD = "a long enough passphrase for the sweep"
VIEWER, BA = "victor@fsc.example", "alice@fsc.example"
ACL = AclSection(users=(AclUser(BA, ("ba",), ("*",)), AclUser(VIEWER, ("viewer",))))
#: Headers the sweep never sets: they frame the request, and a wrong one only makes the client
#: and the server disagree on where the request ends (the raw-socket tests cover the framing).
FRAMING = {"content-length", "transfer-encoding", "host", "connection", "expect", "upgrade"}
HEADER_NAMES = ["Accept", "Accept-Language", "Last-Event-ID", "If-None-Match", "If-Modified-Since", "Range",
                "Content-Type", "Cookie", "Authorization", "X-CSRF-Token", "X-Forwarded-For", "X-Remote-User",
                "Origin", "Referer", "Idempotency-Key", "User-Agent", "X-Anything"]  # fmt: skip


# -- what is sent ---------------------------------------------------------------------------------


def _nested(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


HOSTILE: st.SearchStrategy[bytes] = st.one_of(
    st.sampled_from([value.encode() for value in NASTY]),
    st.builds(_nested, st.integers(1, 2000), st.sampled_from(["list", "object"])),
    st.integers(100, 4000).map(lambda n: b"9" * n),
    st.integers(-(10**60), 10**60).map(lambda n: str(n).encode()),
    st.text(max_size=40).map(lambda t: t.encode("utf-8")),
    st.binary(max_size=30),  # not UTF-8 once percent-decoded, NULs included
    st.sampled_from([b"", b"\x00", b"%", b"\xff\xfe", "\u202e\u0000\U0001f4a5".encode()]),
)
BY_TYPE: dict[str, st.SearchStrategy[bytes]] = {
    "integer": st.one_of(st.integers(-(10**20), 10**20).map(lambda n: str(n).encode()),
                         st.floats(allow_nan=True).map(lambda f: repr(f).encode())),
    "number": st.floats(allow_nan=True, allow_infinity=True).map(lambda f: repr(f).encode()),
    "boolean": st.sampled_from([b"true", b"false", b"1", b"0", b"yes", b"TRUE", b""]),
    "array": st.lists(st.text(max_size=12).map(lambda t: t.encode()), max_size=5).map(b",".join),
    "string": st.text(max_size=30).map(lambda t: t.encode()),
}  # fmt: skip


def _value(schema_type: str | None) -> st.SearchStrategy[bytes]:
    typed = BY_TYPE.get(schema_type or "string", BY_TYPE["string"])
    return st.one_of(typed, HOSTILE)


@dataclass
class Operation:
    method: str
    path: str
    spec: dict[str, Any]

    def parameters(self, where: str) -> list[dict[str, Any]]:
        return [p for p in self.spec.get("parameters", []) if p.get("in") == where]

    def documented_types(self, status: int) -> list[str] | None:
        """The content types the description gives for ``status`` (None: not documented, so an
        error: JSON)."""
        response = self.spec.get("responses", {}).get(str(status))
        if response is None or not response.get("content"):
            return None
        return list(response["content"])


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


def _query(operation: Operation) -> st.SearchStrategy[bytes]:
    own = [(p["name"], p.get("schema", {}).get("type")) for p in operation.parameters("query")]
    keys = st.sampled_from(own) if own else st.nothing()
    pair = st.one_of(
        keys.flatmap(lambda key: _value(key[1]).map(lambda v: (key[0].encode(), v))),
        st.tuples(st.one_of(HOSTILE.filter(lambda b: len(b) < 200), st.sampled_from([b"limit", b"after", b"cone"])),
                  _value(None)),
    )  # fmt: skip
    pairs = st.lists(pair, max_size=4).flatmap(  # repeated keys: a pair drawn again
        lambda drawn: st.just(drawn + drawn[:1]) if drawn else st.just(drawn))
    return pairs.map(lambda ps: b"&".join(quote_from_bytes(k, safe="").encode() + b"=" + quote_from_bytes(v, safe="").encode()
                                          for k, v in ps))  # fmt: skip


def _path(operation: Operation, known: dict[str, list[str]]) -> st.SearchStrategy[str]:
    names = re.findall(r"{([^}]+)}", operation.path)
    if not names:
        return st.just(operation.path)
    values = {name: st.one_of(st.sampled_from(known.get(name) or [""]).map(lambda v: quote(v, safe="")),
                              HOSTILE.map(lambda b: quote_from_bytes(b, safe="")))
              for name in names}  # fmt: skip

    def fill(drawn: dict[str, str]) -> str:
        return re.sub(r"{([^}]+)}", lambda m: drawn[m.group(1)], operation.path)

    return st.fixed_dictionaries(values).map(fill)


#: A real packet from the archive's corpus (a duplicate when sent), and its cut-short copy.
PACKET = corpus()[0]
HEADER_VALUE = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80),
    st.text(alphabet=st.characters(min_codepoint=0xA0, max_codepoint=0xFF), max_size=20),  # latin-1 bytes
    st.sampled_from(["-1", "0", "9" * 500, "[" * 3000, "Bearer bbt_0_forged", "Bearer ", "text/xml; charset=ebcdic",
                     "application/json", "bytes=99999999-", "burstbus_person=forged"]),
)  # fmt: skip
BODY = st.one_of(
    st.binary(max_size=300),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                 lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                 max_leaves=12).map(lambda v: json.dumps(v).encode()),
    st.builds(_nested, st.integers(100, 5000), st.sampled_from(["list", "object"])),
    st.sampled_from([PACKET, PACKET[:-20], b"<?xml version='1.0'?><voe:VOEvent/>",
                     b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>', b"name=x&password=y&csrf=z",
                     b'{"burst_id": "' + b"9" * 3000 + b'"}', b"\x00" * 100,
                     # whole and valid, so that a writer's requests also reach the accepting paths
                     b'{"burst_id": "sb26112001", "kind": "qlk", "location": "file:///data/sb26112001.fits"}',
                     b'{"process": "qlk-1", "status": "running", "burst_id": "sb26112001"}',
                     b'{"pipeline": "qlk", "burst_id": "sb26112001", "parameters": {"a": "1"}}']),
)  # fmt: skip


def requests_for(operation: Operation, identity: dict[str, str], known: dict[str, list[str]]) -> st.SearchStrategy[Request]:
    extra_headers = st.dictionaries(st.sampled_from(HEADER_NAMES), HEADER_VALUE, max_size=3)
    body = BODY if operation.method == "POST" else st.none()

    def build(path: str, query: bytes, headers: dict[str, str], payload: bytes | None) -> Request:
        target = path + ("?" + query.decode() if query else "")
        return Request(operation.method, target, {**identity, **headers}, payload)

    return st.builds(build, _path(operation, known), _query(operation), extra_headers, body)


# -- what is checked ----------------------------------------------------------------------------


def send(address: tuple[str, int], request: Request) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection(*address, timeout=60)
    try:
        connection.request(request.method, request.target, body=request.body, headers=request.headers)
        response = connection.getresponse()
        content_type = response.getheader("Content-Type", "")
        if content_type.startswith("text/event-stream"):
            return response.status, content_type, b""  # a live stream: its head says enough
        return response.status, content_type, response.read()
    finally:
        connection.close()


def check(operation: Operation, request: Request, status: int, content_type: str, body: bytes) -> None:
    shown = f"{request.method} {request.target[:300]} {dict((k, v[:80]) for k, v in request.headers.items())}"
    assert status < 500, (shown, status, body[:500])
    mime = content_type.split(";")[0].strip()
    expected = operation.documented_types(status) or ["application/json"]
    assert mime in expected, (shown, status, mime, expected, body[:300])
    if mime == "application/json":
        parsed = json.loads(body)
        if status >= 400:
            assert isinstance(parsed, dict) and parsed["error"]["message"], (shown, parsed)


def examples(address: tuple[str, int], operation: Operation, identity: dict[str, str],
             known: dict[str, list[str]], sent: list[Request]) -> Callable[[], None]:  # fmt: skip
    """The Hypothesis test of one operation (each request sent is appended to ``sent``)."""

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(requests_for(operation, identity, known))
    def one(request: Request) -> None:
        sent.append(request)
        check(operation, request, *send(address, request))

    return one


def sweep(address: tuple[str, int], operations: list[Operation], identity: dict[str, str],
          known: dict[str, list[str]]) -> int:  # fmt: skip
    """Run the examples of every operation (in this worker thread); returns how many were sent."""
    sent: list[Request] = []
    for operation in operations:
        examples(address, operation, identity, known, sent)()
    return len(sent)


# -- the site and the three identities ------------------------------------------------------------


@dataclass
class Site:
    archive: Archive
    operations: list[Operation]
    identities: dict[str, dict[str, str]]
    known: dict[str, list[str]]

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.archive.url.removeprefix("http://").split(":")
        return host, int(port)


async def _sign_in(url: str, name: str) -> dict[str, str]:
    """A person's session as a browser holds it: the cookie, and the CSRF token pages carry."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(url + "/signin") as page:
            found = re.search(r'name="csrf" value="([^"]+)"', await page.text())
        assert found
        form = {"name": name, "password": PASSWORD, "csrf": found.group(1), "next": "log"}
        async with session.post(url + "/signin", data=form, allow_redirects=False) as signed:
            assert signed.status == 303, await signed.text()
        async with session.get(url + "/log") as page:
            csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', await page.text())
        assert csrf
        cookies = "; ".join(f"{c.key}={c.value}" for c in session.cookie_jar)
    return {"Cookie": cookies, "X-CSRF-Token": csrf.group(1)}


def _add_account(conn: Any, *, name: str, hashed: str) -> None:
    accounts.add_account(conn, name, hashed)


@pytest_asyncio.fixture(scope="module", loop_scope="package")
async def site(tmp_path_factory: Any) -> AsyncIterator[Site]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    state = await StateStore.open(tmp / "state.sqlite")
    await state.run(accounts.ensure_schema)
    archive = await open_archive(tmp / "site", corpus(), state=state, acl=ACL)
    try:
        for name in (VIEWER, BA):
            hashed = accounts.hash_password(PASSWORD)
            await state.transaction(functools.partial(_add_account, name=name, hashed=hashed))
        token, _ = await state.transaction(lambda c: accounts.add_token(c, BA, "ba", label="sweep"))
        # The sweep sends junk credentials on purpose: left on, the wrong-token throttle would
        # answer 429 to every credential after the tenth, and the BA's requests would no longer
        # reach the handlers (the throttle has its own tests).
        archive.app[ACCESS].throttle.max_failures = 10**9
        status, spec, _ = await archive.get("/api/openapi.json")
        assert status == 200
        operations = [Operation(method.upper(), path, op) for path, ops in spec["paths"].items()
                      for method, op in ops.items() if method in ("get", "post")]  # fmt: skip
        identities = {"signed out": {}, "viewer": await _sign_in(archive.url, VIEWER),
                      "ba": {"Authorization": f"Bearer {token}"},
                      "write token": {"Authorization": f"Bearer {TOKEN}"}}  # fmt: skip
        known = {"burst_id": ["sb26112001", "sb26112002"], "ivorn": [f"{SVOM}#sb26112001_eclairs-wakeup"],
                 "ref": ["1"], "id": ["sb26112001"], "draft_id": ["d1"], "request_id": ["r1"]}  # fmt: skip
        yield Site(archive, operations, identities, known)
    finally:
        await archive.close()
        await state.close()


def _run(site: Site, identity: str) -> Callable[[], int]:
    return lambda: sweep(site.address, site.operations, site.identities[identity], site.known)


async def test_every_route_is_listed(site: Site) -> None:
    paths = {(o.method, o.path) for o in site.operations}
    assert ("POST", "/api/voevents") in paths and ("GET", "/apiv1/packet/xml/{ivorn}") in paths
    assert len(paths) >= 30, sorted(paths)


@pytest.mark.parametrize("identity", ["signed out", "viewer", "ba", "write token"])
async def test_no_route_answers_5xx_or_anything_but_its_documented_type(site: Site, identity: str) -> None:
    sent = await asyncio.to_thread(_run(site, identity))
    assert sent >= len(site.operations) * EXAMPLES // 2  # Hypothesis ran the examples (not skipped)


# -- what the sweep found (each a 500 before) -----------------------------------------------------


async def _send(site: Site, request: Request) -> tuple[int, Any]:
    status, content_type, body = await asyncio.to_thread(send, site.address, request)
    assert content_type.startswith("application/json"), (status, content_type, body[:200])
    return status, json.loads(body)


@pytest.mark.parametrize("ref", ["9" * 20, "9" * 5000, "\u00b2"], ids=["20 digits", "5000 digits", "superscript two"])
async def test_a_json_notice_ref_no_seq_can_be_is_404(site: Site, ref: str) -> None:
    """An integer over SQLite's range was an ``OverflowError``, a Unicode digit a ``ValueError``."""
    status, body = await _send(site, Request("GET", "/api/json-notices/" + quote(ref, safe="")))
    assert status == 404 and "no JSON notice" in body["error"]["message"], body


async def test_a_process_request_nested_too_deep_is_refused(site: Site) -> None:
    """``json.loads`` raised ``RecursionError``; now the untrusted-JSON limits refuse it."""
    status, body = await _send(site, Request("POST", "/api/processes/request", {**site.identities["ba"],
                                             "Content-Type": "application/json"}, _nested(2000, "object")))  # fmt: skip
    assert status == 422 and "nested more than" in body["error"]["message"], body


async def test_an_error_quoting_bytes_that_are_not_utf8_is_json(site: Site) -> None:
    """A ``Last-Event-ID`` of byte 0xA0 is decoded to a lone surrogate, which the error quoted
    and UTF-8 could not encode; the answer is now JSON with the surrogate escaped."""
    status, body = await _send(site, Request("GET", "/api/stream", {**site.identities["viewer"], "Last-Event-ID": "\xa0"}))
    assert status == 400 and "Last-Event-ID header must be" in body["error"]["message"], body
