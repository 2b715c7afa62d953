"""A batch of Kafka messages into the log: the ingest for VOEvents, one append for the rest.

The consumer hands over what it polled; :meth:`Intake.take` returns once every message is in
the log (accepted, a duplicate, or refused with an event), and only then does the consumer
write its positions. Runs of the same kind keep their Kafka order in the log (a batch from
several partitions has no order across them anyway). A log that does not answer raises: the
consumer retries the batch as it is (every id is derived, so a retry adds nothing twice).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from burstbus.bridges.kafka.messages import (
    KafkaMessage,
    NoticeEvent,
    ToIngest,
    TooLarge,
    notice_rejected,
    route,
)
from burstbus.events import Event
from burstbus.ingest import Ingest, Submission
from burstbus.store.base import EventLog

log = logging.getLogger(__name__)


@dataclass
class IntakeCounts:
    """Outcomes per topic, for ``/healthz`` and ``/metrics``."""

    by_topic: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, topic: str, outcome: str) -> None:
        self.by_topic[(topic, outcome)] += 1

    def total(self, outcome: str) -> int:
        return sum(n for (_, o), n in self.by_topic.items() if o == outcome)


class Intake:
    """Takes messages into the log; counts what happened to them."""

    def __init__(self, event_log: EventLog, ingest: Ingest, *, max_bytes: int):
        self.log = event_log
        self.ingest = ingest
        self.max_bytes = max_bytes
        self.counts = IntakeCounts()

    async def take(self, messages: Sequence[KafkaMessage]) -> None:
        """Every message durably in the log (or its refusal) when this returns."""
        runs: list[tuple[str, list[tuple[KafkaMessage, object]]]] = []
        for message in messages:
            routed = route(message, max_bytes=self.max_bytes)
            kind = "ingest" if isinstance(routed, ToIngest) else "large" if isinstance(routed, TooLarge) and not routed.json else "event"
            if not runs or runs[-1][0] != kind:
                runs.append((kind, []))
            runs[-1][1].append((message, routed))
        for kind, items in runs:
            if kind == "ingest":
                await self._submit([(m, r.submission) for m, r in items if isinstance(r, ToIngest)])
            elif kind == "large":
                for message, routed in items:
                    assert isinstance(routed, TooLarge)
                    await self.ingest.refuse(message.value, via="kafka", peer=message.topic, reason=routed.reason,
                                             code="too_large", key=message.key(), kafka=message.audit())
                    self.counts.add(message.topic, "rejected")
            else:
                await self._append(items)

    async def _submit(self, items: list[tuple[KafkaMessage, Submission]]) -> None:
        results = await self.ingest.submit_many([s for _, s in items])
        for (message, _), result in zip(items, results, strict=True):
            self.counts.add(message.topic, result.outcome)

    async def _append(self, items: list[tuple[KafkaMessage, object]]) -> None:
        events: list[Event] = []
        for message, routed in items:
            if isinstance(routed, TooLarge):
                events.append(notice_rejected(message, routed.reason, "too_large"))
            else:
                assert isinstance(routed, NoticeEvent)
                events.append(routed.event)
        appended = await self.log.append(events)
        for (message, _), event, where in zip(items, events, appended, strict=True):
            if event.type.endswith(".rejected"):
                outcome = "rejected"
                log.info("refused JSON message %s[%d]@%d: %s", message.topic, message.partition, message.offset, event.data.get("reason"))
            else:
                outcome = "accepted" if where.new else "duplicate"
            self.counts.add(message.topic, outcome)
