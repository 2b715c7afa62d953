"""The HTTP server under the app: aiohttp's connection handler, with burstbus's own refusals.

Two things happen in aiohttp below any middleware, so the app cannot change them:

* what its HTTP parser refuses (a NUL in a header, a header over ``max_field_size``, a request
  line over ``max_line_size``, a method it does not know, broken chunking) is answered by
  ``RequestHandler.handle_error`` in plain text — not the JSON error the API promises;
* nothing bounds the time a client takes to send a request's head or its body, so a client
  that sends one byte a second holds a connection (and, for a body, a handler) for ever.

aiohttp offers no hook for either (aio-libs/aiohttp#3287 is open), so :class:`Connection`
subclasses its public ``web.RequestHandler``, overriding ``handle_error`` and adding two timers;
:func:`start` binds the listening socket with that class as the protocol, over an ordinary
``web.AppRunner`` (the app's startup, shutdown and cleanup are aiohttp's own). The two timers
read four of the handler's attributes (``_request_count``, ``_messages``,
``_request_in_progress``, ``_payload_parser``); ``tests/http/test_server.py`` fails if an
aiohttp release renames them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http import RawRequestMessage
from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    LineTooLong,
    PayloadEncodingError,
)
from aiohttp.streams import StreamReader

from burstbus.bridges.http.errors import ApiError, dumps, error_body, json_response

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What one request may take of the server (``[http] header_timeout``, ``body_timeout``)."""

    #: Seconds from a connection's opening (or a keep-alive request's first byte) to the end of
    #: its request head; then 408 and the connection is closed.
    header_timeout: float = 10.0
    #: Seconds from the end of the head to the end of the body; then reading the body fails with
    #: :class:`BodyTimeout` (the app answers 408) and the connection is closed.
    body_timeout: float = 30.0
    #: Long filter lists (many ``ref_exact``/``stream`` values) exceed aiohttp's default 8 KiB
    #: request line; 64 KiB still bounds what one request can make the server parse.
    max_line_size: int = 65536
    #: One header line (aiohttp's default).
    max_field_size: int = 8190


class BodyTimeout(asyncio.TimeoutError):
    """The body did not arrive in time. A ``TimeoutError``, so that aiohttp's lingering read of
    an unread body ends on it quietly instead of logging it as a crash."""

    def __init__(self, limit: float, received: int):
        super().__init__(f"the request body did not arrive within {limit:g} s ({received:,} bytes received)")
        self.limit = limit
        self.received = received


class BodyCut(ApiError):
    """A body that stopped short (see :func:`body_cut`), refused by a handler that records it.
    The connection is not kept: what is left of the body would be read as the next request."""

    def response(self) -> web.Response:
        response = super().response()
        response.force_close()
        return response


#: Exceptions reading a body raises when it stops short: aiohttp sets ``ConnectionResetError``
#: on the body when the client closes, ``RequestPayloadError`` when its framing is broken.
BODY_CUT = (BodyTimeout, ConnectionResetError, web.RequestPayloadError)


#: How much a body is read at a time.
_CHUNK = 65536


async def read_bounded(request: web.Request, limit: int, *, excerpt: int = 4096,
                       received: list[bytes] | None = None) -> tuple[bytes, bool]:
    """The body, and whether it is whole: past ``limit`` (declared or sent) only its first
    ``excerpt`` bytes, for the refusal's record. A body that stops short raises one of
    :data:`BODY_CUT`; ``received`` (when given) then holds what had arrived, for the record."""
    chunks = received if received is not None else []
    declared = request.content_length
    if declared is not None and declared > limit:
        return await request.content.read(excerpt), False
    size = 0
    while True:
        chunk = await request.content.read(_CHUNK)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:excerpt], False


def body_cut(exc: BaseException, received: int, declared: int | None) -> BodyCut:
    """The refusal for a body that stopped short with ``exc`` (one of :data:`BODY_CUT`), named
    as the VTP receiver names a frame cut short: ``timeout``, ``truncated`` (the client closed
    the connection), or ``malformed_body``; ``code`` and ``reason`` are what gets recorded."""
    got = f"{received:,} of {declared:,} bytes" if declared is not None else f"{received:,} bytes"
    if isinstance(exc, BodyTimeout):
        code, why, status, description = "timeout", f"no complete body within {exc.limit:g} s", 408, "Request Timeout"
    elif isinstance(exc, ConnectionResetError):
        code, why, status, description = "truncated", "connection closed mid-body", 400, "Request body incomplete"
    else:
        code, why, status, description = "malformed_body", f"the body's framing is broken ({exc})", 400, "Malformed body"
    return BodyCut(f"{why} ({got} received)", status=status, description=description, outcome="rejected", code=code)


#: How the parser's refusals are described (the first matching class wins).
_DESCRIPTIONS: tuple[tuple[type[HttpProcessingError], str], ...] = (
    (LineTooLong, "Request line or header too long"),
    (BadHttpMethod, "Unknown method"),
    (BadStatusLine, "Malformed request line"),
    (InvalidHeader, "Malformed header"),
    (PayloadEncodingError, "Malformed body"),
)


def _describe(exc: HttpProcessingError) -> str:
    for kind, description in _DESCRIPTIONS:
        if isinstance(exc, kind):
            return description
    return "Malformed request"


def _one_line(message: str, limit: int = 300) -> str:
    """aiohttp's parser messages span lines (the offending bytes, a ``^`` under the fault):
    one line of at most ``limit`` characters, the caret dropped."""
    parts = [part.strip() for part in message.splitlines()]
    text = " ".join(part for part in parts if part and set(part) != {"^"})
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _raw_response(status: int, reason: str, body: dict[str, Any]) -> bytes:
    """A whole response written straight to the transport, for a connection that never had a
    request (no request object exists to answer through)."""
    payload = dumps(body).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n")  # fmt: skip
    return head.encode("ascii") + payload


