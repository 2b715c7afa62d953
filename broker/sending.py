"""Write one frame to a subscriber's socket now, instead of at the reactor's next turn.

Twisted buffers every ``transport.write`` and sends it when the socket is next writable:
each write registers the socket with the loop's selector (``add_writer``, an ``epoll_ctl``),
and after the send unregisters it again. Broadcasting to 1,000 subscribers that bookkeeping
was 30% of the broadcaster's CPU (py-spy: ``startWriting`` 19%, ``stopWriting`` 11%),
more than the sends themselves. Writing straight to the socket when nothing is queued before
the frame skips it; whatever the socket does not take at once (a slow subscriber) goes to
Twisted's buffer as before, so ordering, back-pressure and error handling stay Twisted's.

Plain TCP only (``twisted.internet.tcp.Connection``); a TLS transport, or any other, takes the
ordinary ``write``. Import only after :func:`burstbus.broker.reactor.install`.
"""

from __future__ import annotations

from typing import Any

from burstbus.broker.reactor import require_installed

require_installed()

from twisted.internet.tcp import Connection  # noqa: E402


def write_now(transport: Any, data: bytes) -> None:
    """``transport.write(data)``, sending at once what the socket takes when nothing is queued."""
    if (
        isinstance(transport, Connection)
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnected
        and not transport._tempDataBuffer
        and len(transport.dataBuffer) == transport.offset
    ):
        sent = transport.writeSomeData(data)  # bytes sent, 0 (would block) or the error
        if isinstance(sent, int) and sent > 0:
            if sent == len(data):
                return
            data = data[sent:]
        # an error: the buffered write meets it again on the reactor's turn, which closes the
        # connection the way Twisted always does
    transport.write(data)
