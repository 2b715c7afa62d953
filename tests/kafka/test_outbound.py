"""The Kafka outbox: our notices out to a real Kafka-protocol broker (Tansu), once each.

Acceptance (f) of issue 12: the centre's own notices go out on Kafka exactly once across a
restart (a clean stop, a SIGKILL between the delivery reports and the checkpoint write, a
failed checkpoint write) and across a broker outage (Tansu SIGSTOPped with messages in
flight, then SIGCONTed), and a notice received from Kafka is not published back. What is not
ours (another authority, a forged packet the ingest refused, a trigger VOEvent) never goes
out. The rule, the floors' bookkeeping and the settings are also tested without a broker.

Tansu deviations that matter here (FIELD-NOTES "Kafka"): its ``ListOffsets`` watermark lags
behind the real end, and a fetch beyond a partition's end answers nothing instead of
"offset out of range". The outbox uses watermarks only where a low value is safe and reads
each partition to the fetch's end-of-partition; the "floor outside the partition" path is
exercised here by a broker restarted empty (its memory storage loses the topic).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import sqlite3
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from burstbus.authority import AuthorityGrant, AuthorityPolicy
from burstbus.bridges.kafka.connection import KafkaUpstream, producer_config
from burstbus.bridges.kafka.outbound import (
    ALREADY_ON_TOPIC,
    TOO_LARGE,
    KafkaOutbox,
    SettingsRefused,
    reader_settings,
)
from burstbus.bridges.kafka.outbound_config import KafkaOutput, check_output
from burstbus.bridges.kafka.outbound_metrics import OutboxGroup
from burstbus.bridges.kafka.outbound_rule import (
    EVENT_ID,
    FROM_KAFKA,
    INSTRUMENT,
    IVORN,
    NOT_OURS,
    ROLE,
    SEQ,
    WITHHELD,
    OutboundRule,
    OutMessage,
    Skipped,
    own_prefixes,
)
from burstbus.bridges.kafka.outbound_state import Ledger, load_floors, write_floors
from burstbus.bridges.kafka.producer import DeliveryFailed, ProducerConfigError, producer_settings
from burstbus.bridges.kafka.tail import Found, Tail
from burstbus.config import ConfigError
from burstbus.events import Event, RecordedEvent
from burstbus.ingest import Ingest
from burstbus.state import StateStore
from burstbus.store.sqlite import SQLiteEventLog
from tests.kafka.tansu import TansuBroker
from tests.packets import voevent
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]

OURS = "ivo://org.svom/fsc"
TRIGGERS = "ivo://fsc.test/trigger"
OWN = own_prefixes([f"{TRIGGERS}#x"], [OURS])
ECLAIRS = "gcn.notices.svom.voevent.eclairs"
GRM = "gcn.notices.svom.voevent.grm"
#: Our pipelines publish over VTP from here (granted our authority); anyone else is refused it.
PIPELINE = "127.0.0.1"


def ours(n: int, instrument: str = "eclairs", role: str = "observation") -> bytes:
    return voevent(f"{OURS}#sb2611200{n}_{instrument}-{n}", role=role, description=f"our notice {n} ({instrument})")


# -- the log, the state, the ingest (with the authority rule of a science centre) --------------


@dataclass
class Node:
    log: SQLiteEventLog
    state: StateStore
    ingest: Ingest
    data: Path


def policy() -> AuthorityPolicy:
    return AuthorityPolicy(
        trigger_streams=[TRIGGERS], reserved=[OURS, "ivo://fsc.test/"],
        grants=[AuthorityGrant(f"vtp:{PIPELINE}", (OURS,)), AuthorityGrant("kafka:*", ("ivo://org.svom/",))],
    )


@pytest_asyncio.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    data = tmp_path / "data"
    log = await SQLiteEventLog.open(data / "log.sqlite", poll_interval=0.05)
    state = await StateStore.open(data / "state.sqlite")
    ingest = Ingest(log, authority=policy())
    try:
        yield Node(log, state, ingest, data)
    finally:
        await state.close()
        await log.close()


def outbox_for(node: Node, tansu: TansuBroker, topic: str = ECLAIRS, *, group: OutboxGroup | None = None, **fields: Any) -> KafkaOutbox:
    fields.setdefault("start", "beginning")
    output = KafkaOutput(topic=topic, upstream="local", **fields)
    config = producer_config(KafkaUpstream(name="local", bootstrap_servers=tansu.bootstrap))
    return KafkaOutbox(node.log, node.state, output, config, OWN, withheld_prefixes=[TRIGGERS], origin="fsc-test",
                       metrics_group=group, retry_delay=0.05, max_retry_delay=0.5, scan_timeout=5.0, stall_after=0.3)


@contextlib.asynccontextmanager
async def running(outbox: KafkaOutbox) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(outbox.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def settled(outbox: KafkaOutbox, node: Node) -> None:
    """Until the outbox handled everything of its types in the log and awaits no report."""
    async def done() -> bool:
        head = (await node.log.head()).seq
        return outbox.follower.caught_up.is_set() and outbox.waiting == 0 and (outbox.position >= head or await outbox.lag() == 0)

    await wait_for(done, f"{outbox.name} to catch up with the log")


# -- reading a topic back, independently of the outbox -------------------------------------------


@dataclass(frozen=True)
class Received:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]

    @property
    def event_id(self) -> str:
        """The log event a message carries; a message not from burstbus, by its bytes."""
        if EVENT_ID in self.headers:
            return self.headers[EVENT_ID].decode()
        return "not-burstbus:" + hashlib.sha256(self.value).hexdigest()


def read_topic(bootstrap: str, topic: str, timeout: float = 30.0) -> list[Received]:
    """Every message on ``topic``, each partition from its beginning to its end (blocking)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-reader", "enable.auto.commit": False,
                         "enable.partition.eof": True})
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=timeout).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        open_, out = set(partitions), []
        loop_deadline = 600
        while open_ and loop_deadline:
            message = consumer.poll(timeout / 600)
            if message is None:
                loop_deadline -= 1
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    open_.discard(message.partition())
                continue
            out.append(Received(message.partition(), message.offset(), message.key(), message.value(),
                                dict(message.headers() or [])))
        assert not open_, f"the end of {topic} was not reached"
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


