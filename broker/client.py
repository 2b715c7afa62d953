"""VTP clients for the CLI: ``burstbus publish`` (an author) and ``burstbus subscribe``.

Plain asyncio streams: a client needs no listening ports or Twisted factories. Transport
messages (ACK, iamalive reply, authenticate reply) are Comet's, from ``comet.protocol.messages``,
so the reactor is installed first (see ``broker/reactor.py``).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import string
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lxml import etree

log = logging.getLogger(__name__)

_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
_VOEVENT_ROLES = ("observation", "prediction", "utility", "test")


def _messages():  # type: ignore[no-untyped-def]
    from burstbus.broker import reactor

    reactor.install()
    from comet.protocol import messages

    return messages


def frame(payload: bytes) -> bytes:
    return struct.pack("!i", len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader, max_bytes: int) -> bytes | None:
    """The next frame, or None at end of stream."""
    try:
        head = await reader.readexactly(4)
    except asyncio.IncompleteReadError:
        return None
    (length,) = struct.unpack("!i", head)
    if length < 0 or length > max_bytes:
        raise ConnectionError(f"peer sent a {length}-byte frame (limit {max_bytes})")
    return await reader.readexactly(length)


def parse_address(text: str, default_port: int) -> tuple[str, int]:
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    return (host or "127.0.0.1").strip("[]"), int(port) if port else default_port


@dataclass(frozen=True)
class Answer:
    acknowledged: bool
    reason: str


def _tls(context: ssl.SSLContext | None, server_name: str | None, host: str) -> dict[str, object]:
    """``open_connection`` arguments for TLS (none for plain TCP): the name the broker's
    certificate must carry is ``server_name``, else the host we dial."""
    if context is None:
        return {}
    return {"ssl": context, "server_hostname": server_name or host}


async def publish(host: str, port: int, raw: bytes, *, timeout: float = 60.0, tls: ssl.SSLContext | None = None,
                  server_name: str | None = None) -> Answer:
    """Submit one packet as a VTP author; the broker's ACK or NAK (with its reason). ``tls``:
    a client context (:func:`burstbus.broker.tls.stdlib_client_context`) for a TLS author port."""
    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a Ctrl-C's cancellation
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port, **_tls(tls, server_name, host))  # type: ignore[arg-type]
    try:
        writer.write(frame(raw))
        await writer.drain()
        async with asyncio.timeout(timeout):
            answer = await read_frame(reader, 1 << 20)
    finally:
        writer.close()
    if answer is None:
        return Answer(False, "the broker closed the connection without answering")
    root = etree.fromstring(answer, _SAFE_PARSER)
    role = root.get("role")
    if role == "ack":
        return Answer(True, "")
    if role == "nak":
        return Answer(False, root.findtext("Meta/Result") or "no reason given")
    return Answer(False, f"unexpected answer (role {role!r})")


def event_filename(ivorn: str) -> str:
    """A safe file name for an IVORN (Comet's save-event rule, plus .xml)."""
    name = "".join(x for x in ivorn.replace("/", "_") if x in string.digits + string.ascii_letters + "_.-")
    return name.lstrip(".") + ".xml"


async def subscribe(
    host: str,
    port: int,
    *,
    local_ivo: str,
    filters: Sequence[str] = (),
    on_event: Callable[[str, bytes], None],
    max_bytes: int = 1 << 20,
    idle_timeout: float = 120.0,
    max_delay: float = 60.0,
    tls: ssl.SSLContext | None = None,
    server_name: str | None = None,
) -> None:
    """Follow a VTP broker until cancelled, reconnecting with backoff; ACK every event.
    ``tls``: a client context for a TLS subscriber port (a failed handshake is retried too)."""
    messages = _messages()
    delay = 1.0
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, port, **_tls(tls, server_name, host))  # type: ignore[arg-type]
        except OSError as exc:
            log.warning("cannot connect to %s:%d (%s); retrying in %.0fs", host, port, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
            continue
        log.info("connected to %s:%d", host, port)
        delay = 1.0
        try:
            while True:
                async with asyncio.timeout(idle_timeout):  # wait_for could swallow Ctrl-C (3.11)
                    data = await read_frame(reader, max_bytes)
                if data is None:
                    break
                root = etree.fromstring(data, _SAFE_PARSER)
                role = root.get("role")
                if role == "iamalive":
                    reply = messages.iamaliveresponse(local_ivo, root.findtext("Origin"))
                elif role == "authenticate":
                    reply = messages.authenticateresponse(local_ivo, root.findtext("Origin"), list(filters))
                elif role in _VOEVENT_ROLES:
                    ivorn = root.get("ivorn", "")
                    on_event(ivorn, data)
                    reply = messages.ack(local_ivo, ivorn)
                else:
                    continue
                writer.write(frame(reply.raw_bytes))
                await writer.drain()
        except (TimeoutError, ConnectionError, ssl.SSLError, etree.XMLSyntaxError) as exc:
            log.warning("connection to %s:%d lost: %s", host, port, exc or type(exc).__name__)
        finally:
            writer.close()
        log.warning("disconnected from %s:%d; reconnecting in %.0fs", host, port, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
