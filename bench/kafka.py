"""Kafka → log → VTP subscriber, beside a bare confluent-kafka consumer of the same topic.

In one run, on one Tansu broker (the Kafka-protocol broker of the test suite, on loopback):

* **burstbus**: ``burstbus run``'s own service (``run_service``: the Kafka consumer, the ingest,
  the SQLite log with ``synchronous = FULL`` — a position is committed only after the fsync —,
  projections, burst identifier, VTP broadcaster; NATS and HTTP off) in a child process; a VTP
  subscriber in this process notes when each packet's bytes arrive.
* **reference**: a bare confluent-kafka consumer (``assign`` at offset 0, ``poll``) in this
  process, reading the very same topic; a message counts when ``poll`` returns it. For (a) also
  that consumer made loss-free by hand (each batch's bytes and position in one SQLite
  transaction, ``synchronous = FULL``): what "with the durable append" costs without burstbus's
  examination, chain and projections.

Runs, one after the other, so the two never share the CPUs:

(a) throughput: ``--events`` distinct VOEvents (each its own IVORN) produced to a topic before
    either reads it; each drains that backlog; rate = messages / (first receipt → last). The
    child's Kafka consumer is held until the subscriber is connected (the VTP broadcaster has
    no replay for a subscriber that connects late), then released;
(b) latency: ``--paced`` packets produced one by one at ``--rate``/s while both read the topic
    live; produce call → receipt, p50 / p99; the first ``--warmup`` packets are not counted
    (both consumers receive them before the counted ones start: the producer's start-up);
(c) the outbox, the other way: ``--events`` of the centre's own notices already in a log,
    published by :class:`~burstbus.bridges.kafka.outbound.KafkaOutbox` (delivery reports, the
    checkpoint after each batch), beside a bare idempotent producer of the same messages.

Goals (issue 12): (a) burstbus ≥ 50% of the bare consumer's throughput with the durable
append; (b) added p99 (burstbus p99 − bare p99) ≤ 10 ms at 50 alerts/s.

    python bench/kafka.py [--events 5000] [--paced 500] [--rate 50] [--warmup 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Keep bench/ off the import path (bench/nats.py would shadow the nats package), the repo on it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))  # tests.packets builds the packets, tests.kafka.tansu runs the broker

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from lxml import etree  # noqa: E402

from burstbus.broker.client import _messages, frame  # noqa: E402
from tests.kafka.tansu import TansuBroker  # noqa: E402
from tests.packets import voevent  # noqa: E402

HOST = "127.0.0.1"
#: Both consumers ask the broker to answer a fetch within 2 ms: Tansu holds a fetch for the
#: whole ``fetch.wait.max.ms`` (librdkafka's 500 ms default) even when messages arrive
#: meanwhile (measured: a bare ``poll`` took 250 ms median at the default, 7 ms at 10), where
#: Apache Kafka answers as soon as ``fetch.min.bytes`` (1) is there. Each consumer's own hold
#: lands on its p99 independently (at 10 ms: bare p99 8–9 ms, burstbus's 24–28 ms of which its
#: own path, traced in the child, was ≤ 8 ms), so the shortest hold shows best what burstbus adds.
FETCH_WAIT_MS = 2
BACKLOG = "bench.voevent.backlog"
PACED = "bench.voevent.paced"
OUTBOX = "bench.voevent.ours"
SUBSCRIBER_IVO = "ivo://bench/subscriber"
THROUGHPUT_GOAL = 0.5
ADDED_P99_GOAL_MS = 10.0
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank); NaN if there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def packets(tag: str, n: int, authority: str = "bench.example/SVOM") -> list[tuple[str, bytes]]:
    """``n`` schema-valid VOEvents of about 1.5 KB, each with its own IVORN."""
    out = []
    for i in range(n):
        ivorn = f"ivo://{authority}#{tag}_{i}_eclairs-{i}"
        raw = voevent(ivorn, params={"Burst_Id": f"sb2611{i % 10000:04d}", "Instrument": "ECLAIRs", "Packet_Type": "202"},
                      ra=(i * 7.3) % 360, dec=((i * 3.1) % 170) - 85, description=f"bench packet {i} " + "x" * 200)
        out.append((ivorn, raw))
    return out


def produce(bootstrap: str, topic: str, items: Sequence[tuple[str, bytes]], *, rate: float | None = None,
            warmup: int = 0, warmed: Callable[[Sequence[str]], bool] | None = None) -> dict[str, float]:
    """Produce ``items`` (IVORN in the ``bench-ivorn`` header) and wait for every delivery;
    returns each IVORN's produce-call time (``perf_counter``). Paced at ``rate``/s if given.

    With ``warmup``: the first ``warmup`` items are produced (paced), delivered, and then
    ``warmed(their IVORNs)`` is awaited (polled) before the rest start on a fresh clock. A new
    producer's first messages wait for its start-up (metadata, producer id): measured, the
    first ~25 of a paced run reached both consumers together 0.5 s late, and the consumer that
    then had a burst of 25 to work through showed it in its p99. That start-up is neither
    consumer's latency."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 0 if rate else 5})
    sent: dict[str, float] = {}
    failed: list[Any] = []

    def paced(part: Sequence[tuple[str, bytes]]) -> None:
        started = time.perf_counter()
        for i, (ivorn, raw) in enumerate(part):
            if rate:
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            sent[ivorn] = time.perf_counter()
            while True:
                try:
                    producer.produce(topic, value=raw, headers=[("bench-ivorn", ivorn.encode())],
                                     on_delivery=lambda err, _msg: failed.append(err) if err else None)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        if producer.flush(60) or failed:
            raise RuntimeError(f"producing to {topic} failed: {failed[:1] or 'not all delivered'}")

    if warmup and warmed is not None:
        paced(items[:warmup])
        deadline = time.monotonic() + 120
        while not warmed([ivorn for ivorn, _ in items[:warmup]]):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {warmup} warm-up packets on {topic} were not received within 120 s")
            time.sleep(0.02)
        items = items[warmup:]
    paced(items)
    return sent