class Connection(web.RequestHandler):
    """One client connection: aiohttp's handler, with JSON refusals and the two time limits."""

    def __init__(self, manager: web.Server, *, loop: asyncio.AbstractEventLoop, limits: Limits, **kwargs: Any):
        super().__init__(manager, loop=loop, max_line_size=limits.max_line_size,
                         max_field_size=limits.max_field_size, **kwargs)  # fmt: skip
        self.limits = limits
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        #: The body being received (the newest request's), while it is not complete.
        self._body: StreamReader | None = None

    # -- the head ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head()  # a connection that never sends a whole head is cut too

    def data_received(self, data: bytes) -> None:
        if data and self._head_timer is None and not self._receiving_body() and self._payload_parser is None:
            self._arm_head()  # the first byte of a keep-alive connection's next request (not a WebSocket's frames)
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:  # one or more heads complete (or refused)
            self._cancel_head()
            message, newest = self._messages[-1] if self._messages else (None, None)
            if not isinstance(message, RawRequestMessage) and self._body is not None and self._receiving_body():
                # The parser refused what came in the middle of a body (a broken chunk): aiohttp
                # queues a refusal behind the request and leaves its body open for ever; end it.
                # (At its end, too: aiohttp's lingering read of an unfinished body would log the
                # error as a crash; nothing after it on this connection is read.)
                error = _one_line(getattr(message, "message", "") or "the parser refused the rest")
                self._body.set_exception(web.RequestPayloadError(error))
                self._body.feed_eof()
                self.close()
            elif newest is not None and not newest.is_eof():
                self._watch_body(newest)

    def _receiving_body(self) -> bool:
        return self._body is not None and not self._body.is_eof()

    def _arm_head(self) -> None:
        self._cancel_head()
        self._head_timer = self._loop.call_later(self.limits.header_timeout, self._head_too_slow)

    def _cancel_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        peer = transport.get_extra_info("peername")
        log.info("closed the connection from %s: no complete request head within %g s",
                 peer[0] if peer else "?", self.limits.header_timeout)  # fmt: skip
        if not self._request_in_progress and not self._messages:  # nothing else is being answered on it
            message = f"the request line and headers did not arrive within {self.limits.header_timeout:g} s"
            transport.write(_raw_response(408, "Request Timeout", error_body(408, "Request Timeout", message)))
        self.force_close()  # close() flushes what was written first

    # -- the body ----------------------------------------------------------------------------

    def _watch_body(self, body: StreamReader) -> None:
        self._cancel_body()
        self._body = body
        self._body_timer = self._loop.call_later(self.limits.body_timeout, self._body_too_slow, body)
        body.on_eof(self._cancel_body)

    def _cancel_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_too_slow(self, body: StreamReader) -> None:
        self._body_timer = None
        if body.is_eof() or body.exception() is not None:
            return
        body.set_exception(BodyTimeout(self.limits.body_timeout, body.total_bytes))
        self.close()  # no keep-alive after a cut body: the rest of it would be read as a request

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_head()
        self._cancel_body()
        super().connection_lost(exc)

    # -- refusals ------------------------------------------------------------------------------

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:  # fmt: skip
        """aiohttp's last word on a request (its parser refused it, or a handler raised past the
        app's middleware): the API's JSON error; a traceback only for what is not the client's
        doing."""
        if isinstance(exc, HttpProcessingError) and 400 <= status < 500:
            description = _describe(exc)
            text = _one_line(exc.message or message or description)
            level = logging.DEBUG if self._request_count == 1 and isinstance(exc, BadHttpMethod) else logging.INFO
            log.log(level, "refused a request from %s: %s (%s)", request.remote, description, text)
        elif status == 504:
            description, text = "Gateway Timeout", "the request took too long to answer"
            log.warning("a request from %s timed out in its handler", request.remote)
        else:
            description, text = "Internal server error", "an unexpected error occurred; it has been logged"
            log.error("error answering a request from %s", request.remote, exc_info=exc)
        if request.writer.output_size > 0:  # as aiohttp: part of a response went out, nothing can follow it
            raise ConnectionError("a response was partly sent: no error can be sent after it")
        response = json_response(error_body(status, description, text), status=status)
        response.force_close()
        return response


class Served:
    """A started server: the app's runner and the listening socket."""

    def __init__(self, runner: web.AppRunner, server: asyncio.AbstractServer):
        self.runner = runner
        self.server = server

    @property
    def app(self) -> web.Application:
        return self.runner.app

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The bound (host, port) pairs (useful with ``port=0``)."""
        sockets = getattr(self.server, "sockets", None) or ()
        return [tuple(sock.getsockname()[:2]) for sock in sockets]

    async def cleanup(self) -> None:
        """Stop listening, then let the runner close the connections and clean the app up (as
        ``TCPSite.stop`` then ``AppRunner.cleanup``)."""
        self.server.close()
        await self.runner.cleanup()


async def start(app: web.Application, host: str, port: int, limits: Limits | None = None) -> Served:
    """Set ``app`` up and listen on ``host:port`` with :class:`Connection` as the protocol.
    ``OSError`` from binding is raised as is (the caller names the setting)."""
    limits = limits or Limits()
    runner = web.AppRunner(app)
    await runner.setup()
    manager = runner.server
    assert manager is not None  # set by setup()
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(lambda: Connection(manager, loop=loop, limits=limits), host, port)
    except BaseException:
        await runner.cleanup()
        raise
    return Served(runner, server)