async def topic(tansu: TansuBroker, name: str) -> list[Received]:
    return await asyncio.to_thread(read_topic, tansu.bootstrap, name)


async def wait_topic(tansu: TansuBroker, name: str, count: int, what: str) -> list[Received]:
    async def enough() -> list[Received] | None:
        found = await topic(tansu, name)
        return found if len({m.event_id for m in found}) >= count else None

    return await wait_for(enough, what)


def once_each(messages: list[Received]) -> Counter[str]:
    counts = Counter(m.event_id for m in messages)
    twice = {k: n for k, n in counts.items() if n > 1}
    assert not twice, f"published more than once: {twice}"
    return counts


# -- the rule, without a broker ----------------------------------------------------------------


def record(seq: int, data: dict[str, Any], *, type_: str = "voevent.accepted", actor: str = "vtp:127.0.0.1",
           stream: str = "org.svom/fsc") -> RecordedEvent:
    return RecordedEvent(seq, f"id-{seq}", type_, stream, actor, "t", "t", data, "0" * 64, "1" * 64)


def test_our_notice_goes_out_as_its_exact_bytes_with_the_event_in_its_headers() -> None:
    rule = OutboundRule(KafkaOutput(ECLAIRS, "gcn"), own=OWN, withheld=[TRIGGERS], origin="fsc")
    xml = "<voe:VOEvent é/>"
    message = rule.select(record(7, {"ivorn": f"{OURS}#sb1_eclairs-1", "role": "observation", "xml": xml, "via": "vtp"}))
    assert isinstance(message, OutMessage)
    assert message.value == xml.encode()
    assert message.key == b"org.svom/fsc"
    assert dict(message.headers) == {EVENT_ID: b"id-7", SEQ: b"7", "burstbus-type": b"voevent.accepted",
                                     IVORN: f"{OURS}#sb1_eclairs-1".encode(), "burstbus-origin": b"fsc",
                                     "content-type": b"application/xml"}
    # bytes that are not UTF-8 travel as xml_base64 and come out exact
    raw = b"<?xml version='1.0' encoding='latin-1'?><x>\xe9</x>"
    import base64
    message = rule.select(record(8, {"ivorn": f"{OURS}#2", "role": "observation", "xml_base64": base64.b64encode(raw).decode()}))
    assert isinstance(message, OutMessage) and message.value == raw


def test_the_rule_sends_nothing_that_is_not_ours_or_came_from_kafka() -> None:
    rule = OutboundRule(KafkaOutput(ECLAIRS, "gcn", instruments=("SVOM/ECLAIRs",)), own=OWN, withheld=[TRIGGERS])

    def why(**data: Any) -> str | None:
        actor = data.pop("actor", "vtp:127.0.0.1")
        base = {"ivorn": f"{OURS}#a", "role": "observation", "instrument": "SVOM/ECLAIRs", "xml": "<x/>", "via": "vtp"}
        choice = rule.select(record(1, {**base, **data}, actor=actor))
        return choice.reason if isinstance(choice, Skipped) else None

    assert why() is None
    assert why(ivorn="IVO://ORG.SVOM/FSC#a") is None  # IVORNs compare case-insensitively
    assert why(via="kafka") == FROM_KAFKA
    assert why(actor="kafka:gcn.notices.svom.voevent.eclairs:0:12") == FROM_KAFKA
    assert why(ivorn="ivo://nasa.gsfc.gcn/SWIFT#BAT_1") == NOT_OURS
    assert why(ivorn="ivo://fsc.test.evil/notices#a") == NOT_OURS  # a longer authority is not ours
    assert why(ivorn=f"{TRIGGERS}#r1", via="local") == WITHHELD  # under our authority, but an order to a telescope
    assert why(role="test") == ROLE
    assert why(instrument="SVOM/GRM") == INSTRUMENT
    assert isinstance(rule.select(record(1, {"process": "p"}, type_="process.status")), Skipped)


def test_explicit_prefixes_replace_the_centres_own() -> None:
    rule = OutboundRule(KafkaOutput("t", "gcn", ivorn_prefixes=("ivo://org.svom/csc",)), own=OWN)
    assert isinstance(rule.select(record(1, {"ivorn": "ivo://org.svom/csc#1", "xml": "<x/>"})), OutMessage)
    assert rule.select(record(2, {"ivorn": f"{OURS}#1", "xml": "<x/>"})) == Skipped(NOT_OURS)


