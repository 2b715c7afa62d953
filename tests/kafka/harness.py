"""A burstbus core beside the test broker, and helpers to read what the log got from Kafka.

:class:`Node` opens the log, state and ingest in a data directory and runs one
:class:`~burstbus.bridges.kafka.inbound.KafkaInbound` against the broker — the component's
own code, without the rest of the service — for tests that look at the consumer itself;
the acceptance tests run the whole service (``burstbus run``'s ``build_service``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from burstbus.bridges.kafka.config import KafkaSection
from burstbus.bridges.kafka.connection import KafkaUpstream
from burstbus.bridges.kafka.inbound import KafkaInbound
from burstbus.events import RecordedEvent
from burstbus.ingest import Ingest
from burstbus.state import StateStore
from burstbus.store.base import ReadFilter
from burstbus.store.sqlite import SQLiteEventLog
from tests.kafka.tansu import TansuBroker


def upstream(broker: TansuBroker, *topics: str, heartbeat: str = "", **kwargs: Any) -> KafkaUpstream:
    """An upstream on the test broker (plaintext, no GCN defaults)."""
    return KafkaUpstream(name=kwargs.pop("name", "test"), bootstrap_servers=broker.bootstrap, topics=tuple(topics),
                         heartbeat=heartbeat, **{"start": "earliest", **kwargs})


@dataclass
class Node:
    data_dir: Path
    log: SQLiteEventLog
    state: StateStore
    ingest: Ingest
    consumers: list[KafkaInbound] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def open(cls, data_dir: Path) -> Node:
        log = await SQLiteEventLog.open(data_dir / "log.sqlite", poll_interval=0.05)
        state = await StateStore.open(data_dir / "state.sqlite")
        return cls(data_dir, log, state, Ingest(log))

    def consume(self, up: KafkaUpstream, section: KafkaSection | None = None, **kwargs: Any) -> KafkaInbound:
        section = replace(section or KafkaSection(retry_delay=0.1), upstreams=(up,))
        consumer = KafkaInbound(up, section, self.log, self.ingest, self.state, **kwargs)
        self.consumers.append(consumer)
        self.tasks.append(asyncio.create_task(consumer.run(), name=f"kafka-in-{up.name}"))
        return consumer

    async def stop_consumers(self) -> None:
        """Cancel them; a consumer that had died of an error fails the test with it."""
        died = [t for t in self.tasks if t.done() and not t.cancelled() and t.exception() is not None]
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks.clear()
        self.consumers.clear()
        if died:
            raise AssertionError(f"a consumer died: {died[0].exception()!r}") from died[0].exception()

    async def close(self) -> None:
        await self.stop_consumers()
        await self.ingest.close()
        await self.state.close()
        await self.log.close()

    async def events(self, *types: str) -> list[RecordedEvent]:
        return await self.log.read(0, ReadFilter.of(types=types) if types else None)


@contextlib.asynccontextmanager
async def node(data_dir: Path) -> AsyncIterator[Node]:
    opened = await Node.open(data_dir)
    try:
        yield opened
    finally:
        await opened.close()


def kafka_offsets(records: Sequence[RecordedEvent]) -> list[tuple[str, int, int]]:
    """(topic, partition, offset) of each record that came from Kafka."""
    return [(r.data["kafka"]["topic"], r.data["kafka"]["partition"], r.data["kafka"]["offset"]) for r in records if "kafka" in r.data]