# -- the reference: a bare consumer ------------------------------------------------------------


class BareConsumer:
    """confluent-kafka's consumer on one partition from offset 0, in a thread, noting receipts."""

    def __init__(self, bootstrap: str, topic: str, expected: int):
        self.started = time.perf_counter()
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-bare", "enable.auto.commit": False,
                                  "fetch.wait.max.ms": FETCH_WAIT_MS})
        self.consumer.assign([TopicPartition(topic, 0, 0)])
        self.expected = expected
        self.receipts: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> BareConsumer:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            while len(self.receipts) < self.expected and not self.stop.is_set():
                # ``consume(n, t)`` waits for all n (or t), so: wait for one, then take what is there.
                first = self.consumer.poll(0.1)
                if first is None:
                    continue
                for message in [first, *self.consumer.consume(500, 0)]:
                    now = time.perf_counter()
                    if message.error():
                        continue
                    headers = dict(message.headers() or [])
                    self.receipts.setdefault(headers["bench-ivorn"].decode(), now)
        finally:
            self.consumer.close()

    def wait(self, timeout: float) -> None:
        self.thread.join(timeout)
        self.stop.set()
        self.thread.join()


class BareDurableConsumer(BareConsumer):
    """The bare consumer made loss-free by hand, the least a no-loss consumer must do: each
    fetched batch's messages (topic, partition, offset, bytes) and the next position are
    written to SQLite in one transaction (WAL, ``synchronous = FULL``, as burstbus's log); a
    message counts when that transaction has committed. No parsing, no validation, no chain."""

    def __init__(self, bootstrap: str, topic: str, expected: int, path: Path):
        super().__init__(bootstrap, topic, expected)
        self.path = path

    def _run(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("CREATE TABLE message (topic TEXT, partition INTEGER, offset INTEGER, value BLOB, PRIMARY KEY (topic, partition, offset))")
        db.execute("CREATE TABLE position (topic TEXT, partition INTEGER, next INTEGER, PRIMARY KEY (topic, partition))")
        try:
            while len(self.receipts) < self.expected and not self.stop.is_set():
                first = self.consumer.poll(0.1)
                if first is None:
                    continue
                batch = [m for m in [first, *self.consumer.consume(500, 0)] if not m.error()]
                db.execute("BEGIN")
                db.executemany("INSERT OR IGNORE INTO message VALUES (?, ?, ?, ?)",
                               [(m.topic(), m.partition(), m.offset(), m.value()) for m in batch])
                last = batch[-1]
                db.execute("INSERT OR REPLACE INTO position VALUES (?, ?, ?)", (last.topic(), last.partition(), last.offset() + 1))
                db.execute("COMMIT")
                now = time.perf_counter()
                for message in batch:
                    headers = dict(message.headers() or [])
                    self.receipts.setdefault(headers["bench-ivorn"].decode(), now)
        finally:
            db.close()
            self.consumer.close()


# -- burstbus: the service in a child process, a VTP subscriber here --------------------------


def config_text(data_dir: Path, bootstrap: str, receive: int, broadcast: int) -> str:
    return f"""
[data]
dir = "{data_dir}"
[log]
synchronous = "FULL"
[vtp]
receive_port = {receive}
broadcast_port = {broadcast}
local_ivo = "ivo://bench/burstbus"
[nats]
enabled = false
[http]
enabled = false
[[kafka.upstreams]]
name = "bench"
bootstrap_servers = "{bootstrap}"
topics = ["{BACKLOG}", "{PACED}"]
heartbeat = ""
start = "earliest"
settings = {{ "fetch.wait.max.ms" = "{FETCH_WAIT_MS}" }}
"""


class _Gated:
    """A component whose ``run`` waits for the bench's ``go`` (the Kafka consumer, held until
    the VTP subscriber is connected); name, health and metrics pass through."""

    def __init__(self, inner: Any, gate: asyncio.Event):
        self.inner = inner
        self.gate = gate
        self.owner = getattr(inner, "owner", None)

    @property
    def name(self) -> str:
        return str(self.inner.name)

    async def run(self) -> None:
        await self.gate.wait()
        await self.inner.run()

    def health(self) -> Any:
        return self.inner.health()

    def metrics(self) -> Any:
        return self.inner.metrics()


async def serve(config_path: Path) -> None:
    """The child: ``burstbus run``'s service with its Kafka consumers held until ``go``."""
    from burstbus.config import load_config
    from burstbus.service import Service, run_service

    config = load_config(config_path, environ={})
    gate = asyncio.Event()
    loop = asyncio.get_running_loop()

    def setup(service: Service) -> None:
        for supervised in service.components:
            if supervised.name.startswith("kafka.in."):
                supervised.component = _Gated(supervised.component, gate)  # type: ignore[assignment]

    def on_stdin() -> None:
        if sys.stdin.readline().strip() == "go":
            gate.set()

    def ready(service: Service) -> None:
        loop.add_reader(sys.stdin.fileno(), on_stdin)
        print("ready", flush=True)

    await run_service(config, ready=ready, setup=setup)


class Subscriber(asyncio.Protocol):
    """A VTP subscriber noting when each packet's bytes arrive; parses and ACKs afterwards."""

    def __init__(self) -> None:
        self.messages = _messages()
        self.buffer = bytearray()
        self.pending: list[tuple[float, bytes]] = []
        self.receipts: dict[str, float] = {}
        self.authenticated = asyncio.Event()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buffer += data
        while len(self.buffer) >= 4:
            size = int.from_bytes(self.buffer[:4], "big")
            if len(self.buffer) < 4 + size:
                break
            if not self.pending:
                asyncio.get_running_loop().call_soon(self._process)
            self.pending.append((now, bytes(self.buffer[4 : 4 + size])))
            del self.buffer[: 4 + size]

    def _process(self) -> None:
        pending, self.pending = self.pending, []
        for received_at, payload in pending:
            root = etree.fromstring(payload, _PARSER)
            role = root.get("role")
            if role == "iamalive":
                reply = self.messages.iamaliveresponse(SUBSCRIBER_IVO, root.findtext("Origin"))
            elif role == "authenticate":
                reply = self.messages.authenticateresponse(SUBSCRIBER_IVO, root.findtext("Origin"), [])
                self.authenticated.set()
            else:
                ivorn = root.get("ivorn", "")
                self.receipts.setdefault(ivorn, received_at)
                reply = self.messages.ack(SUBSCRIBER_IVO, ivorn)
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(frame(reply.raw_bytes))


@dataclass
class Child:
    proc: asyncio.subprocess.Process
    broadcast: int
    log: Path

    async def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        await self.proc.stdin.drain()

    async def stop(self) -> None:
        if self.proc.returncode is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                os.kill(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()


async def start_child(home: Path, bootstrap: str) -> Child:
    home.mkdir(parents=True)
    receive, broadcast = free_port(), free_port()
    config = home / "burstbus.toml"
    config.write_text(config_text(home / "data", bootstrap, receive, broadcast))
    log = home / "burstbus.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BURSTBUS_")}
    with open(log, "ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve", str(config), cwd=home, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=out,
        )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 120)
    if line.strip() != b"ready":
        raise RuntimeError(f"burstbus did not start; see {log}")
    return Child(proc, broadcast, log)