def test_a_json_output_sends_the_mapped_types_as_log_records() -> None:
    import json

    rule = OutboundRule(KafkaOutput("fsc.status", "local", format="json", types=("process.status", "notice.accepted")), own=OWN)
    status = record(3, {"process": "obtloc", "status": "running"}, type_="process.status", actor="nats:pipeline", stream="sb1")
    message = rule.select(status)
    assert isinstance(message, OutMessage)
    assert json.loads(message.value) == status.to_json_dict()
    assert message.key == b"sb1" and dict(message.headers)["content-type"] == b"application/json"
    # a JSON notice the Kafka consumer took in is not sent back
    lvk = record(4, {"via": "kafka", "json": "{}"}, type_="notice.accepted", actor="kafka:igwn.gwalert:0:1")
    assert rule.select(lvk) == Skipped(FROM_KAFKA)
    assert isinstance(rule.select(record(5, {"ivorn": f"{OURS}#x", "xml": "<x/>"})), Skipped)


def test_own_prefixes_are_the_reserved_authorities() -> None:
    assert own_prefixes(["ivo://burstbus.local/trigger", "ivo://FSC.example/broker"], ["ivo://org.svom/fsc"]) == (
        "ivo://burstbus.local/", "ivo://fsc.example/", "ivo://org.svom/fsc")


def test_bad_outputs_are_refused_with_their_key() -> None:
    def refused(output: KafkaOutput) -> str:
        with pytest.raises(ConfigError) as caught:
            check_output(output, "kafka.outputs[0]", trigger_streams=[TRIGGERS])
        return caught.value.key

    check_output(KafkaOutput(ECLAIRS, "gcn"), "kafka.outputs[0]")
    check_output(KafkaOutput("s", "gcn", format="json", types=("process.status",)), "kafka.outputs[0]")
    assert refused(KafkaOutput("s", "gcn", format="json")) == "kafka.outputs[0].types"
    assert refused(KafkaOutput("s", "gcn", format="json", types=("voevent.accepted",))) == "kafka.outputs[0].types[0]"
    assert refused(KafkaOutput("s", "gcn", types=("process.status",))) == "kafka.outputs[0].types"
    assert refused(KafkaOutput("s", "gcn", roles=("observation", "news"))) == "kafka.outputs[0].roles[1]"
    assert refused(KafkaOutput("s", "gcn", ivorn_prefixes=("org.svom",))) == "kafka.outputs[0].ivorn_prefixes[0]"
    assert refused(KafkaOutput("s", "gcn", ivorn_prefixes=(f"{TRIGGERS}/gft",))) == "kafka.outputs[0].ivorn_prefixes[0]"


# -- floors: what a restart must read again (pure) ---------------------------------------------


def test_floors_rise_past_what_was_read_and_delivered() -> None:
    ledger = Ledger({0: 10, 1: 4})
    ledger.scanned(Tail(found={}, ends={0: 12, 1: 4, 2: 3}, reset=frozenset(), read=2), position=50)
    after = ledger.committed(60, [(0, 12), (0, 13), (1, 4)])
    assert after.floors == {0: 14, 1: 5, 2: 3}
    assert ledger.floors == {0: 10, 1: 4}, "the old ledger stays until the write succeeded"


def test_floors_stay_below_messages_found_past_the_checkpoint() -> None:
    """Found on the topic but past the new checkpoint: a later scan must still see it."""
    ledger = Ledger({0: 10})
    found = {"a": Found(51, 0, 10), "b": Found(55, 0, 11), "old": Found(40, 0, 12)}
    ledger.scanned(Tail(found=found, ends={0: 13}, reset=frozenset(), read=3), position=50)
    assert set(ledger.pending) == {"a", "b"} and ledger.delivered_already("a") and not ledger.delivered_already("old")
    first = ledger.committed(52, [])  # "a" passed, "b" (seq 55) not yet
    assert first.floors == {0: 11} and set(first.pending) == {"b"}
    second = first.committed(60, [(0, 13)])
    assert second.floors == {0: 14} and not second.pending


def test_a_partition_read_from_its_beginning_forgets_its_old_floor() -> None:
    ledger = Ledger({0: 500})  # the topic was recreated: 500 is beyond its end
    ledger.scanned(Tail(found={}, ends={0: 2}, reset=frozenset({0}), read=2), position=9)
    assert ledger.committed(10, [(0, 2)]).floors == {0: 3}


# -- settings -----------------------------------------------------------------------------------


def test_the_producer_is_idempotent_and_retries_until_delivered_by_default() -> None:
    settings = producer_settings({"bootstrap.servers": "h:1", "linger.ms": 5}, delivery_timeout=0)
    assert settings["enable.idempotence"] is True and settings["acks"] == "all" and settings["message.timeout.ms"] == 0
    assert producer_settings({"bootstrap.servers": "h:1"}, delivery_timeout=2.5)["message.timeout.ms"] == 2500
    assert producer_settings({"delivery.timeout.ms": 100}, delivery_timeout=0)["delivery.timeout.ms"] == 100
    for contrary in ({"acks": "1"}, {"enable.idempotence": False}, {"enable.idempotence": "false"}):
        with pytest.raises(ProducerConfigError, match="the outbox needs"):
            producer_settings(contrary, delivery_timeout=0)


