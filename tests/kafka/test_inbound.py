"""Kafka into the log against a real broker (Tansu on loopback): what arrives, exactly once, from
where it stood; outages, a partition that restarts below our position, hostile messages.

Waits are for conditions with generous deadlines (tests/waiting.py), never on timings."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from pathlib import Path

import pytest

from burstbus.bridges.kafka.config import KafkaSection
from burstbus.bridges.kafka.connection import KafkaUpstream
from burstbus.bridges.kafka.inbound import KafkaInbound
from burstbus.bridges.kafka.inbound_metrics import inbound_families
from burstbus.bridges.kafka.positions import Positions
from burstbus.handlers.bursts import BurstIdentifier
from burstbus.ingest import Ingest
from burstbus.store.base import ReadFilter
from tests.kafka.harness import kafka_offsets, node, upstream
from tests.kafka.notices import einstein_probe, icecube_lvk, lvk
from tests.kafka.tansu import TansuBroker, free_port
from tests.packets import SHARED_VOEVENTS, voevent
from tests.waiting import wait_for

SVOM = "gcn.notices.svom.voevent.eclairs"
SWIFT = "gcn.classic.voevent.SWIFT_BAT_GRB_POS_ACK"
FERMI = "gcn.classic.voevent.FERMI_GBM_FLT_POS"
LVK_VOEVENT = "gcn.classic.voevent.LVC_PRELIMINARY"
LVK = "igwn.gwalert"
EP = "gcn.notices.einstein_probe.wxt.alert"
ICECUBE = "gcn.notices.icecube.lvk_nu_track_search"


def not_read_gauge(consumer: KafkaInbound) -> list[tuple[dict[str, str], float]]:
    [family] = [f for f in inbound_families([consumer]) if f.name == "burstbus_kafka_in_topic_not_read"]
    return [(dict(labels), value) for _, labels, value in family.samples]


def svom(n: int, burst: str = "sb26120201") -> bytes:
    return voevent(f"ivo://org.svom/fsc#{burst}_eclairs-wakeup_{n}", params={"Burst_Id": burst, "Packet_Type": "202"})


async def test_alerts_of_every_kind_arrive_with_their_kafka_position_and_lvk_joins_its_superevent(tansu: TansuBroker, tmp_path: Path) -> None:
    topics = [SVOM, SWIFT, FERMI, LVK_VOEVENT, LVK, EP, ICECUBE]
    tansu.create_topics(topics)
    tansu.produce(SVOM, [svom(1), svom(2)])
    # three different GRBs (at the same second, the coincidence rule would make them one burst)
    tansu.produce(SWIFT, [voevent("ivo://nasa.gsfc.gcn/SWIFT#BAT_GRB_Pos_700001-123", params={"TrigID": "700001"},
                                  time="2026-11-20T04:00:00")])
    tansu.produce(FERMI, [voevent("ivo://nasa.gsfc.gcn/Fermi#GBM_Flt_Pos_2026-12-02T03:00:00.00_786000000_1-123",
                                  params={"TrigID": "786000000"}, time="2026-12-02T03:00:00")])
    tansu.produce(LVK_VOEVENT, [voevent("ivo://gwnet/LVC#S261202ab-1-Preliminary", params={"GraceID": "S261202ab"}, ra=None, dec=None)])
    tansu.produce(LVK, [lvk("S261202ab", "PRELIMINARY"), lvk("S261202ab", "INITIAL", created="2026-12-02T03:30:00Z")])
    tansu.produce(EP, [einstein_probe()])
    tansu.produce(ICECUBE, [icecube_lvk("S261202ab")])
    async with node(tmp_path / "data") as n:
        consumer = n.consume(upstream(tansu, *topics))
        await wait_for(lambda: consumer.taken >= 9, "every message taken")
        accepted = await n.events("voevent.accepted")
        assert {r.data["peer"] for r in accepted} == {SVOM, SWIFT, FERMI, LVK_VOEVENT}
        assert all(r.data["via"] == "kafka" and r.actor == f"kafka:{r.data['peer']}" for r in accepted)
        assert sorted(kafka_offsets(accepted)) == sorted([(SVOM, 0, 0), (SVOM, 0, 1), (SWIFT, 0, 0), (FERMI, 0, 0), (LVK_VOEVENT, 0, 0)])
        assert all(r.data["kafka"]["upstream"] == "test" and r.data["kafka"]["timestamp"] for r in accepted)
        notices = await n.events("notice.accepted")
        assert sorted(r.data["topic"] for r in notices) == sorted([LVK, LVK, EP, ICECUBE])
        assert {r.data["notice_id"] for r in notices if r.data["topic"] == LVK} == {
            "S261202ab-PRELIMINARY-2026-12-02T03:00:00.000000Z", "S261202ab-INITIAL-2026-12-02T03:30:00.000000Z"}
        # the burst identifier puts the LVK VOEvent, both JSON alerts and IceCube's follow-up in one burst
        identifier = BurstIdentifier(n.log, n.state)
        await identifier.start()
        await identifier.catch_up()
        decided = {r.data["ivorn"]: r.data.get("burst_id") for r in await n.events("burst.identified")}
        assert decided["ivo://gwnet/LVC#S261202ab-1-Preliminary"] == "S261202ab"
        assert [k for k, b in decided.items() if b == "S261202ab" and k.startswith(LVK)] and decided[f"{ICECUBE}#" + next(
            r.data["notice_id"] for r in notices if r.data["topic"] == ICECUBE)] == "S261202ab"
        assert decided[next(k for k in decided if k.startswith("ivo://org.svom"))] == "sb26120201"
        health = consumer.health()
        assert health["up"] and health["lag"] == 0 and health["topics"][SVOM]["partitions"]["0"]["position"] == 2
        assert health["outcomes"][f"{SVOM}:accepted"] == 2


CORPUS = {
    SVOM: ["svom_eclairs_wakeup.xml"],
    "gcn.notices.svom.voevent.grm": ["svom_grm_trigger.xml"],
    "gcn.notices.svom.voevent.mxt": ["svom_mxt_initial.xml"],
    SWIFT: ["swift_bat_grb_pos_655721-214.xml", "swift_bat_grb_pos_v2.0.xml"],
    "gcn.classic.voevent.SWIFT_XRT_POSITION": ["swift_xrt_pos_655721-326_followup.xml"],
    "gcn.classic.voevent.FERMI_GBM_FLT_POS": ["fermi_gbm_flt_pos.xml"],
    "gcn.classic.voevent.FERMI_GBM_GND_POS": ["fermi_gbm_gnd_pos.xml"],
    "gcn.classic.voevent.LVC_PRELIMINARY": ["lvc_s190518bb_1_preliminary.xml", "lvc_s230527ch_preliminary_o4.xml"],
}


@pytest.mark.skipif(not SHARED_VOEVENTS.is_dir(), reason="no ../shared/voevents corpus here")
async def test_real_svom_swift_fermi_and_lvk_packets_are_taken_as_the_ingest_takes_them(tansu: TansuBroker, tmp_path: Path) -> None:
    packets = {t: [(SHARED_VOEVENTS / f).read_bytes() for f in files if (SHARED_VOEVENTS / f).is_file()] for t, files in CORPUS.items()}
    packets = {t: p for t, p in packets.items() if p}
    if not packets:
        pytest.skip("none of the corpus files are present")
    tansu.create_topics(packets)
    for topic, values in packets.items():
        tansu.produce(topic, values)
    # what the ordinary ingest says of each packet, on its own log
    async with node(tmp_path / "reference") as ref:
        expected = Counter()
        for values in packets.values():
            for raw in values:
                expected[(await ref.ingest.submit(raw, via="local", peer="ref")).outcome] += 1
    async with node(tmp_path / "data") as n:
        consumer = n.consume(upstream(tansu, *packets))
        total = sum(len(v) for v in packets.values())
        await wait_for(lambda: consumer.taken >= total, "the corpus taken")
        got = Counter(o for (_, o), k in consumer.intake.counts.by_topic.items() for _ in range(k))
        assert got == expected
        accepted = await n.events("voevent.accepted")
        by_sha = {r.data["sha256"]: r for r in accepted}
        for topic, values in packets.items():
            for raw in values:
                record = next((r for r in by_sha.values() if r.data["xml"].encode() == raw), None)
                if record is not None:  # byte for byte, from its topic
                    assert record.data["peer"] == topic


async def test_positions_survive_restarts_and_a_crash_before_the_position_write_appends_nothing_twice(tansu: TansuBroker, tmp_path: Path) -> None:
    tansu.create_topics([SVOM, LVK])
    mixed = [svom(i) for i in range(30)] + [b"not xml", b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>"]
    tansu.produce(SVOM, mixed)
    tansu.produce(LVK, [lvk(created=f"2026-12-02T03:{m:02d}:00Z") for m in range(10)] + [b"{broken"])
    up = upstream(tansu, SVOM, LVK)
    data = tmp_path / "data"
    async with node(data) as n:
        consumer = n.consume(up)
        await wait_for(lambda: consumer.taken >= 43, "the first messages taken")
    first = None
    async with node(data) as n:
        first = [(r.type, r.id) for r in await n.events()]
        # a crash between the durable append and the position write: the positions are behind the log
        await Positions(n.state, "test").reset((SVOM, 0), 0)
        await Positions(n.state, "test").reset((LVK, 0), 3)
    tansu.produce(SVOM, [svom(i) for i in range(30, 40)])
    async with node(data) as n:
        consumer = n.consume(up)
        await wait_for(lambda: consumer.taken >= 42 + 8, "re-read and the new messages taken")
        await wait_for(lambda: consumer.health()["lag"] == 0, "caught up")
        events = [(r.type, r.id) for r in await n.events()]
        assert events[: len(first)] == first  # the re-read appended nothing
        types = Counter(t for t, _ in events)
        assert types == {"voevent.accepted": 40, "voevent.rejected": 2, "notice.accepted": 10, "notice.rejected": 1}
        assert len({i for _, i in events}) == len(events)
        assert consumer.health()["topics"][SVOM]["partitions"]["0"]["position"] == 42
        outcomes = consumer.intake.counts.by_topic
        assert outcomes[(SVOM, "duplicate")] == 30 and outcomes[(LVK, "duplicate")] == 7


async def test_first_start_now_reads_only_what_comes_after_and_a_topic_created_later_is_read_from_its_start(
        tansu: TansuBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "burstbus.bridges.kafka.inbound")
    tansu.create_topics([SVOM])
    for i in range(5):  # one message per produce call: Tansu's "latest" offset is right for single-message batches
        tansu.produce(SVOM, [svom(i, "sb26110101")])
    async with node(tmp_path / "data") as n:
        consumer = n.consume(upstream(tansu, SVOM, FERMI, start="now"))
        await wait_for(lambda: consumer.assigned.is_set() and (SVOM, 0) in consumer.offsets, "assigned")
        assert consumer.offsets[(SVOM, 0)] == 5 and FERMI in consumer.missing
        # a topic listed by name and not read: this upstream is degraded, said once in the log
        assert consumer.health()["topics"][FERMI]["missing"] == "unknown topic" and not consumer.health()["up"]
        assert not_read_gauge(consumer) == [({"upstream": "test", "topic": FERMI}, 1)]
        assert [r.getMessage() for r in caplog.records if FERMI in r.getMessage() and r.levelname == "WARNING"] == [
            f"kafka test: {FERMI} is not read: unknown topic (listed in topics: check the name, or the credentials' access);"
            " /healthz shows this upstream degraded until it is"]
        tansu.produce(SVOM, [svom(10)])
        tansu.create_topics([FERMI])
        tansu.produce(FERMI, [voevent("ivo://nasa.gsfc.gcn/Fermi#GBM_Flt_Pos_1", params={"TrigID": "1"})])
        await wait_for(lambda: consumer.taken >= 2, "the new message and the late topic's")
        assert consumer.health()["up"] and any(f"{FERMI} is on the broker now" in r.getMessage() for r in caplog.records)
        assert not_read_gauge(consumer) == []
        accepted = await n.events("voevent.accepted")
        assert sorted(kafka_offsets(accepted)) == [(FERMI, 0, 0), (SVOM, 0, 5)]


async def test_a_preset_topic_not_published_yet_is_noted_without_degrading_the_upstream(tansu: TansuBroker, tmp_path: Path) -> None:
    """GCN announces topics (SVOM's .vt) before publishing them: the svom preset lists it, and
    its absence is a note in the health, not a degraded feed."""
    svom_topics = ["gcn.notices.svom.voevent.eclairs", "gcn.notices.svom.voevent.grm", "gcn.notices.svom.voevent.mxt"]
    tansu.create_topics(svom_topics)
    async with node(tmp_path / "data") as n:
        consumer = n.consume(upstream(tansu, presets=("svom",)))
        await wait_for(lambda: consumer.assigned.is_set(), "assigned")
        health = consumer.health()
        assert health["topics"]["gcn.notices.svom.voevent.vt"]["missing"] == "unknown topic"
        assert all("missing" not in health["topics"][t] for t in svom_topics)
        await wait_for(lambda: consumer.health()["up"], "up without the announced topic")
        assert not_read_gauge(consumer) == [({"upstream": "test", "topic": "gcn.notices.svom.voevent.vt"}, 0)]


async def test_a_first_start_now_is_stored_at_once_so_a_crash_before_any_message_skips_nothing(tansu: TansuBroker, tmp_path: Path) -> None:
    tansu.create_topics([SVOM])
    tansu.produce(SVOM, [svom(0)])
    data = tmp_path / "data"
    async with node(data) as n:
        consumer = n.consume(upstream(tansu, SVOM, start="now"))
        await wait_for(lambda: consumer.assigned.is_set(), "assigned")
    tansu.produce(SVOM, [svom(1)])  # while burstbus is down
    async with node(data) as n:
        consumer = n.consume(upstream(tansu, SVOM, start="now"))
        await wait_for(lambda: consumer.taken >= 1, "the message sent while down")
        assert kafka_offsets(await n.events("voevent.accepted")) == [(SVOM, 0, 1)]


def produce_in_background(broker: TansuBroker, topic: str, values: list[bytes], done: threading.Event) -> threading.Thread:
    """Produce from a thread with librdkafka's own retries (it waits out an outage)."""

    def run() -> None:
        producer = broker.producer(**{"message.timeout.ms": 300_000})
        for value in values:
            while True:
                try:
                    producer.produce(topic, value)
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
        producer.flush(300)
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


async def test_a_broker_outage_then_recovery_catches_up_without_loss(tansu: TansuBroker, tmp_path: Path) -> None:
    tansu.create_topics([SVOM])
    async with node(tmp_path / "data") as n:
        consumer = n.consume(upstream(tansu, SVOM))
        await wait_for(lambda: consumer.assigned.is_set(), "assigned")
        tansu.produce(SVOM, [svom(i) for i in range(100)])
        await wait_for(lambda: consumer.taken >= 100, "before the outage")
        tansu.pause()  # SIGSTOP: the broker stops answering, keeping its data
        try:
            await asyncio.sleep(3)  # an outage long enough for librdkafka's requests to time out
            assert consumer.taken == 100
        finally:
            tansu.resume()
        done = threading.Event()
        produce_in_background(tansu, SVOM, [svom(i) for i in range(100, 300)], done)
        await wait_for(lambda: done.is_set() and consumer.taken >= 300, "caught up after the outage", timeout=180)
        accepted = await n.events("voevent.accepted")
        assert sorted(o for _, _, o in kafka_offsets(accepted)) == list(range(300))


async def test_a_broker_never_reached_shows_as_down_and_the_consumer_starts_when_it_appears(brokers, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A first start with the broker not there yet: /healthz says ``broker_down`` (not just a
    last error), the consumer keeps trying, and it reads once the broker is up on that address."""
    import burstbus.bridges.kafka.inbound as inbound

    monkeypatch.setattr(inbound, "QUERY_TIMEOUT", 1.0)
    port = free_port()
    absent = KafkaUpstream(name="test", bootstrap_servers=f"127.0.0.1:{port}", topics=(SVOM,), start="earliest")
    async with node(tmp_path / "data") as n:
        consumer = n.consume(absent)
        await wait_for(lambda: consumer.health()["broker_down"], "broker_down while nothing listens")
        health = consumer.health()
        assert not health["up"] and not health["assigned"] and health["last_error"]
        broker = brokers.start(port=port)
        broker.create_topics([SVOM])
        broker.produce(SVOM, [svom(0)])
        await wait_for(lambda: consumer.taken >= 1, "the first alert once the broker is up", timeout=120)
        assert not consumer.health()["broker_down"]


async def test_a_partition_restarted_below_our_position_is_recorded_as_a_gap_once(brokers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broker = brokers.start()
    broker.create_topics([SVOM])
    broker.produce(SVOM, [svom(i) for i in range(30)])
    data = tmp_path / "data"
    async with node(data) as n:
        consumer = n.consume(upstream(broker, SVOM))
        await wait_for(lambda: consumer.taken >= 30, "the first 30")
        broker.restart()  # memory storage: the topic is gone, offsets start again at 0
        broker.create_topics([SVOM])
        broker.produce(SVOM, [svom(i, "sb26120299") for i in range(5)])
        await wait_for(lambda: consumer.gap_total >= 1 and consumer.taken >= 35, "the reset noticed and the new messages read",
                       timeout=120)
        [gap] = await n.events("kafka.gap")
        assert gap.data["kind"] == "reset" and gap.data["expected"] == 30 and gap.data["resumed_at"] == 0
        assert gap.data["topic"] == SVOM and gap.data["lost"] is None
        assert consumer.health()["gaps"]["total"] == 1 and consumer.health()["gaps"]["recent"][0]["kind"] == "reset"
    async with node(data) as n:  # a restart reads on from the new position: no second gap
        consumer = n.consume(upstream(broker, SVOM))
        await wait_for(lambda: consumer.assigned.is_set(), "assigned")
        assert consumer.offsets[(SVOM, 0)] == 5
        await asyncio.sleep(1)
        assert len(await n.events("kafka.gap")) == 1 and consumer.health()["gaps"]["total"] == 1
        assert len(await n.events("voevent.accepted")) == 35


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" ivorn="ivo://x/y#z" role="observation" version="2.0">&lol4;</voe:VOEvent>"""


async def test_hostile_messages_are_refused_with_an_event_each_and_the_consumer_goes_on(tansu: TansuBroker, tmp_path: Path) -> None:
    tansu.create_topics([SVOM, LVK])
    hostile_voevents = [b"not XML at all", BOMB, b"<" + b"x" * (5 * 1024 * 1024), b"\x00\x01\x02binary", b""]
    hostile_json = [b"{not json", lvk(superevent="S26; DROP TABLE"), b'{"superevent_id": "S261202ab", "alert_type": 7}',
                    b"[" + b" " * (5 * 1024 * 1024) + b"]", b'{"ra": NaN}']
    big = tansu.producer(**{"message.max.bytes": 8_000_000})
    for topic, values in ((SVOM, [*hostile_voevents, svom(1)]), (LVK, [*hostile_json, lvk()])):
        for value in values:
            big.produce(topic, value)
    assert big.flush(60) == 0
    async with node(tmp_path / "data") as n:
        consumer = n.consume(upstream(tansu, SVOM, LVK))
        await wait_for(lambda: consumer.taken >= 12, "every message")
        rejected = await n.events("voevent.rejected")
        assert [r.data["kafka"]["offset"] for r in rejected] == [0, 1, 2, 3, 4]
        codes = [r.data["code"] for r in rejected]
        assert codes[0] == "not_xml" and codes[2] == "too_large" and codes[1] in ("doctype", "not_xml")
        assert all(r.data["via"] == "kafka" and r.data["peer"] == SVOM for r in rejected)
        refused = await n.events("notice.rejected")
        assert [r.data["kafka"]["offset"] for r in refused] == [0, 1, 2, 3, 4]
        assert [r.data["code"] for r in refused] == ["json", "schema", "schema", "too_large", "json"]
        assert refused[3].data["size"] > 5 * 1024 * 1024 and len(refused[3].data["excerpt"]) == 4096
        # the good ones after them went through
        assert [r.data["kafka"]["offset"] for r in await n.events("voevent.accepted")] == [5]
        assert [r.data["kafka"]["offset"] for r in await n.events("notice.accepted")] == [5]
        assert consumer.health()["up"]


async def test_a_log_that_fails_keeps_the_batch_in_hand_and_retries_it(tansu: TansuBroker, tmp_path: Path) -> None:
    tansu.create_topics([SVOM])
    async with node(tmp_path / "data") as n:
        real_submit = Ingest.submit_many
        failures = {"left": 3}

        async def flaky(self: Ingest, items):  # type: ignore[no-untyped-def]
            if failures["left"]:
                failures["left"] -= 1
                raise ConnectionError("log unavailable")
            return await real_submit(self, items)

        n.ingest.submit_many = flaky.__get__(n.ingest)  # type: ignore[method-assign]
        consumer = n.consume(upstream(tansu, SVOM), KafkaSection(retry_delay=0.05))
        tansu.produce(SVOM, [svom(i) for i in range(10)])
        await wait_for(lambda: consumer.taken >= 10, "taken after the retries")
        assert failures["left"] == 0 and len(await n.events("voevent.accepted")) == 10
        positions = await Positions(n.state, "test").load()
        assert positions[(SVOM, 0)] == 10


async def test_heartbeat_silence_and_recovery_are_recorded_once_even_across_a_restart(tansu: TansuBroker, tmp_path: Path) -> None:
    tansu.create_topics(["gcn.heartbeat", SVOM])
    beating = threading.Event()
    beating.set()
    stop = threading.Event()

    def beat() -> None:
        producer = tansu.producer()
        while not stop.is_set():
            if beating.is_set():
                producer.produce("gcn.heartbeat", b'{"alert_datetime": "now"}')
                producer.flush(10)
            stop.wait(0.2)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    up = upstream(tansu, SVOM, heartbeat="gcn.heartbeat", silence_after=2.0)
    data = tmp_path / "data"
    try:
        async with node(data) as n:
            consumer = n.consume(up)
            await wait_for(lambda: consumer.clock.heard_at is not None and consumer.clock.ready, "a heartbeat heard")
            assert consumer.health()["up"] and not await n.events("kafka.silent")
            beating.clear()
            await wait_for(lambda: consumer.clock.silence is not None, "silence declared")
            assert not consumer.health()["up"] and consumer.health()["liveness"]["silent"]
        async with node(data) as n:  # restarted while silent: the same silence, not a second one
            consumer = n.consume(up)
            await wait_for(lambda: consumer.clock.ready or consumer.clock.may_judge(consumer.now()), "judging")
            await asyncio.sleep(1)
            assert consumer.clock.silence is not None
            assert len(await n.events("kafka.silent")) == 1
            beating.set()
            await wait_for(lambda: consumer.clock.silence is None, "recovered")
            [silent] = await n.events("kafka.silent")
            [back] = await n.events("kafka.recovered")
            assert back.data["silent_event"] == silent.id and back.seq > silent.seq
            assert silent.stream == back.stream == "kafka/test"
            assert await n.log.read(0, ReadFilter.of(types=["voevent.accepted", "notice.accepted"])) == []  # heartbeats are not events
    finally:
        stop.set()
        thread.join(10)


async def test_a_kafka_topic_is_an_authority_source_and_a_trigger_stream_is_closed_to_it(tansu: TansuBroker, tmp_path: Path) -> None:
    from burstbus.authority import AuthorityGrant, AuthorityPolicy, AuthoritySection

    section = AuthoritySection(default="none", grants=(AuthorityGrant("kafka:gcn.classic.voevent.*", ("ivo://nasa.gsfc.gcn/",)),))
    policy = AuthorityPolicy.of(section, trigger_streams=("ivo://fsc.example/trigger",), own=("ivo://fsc.example/",))
    tansu.create_topics([SWIFT, SVOM])
    tansu.produce(SWIFT, [voevent("ivo://nasa.gsfc.gcn/SWIFT#BAT_GRB_Pos_720001-1"), voevent("ivo://fsc.example/trigger#forged")])
    tansu.produce(SVOM, [svom(1)])  # no grant for this topic, and the default is none
    async with node(tmp_path / "data") as n:
        await n.ingest.close()
        n.ingest = Ingest(n.log, authority=policy)
        consumer = n.consume(upstream(tansu, SWIFT, SVOM))
        await wait_for(lambda: consumer.taken >= 3, "all three taken")
        [accepted] = await n.events("voevent.accepted")
        assert accepted.data["ivorn"] == "ivo://nasa.gsfc.gcn/SWIFT#BAT_GRB_Pos_720001-1"
        refused = {r.data["ivorn"]: r for r in await n.events("voevent.rejected")}
        assert set(refused) == {"ivo://fsc.example/trigger#forged", "ivo://org.svom/fsc#sb26120201_eclairs-wakeup_1"}
        assert all(r.data["code"] == "authority" and r.actor == f"kafka:{r.data['peer']}" for r in refused.values())