async def connect_subscriber(port: int) -> Subscriber:
    subscriber = Subscriber()
    await asyncio.get_running_loop().create_connection(lambda: subscriber, HOST, port)
    await asyncio.wait_for(subscriber.authenticated.wait(), 60)
    return subscriber


async def received(receipts: dict[str, float], ivorns: Sequence[str], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not all(i in receipts for i in ivorns):
        if time.monotonic() > deadline:
            missing = sum(1 for i in ivorns if i not in receipts)
            raise RuntimeError(f"{what}: {missing} of {len(ivorns)} packets not received within {timeout:g} s")
        await asyncio.sleep(0.02)


# -- the runs ----------------------------------------------------------------------------------


@dataclass
class Rate:
    per_second: float
    p50_ms: float = math.nan
    p99_ms: float = math.nan


def drain_rate(started: float, receipts: dict[str, float]) -> float:
    """Messages / (the consumer told to start → the last receipt)."""
    return len(receipts) / (max(receipts.values()) - started)


def latencies(sent: dict[str, float], receipts: dict[str, float], skip: int) -> Rate:
    order = sorted(sent, key=sent.__getitem__)[skip:]
    values = [(receipts[i] - sent[i]) * 1000 for i in order]
    return Rate(len(order) / (max(receipts[i] for i in order) - min(sent[i] for i in order)),
                percentile(values, 50), percentile(values, 99))


async def ingest_alone(work: Path, items: Sequence[tuple[str, bytes]], batch: int) -> Rate:
    """The ingest and the durable append alone (no Kafka, no VTP): the ceiling of (a) here."""
    from burstbus.ingest import Ingest, Submission
    from burstbus.store.sqlite import SQLiteEventLog

    log = await SQLiteEventLog.open(work / "log.sqlite")
    ingest = Ingest(log)
    try:
        started = time.perf_counter()
        for start in range(0, len(items), batch):
            await ingest.submit_many([Submission(raw, "kafka", f"{BACKLOG}:0:{start + k}") for k, (_, raw) in enumerate(items[start:start + batch])])
        return Rate(len(items) / (time.perf_counter() - started))
    finally:
        await ingest.close()
        await log.close()


async def outbox_run(work: Path, bootstrap: str, tansu: TansuBroker, n: int) -> tuple[Rate, Rate]:
    """(c): the outbox publishing ``n`` notices already in the log, beside a bare producer."""
    from burstbus.bridges.kafka.connection import KafkaUpstream, producer_config
    from burstbus.bridges.kafka.outbound import KafkaOutbox
    from burstbus.bridges.kafka.outbound_config import KafkaOutput
    from burstbus.bridges.kafka.outbound_rule import OutboundRule, OutMessage, own_prefixes
    from burstbus.ingest import Ingest, Submission
    from burstbus.state import StateStore
    from burstbus.store.sqlite import SQLiteEventLog

    log = await SQLiteEventLog.open(work / "log.sqlite")
    state = await StateStore.open(work / "state.sqlite")
    ingest = Ingest(log)
    try:
        items = packets("ours", n, authority="org.svom/fsc")
        for start in range(0, n, 200):
            await ingest.submit_many([Submission(raw, "local", "bench") for _, raw in items[start:start + 200]])
        config = producer_config(KafkaUpstream(name="bench", bootstrap_servers=bootstrap))
        output = KafkaOutput(topic=OUTBOX, upstream="bench", start="beginning", batch_size=500)
        outbox = KafkaOutbox(log, state, output, config, own_prefixes((), ("ivo://org.svom/fsc",)))
        started = time.perf_counter()
        task = asyncio.create_task(outbox.run())
        try:
            while outbox.published_total < n:
                if task.done():
                    task.result()
                await asyncio.sleep(0.005)
            ours = Rate(n / (time.perf_counter() - started))
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        rule = OutboundRule(output, own=("ivo://org.svom/fsc",))
        messages = [m for r in await log.read(0) if isinstance(m := rule.select(r), OutMessage)]
    finally:
        await ingest.close()
        await state.close()
        await log.close()
    tansu.create_topics([OUTBOX + ".bare"])

    def bare() -> float:
        producer = Producer({**config})
        t0 = time.perf_counter()
        for m in messages:
            while True:
                try:
                    producer.produce(OUTBOX + ".bare", value=m.value, key=m.key, headers=list(m.headers))
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        producer.flush(60)
        return len(messages) / (time.perf_counter() - t0)

    return ours, Rate(await asyncio.to_thread(bare))


async def run(args: argparse.Namespace, base: Path) -> list[tuple[str, Rate, Rate]]:
    tansu = TansuBroker(log_path=base / "tansu.log").start()
    child: Child | None = None
    try:
        tansu.create_topics([BACKLOG, PACED, OUTBOX])
        backlog = packets("backlog", args.events)
        await asyncio.to_thread(produce, tansu.bootstrap, BACKLOG, backlog)
        # (a) the reference alone, then burstbus alone, on the same backlog
        bare = BareConsumer(tansu.bootstrap, BACKLOG, len(backlog)).start()
        await asyncio.to_thread(bare.wait, 300)
        if len(bare.receipts) < len(backlog):
            raise RuntimeError(f"the bare consumer got {len(bare.receipts)} of {len(backlog)}")
        bare_rate = Rate(drain_rate(bare.started, bare.receipts))
        durable = BareDurableConsumer(tansu.bootstrap, BACKLOG, len(backlog), base / "bare-durable.sqlite").start()
        await asyncio.to_thread(durable.wait, 300)
        if len(durable.receipts) < len(backlog):
            raise RuntimeError(f"the bare durable consumer got {len(durable.receipts)} of {len(backlog)}")
        durable_rate = Rate(drain_rate(durable.started, durable.receipts))
        child = await start_child(base / "burstbus", tansu.bootstrap)
        subscriber = await connect_subscriber(child.broadcast)
        go = time.perf_counter()
        await child.go()
        await received(subscriber.receipts, [i for i, _ in backlog], 600, "burstbus, backlog")
        ours_rate = Rate(drain_rate(go, {i: subscriber.receipts[i] for i, _ in backlog}))
        rows = [(f"(a) throughput: a backlog of {args.events:,} VOEvents (~{len(backlog[0][1]) / 1024:.1f} KB)", ours_rate, bare_rate),
                ("(a) the same, beside the bare consumer storing each batch and its position in SQLite (synchronous=FULL)",
                 ours_rate, durable_rate)]
        ceiling = await ingest_alone(base / "ingest", backlog, 200)
        # (b) both live on one paced stream
        paced = packets("paced", args.warmup + args.paced)
        reference = BareConsumer(tansu.bootstrap, PACED, len(paced)).start()
        both = (subscriber.receipts, reference.receipts)
        sent = await asyncio.to_thread(produce, tansu.bootstrap, PACED, paced, rate=args.rate, warmup=args.warmup,
                                       warmed=lambda ivorns: all(i in r for r in both for i in ivorns))
        await received(subscriber.receipts, [i for i, _ in paced], 120, "burstbus, paced")
        await asyncio.to_thread(reference.wait, 120)
        if len(reference.receipts) < len(paced):
            raise RuntimeError(f"the bare consumer got {len(reference.receipts)} of {len(paced)} paced packets")
        rows.append((f"(b) latency: {args.paced:,} VOEvents produced at {args.rate:g}/s", latencies(sent, subscriber.receipts, args.warmup),
                     latencies(sent, reference.receipts, args.warmup)))
        order = sorted(sent, key=sent.__getitem__)[args.warmup:]
        apart = [(subscriber.receipts[i] - reference.receipts[i]) * 1000 for i in order]
        rows.append(("(b) per alert: burstbus's receipt − the bare consumer's of the same alert (ms)",
                     Rate(math.nan, percentile(apart, 50), percentile(apart, 99)), Rate(math.nan)))
        if subscriber.transport is not None:
            subscriber.transport.close()
        await child.stop()
        child = None
        # (c) the outbox
        ours_out, bare_out = await outbox_run(base / "outbox", tansu.bootstrap, tansu, args.events)
        rows.append((f"(c) outbox: {args.events:,} of our notices in the log → topic (delivery reports)", ours_out, bare_out))
        rows.append(("(the ingest and durable append alone, no Kafka, batches of 200: the ceiling of (a))", ceiling, Rate(math.nan)))
        return rows
    finally:
        if child is not None:
            await child.stop()
        tansu.stop()


def report(rows: list[tuple[str, Rate, Rate]]) -> None:
    def ms(rate: Rate) -> str:
        return "—" if math.isnan(rate.p50_ms) else f"{rate.p50_ms:.2f} / {rate.p99_ms:.2f}"

    print("| run | burstbus msg/s | bare confluent-kafka msg/s | ratio | burstbus p50 / p99 ms | bare p50 / p99 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, ours, bare in rows:
        if math.isnan(ours.per_second):
            print(f"| {name} | | | | {ms(ours)} | |")
            continue
        if math.isnan(bare.per_second):
            print(f"| {name} | {ours.per_second:,.0f} | | | | |")
            continue
        print(f"| {name} | {ours.per_second:,.0f} | {bare.per_second:,.0f} | {ours.per_second / bare.per_second:.0%} | {ms(ours)} | {ms(bare)} |")
    throughput = rows[0][1].per_second / rows[0][2].per_second
    added = rows[2][1].p99_ms - rows[2][2].p99_ms
    print(f"\ngoals: (a) ≥ {THROUGHPUT_GOAL:.0%} of the bare consumer: {throughput:.0%} "
          f"{'met' if throughput >= THROUGHPUT_GOAL else 'NOT met'}; (b) added p99 ≤ {ADDED_P99_GOAL_MS:g} ms: "
          f"{added:.2f} ms {'met' if added <= ADDED_P99_GOAL_MS else 'NOT met'}")
    print(f"(a) beside the bare consumer with a durable append of its own (bytes and position, one transaction per batch): "
          f"{rows[1][1].per_second / rows[1][2].per_second:.0%}")
    ceiling = rows[-1][1].per_second
    print(f"(a) beside the ingest-alone ceiling instead (what the goal can mean for a validating, durable ingest in Python): "
          f"{rows[0][1].per_second / ceiling:.0%}")
    print("burstbus: `burstbus run`'s service in a child process (Kafka consumer → ingest → SQLite log, synchronous=FULL,"
          " position after the durable append → VTP broadcast), receipt at a VTP subscriber here; bare: confluent-kafka"
          " Consumer.assign + consume on the same topic, in this process; one Tansu broker on loopback; (c): bare ="
          " an idempotent Producer of the same messages, flush.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--paced", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--keep", type=Path, help="keep the data directories and logs here")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        rows = asyncio.run(run(args, args.keep))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            rows = asyncio.run(run(args, Path(tmp)))
    report(rows)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        asyncio.run(serve(Path(sys.argv[2])))
        sys.exit(0)
    main()