def test_the_tail_reader_gets_the_clusters_connection_and_credentials_only() -> None:
    gcn = {"bootstrap.servers": "kafka.gcn.nasa.gov", "security.protocol": "sasl_ssl", "sasl.mechanisms": "OAUTHBEARER",
           "sasl.oauthbearer.client.secret": "s", "ssl.ca.location": "/ca", "https.ca.location": "/ca",
           "compression.type": "zstd", "linger.ms": 5, "enable.idempotence": True, "acks": "all", "message.max.bytes": 5}
    assert reader_settings(gcn) == {k: gcn[k] for k in ("bootstrap.servers", "security.protocol", "sasl.mechanisms",
                                                        "sasl.oauthbearer.client.secret", "ssl.ca.location", "https.ca.location")}


async def test_a_broken_producer_config_is_refused_at_start_with_librdkafka_words(node: Node) -> None:
    output = KafkaOutput(ECLAIRS, "local")

    async def refused(config: dict[str, Any]) -> str:
        outbox = KafkaOutbox(node.log, node.state, output, config, OWN)
        assert not outbox.health()["up"] and "refused for the producer" in outbox.health()["last_error"]
        with pytest.raises(SettingsRefused) as caught:
            await outbox.run()
        assert caught.value.setting == 'kafka.upstreams "local" settings'
        assert caught.value.problem.startswith(f"refused for the producer of {ECLAIRS}: ")
        return caught.value.problem

    assert 'No such configuration property: "no.such.setting"' in await refused({"bootstrap.servers": "127.0.0.1:9", "no.such.setting": "1"})
    assert 'Invalid value "brotli"' in await refused({"bootstrap.servers": "127.0.0.1:9", "compression.type": "brotli"})
    assert "acks = all" in await refused({"bootstrap.servers": "127.0.0.1:9", "acks": "1"})


