"""``burstbus kafka backfill``: read what a Kafka cluster still holds since a time, once, into the log.

For alerts missed while a node was down longer than it could catch up by itself, or before it
was connected (GCN keeps a few days). It reads each partition from the offset of ``since``
(the broker's offsets for times) to the end the broker reported when it started (or to
``until``, by the messages' Kafka timestamps) and takes every message through the same
:class:`~burstbus.bridges.kafka.intake.Intake` as the service: the same ingest, the same
derived ids — so whatever the service already has is a duplicate, nothing is appended twice,
and running it twice adds nothing. It never moves the service's stored positions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from burstbus.bridges.kafka.client import KafkaReader, Partition, not_reading_matters
from burstbus.bridges.kafka.config import KafkaSection, topics_of
from burstbus.bridges.kafka.connection import KafkaUpstream, consumer_config
from burstbus.bridges.kafka.intake import Intake
from burstbus.ingest import Ingest
from burstbus.store.base import EventLog


@dataclass
class Backfilled:
    """What a back-fill read: per partition the offsets from and after, the outcomes per topic,
    the topics not read (and why), and whether the broker stopped answering before the end."""

    missing: dict[str, str] = field(default_factory=dict)
    read: dict[Partition, tuple[int, int]] = field(default_factory=dict)
    counts: Mapping[tuple[str, str], int] = field(default_factory=dict)
    timed_out: bool = False
    #: The topics the operator named (``--topic``, else the upstream's ``topics``): one of them
    #: not read is a back-fill that did not do what was asked.
    named: tuple[str, ...] = ()

    def not_read(self) -> dict[str, str]:
        """The missing topics that matter (:func:`not_reading_matters`)."""
        return {t: r for t, r in self.missing.items() if not_reading_matters(t, r, self.named)}


async def backfill(
    section: KafkaSection,
    upstream: KafkaUpstream,
    event_log: EventLog,
    ingest: Ingest,
    *,
    since: datetime,
    until: datetime | None = None,
    topics: Sequence[str] = (),
    idle_timeout: float = 30.0,
    query_timeout: float = 10.0,
    reader_factory: Callable[[str, Mapping[str, Any]], KafkaReader] = KafkaReader,
) -> Backfilled:
    """Read and take everything since ``since`` (see the module doc)."""
    wanted = list(topics) or list(topics_of(upstream))
    config = consumer_config(upstream, max_message_bytes=section.max_message_bytes)
    config["group.id"] = f"{upstream.consumer_id}.backfill"
    reader = reader_factory(upstream.name, config)
    intake = Intake(event_log, ingest, max_bytes=section.max_message_bytes)
    result = Backfilled(counts=intake.counts.by_topic, named=tuple(topics) or upstream.topics)
    await reader.open()
    try:
        found = await reader.partitions(wanted, query_timeout)
        partitions = [(t, p) for t, answer in found.items() if not isinstance(answer, str) for p in answer]
        result.missing = {t: answer for t, answer in found.items() if isinstance(answer, str)}
        if not partitions:
            return result
        marks = await reader.watermarks(partitions, query_timeout)
        starts = await reader.offsets_for_time(partitions, since, query_timeout)
        offsets = {p: (starts[p] if starts.get(p, -1) >= 0 else marks[p][1]) for p in partitions}
        offsets = {p: max(o, marks[p][0]) for p, o in offsets.items()}
        first = dict(offsets)
        await reader.assign(offsets)
        stop_ms = int(until.timestamp() * 1000) if until is not None else None
        done: set[Partition] = set()
        last_progress = time.monotonic()
        while len(done) < len(partitions):
            fetched = await reader.consume(section.batch_size, 0.5)
            batch = []
            for message in fetched.messages:
                part = (message.topic, message.partition)
                if part in done or message.offset < offsets[part]:
                    continue
                if stop_ms is not None and message.timestamp_ms is not None and message.timestamp_ms > stop_ms:
                    done.add(part)
                    continue
                batch.append(message)
                offsets[part] = message.offset + 1
            if batch:
                await intake.take(batch)
                last_progress = time.monotonic()
            for part in partitions:
                if part not in done and fetched.ends.get(part, -1) >= 0 and offsets[part] >= fetched.ends[part]:
                    done.add(part)
            if time.monotonic() - last_progress > idle_timeout:
                result.timed_out = True
                break
            await asyncio.sleep(0)
        result.read = {p: (first[p], offsets[p]) for p in partitions}
        return result
    finally:
        await reader.close()
