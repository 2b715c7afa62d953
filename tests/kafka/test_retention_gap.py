"""A stored position older than what the broker still keeps (retention passed while burstbus was
down) is recorded as a gap — through the consumer's own loop, with a stand-in for the broker's
answers, because the test broker (Tansu) never drops old messages: its oldest offset is always
0, and it has no DeleteRecords. The decision itself is tested in test_offsets.py; the live
broker is used for the other kind of gap (a partition recreated) in test_inbound.py."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from burstbus.bridges.kafka.client import Fetched, Partition
from burstbus.bridges.kafka.connection import KafkaUpstream
from burstbus.bridges.kafka.liveness import alarm_text
from burstbus.bridges.kafka.messages import KafkaMessage
from burstbus.bridges.kafka.positions import Positions
from tests.kafka.harness import node
from tests.packets import voevent
from tests.waiting import wait_for

TOPIC = "gcn.notices.svom.voevent.eclairs"


class RetainedBroker:
    """What a Kafka broker answers for a partition that keeps offsets 12..15 only."""

    low, high = 12, 15

    def __init__(self, upstream: str, config: Mapping[str, Any]):
        self.upstream = upstream
        self.broker_down = False
        self.last_error: str | None = None
        self.assigned: dict[Partition, int] = {}

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def partitions(self, topics: list[str], timeout: float) -> dict[str, list[int] | str]:
        return {t: [0] if t == TOPIC else "unknown topic" for t in topics}

    async def watermarks(self, partitions: list[Partition], timeout: float) -> dict[Partition, tuple[int, int]]:
        return {p: (self.low, self.high) for p in partitions}

    async def offsets_for_time(self, partitions: list[Partition], when: datetime, timeout: float) -> dict[Partition, int]:
        return {p: -1 for p in partitions}

    async def assign(self, offsets: Mapping[Partition, int]) -> None:
        self.assigned = dict(offsets)

    async def consume(self, max_messages: int, timeout: float) -> Fetched:
        start = self.assigned.get((TOPIC, 0), self.high)
        messages = [KafkaMessage(self.upstream, TOPIC, 0, o, voevent(f"ivo://org.svom/fsc#kept-{o}")) for o in range(start, self.high)]
        self.assigned[(TOPIC, 0)] = self.high
        if not messages:
            await asyncio.sleep(timeout)  # as a poll waits for a first message
        return Fetched(messages, [], {(TOPIC, 0): self.high})


async def test_a_position_past_retention_is_a_gap_naming_the_lost_offsets(tmp_path: Path) -> None:
    up = KafkaUpstream(name="gcn", bootstrap_servers="127.0.0.1:9", topics=(TOPIC,), heartbeat="")
    async with node(tmp_path / "data") as n:
        await Positions(n.state, "gcn").open()
        await Positions(n.state, "gcn").save({(TOPIC, 0): 5}, wanted=[TOPIC])  # burstbus stopped at offset 5
        consumer = n.consume(up, reader_factory=RetainedBroker)
        await wait_for(lambda: consumer.taken >= 3, "the kept messages read")
        [gap] = await n.events("kafka.gap")
        assert gap.data["kind"] == "retention" and (gap.data["lost_from"], gap.data["lost_to"], gap.data["lost"]) == (5, 12, 7)
        assert gap.data["resumed_at"] == 12 and gap.stream == "kafka/gcn"
        assert [r.data["kafka"]["offset"] for r in await n.events("voevent.accepted")] == [12, 13, 14]
        assert (await Positions(n.state, "gcn").load())[(TOPIC, 0)] == 15
        health = consumer.health()
        assert health["gaps"]["total"] == 1 and health["gaps"]["recent"][0]["lost"] == 7
        text = alarm_text("kafka.gap", dict(gap.data))
        assert text is not None and "7 message(s) will never be read" in text and "5–11" in text
    async with node(tmp_path / "data") as n:  # restarted: nothing more lost, no second gap
        consumer = n.consume(up, reader_factory=RetainedBroker)
        await wait_for(lambda: consumer.assigned.is_set(), "assigned")
        assert consumer.offsets[(TOPIC, 0)] == 15 and len(await n.events("kafka.gap")) == 1
        assert consumer.health()["gaps"]["total"] == 1
