"""VTP broker benchmark: a plain Comet broker and burstbus, measured with the same client code.

In one run, one broker after the other (never both at once, so they never share the CPUs):

* a plain Comet broker, ``twistd -n comet --receive --broadcast`` with a fresh event db;
* burstbus, ``burstbus run`` as a subprocess on a fresh data directory with ``synchronous=FULL``
  (an ACK means the append is on disk), its projections and burst identifier running, its NATS
  bridge and HTTP API off (the broker alone, as Comet; and no fixed ports).

For each, with the same asyncio VTP client code (authors: connect, send one packet, await the
ACK, close, as ``comet-sendvo``; subscribers: answer ``authenticate``/``iamalive``, ACK every event):

(a) ingest throughput with 1 and with 16 concurrent authors (``--events`` distinct valid packets
    per run, each with its own IVORN);
(b) latency from an author starting to submit to a subscriber receiving the packet, p50/p99,
    with 1 and with 100 connected subscribers, at a paced rate (``--rate``, ``--latency-events``),
    matched by IVORN. Receipt is timed when the bytes reach the subscriber's protocol, before
    it parses or ACKs, so 100 subscribers in one process do not delay each other's clocks.

Every measurement uses its own IVORN stream (authority/resource). Comet keeps one dedupe file
per stream, ``dbm.dumb`` on this Python, which slows as it grows (FIELD-NOTES); so each of
Comet's figures starts from an empty file. Over a run of 2,000 packets that file still grows,
so the ingest rows also show the rate over the first and the last 300 packets of each run:
the ratio on the first 300 is the comparison least favourable to burstbus. The same packets
go to both brokers.

Targets (issue 3): burstbus ingest >= 3x Comet's with 16 authors while appending durably;
p99 latency with 100 subscribers no worse than Comet's.

    python bench/vtp.py [--events 2000] [--latency-events 500] [--rate 50] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.packets builds the packets

from burstbus.broker.client import _messages, frame, publish  # noqa: E402
from tests.packets import voevent  # noqa: E402

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
SUBSCRIBER_IVO = "ivo://bench/subscriber"
INGEST_AUTHORS = (1, 16)
LATENCY_SUBSCRIBERS = (1, 100)
INGEST_TARGET = 3.0  # burstbus / Comet, 16 authors
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
_VOEVENT_ROLES = ("observation", "prediction", "utility", "test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``; NaN if there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# -- the brokers, as processes stopped by their pid ------------------------------------------


@dataclass
class Broker:
    name: str
    receive_port: int
    broadcast_port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _spawn(args: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def start_comet(home: Path) -> Broker:
    (home / "eventdb").mkdir(parents=True)
    receive, broadcast = free_port(), free_port()
    log = home / "twistd.log"
    proc = _spawn([
        str(BIN / "twistd"), "-n", "--pidfile=", "-l", str(log), "comet",
        "--receive", "--receive-port", str(receive), "--broadcast", "--broadcast-port", str(broadcast),
        "--broadcast-test-interval=0", "--local-ivo=ivo://bench/comet", f"--eventdb={home / 'eventdb'}",
    ], home, home / "stdout.log")
    return Broker("Comet", receive, broadcast, proc, log)


def start_burstbus(home: Path) -> Broker:
    home.mkdir(parents=True)
    receive, broadcast = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BURSTBUS_")}
    env.update(
        BURSTBUS_DATA_DIR=str(home / "data"),
        BURSTBUS_LOG_SYNCHRONOUS="FULL",  # durable appends: the ACK follows the fsync
        BURSTBUS_VTP_RECEIVE_PORT=str(receive),
        BURSTBUS_VTP_BROADCAST_PORT=str(broadcast),
        BURSTBUS_VTP_LOCAL_IVO="ivo://bench/burstbus",
        # the VTP broker alone, as Comet: no NATS bridge or HTTP API (nor their fixed ports)
        BURSTBUS_NATS_ENABLED="false",
        BURSTBUS_HTTP_ENABLED="false",
    )
    log = home / "burstbus.log"
    # cwd = home: no ./burstbus.toml from elsewhere is picked up
    proc = _spawn([str(BIN / "burstbus"), "run"], home, log, env)
    return Broker("burstbus", receive, broadcast, proc, log)


async def wait_listening(broker: Broker, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    for port in (broker.receive_port, broker.broadcast_port):
        while True:
            if broker.proc.poll() is not None:
                raise RuntimeError(f"{broker.name} exited ({broker.proc.returncode}); see {broker.log}")
            try:
                _, writer = await asyncio.open_connection(HOST, port)
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{broker.name} is not listening on {port}; see {broker.log}") from None
                await asyncio.sleep(0.1)
                continue
            writer.close()
            break


# -- authors ---------------------------------------------------------------------------------


async def submit(port: int, raw: bytes) -> None:
    answer = await publish(HOST, port, raw, timeout=60)
    if not answer.acknowledged:
        raise RuntimeError(f"packet refused: {answer.reason}")


@dataclass
class Ingest:
    rate: float  # events/s over the whole run
    first: float  # events/s over its first WINDOW packets
    last: float  # ... and over its last WINDOW (Comet's dedupe file grows as it goes)


WINDOW = 300


async def ingest_rate(port: int, packets: Sequence[bytes], authors: int) -> Ingest:
    """Events/s for ``authors`` concurrent authors submitting ``packets`` one at a time each."""
    queue = iter(packets)
    acked: list[float] = []

    async def author() -> None:
        for raw in queue:  # shared: each author takes the next packet when it is free
            await submit(port, raw)
            acked.append(time.perf_counter())

    started = time.perf_counter()
    await asyncio.gather(*[author() for _ in range(authors)])
    window = min(WINDOW, len(acked) - 1)
    return Ingest(
        rate=len(packets) / (acked[-1] - started),
        first=window / (acked[window - 1] - started),
        last=window / (acked[-1] - acked[-1 - window]),
    )


# -- subscribers -----------------------------------------------------------------------------


class Subscriber(asyncio.Protocol):
    """A VTP subscriber that notes when each event's bytes arrive, then parses and ACKs later.

    ``data_received`` only splits frames and notes the time; the parsing and the replies run
    in a later loop iteration, so when one event reaches 100 subscribers at once, each
    receipt time is taken before any of them does its work.
    """

    acks: dict[str, bytes] = {}  # ACK bytes by IVORN, shared: all subscribers answer alike

    def __init__(self, messages: Any) -> None:
        self.messages = messages
        self.buffer = bytearray()
        self.pending: list[tuple[float, bytes]] = []
        self.receipts: dict[str, float] = {}
        self.authenticated = asyncio.Event()
        self.closed = asyncio.Event()
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
            if role in _VOEVENT_ROLES:
                ivorn = root.get("ivorn", "")
                self.receipts.setdefault(ivorn, received_at)
                reply = self.acks.get(ivorn)
                if reply is None:
                    reply = self.acks[ivorn] = frame(self.messages.ack(SUBSCRIBER_IVO, ivorn).raw_bytes)
            elif role == "iamalive":
                reply = frame(self.messages.iamaliveresponse(SUBSCRIBER_IVO, root.findtext("Origin")).raw_bytes)
            elif role == "authenticate":
                reply = frame(self.messages.authenticateresponse(SUBSCRIBER_IVO, root.findtext("Origin"), []).raw_bytes)
                self.authenticated.set()
            else:
                continue
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()


async def connect_subscribers(port: int, n: int) -> list[Subscriber]:
    loop = asyncio.get_running_loop()
    messages = _messages()
    subscribers: list[Subscriber] = []

    async def connect(subscriber: Subscriber) -> None:
        await loop.create_connection(lambda: subscriber, HOST, port)

    for start in range(0, n, 20):  # in small groups: Twisted's listen backlog is 50
        group = [Subscriber(messages) for _ in range(start, min(n, start + 20))]
        await asyncio.gather(*[connect(s) for s in group])
        subscribers += group
    await asyncio.wait_for(asyncio.gather(*[s.authenticated.wait() for s in subscribers]), 60)
    return subscribers


async def close_subscribers(subscribers: Sequence[Subscriber]) -> None:
    for s in subscribers:
        if s.transport is not None:
            s.transport.close()
    await asyncio.wait_for(asyncio.gather(*[s.closed.wait() for s in subscribers]), 30)


async def received_by_all(subscribers: Sequence[Subscriber], ivorns: Sequence[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not all(iv in s.receipts for s in subscribers for iv in ivorns):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


@dataclass
class Latency:
    delivery_ms: list[float] = field(default_factory=list)  # every (event, subscriber) pair
    ack_ms: list[float] = field(default_factory=list)  # author submit -> ACK
    missing: int = 0  # (event, subscriber) pairs never received


async def latency(broker: Broker, n_subscribers: int, packets: Sequence[tuple[str, bytes]],
                  warmup: Sequence[tuple[str, bytes]], rate: float) -> Latency:
    subscribers = await connect_subscribers(broker.broadcast_port, n_subscribers)
    try:
        # warm up and prove every subscriber is live (burstbus holds events until authenticate)
        for ivorn, raw in warmup:
            await submit(broker.receive_port, raw)
            if not await received_by_all(subscribers, [ivorn], 30):
                raise RuntimeError(f"{broker.name}: warm-up event did not reach all {n_subscribers} subscribers")
        await asyncio.sleep(0.5)
        result = Latency()
        submitted: dict[str, float] = {}

        async def author(ivorn: str, raw: bytes) -> None:
            started = submitted[ivorn] = time.perf_counter()
            await submit(broker.receive_port, raw)
            result.ack_ms.append((time.perf_counter() - started) * 1000)

        t0 = time.perf_counter()
        tasks = []
        for i, (ivorn, raw) in enumerate(packets):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(author(ivorn, raw)))
        await asyncio.gather(*tasks)
        ivorns = [ivorn for ivorn, _ in packets]
        await received_by_all(subscribers, ivorns, 20)
        for s in subscribers:
            for ivorn in ivorns:
                if ivorn in s.receipts:
                    result.delivery_ms.append((s.receipts[ivorn] - submitted[ivorn]) * 1000)
                else:
                    result.missing += 1
        return result
    finally:
        await close_subscribers(subscribers)


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Figures:
    ingest: dict[int, Ingest] = field(default_factory=dict)  # by number of authors
    latency: dict[int, Latency] = field(default_factory=dict)  # subscribers -> latencies


def packet_set(stream: str, n: int, tag: str) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        ivorn = f"ivo://bench.burstbus/{stream}#{tag}-{i}"
        out.append((ivorn, voevent(ivorn, ra=(i * 7.3) % 360, dec=((i * 3.1) % 170) - 85)))
    return out


async def measure(broker: Broker, streams: dict[str, list[tuple[str, bytes]]], rate: float) -> Figures:
    await wait_listening(broker)
    figures = Figures()
    for authors in INGEST_AUTHORS:
        packets = [raw for _, raw in streams[f"ingest{authors}"]]
        figures.ingest[authors] = ingested = await ingest_rate(broker.receive_port, packets, authors)
        print(f"  {broker.name}: ingest, {authors:>3} authors: {ingested.rate:,.0f} events/s "
              f"(first {WINDOW}: {ingested.first:,.0f}/s, last {WINDOW}: {ingested.last:,.0f}/s)", flush=True)
    for n in LATENCY_SUBSCRIBERS:
        figures.latency[n] = found = await latency(broker, n, streams[f"latency{n}"], streams[f"warmup{n}"], rate)
        print(f"  {broker.name}: latency, {n:>3} subscribers: p50 {percentile(found.delivery_ms, 50):.1f} ms, "
              f"p99 {percentile(found.delivery_ms, 99):.1f} ms ({found.missing} missing)", flush=True)
    return figures


def accepted_in_log(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "log.sqlite") as conn:
        return int(conn.execute("SELECT count(*) FROM events WHERE type = 'voevent.accepted'").fetchone()[0])


def report(comet: Figures, burstbus: Figures, args: argparse.Namespace) -> None:
    def ms(value: float) -> str:
        return f"{value:.1f}"

    rows: list[tuple[str, str, str]] = []
    for authors in INGEST_AUTHORS:
        ci, bi = comet.ingest[authors], burstbus.ingest[authors]
        who = f"{authors} author{'s' if authors > 1 else ''}"
        rows.append((f"ingest, {who} (events/s)", f"{ci.rate:,.0f}", f"{bi.rate:,.0f}"))
        rows.append((f"… over the first / last {WINDOW} packets of that run", f"{ci.first:,.0f} / {ci.last:,.0f}",
                     f"{bi.first:,.0f} / {bi.last:,.0f}"))
    for n in LATENCY_SUBSCRIBERS:
        c, b = comet.latency[n], burstbus.latency[n]
        who = f"{n} subscriber{'s' if n > 1 else ''}"
        rows.append((f"submit → subscriber p50, {who} (ms)", ms(percentile(c.delivery_ms, 50)), ms(percentile(b.delivery_ms, 50))))
        rows.append((f"submit → subscriber p99, {who} (ms)", ms(percentile(c.delivery_ms, 99)), ms(percentile(b.delivery_ms, 99))))
        rows.append((f"submit → author ACK p50 / p99, {who} (ms)",
                     f"{ms(percentile(c.ack_ms, 50))} / {ms(percentile(c.ack_ms, 99))}",
                     f"{ms(percentile(b.ack_ms, 50))} / {ms(percentile(b.ack_ms, 99))}"))
        rows.append((f"deliveries missing, {who}", str(c.missing), str(b.missing)))
    print(f"\n{args.events:,} packets per ingest run; latency: {args.latency_events} packets at "
          f"{args.rate:g}/s; burstbus synchronous=FULL; {os.cpu_count()} CPUs\n")
    print("| figure | Comet | burstbus |")
    print("|---|---:|---:|")
    for name, c_value, b_value in rows:
        print(f"| {name} | {c_value} | {b_value} |")

    ratio = burstbus.ingest[16].rate / comet.ingest[16].rate
    ratio_first = burstbus.ingest[16].first / comet.ingest[16].first
    p99_c = percentile(comet.latency[100].delivery_ms, 99)
    p99_b = percentile(burstbus.latency[100].delivery_ms, 99)
    complete = burstbus.latency[100].missing == 0
    print("\n| target | measured | |")
    print("|---|---|---|")
    print(f"| burstbus ingest ≥ {INGEST_TARGET:g}× Comet's, 16 authors, durable appends | {ratio:.1f}× "
          f"| {'MET' if ratio >= INGEST_TARGET else 'NOT MET'} |")
    print(f"| (same, first {WINDOW} packets only: Comet's dedupe file still small) | {ratio_first:.1f}× "
          f"| {'met' if ratio_first >= INGEST_TARGET else 'not met'} (informative) |")
    print(f"| burstbus p99 latency, 100 subscribers ≤ Comet's | {p99_b:.1f} ms vs {p99_c:.1f} ms "
          f"| {'MET' if p99_b <= p99_c and complete else 'NOT MET'} |")


async def run(args: argparse.Namespace, base: Path) -> tuple[Figures, Figures]:
    tag = uuid.uuid4().hex[:8]
    streams = {f"ingest{a}": packet_set(f"ingest{a}", args.events, tag) for a in INGEST_AUTHORS}
    for n in LATENCY_SUBSCRIBERS:
        streams[f"latency{n}"] = packet_set(f"latency{n}", args.latency_events, tag)
        streams[f"warmup{n}"] = packet_set(f"warmup{n}", 3, tag)
    results: dict[str, Figures] = {}
    for name, start in (("Comet", start_comet), ("burstbus", start_burstbus)):
        print(f"{name}:", flush=True)
        broker = start(base / name.lower())
        try:
            results[name] = await measure(broker, streams, args.rate)
        finally:
            broker.stop()
    expected = sum(len(packets) for packets in streams.values())
    stored = accepted_in_log(base / "burstbus" / "data")
    print(f"burstbus log after stop: {stored:,} voevent.accepted (expected {expected:,})", flush=True)
    if stored != expected:
        raise SystemExit("burstbus ACKed packets that are not in its log")
    return results["Comet"], results["burstbus"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="packets per ingest run")
    parser.add_argument("--latency-events", type=int, default=500, help="packets per latency run")
    parser.add_argument("--rate", type=float, default=50.0, help="packets/s in the latency runs")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it (default: a temp dir, removed)")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="burstbus-vtp-bench-", dir=args.keep))
    try:
        comet, burstbus = asyncio.run(run(args, base))
        report(comet, burstbus, args)
    finally:
        if args.keep:
            print(f"(files in {base})")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
