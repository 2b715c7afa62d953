"""A flush that confirms what was sent before it.

nats-py's ``flush()`` (2.16) writes its PING straight to the socket, while commands sent just
before it (SUB, PUB) still wait in the client's buffer for its flusher task: on the wire a
subscribe-flush-publish-flush reads PING, SUB, PING, PUB. The PONG can then come back before
the server has seen the commands the flush was meant to confirm. For burstbus that is an
outbox checkpoint moved past messages still in a client buffer, and a subscription announced
before the server has it (a test lost a message that way, about one run in 25). The same
bug was fixed in the old Python 2 client (nats-io/nats.py2#24).
"""

from __future__ import annotations

from nats.aio.client import Client as NATS


async def confirm_sent(nc: NATS, timeout: float) -> None:
    """Hand the client's buffer to the socket, then PING and wait for the PONG: when this
    returns, the server has processed every command this connection sent before the call."""
    write_pending = getattr(nc, "_flush_pending", None)
    if callable(write_pending):  # nats-py's own path to the socket; waits until written
        await write_pending(force_flush=True)
    await nc.flush(timeout=timeout)  # type: ignore[arg-type]
