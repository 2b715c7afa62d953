"""The Kafka outboxes' Prometheus families: one family per name, one ``topic`` series per output.

``/metrics`` keeps one family per name and drops a second one of the same name, so several
outboxes (one per ``[[kafka.outputs]]``) must report *together*. An :class:`OutboxGroup` holds
the outboxes of one service; its first member reports every member's series and the others
report nothing. An outbox without a group reports its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from burstbus.metrics import Family, Histogram, counter, gauge, histogram


class _Reporting(Protocol):
    """What an outbox exposes for its figures (``KafkaOutbox``)."""

    @property
    def labels(self) -> dict[str, str]: ...

    @property
    def published_total(self) -> int: ...

    @property
    def skipped(self) -> dict[str, int]: ...

    @property
    def failures(self) -> int: ...

    @property
    def broker_errors_total(self) -> int: ...

    @property
    def waiting(self) -> int: ...

    @property
    def up(self) -> bool: ...

    @property
    def delivery_latency(self) -> Histogram: ...

    async def lag(self) -> int: ...


class OutboxGroup:
    """The outboxes of one service, reporting as one set of families."""

    def __init__(self) -> None:
        self.members: list[Any] = []

    def add(self, outbox: Any) -> None:
        self.members.append(outbox)

    def reports(self, outbox: Any) -> bool:
        """True for the member that reports the group's families."""
        return bool(self.members) and self.members[0] is outbox


async def outbox_families(outboxes: Sequence[_Reporting]) -> list[Family]:
    """Published, skipped (by reason), failed batches, broker errors, waiting messages, up,
    lag and delivery latency, each series labelled with its output's ``topic`` and ``upstream``."""
    lags = [await o.lag() for o in outboxes]
    return [
        counter("burstbus_kafka_out_published_total", "Messages the broker confirmed (delivery reports).",
                [(o.labels, o.published_total) for o in outboxes]),
        counter("burstbus_kafka_out_skipped_total",
                "Log records of the output's types not sent, by reason (from_kafka, not_ours, trigger, role, "
                "instrument, too_large, refused, already_on_topic …).",
                [({**o.labels, "reason": r}, n) for o in outboxes for r, n in sorted(o.skipped.items())]),
        counter("burstbus_kafka_out_failures_total", "Batches that failed (or could not start) and were retried.",
                [(o.labels, o.failures) for o in outboxes]),
        counter("burstbus_kafka_out_broker_errors_total", "Errors librdkafka reported outside deliveries (broker unreachable …).",
                [(o.labels, o.broker_errors_total) for o in outboxes]),
        gauge("burstbus_kafka_out_waiting_messages", "Messages produced and waiting for their delivery report.",
              [(o.labels, o.waiting) for o in outboxes]),
        gauge("burstbus_kafka_out_up", "1 while the outbox publishes without failing or waiting on the broker.",
              [(o.labels, int(o.up)) for o in outboxes]),
        gauge("burstbus_kafka_out_lag_events", "Log events of the output's types not yet handled.",
              [(o.labels, n) for o, n in zip(outboxes, lags, strict=True)]),
        histogram("burstbus_kafka_out_delivery_seconds", "From produce to the broker's delivery report.",
                  [(o.labels, o.delivery_latency) for o in outboxes]),
    ]
