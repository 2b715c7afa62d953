"""Confirmed delivery: a batch counts as delivered only once the server has acknowledged it.

The outbox (``notify.py``) moves its checkpoint when :meth:`Delivery.deliver` returns, and sends
the batch again when it raises. That is how no notice is lost across an outage, so the rule for
when a batch counts as delivered lives here, in one place:

* Messages are sent only while the session is up. Otherwise :class:`NotConnected` is raised and
  nothing was handed over.
* After the batch, the server is asked for an XEP-0198 acknowledgement. This waits until
  slixmpp's send queue has written the batch, because the request is sent raw and would
  otherwise overtake it. The call returns once the server acknowledged every message. Without
  stream management, a ping round trip is the barrier: the server answers it only after the
  earlier stanzas.
* A session that ends first fails the call with :class:`SessionLost`. Acknowledgements may still
  arrive after a resumed session, so the ``ack_timeout`` counts only while the session is up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import slixmpp

from burstbus.bridges.xmpp.stanzas import Outgoing, message_stanza


class NotConnected(ConnectionError):
    """The session is down: nothing can be handed to the server now."""


class SessionLost(ConnectionError):
    """The session ended before the server acknowledged a delivery: send it again."""


class Delivery:
    """The messages sent and not yet acknowledged, and the callers waiting on them."""

    def __init__(self, client: slixmpp.ClientXMPP, up: asyncio.Event, *, ack_timeout: float):
        self.client = client
        #: Set while the session is up (the connection owns it).
        self.up = up
        self.ack_timeout = ack_timeout
        #: Sessions started; each pending message records the one it was sent in.
        self.generation = 0
        self._pending: dict[tuple[str, str], tuple[int, asyncio.Future[None]]] = {}

    def new_session(self) -> None:
        """A new session, not a resumed one: the server forgot what it had not acknowledged."""
        self.generation += 1
        self.fail_pending(SessionLost("a new session started before the server acknowledged"))

    def acked(self, stanza: Any) -> None:
        """slixmpp's ``stanza_acked``: the server has this message."""
        key = (str(stanza["to"]), str(stanza["id"]))
        entry = self._pending.pop(key, None)
        if entry is not None and not entry[1].done():
            entry[1].set_result(None)

    def fail_pending(self, exc: Exception) -> None:
        """Every caller still waiting gets ``exc`` (and sends again)."""
        pending, self._pending = self._pending, {}
        for _, future in pending.values():
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: a caller may already have given up on it

    async def deliver(self, messages: Sequence[Outgoing]) -> None:
        """Send and return once the server acknowledged all of them (see the module doc).
        Raises NotConnected (nothing sent), SessionLost or TimeoutError (send again)."""
        if not messages:
            return
        if not self.up.is_set():
            raise NotConnected("the XMPP session is down")
        loop = asyncio.get_running_loop()
        sm = self.client.plugin["xep_0198"]
        use_acks = bool(sm.enabled_out)
        futures = []
        generation = self.generation
        for out in messages:
            stanza = message_stanza(self.client, out)
            if use_acks:
                future: asyncio.Future[None] = loop.create_future()
                key = (str(stanza["to"]), str(stanza["id"]))
                old = self._pending.get(key)
                if old is not None and not old[1].done():
                    futures.append(old[1])  # the same message still unacknowledged
                    continue
                self._pending[key] = (generation, future)
                futures.append(future)
            stanza.send()
        # Stanzas go through slixmpp's send queue; the ack request (sent raw) and the ping
        # must follow them on the wire, so wait until the queue has written them.
        await self.client.waiting_queue.join()
        if not use_acks:
            await self.client.plugin["xep_0199"].ping(jid=slixmpp.JID(self.client.boundjid.domain), timeout=self.ack_timeout)
            return
        sm.request_ack()
        await self._await_acks(futures)

    async def _await_acks(self, futures: list[asyncio.Future[None]]) -> None:
        """Acknowledgements may arrive after a resumed session; time counts only while up."""
        pending = set(futures)
        while pending:
            done, pending = await asyncio.wait(pending, timeout=self.ack_timeout)
            for future in done:
                future.result()  # SessionLost
            if pending and self.up.is_set() and not done:
                raise TimeoutError(f"the server did not acknowledge {len(pending)} message(s) in {self.ack_timeout:g}s")
            if pending and not self.up.is_set():
                await self.up.wait()
                if self.client.plugin["xep_0198"].enabled_out:
                    self.client.plugin["xep_0198"].request_ack()
