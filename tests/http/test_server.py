"""The server under the app (:mod:`burstbus.bridges.http.server`), spoken to over raw sockets:
what aiohttp's own parser refuses is the API's JSON error, slow heads and bodies are cut after
the configured time, an upload abandoned mid-body is recorded like VTP's ``truncated`` frame,
and a name under ``/static/`` that the OS refuses is a JSON 404 — never plain text, never a 500,
never a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from burstbus.bridges.http.app import serve
from burstbus.bridges.http.server import Connection, Limits
from burstbus.events import RecordedEvent
from tests.http.conftest import TOKEN, Archive, open_archive
from tests.packets import voevent
from tests.waiting import DEADLINE, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="package")

WRITE = f"Authorization: Bearer {TOKEN}\r\n"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("content-type", "").startswith("application/json"), self
        return json.loads(self.body)


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


async def talk(url: str, data: bytes, *, then_close: bool = False) -> Answer | None:
    """Send ``data`` on a fresh connection and read until the server closes it (``None``: it
    closed without a word). ``then_close``: hang up right after sending, reading nothing."""
    reader, writer = await asyncio.open_connection(*_address(url))
    try:
        with contextlib.suppress(ConnectionError):  # the server may refuse before taking it all
            writer.write(data)
            await writer.drain()
        if then_close:
            return None
        try:
            raw = await asyncio.wait_for(reader.read(), DEADLINE)
        except ConnectionResetError:
            return None
    finally:
        writer.close()
    if not raw:
        return None
    return _parse(raw)


def _parse(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return Answer(int(status_line.split()[1]), headers, body)


def _error(answer: Answer | None, status: int) -> dict[str, Any]:
    assert answer is not None, "the server closed without answering"
    assert answer.status == status, answer
    body = answer.json()
    assert body["error"]["message"], body
    return body["error"]


@pytest.fixture
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def _assert_no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [(r.name, r.getMessage()) for r in bad]


# -- the parser's refusals ---------------------------------------------------------------------

GET = b"GET /api/bursts HTTP/1.1\r\nHost: x\r\n"
PARSER_REFUSALS: dict[str, tuple[bytes, str]] = {
    "NUL in a header": (GET + b"X-Note: a\x00b\r\n\r\n", "Invalid header value char"),
    "header over 8 KiB": (GET + b"X-Note: " + b"a" * 9000 + b"\r\n\r\n", "Got more than 8190 bytes"),
    "request line over 64 KiB": (b"GET /api/bursts?q=" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                                 "Got more than 65536 bytes"),
    "unknown method": (b"BREW /api/bursts HTTP/1.1\r\nHost: x\r\n\r\n", "Invalid method"),
    "method with a symbol": (b"GE@T /api/bursts HTTP/1.1\r\nHost: x\r\n\r\n", "Invalid method"),
    "TLS on the plain port": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, ""),
    "bad HTTP version": (b"GET /api/bursts HTTP/9.x\r\nHost: x\r\n\r\n", "version"),
    "too many headers": (GET + b"".join(b"X-H%d: 1\r\n" % i for i in range(200)) + b"\r\n", "Too many headers"),
    "bad Content-Length": (b"POST /api/voevents HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", "Content-Length"),
    "bad chunk size": (b"POST /api/voevents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk"),
    "not HTTP at all": (b"hello there\r\n\r\n", ""),
}  # fmt: skip


@pytest.mark.parametrize("case", list(PARSER_REFUSALS))
async def test_parser_refusals_are_json(archive: Archive, no_tracebacks: pytest.LogCaptureFixture, case: str) -> None:
    data, text = PARSER_REFUSALS[case]
    error = _error(await talk(archive.url, data), 400)
    assert error["code"] == 400 and error["description"]
    assert text in error["message"], error
    assert "\n" not in error["message"] and "^" not in error["message"]  # one line, not the parser's caret drawing
    _assert_no_tracebacks(no_tracebacks)


async def test_a_method_the_parser_knows_but_no_route_takes_is_json_405(archive: Archive) -> None:
    error = _error(await talk(archive.url, b"PROPFIND /api/bursts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), 405)
    assert "PROPFIND is not allowed here" in error["message"]


async def test_good_requests_still_pass(archive: Archive) -> None:
    answer = await talk(archive.url, b"GET /api/bursts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer is not None and answer.status == 200 and isinstance(answer.json(), dict)
    long_line = b"GET /apiv1/count?" + b"&".join(b"stream=s%d" % i for i in range(4000)) + b" HTTP/1.1\r\n"
    assert 8192 < len(long_line) < 65536  # over aiohttp's default, within burstbus's line limit
    answer = await talk(archive.url, long_line + b"Host: x\r\nConnection: close\r\n\r\n")
    assert answer is not None and answer.status == 200, answer


async def test_the_handler_attributes_the_timers_read_exist() -> None:
    """:class:`Connection` reads four of aiohttp's handler attributes; an aiohttp release that
    renames them fails here, by name, before the timers silently stop working."""
    for name in ("_request_count", "_messages", "_request_in_progress", "_payload_parser"):
        assert name in web.RequestHandler.__slots__, name
    assert issubclass(Connection, web.RequestHandler)


# -- /static/ -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["a" * 256, "é" * 130, "x/" + "b" * 300 + ".js", ("d" * 200 + "/") * 25 + "f.js", "nul%00.js"],
    ids=["256 characters", "260 bytes of UTF-8", "long second component", "path over PATH_MAX", "NUL"],
)  # fmt: skip
async def test_names_the_os_refuses_are_json_404(archive: Archive, no_tracebacks: pytest.LogCaptureFixture,
                                                 name: str) -> None:  # fmt: skip
    status, body, response = await archive.get("/static/" + name)
    assert status == 404, body
    assert response.content_type == "application/json" and body["error"]["code"] == 404, body
    _assert_no_tracebacks(no_tracebacks)


async def test_static_files_are_still_served(archive: Archive) -> None:
    status, body, response = await archive.get("/static/live.js")
    assert status == 200 and response.content_type == "application/javascript" and body


# -- time limits ----------------------------------------------------------------------------------

TINY = Limits(header_timeout=0.2, body_timeout=0.2)


@pytest_asyncio.fixture(loop_scope="package")
async def hasty(tmp_path: Path) -> AsyncIterator[Archive]:
    """An archive served with tiny head and body timeouts."""
    opened = await open_archive(tmp_path, [], limits=TINY)
    try:
        yield opened
    finally:
        await opened.close()


async def _refusals(archive: Archive, code: str) -> list[RecordedEvent]:
    return [e for e in await archive.log.read(0, None, limit=100) if e.type == "voevent.rejected" and e.data["code"] == code]


@pytest.mark.parametrize(
    "data",
    [b"", b"GET /api/bursts HTTP/1.1\r\nHo", b"GET /api/bu"],
    ids=["nothing sent", "half a header", "half a request line"],
)
async def test_a_slow_head_is_cut_with_a_json_408(hasty: Archive, no_tracebacks: pytest.LogCaptureFixture,
                                                  data: bytes) -> None:  # fmt: skip
    error = _error(await talk(hasty.url, data), 408)
    assert "did not arrive within 0.2 s" in error["message"]
    _assert_no_tracebacks(no_tracebacks)


async def test_a_keep_alive_connections_next_slow_head_is_cut(hasty: Archive) -> None:
    reader, writer = await asyncio.open_connection(*_address(hasty.url))
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
        length = int(_parse(head).headers["content-length"])
        await asyncio.wait_for(reader.readexactly(length), DEADLINE)  # the first answer, connection kept
        writer.write(b"GET /api/bursts HTTP/1.1\r\n")  # then the next request stalls
        rest = await asyncio.wait_for(reader.read(), DEADLINE)
    finally:
        writer.close()
    _error(_parse(rest), 408)


async def test_a_slow_voevent_upload_is_cut_and_recorded(hasty: Archive, no_tracebacks: pytest.LogCaptureFixture) -> None:
    data = (f"POST /api/voevents HTTP/1.1\r\nHost: x\r\n{WRITE}Content-Type: text/xml\r\nContent-Length: 5000\r\n\r\n"
            "<?xml version='1.0'?><voe:VOEvent").encode()  # fmt: skip
    error = _error(await talk(hasty.url, data), 408)
    assert error["outcome"] == "rejected" and error["code"] == "timeout", error
    assert "no complete body within 0.2 s" in error["message"]
    [refused] = await _refusals(hasty, "timeout")
    assert refused.seq == error["seq"]
    assert refused.data["via"] == "http" and refused.data["declared_size"] == 5000
    assert "33 of 5,000 bytes received" in refused.data["reason"]
    _assert_no_tracebacks(no_tracebacks)


async def test_a_slow_body_elsewhere_is_a_json_408(hasty: Archive, no_tracebacks: pytest.LogCaptureFixture) -> None:
    """Every route that reads a body: an announcement is recorded as refused too."""
    data = f"POST /api/data HTTP/1.1\r\nHost: x\r\n{WRITE}Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{{".encode()
    error = _error(await talk(hasty.url, data), 408)
    assert error["code"] == "timeout" and error["seq"] is not None
    [refused] = [e for e in await hasty.log.read(0, None, limit=100) if e.type == "data.rejected"]
    assert refused.data["code"] == "timeout" and "1 of 500 bytes received" in refused.data["reason"]
    # The sign-in form reads its body too: a plain 408, the connection closed.
    data = b"POST /signin HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nu="
    _error(await talk(hasty.url, data), 408)
    _assert_no_tracebacks(no_tracebacks)


async def test_a_whole_request_is_not_hurried(hasty: Archive) -> None:
    packet = voevent("ivo://test.example/server#hasty")
    data = (f"POST /api/voevents HTTP/1.1\r\nHost: x\r\n{WRITE}Content-Type: text/xml\r\n"
            f"Content-Length: {len(packet)}\r\nConnection: close\r\n\r\n").encode() + packet  # fmt: skip
    answer = await talk(hasty.url, data)
    assert answer is not None and answer.status == 201, answer


# -- abandoned uploads ------------------------------------------------------------------------


async def test_an_abandoned_voevent_upload_is_recorded_like_a_truncated_vtp_frame(
    tmp_path: Path, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    archive = await open_archive(tmp_path, [])
    try:
        data = (f"POST /api/voevents HTTP/1.1\r\nHost: x\r\n{WRITE}Content-Type: text/xml\r\nContent-Length: 5000\r\n\r\n"
                "<?xml version='1.0'?>").encode()  # fmt: skip
        assert await talk(archive.url, data, then_close=True) is None
        [refused] = await wait_for(lambda: _refusals(archive, "truncated"), "the abandoned upload's refusal")
        assert refused.data["via"] == "http" and refused.data["declared_size"] == 5000
        assert refused.data["reason"] == "connection closed mid-body (21 of 5,000 bytes received)"
        # counted once the append returns, which may be after the refusal is readable
        await wait_for(lambda: archive.ingest.counts[("http", "rejected")] == 1, "the refusal counted")
        # The access log says what happened (the client left), not a 500.
        await wait_for(lambda: any(r.name == "aiohttp.access" and '"POST /api/voevents' in r.getMessage()
                                   for r in no_tracebacks.records), "the access log line")  # fmt: skip
        [line] = [r.getMessage() for r in no_tracebacks.records if r.name == "aiohttp.access" and "/api/voevents" in r.getMessage()]
        assert '" 400 ' in line, line
        _assert_no_tracebacks(no_tracebacks)
    finally:
        await archive.close()


async def test_an_abandoned_announcement_is_recorded(tmp_path: Path, no_tracebacks: pytest.LogCaptureFixture) -> None:
    archive = await open_archive(tmp_path, [])
    try:
        data = f"POST /api/processes/status HTTP/1.1\r\nHost: x\r\n{WRITE}Content-Length: 900\r\n\r\n{{\"process\"".encode()
        assert await talk(archive.url, data, then_close=True) is None

        async def refused() -> list[RecordedEvent]:
            return [e for e in await archive.log.read(0, None, limit=100) if e.type == "process.rejected"]

        [event] = await wait_for(refused, "the abandoned status's refusal")
        assert event.data["code"] == "truncated" and "10 of 900 bytes received" in event.data["reason"]
        _assert_no_tracebacks(no_tracebacks)
    finally:
        await archive.close()


# -- a body whose framing breaks halfway ---------------------------------------------------------


async def _chunked_then_garbage(url: str, head: str) -> Answer | None:
    """A chunked body whose first chunk is fine and whose next size line is not (sent apart, so
    that the parser has taken the head and started the body): aiohttp left such a body open
    for ever."""
    reader, writer = await asyncio.open_connection(*_address(url))
    try:
        writer.write(f"{head}Transfer-Encoding: chunked\r\n\r\n5\r\n<?xml\r\n".encode())
        await writer.drain()
        await asyncio.sleep(0.1)  # not a timing assertion: only so the parts arrive apart
        writer.write(b"zz\r\n")
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), DEADLINE)
    finally:
        writer.close()
    return _parse(raw) if raw else None


async def test_a_voevent_upload_with_broken_chunks_is_refused_and_recorded(
    tmp_path: Path, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    archive = await open_archive(tmp_path, [])  # the default 30 s body timeout: it must not be what ends it
    try:
        error = _error(await _chunked_then_garbage(archive.url, f"POST /api/voevents HTTP/1.1\r\nHost: x\r\n{WRITE}"), 400)
        assert error["code"] == "malformed_body" and "chunk size" in error["message"], error
        [refused] = await _refusals(archive, "malformed_body")
        assert refused.seq == error["seq"] and "5 bytes received" in refused.data["reason"]
        error = _error(await _chunked_then_garbage(archive.url, "POST /signin HTTP/1.1\r\nHost: x\r\n"), 400)
        assert "framing is broken" in error["message"]
        _assert_no_tracebacks(no_tracebacks)
    finally:
        await archive.close()


# -- as ``burstbus run`` serves it ------------------------------------------------------------


async def test_serve_answers_with_this_server(tmp_path: Path) -> None:
    """``serve`` (what the http component runs) uses :func:`~burstbus.bridges.http.server.start`:
    the limits it is given, the JSON refusals; the defaults are 10 s and 30 s."""
    from burstbus.bridges.http.config import HttpSection

    assert (HttpSection().header_timeout, HttpSection().body_timeout) == (10.0, 30.0)
    bound: asyncio.Future[list[tuple[str, int]]] = asyncio.get_running_loop().create_future()

    async def hello(_: web.Request) -> web.Response:
        return web.json_response({})

    def app() -> web.Application:
        made = web.Application()
        made.router.add_get("/", hello)
        return made

    task = asyncio.create_task(serve(app, "127.0.0.1", 0, ready=bound.set_result, limits=TINY))
    try:
        [(host, port)] = await asyncio.wait_for(bound, DEADLINE)
        _error(await talk(f"http://{host}:{port}", b"GET / HTTP/1.1\r\n"), 408)
        _error(await talk(f"http://{host}:{port}", b"GET / HTTP/1.1\r\nX: \x00\r\n\r\n"), 400)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_http_component_serves_with_the_configured_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """``[http] header_timeout`` / ``body_timeout`` (here from the environment, as an operator
    may set them) reach the server the component runs."""
    from burstbus.bridges.http import component
    from burstbus.component import Host
    from burstbus.config import load_config

    config = load_config(environ={"BURSTBUS_HTTP_HEADER_TIMEOUT": "0.5", "BURSTBUS_HTTP_BODY_TIMEOUT": "2"},
                         packages=[component.PACKAGE])  # fmt: skip
    served: dict[str, Any] = {}

    async def serve_here(app: Any, host: str, port: int, ready: Any = None, limits: Limits | None = None) -> None:
        served.update(host=host, port=port, limits=limits)

    monkeypatch.setattr(component, "serve", serve_here)
    [task] = component.PACKAGE.build(Host(config=config, log=None, state=None, ingest=None, projections=None))  # type: ignore[arg-type]
    await task.run()
    assert served["limits"] == Limits(header_timeout=0.5, body_timeout=2.0)
