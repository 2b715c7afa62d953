"""Feed alarms to the on-duty Burst Advocates: ``kafka.silent``, ``kafka.recovered``, ``kafka.gap``.

GCN users ask for exactly this: "tell me when the feed dies, so I know silence is not the
sky". The log first: the consumer records the event; this outbox follows those events from
its checkpoint (``bridge.kafka.alarms`` in ``state.sqlite``; first run: the log's head) and
sends each as a direct message through the chat port (:data:`burstbus.chat.CHAT`, offered by
the XMPP bridge) to every on-duty JID — ``[kafka] on_duty``, else ``[xmpp] on_duty`` (read by
name: this package never imports another transport) — and posts it in every ``[kafka]
slack_channels`` channel through :data:`burstbus.chat.CHANNELS` (offered by the Slack bridge). The checkpoint moves once every page
of a batch was handed over; a chat server that is down fails the batch, retried with backoff
(meanwhile ``/healthz`` shows it down): an alarm is paged late, never lost. Without any chat
transport, or nobody on duty, the alarms stay in the log and ``/healthz`` and are counted
as ``unsent``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from burstbus.bridges.kafka.liveness import alarm_text
from burstbus.catalogue import KAFKA_GAP, KAFKA_RECOVERED, KAFKA_SILENT
from burstbus.chat import Messenger, Post
from burstbus.events import RecordedEvent
from burstbus.state import StateStore
from burstbus.store.base import EventLog
from burstbus.store.consumer import Batch, Follower, Start

log = logging.getLogger(__name__)

CONSUMER = "bridge.kafka.alarms"
ALARM_TYPES = (KAFKA_SILENT, KAFKA_RECOVERED, KAFKA_GAP)


class Alarms:
    """The outbox (see the module doc). ``messenger`` and ``link_base`` are read at send time
    (ports: the chat transport may be built after this component)."""

    def __init__(
        self,
        event_log: EventLog,
        state: StateStore,
        *,
        on_duty: Callable[[], Sequence[str]],
        messenger: Callable[[], Messenger | None],
        link_base: Callable[[], str] = lambda: "",
        channels: Sequence[str] = (),
        post: Callable[[], Post | None] = lambda: None,
        retry_delay: float = 1.0,
    ):
        self.on_duty = on_duty
        self.messenger = messenger
        self.channels = tuple(channels)
        self.post = post
        self.link_base = link_base
        self.sent = 0
        self.unsent = 0
        self.follower: Follower[RecordedEvent] = Follower(
            event_log, self._handle, name=CONSUMER, checkpoint=state.checkpoint(CONSUMER), start=Start.HEAD,
            types=ALARM_TYPES, batch_size=50, retry_delay=retry_delay,
        )

    async def run(self) -> None:
        await self.follower.run()

    async def _handle(self, batch: Batch[RecordedEvent]) -> None:
        messenger = self.messenger()
        post = self.post() if self.channels else None
        people = list(dict.fromkeys(self.on_duty()))
        for record in batch.records:
            text = alarm_text(record.type, dict(record.data), self.link_base())
            if text is None:
                continue
            if (messenger is None or not people) and post is None:
                self.unsent += 1
                log.warning("kafka alarm not paged (%s): %s", "no chat transport" if messenger is None else "nobody on duty", text)
                continue
            if messenger is not None:
                for jid in people:
                    await messenger.send_direct(jid, text)
                    self.sent += 1
            if post is not None:
                for channel in self.channels:
                    await post(channel, text, record.id)
                    self.sent += 1

    def health(self) -> dict[str, Any]:
        return {**self.follower.health(), "up": not self.follower.retrying, "paged": self.sent, "unsent": self.unsent,
                "on_duty": len(self.on_duty())}