def test_burstbus_run_ends_with_one_line_naming_the_refused_settings(tmp_path: Path) -> None:
    import subprocess

    config = tmp_path / "burstbus.toml"
    config.write_text(f"""
[data]
dir = "{tmp_path / 'data'}"
[vtp]
enabled = false
[nats]
enabled = false
[http]
enabled = false
[[kafka.upstreams]]
name = "local"
bootstrap_servers = "127.0.0.1:9"
consume = false
settings = {{ "compression.type" = "brotli" }}
[[kafka.outputs]]
topic = "{ECLAIRS}"
upstream = "local"
""")
    done = subprocess.run([sys.executable, "-m", "burstbus.cli", "--config", str(config), "run"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1, done.stderr
    last = [line for line in done.stderr.splitlines() if line.startswith("burstbus:")]
    assert last == [f'burstbus: cannot start: [kafka] upstreams "local" settings: refused for the producer of {ECLAIRS}: '
                    'Invalid value "brotli" for configuration property "compression.codec" (_INVALID_ARG)'], done.stderr
    assert "Traceback" not in done.stderr


# -- against Tansu ------------------------------------------------------------------------------


async def test_our_notices_go_out_once_as_their_exact_bytes_and_nothing_else(node: Node, tansu: TansuBroker) -> None:
    """(f): ours out; GCN's, a forged one, a trigger, a test packet and one received over Kafka not."""
    tansu.create_topics([ECLAIRS])
    outbox = outbox_for(node, tansu, instruments=("SVOM/ECLAIRs",))
    async with running(outbox):
        ingest = node.ingest
        first, second = ours(1), ours(2)
        assert (await ingest.submit(first, via="vtp", peer=PIPELINE)).outcome == "accepted"
        assert (await ingest.submit(voevent("ivo://nasa.gsfc.gcn/SWIFT#BAT_GRB_Pos_1-1"), via="vtp", peer="10.0.0.5")).outcome == "accepted"
        forged = await ingest.submit(voevent(f"{OURS}#sb26112009_eclairs-9"), via="vtp", peer="10.0.0.6")
        assert forged.outcome == "rejected" and forged.code == "authority"
        assert (await ingest.submit(voevent(f"{TRIGGERS}#r1"), via="local", peer="triggers")).outcome == "accepted"
        assert (await ingest.submit(ours(3, role="test"), via="vtp", peer=PIPELINE)).outcome == "accepted"
        assert (await ingest.submit(ours(4, instrument="grm"), via="vtp", peer=PIPELINE)).outcome == "accepted"
        echoed = await ingest.submit(ours(5), via="kafka", peer=f"{ECLAIRS}:0:41")  # our twin's, relayed by GCN
        assert echoed.outcome == "accepted"
        assert (await ingest.submit(second, via="vtp", peer=PIPELINE)).outcome == "accepted"
        await wait_topic(tansu, ECLAIRS, 2, "our two ECLAIRs notices on the topic")
        await settled(outbox, node)
        messages = await topic(tansu, ECLAIRS)
    assert [m.value for m in messages] == [first, second]
    assert [m.headers[IVORN].decode() for m in messages] == [f"{OURS}#sb26112001_eclairs-1", f"{OURS}#sb26112002_eclairs-2"]
    accepted = [r for r in await node.log.read(0) if r.type == "voevent.accepted" and r.data["via"] == "vtp" and r.data["peer"] == PIPELINE]
    assert [m.event_id for m in messages] == [accepted[0].id, accepted[-1].id]
    assert [int(m.headers[SEQ]) for m in messages] == [accepted[0].seq, accepted[-1].seq]
    assert {m.key for m in messages} == {b"org.svom/fsc"}
    assert outbox.published_total == 2
    assert dict(outbox.skipped) == {NOT_OURS: 1, WITHHELD: 1, ROLE: 1, INSTRUMENT: 1, FROM_KAFKA: 1}


async def test_each_instrument_goes_to_its_topic_and_json_outputs_carry_mapped_events(node: Node, tansu: TansuBroker) -> None:
    tansu.create_topics([ECLAIRS, GRM, "fsc.pipeline.status"], partitions=3)
    group = OutboxGroup()
    outboxes = [outbox_for(node, tansu, ECLAIRS, group=group, instruments=("SVOM/ECLAIRs",)),
                outbox_for(node, tansu, GRM, group=group, instruments=("svom/grm",)),
                outbox_for(node, tansu, "fsc.pipeline.status", group=group, format="json", types=("process.status",))]
    async with contextlib.AsyncExitStack() as stack:
        for o in outboxes:
            await stack.enter_async_context(running(o))
        for n in range(1, 4):
            await node.ingest.submit(ours(n), via="vtp", peer=PIPELINE)
            await node.ingest.submit(ours(10 + n, instrument="grm"), via="vtp", peer=PIPELINE)
        statuses = [Event("process.status", {"process": f"p{n}", "burst_id": f"sb{n % 2}", "status": "running"},
                          stream=f"sb{n % 2}", actor="nats:pipeline") for n in range(6)]
        await node.log.append(statuses)
        eclairs = await wait_topic(tansu, ECLAIRS, 3, "ECLAIRs notices")
        grm = await wait_topic(tansu, GRM, 3, "GRM notices")
        status = await wait_topic(tansu, "fsc.pipeline.status", 6, "pipeline statuses")
        for o in outboxes:
            await settled(o, node)
        families = {f.name: f for f in await outboxes[0].metrics()}
        assert await outboxes[1].metrics() == [] and await outboxes[2].metrics() == []
    assert all(b"_eclairs-" in m.headers[IVORN] for m in eclairs) and all(b"_grm-" in m.headers[IVORN] for m in grm)
    once_each(eclairs + grm + status)
    assert sorted(m.event_id for m in status) == sorted(e.id for e in statuses)
    # one key per burst: a burst's events share a partition, in log order
    by_key: dict[bytes | None, set[int]] = {}
    for m in status:
        by_key.setdefault(m.key, set()).add(m.partition)
    assert all(len(parts) == 1 for parts in by_key.values())
    published = {s[1]["topic"]: s[2] for s in families["burstbus_kafka_out_published_total"].samples}
    assert published == {ECLAIRS: 3, GRM: 3, "fsc.pipeline.status": 6}
    assert {s[1]["topic"] for s in families["burstbus_kafka_out_delivery_seconds"].samples} == set(published)


async def test_exactly_once_across_a_restart(node: Node, tansu: TansuBroker) -> None:
    tansu.create_topics([ECLAIRS])
    async with running(outbox_for(node, tansu)) as _:
        for n in range(1, 4):
            await node.ingest.submit(ours(n), via="vtp", peer=PIPELINE)
        await wait_topic(tansu, ECLAIRS, 3, "the first three")
    for n in range(4, 7):
        await node.ingest.submit(ours(n), via="vtp", peer=PIPELINE)
    again = outbox_for(node, tansu)
    async with running(again):
        await wait_topic(tansu, ECLAIRS, 6, "all six")
        await settled(again, node)
        messages = await topic(tansu, ECLAIRS)
    assert len(once_each(messages)) == 6
    assert again.published_total == 3


async def test_delivered_but_not_checkpointed_is_not_published_again(node: Node, tansu: TansuBroker) -> None:
    """The crash window: reports in, checkpoint not written. The state is put back as that
    crash leaves it (checkpoint and floors as before the batch); the next session reads the
    topic from the floors and finds what it delivered."""
    tansu.create_topics([ECLAIRS], partitions=2)
    first = outbox_for(node, tansu)
    async with running(first):
        await wait_for(lambda: first.scans_total >= 1, "the first session")
        before_seq = first.position
        before = await node.state.run(lambda c: load_floors(c, first.consumer_name))
        for n in range(1, 6):
            await node.ingest.submit(ours(n), via="vtp", peer=PIPELINE)
        await wait_topic(tansu, ECLAIRS, 5, "five delivered")
        await settled(first, node)
    assert before is not None

    def crashed(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        write_floors(conn, first.consumer_name, before)
        conn.execute("UPDATE checkpoints SET seq = ? WHERE name = ?", (before_seq, first.consumer_name))
        conn.execute("COMMIT")

    await node.state.run(crashed)
    await node.ingest.submit(ours(6), via="vtp", peer=PIPELINE)
    second = outbox_for(node, tansu)
    async with running(second):
        await wait_topic(tansu, ECLAIRS, 6, "the sixth")
        await settled(second, node)
        messages = await topic(tansu, ECLAIRS)
    assert len(once_each(messages)) == 6
    assert second.published_total == 1 and second.skipped[ALREADY_ON_TOPIC] == 5


async def test_a_failed_checkpoint_write_ends_the_session_and_the_retry_sends_nothing_twice(node: Node, tansu: TansuBroker) -> None:
    tansu.create_topics([ECLAIRS])
    outbox = outbox_for(node, tansu)
    transaction = node.state.transaction
    failing = {"left": 2}

    async def flaky(fn: Callable[[sqlite3.Connection], Any]) -> Any:
        if failing["left"] and getattr(fn, "__name__", "") == "write":
            failing["left"] -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return await transaction(fn)

    async with running(outbox):
        await wait_for(lambda: outbox.scans_total >= 1, "a session")
        node.state.transaction = flaky  # type: ignore[method-assign]
        for n in range(1, 4):
            await node.ingest.submit(ours(n), via="vtp", peer=PIPELINE)
        await wait_for(lambda: failing["left"] == 0, "two failed checkpoint writes")
        await wait_topic(tansu, ECLAIRS, 3, "three notices")
        await settled(outbox, node)
        messages = await topic(tansu, ECLAIRS)
        health = outbox.health()
    assert len(once_each(messages)) == 3
    assert outbox.failures >= 2 and outbox.scans_total >= 3 and outbox.skipped[ALREADY_ON_TOPIC] >= 1
    assert health["up"] and "disk I/O error" in health["last_error"]


async def test_a_broker_outage_is_waited_out_without_a_duplicate(node: Node, tansu: TansuBroker) -> None:
    """(f) across an outage: Tansu SIGSTOPped with messages in flight; one producer session
    rides it out (librdkafka retries, idempotence drops the repeats)."""
    tansu.create_topics([ECLAIRS])
    outbox = outbox_for(node, tansu)
    async with running(outbox):
        for n in range(1, 4):
            await node.ingest.submit(ours(n), via="vtp", peer=PIPELINE)
        await wait_topic(tansu, ECLAIRS, 3, "before the outage")
        await settled(outbox, node)
        tansu.pause()
        try:
            for n in range(4, 9):
                await node.ingest.submit(ours(n), via="vtp", peer=PIPELINE)
            await wait_for(lambda: outbox.health()["retrying"], "health to show the outbox waiting on the broker")
            down = outbox.health()
            assert not down["up"] and "wait for the broker's delivery report" in down["last_error"]
            assert outbox.position < (await node.log.head()).seq, "nothing past the outage is checkpointed"
        finally:
            tansu.resume()
        await wait_topic(tansu, ECLAIRS, 8, "everything after the outage")
        await settled(outbox, node)
        messages = await topic(tansu, ECLAIRS)
        assert outbox.health()["up"]
    assert len(once_each(messages)) == 8


async def test_with_a_delivery_timeout_an_outage_fails_the_batch_and_loses_nothing(node: Node, tansu: TansuBroker) -> None:
    """A finite ``delivery_timeout``: the batch fails, the session ends, a new one reads the
    tail once the broker answers and sends what is missing. At least once, not exactly: a
    timed-out message the hung broker still held may be written after the new session's read
    (librdkafka's "possibly persisted"), which is why the default waits instead."""
    tansu.create_topics([ECLAIRS])
    output = KafkaOutput(ECLAIRS, "local", start="beginning", delivery_timeout=1.0)
    config = {**producer_config(KafkaUpstream(name="local", bootstrap_servers=tansu.bootstrap)), "request.timeout.ms": 500}
    outbox = KafkaOutbox(node.log, node.state, output, config, OWN, retry_delay=0.05, max_retry_delay=0.5, scan_timeout=1.0)
    async with running(outbox):
        await wait_for(lambda: outbox.scans_total >= 1, "a session")
        tansu.pause()
        try:
            for n in range(1, 5):
                await node.ingest.submit(ours(n), via="vtp", peer=PIPELINE)
            await wait_for(lambda: outbox.failures >= 2, "the timed-out batch and a failed tail read")
            assert outbox.health()["retrying"] and outbox.position < (await node.log.head()).seq
        finally:
            tansu.resume()
        await wait_topic(tansu, ECLAIRS, 4, "every notice after the outage")
        await settled(outbox, node)
        assert outbox.health()["up"]


async def test_a_missing_topic_is_reported_and_waited_for(node: Node, tansu: TansuBroker) -> None:
    outbox = outbox_for(node, tansu, topic="gcn.notices.svom.voevent.vt")
    async with running(outbox):
        await node.ingest.submit(ours(1, instrument="vt"), via="vtp", peer=PIPELINE)
        await wait_for(lambda: "does not exist" in (outbox.health()["last_error"] or ""), "the missing topic in health")
        assert not outbox.health()["up"] and outbox.health()["retrying"]
        tansu.create_topics(["gcn.notices.svom.voevent.vt"])
        await wait_topic(tansu, "gcn.notices.svom.voevent.vt", 1, "the notice once the topic exists")
        await settled(outbox, node)
        assert outbox.health()["up"]


async def test_a_broker_restarted_empty_gets_what_comes_after_once(node: Node, tansu: TansuBroker) -> None:
    """Memory storage: a restart loses the topic. The floors then lie beyond the recreated
    partition's end; the outbox reads it from its beginning and goes on, each notice once."""
    tansu.create_topics([ECLAIRS])
    outbox = outbox_for(node, tansu)
    async with running(outbox):
        for n in range(1, 4):
            await node.ingest.submit(ours(n), via="vtp", peer=PIPELINE)
        await wait_topic(tansu, ECLAIRS, 3, "before the restart")
        await settled(outbox, node)
    tansu.restart()
    tansu.create_topics([ECLAIRS])
    for n in range(4, 6):
        await node.ingest.submit(ours(n), via="vtp", peer=PIPELINE)
    again = outbox_for(node, tansu)
    async with running(again):
        await wait_topic(tansu, ECLAIRS, 2, "the two after the restart")
        await settled(again, node)
        messages = await topic(tansu, ECLAIRS)
    assert len(once_each(messages)) == 2
    assert [m.value for m in messages] == [ours(4), ours(5)]


async def test_sigkill_between_delivery_and_checkpoint_publishes_every_notice_once(node: Node, tansu: TansuBroker) -> None:
    """(f) across real crashes: the outbox process is SIGKILLed five times, each time right
    after a batch's delivery reports and before its checkpoint write, while notices arrive."""
    tansu.create_topics([ECLAIRS], partitions=2)
    total, kills = 40, 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    async def start() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, str(REPO / "tests" / "kafka" / "outbox_child.py"), str(node.data), tansu.bootstrap, ECLAIRS,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env)

    submitted = 0

    async def submit(up_to: int) -> None:
        nonlocal submitted
        while submitted < up_to:
            submitted += 1
            await node.ingest.submit(ours(submitted), via="vtp", peer=PIPELINE)

    await submit(10)
    child = await start()
    batches = 0
    try:
        while kills < 5:
            assert child.stdout is not None and child.stdin is not None
            line = await asyncio.wait_for(child.stdout.readline(), 120)
            assert line, "the outbox process ended by itself"
            if line.strip() != b"delivered":
                continue
            batches += 1
            if batches % 2:  # let every other batch store its checkpoint
                child.stdin.write(b"go\n")
                await child.stdin.drain()
                continue
            child.kill()  # SIGKILL, by pid: delivered, not checkpointed
            await child.wait()
            kills += 1
            await submit(10 + kills * 6)
            child = await start()
        assert child.stdin is not None
        child.stdin.close()  # from here on the child runs freely
        await submit(total)
        await wait_topic(tansu, ECLAIRS, total, "every notice on the topic")

        def checkpoint() -> int:
            with sqlite3.connect(node.data / "state.sqlite") as conn:
                row = conn.execute("SELECT seq FROM checkpoints WHERE name = ?", (f"bridge.kafka.out.local.{ECLAIRS}",)).fetchone()
            return int(row[0]) if row else 0

        head = (await node.log.head()).seq
        await wait_for(lambda: checkpoint() >= head, "the child's checkpoint at the head")
    finally:
        if child.returncode is None:
            child.send_signal(signal.SIGKILL)
            await child.wait()
    messages = await topic(tansu, ECLAIRS)
    assert len(once_each(messages)) == total
    assert sorted(int(m.headers[SEQ]) for m in messages) == sorted(
        r.seq for r in await node.log.read(0) if r.type == "voevent.accepted")


async def test_health_and_metrics_name_the_output(node: Node, tansu: TansuBroker) -> None:
    tansu.create_topics([ECLAIRS])
    outbox = outbox_for(node, tansu)
    assert outbox.name == f"kafka.out.local.{ECLAIRS}" and outbox.consumer_name == f"bridge.kafka.out.local.{ECLAIRS}"
    async with running(outbox):
        await node.ingest.submit(ours(1), via="vtp", peer=PIPELINE)
        await node.ingest.submit(voevent("ivo://nasa.gsfc.gcn/SWIFT#BAT_1"), via="vtp", peer="10.0.0.5")
        await wait_topic(tansu, ECLAIRS, 1, "one notice")
        await settled(outbox, node)
        health = outbox.health()
        families = {f.name: f for f in await outbox.metrics()}
    assert health["up"] and health["published"] == 1 and health["position"] == (await node.log.head()).seq
    assert health["last_delivery"] and health["skipped"] == {NOT_OURS: 1} and health["waiting"] == 0
    labels = {"topic": ECLAIRS, "upstream": "local"}
    assert families["burstbus_kafka_out_published_total"].samples == [("", labels, 1)]
    assert ("", {**labels, "reason": NOT_OURS}, 1) in families["burstbus_kafka_out_skipped_total"].samples
    assert families["burstbus_kafka_out_up"].samples == [("", labels, 1)]
    assert families["burstbus_kafka_out_lag_events"].samples == [("", labels, 0)]
    for family in families.values():
        family.check()


async def test_a_notice_too_large_for_the_producer_is_passed_and_the_rest_go_out(node: Node, tansu: TansuBroker) -> None:
    """One notice the cluster cannot take must not hold back every later one (as the NATS
    outbox passes a packet too large for its server); it is counted and logged."""
    tansu.create_topics([ECLAIRS])
    output = KafkaOutput(ECLAIRS, "local", start="beginning")
    config = {**producer_config(KafkaUpstream(name="local", bootstrap_servers=tansu.bootstrap)), "message.max.bytes": 4000}
    outbox = KafkaOutbox(node.log, node.state, output, config, OWN, retry_delay=0.05, scan_timeout=5.0)
    big = voevent(f"{OURS}#sb26112001_eclairs-big", description="x" * 5000)
    async with running(outbox):
        await node.ingest.submit(big, via="vtp", peer=PIPELINE)
        await node.ingest.submit(ours(2), via="vtp", peer=PIPELINE)
        await wait_topic(tansu, ECLAIRS, 1, "the notice after the big one")
        await settled(outbox, node)
        messages = await topic(tansu, ECLAIRS)
    assert [m.value for m in messages] == [ours(2)]
    assert outbox.skipped[TOO_LARGE] == 1 and outbox.failures == 0


def test_what_the_broker_refuses_for_good_is_told_from_what_a_retry_may_mend() -> None:
    assert DeliveryFailed(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)).refused_for_good
    assert DeliveryFailed(KafkaError(KafkaError.INVALID_RECORD)).refused_for_good
    for code in (KafkaError._MSG_TIMED_OUT, KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.NOT_ENOUGH_REPLICAS,
                 KafkaError._TRANSPORT):
        assert not DeliveryFailed(KafkaError(code)).refused_for_good
    assert not DeliveryFailed("the producer is closed").refused_for_good


async def test_without_read_back_the_topic_is_not_read(node: Node, tansu: TansuBroker) -> None:
    """For credentials that may write a topic but not read it."""
    tansu.create_topics([ECLAIRS])
    outbox = outbox_for(node, tansu, read_back=False)
    async with running(outbox):
        await node.ingest.submit(ours(1), via="vtp", peer=PIPELINE)
        await wait_topic(tansu, ECLAIRS, 1, "the notice")
        await settled(outbox, node)
    assert outbox.scans_total == 0 and outbox.published_total == 1


async def test_the_service_publishes_our_notices_once_and_never_what_kafka_brought(tmp_path: Path, tansu: TansuBroker) -> None:
    """(f) through ``burstbus run``'s own wiring (``build_service``: the Kafka consumer and the
    outbox of one ``[kafka]`` section): the service reads the very topic it publishes to, as a
    centre subscribed to SVOM's public stream does. Our notice goes out once; its echo is a
    duplicate; a copy of one of ours that only Kafka brought is taken in and not sent back;
    after a restart the next goes out, and nothing twice."""
    from burstbus.config import load_config
    from burstbus.service import Core, build_service

    tansu.create_topics([ECLAIRS])
    path = tmp_path / "burstbus.toml"
    path.write_text(f"""
[data]
dir = "{tmp_path / 'data'}"
[log]
poll_interval = 0.05
[vtp]
enabled = false
[nats]
enabled = false
[http]
enabled = false
[authority]
reserved = ["{OURS}"]
[[authority.grants]]
source = "vtp:{PIPELINE}"
prefixes = ["{OURS}"]
[[authority.grants]]
source = "kafka:gcn.notices.svom.voevent.*"
prefixes = ["ivo://org.svom/"]
[kafka]
retry_delay = 0.05
[[kafka.upstreams]]
name = "local"
bootstrap_servers = "{tansu.bootstrap}"
topics = ["{ECLAIRS}"]
heartbeat = ""
start = "earliest"
[[kafka.outputs]]
topic = "{ECLAIRS}"
upstream = "local"
""")
    config = load_config(path, environ={})

    @contextlib.asynccontextmanager
    async def service() -> AsyncIterator[tuple[Core, KafkaOutbox]]:
        core = await Core.open(config)
        running_service = build_service(core)
        [outbox] = [c.component for c in running_service.components if isinstance(c.component, KafkaOutbox)]
        running_service.start()
        try:
            await wait_for(lambda: outbox.scans_total >= 1, "the outbox's first session")
            yield core, outbox
        finally:
            running_service.stop()
            await running_service.wait()
            await core.close()

    async def accepted(core: Core) -> list[RecordedEvent]:
        return [r for r in await core.log.read(0) if r.type == "voevent.accepted"]

    async with service() as (core, outbox):
        assert outbox.name == f"kafka.out.local.{ECLAIRS}"
        assert (await core.ingest.submit(ours(1), via="vtp", peer=PIPELINE)).outcome == "accepted"
        await asyncio.to_thread(tansu.produce, ECLAIRS, [ours(7)])  # GCN's copy of one of ours
        await wait_for(lambda: _count(accepted(core), 2), "our notice and the copy Kafka brought, in the log")
        await wait_topic(tansu, ECLAIRS, 2, "our notice published")
        await wait_for(lambda: outbox.skipped[FROM_KAFKA] >= 1, "the outbox passing what Kafka brought")
        await wait_for(lambda: core.ingest.counts[("kafka", "duplicate")] >= 1, "our notice read back: a duplicate")
        records = await accepted(core)
        assert [(r.data["ivorn"], r.data["via"]) for r in records] == [
            (f"{OURS}#sb26112001_eclairs-1", "vtp"), (f"{OURS}#sb26112007_eclairs-7", "kafka")]
    async with service() as (core, outbox):
        await core.ingest.submit(ours(2), via="vtp", peer=PIPELINE)
        await wait_topic(tansu, ECLAIRS, 3, "the notice after the restart")
        await settled(outbox, Node(core.log, core.state, core.ingest, tmp_path))
        await wait_for(lambda: core.ingest.counts[("kafka", "duplicate")] >= 1, "the new notice read back: a duplicate")
        messages = await topic(tansu, ECLAIRS)
        records = await accepted(core)
    assert len(once_each(messages)) == 3 == len(messages)
    assert sorted(m.value for m in messages) == sorted([ours(1), ours(7), ours(2)])  # two producers: any order
    assert len(records) == 3, "the echoes of our own notices were duplicates, not new events"


async def _count(records: Any, n: int) -> bool:
    return len(await records) >= n


def test_an_output_is_a_frozen_config_entry() -> None:
    output = KafkaOutput(ECLAIRS, "gcn")
    assert output.event_types == ("voevent.accepted",) and output.roles == ("observation", "utility")
    assert replace(output, format="json", types=("a", "a", "b")).event_types == ("a", "b")
