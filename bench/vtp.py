"""VTP broker benchmark: a plain Comet broker and burstbus, measured with the same client code.

In one run, one broker after the other (never both at once, so they never share the CPUs):

* a plain Comet broker, ``twistd -n comet --receive --broadcast`` with a fresh event db;
* burstbus, ``burstbus run`` as a subprocess on a fresh data directory with ``synchronous=FULL``
  (an ACK means the append is on disk), its projections and burst identifier running, its NATS
  bridge and HTTP API off (the broker alone, as Comet; and no fixed ports).

For each, with the same asyncio VTP client code (authors: connect, send one packet, await the
ACK, close, as ``comet-sendvo``; subscribers: answer ``authenticate``/``iamalive``, ACK every
event), three measurements:

(a) **ingest** with 1 and with 16 concurrent authors, ``--events`` distinct valid packets per
    run (default 1,000), each with its own IVORN; the rate over the first 10, 100 and 1,000
    packets of the run (×1, ×10, ×100: Comet keeps one dedupe file per stream, ``dbm.dumb`` on
    this Python, which slows as it grows, so each run starts from an empty one and the growth
    shows). The goal is on the first 1,000 packets with 16 authors.
(b) **submit → subscriber latency** with 10, 100 and 1,000 connected subscribers (×1, ×10,
    ×100) at ``--rate`` alerts/s (default 10), p50/p99 over every (alert, subscriber) pair,
    matched by IVORN, missed pairs counted. The subscribers are spread over ``--procs`` client
    processes so the client side is not the bottleneck; receipt is timed with
    ``time.monotonic`` (CLOCK_MONOTONIC, one clock for every process) when the bytes reach the
    subscriber's protocol, before it parses or ACKs. The broker's CPU per delivery is its
    process's CPU time (``/proc/<pid>/stat``, every thread: the ingest of the alerts as well as
    their fan-out) over the paced run divided by the deliveries.
(c) **a connection storm**: ``--storm`` subscribers (default 1,000) connect at the same moment,
    as after a restart, spread over the client processes; 1 s later ten alerts go out at
    ``--rate``. Counted: subscribers registered (sent the broker's ``authenticate``) before the
    first alert and within 20 s, and those that received the first alert, and all ten. A
    listen backlog smaller than the storm makes the kernel drop SYNs that the clients resend
    only after 1 s, 3 s, 7 s …; the kernel's cap, ``net.core.somaxconn``, is printed.

Every measurement uses its own IVORN stream (authority/resource). The same packets go to both
brokers.

Goals (issue 20): ingest, 16 authors, first 1,000 packets, durable: >= 5x Comet's; 1,000
subscribers at 10 alerts/s: p99 <= 1/2 of Comet's with 0 missed, CPU per delivery reported;
the storm: every subscriber registered and served.

    python bench/vtp.py [--events 1000] [--latency-events 50] [--rate 10] [--subscribers 10,100,1000]
                        [--storm 1000] [--procs 4] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import re
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
from multiprocessing.connection import Connection
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
INGEST_WINDOWS = (10, 100, 1000)  # ×1, ×10, ×100 packets from the start of a run
INGEST_TARGET = 5.0  # burstbus / Comet, 16 authors, first 1,000 packets
LATENCY_TARGET = 0.5  # burstbus p99 / Comet's, the largest subscriber count
STORM_ALERTS = 10
STORM_LEAD = 1.0  # seconds from the storm to the first alert
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
_IVORN = re.compile(rb'ivorn="([^"]*)"')


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


def somaxconn() -> str:
    try:
        return Path("/proc/sys/net/core/somaxconn").read_text().strip()
    except OSError:
        return "unknown"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    windows: dict[int, float]  # events/s over the first n packets, by n


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
    windows = {n: n / (acked[n - 1] - started) for n in INGEST_WINDOWS if n <= len(acked)}
    return Ingest(rate=len(packets) / (acked[-1] - started), windows=windows)


async def paced(port: int, packets: Sequence[tuple[str, bytes]], rate: float, start: float,
                acks_ms: list[float] | None = None) -> dict[str, float]:
    """Submit ``packets`` at ``rate``/s from monotonic time ``start``; when each submit began
    (and, into ``acks_ms``, how long each waited for its ACK)."""
    submitted: dict[str, float] = {}

    async def author(ivorn: str, raw: bytes) -> None:
        started = submitted[ivorn] = time.monotonic()
        await submit(port, raw)
        if acks_ms is not None:
            acks_ms.append((time.monotonic() - started) * 1000)

    tasks = []
    for i, (ivorn, raw) in enumerate(packets):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(author(ivorn, raw)))
    await asyncio.gather(*tasks)
    return submitted


# -- subscribers, in client processes --------------------------------------------------------


class Subscriber(asyncio.Protocol):
    """A VTP subscriber that notes when each event's bytes arrive, then ACKs later.

    ``data_received`` only splits frames and notes the time; the replies run in a later loop
    iteration, so when one event reaches many subscribers at once, each receipt time is taken
    before any of them does its work. Events are matched by the IVORN attribute alone (no XML
    parse: the client must stay cheaper than the broker); transport messages are parsed.
    """

    acks: dict[bytes, bytes] = {}  # ACK frames by IVORN, shared: all subscribers answer alike

    def __init__(self, messages: Any) -> None:
        self.messages = messages
        self.buffer = bytearray()
        self.pending: list[tuple[float, bytes]] = []
        self.receipts: dict[str, float] = {}
        self.authenticated_at: float | None = None
        self.authenticated = asyncio.Event()
        self.closed = asyncio.Event()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
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
            head = payload[:400]
            if b"Transport" not in head:
                found = _IVORN.search(head)
                if found is None:
                    continue
                ivorn = found.group(1)
                self.receipts.setdefault(ivorn.decode(), received_at)
                reply = self.acks.get(ivorn)
                if reply is None:
                    reply = self.acks[ivorn] = frame(self.messages.ack(SUBSCRIBER_IVO, ivorn.decode()).raw_bytes)
            else:
                root = etree.fromstring(payload, _PARSER)
                role = root.get("role")
                if role == "iamalive":
                    reply = frame(self.messages.iamaliveresponse(SUBSCRIBER_IVO, root.findtext("Origin")).raw_bytes)
                elif role == "authenticate":
                    reply = frame(self.messages.authenticateresponse(SUBSCRIBER_IVO, root.findtext("Origin"), []).raw_bytes)
                    if self.authenticated_at is None:
                        self.authenticated_at = received_at
                    self.authenticated.set()
                else:
                    continue
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()


class ClientProcess:
    """The subscribers of one client process, driven by commands over a pipe."""

    def __init__(self) -> None:
        self.messages = _messages()
        self.subscribers: list[Subscriber] = []

    async def connect(self, port: int, n: int, at: float, group: int) -> None:
        """Connect ``n`` subscribers from monotonic time ``at``, ``group`` at a time (0: all at
        once). Connections the broker never accepts are given up after 20 s."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        subscribers = [Subscriber(self.messages) for _ in range(n)]
        self.subscribers += subscribers

        async def one(subscriber: Subscriber) -> None:
            try:
                await asyncio.wait_for(loop.create_connection(lambda: subscriber, HOST, port), 20)
            except (OSError, TimeoutError):
                subscriber.closed.set()

        step = group or n
        for start in range(0, n, step):
            await asyncio.gather(*[one(s) for s in subscribers[start : start + step]])

    async def registered(self, timeout: float) -> list[float | None]:
        """When each subscriber received its authenticate (None: not within ``timeout``)."""
        waits = [asyncio.ensure_future(s.authenticated.wait()) for s in self.subscribers]
        await asyncio.wait(waits, timeout=timeout)
        for w in waits:
            w.cancel()
        return [s.authenticated_at for s in self.subscribers]

    async def receipts(self, ivorns: Sequence[str], timeout: float) -> list[dict[str, float]]:
        """Each subscriber's receipt times of ``ivorns``, once all have them or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while not all(iv in s.receipts for s in self.subscribers for iv in ivorns):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        wanted = set(ivorns)
        return [{iv: t for iv, t in s.receipts.items() if iv in wanted} for s in self.subscribers]

    async def close(self) -> None:
        for s in self.subscribers:
            if s.transport is not None:
                s.transport.close()
        await asyncio.wait([asyncio.ensure_future(s.closed.wait()) for s in self.subscribers] or [asyncio.sleep(0)],
                           timeout=30)
        self.subscribers = []


def client_process(conn: Connection) -> None:
    """A client process's main: run each command from the pipe, answer with its result."""

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        client = ClientProcess()
        while True:
            command, *args = await loop.run_in_executor(None, conn.recv)
            if command == "exit":
                return
            conn.send(await getattr(client, command)(*args))

    asyncio.run(serve())


class Clients:
    """``procs`` client processes sharing the subscribers out (the rest to the first ones)."""

    def __init__(self, procs: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for _ in range(procs):
            ours, theirs = context.Pipe()
            proc = context.Process(target=client_process, args=(theirs,), daemon=True)
            proc.start()
            self.pipes.append(ours)
            self.procs.append(proc)

    def share(self, n: int) -> list[int]:
        k = len(self.pipes)
        return [n // k + (1 if i < n % k else 0) for i in range(k)]

    async def call(self, command: str, per_process: Sequence[tuple[Any, ...]]) -> list[Any]:
        loop = asyncio.get_running_loop()
        for pipe, args in zip(self.pipes, per_process, strict=True):
            pipe.send((command, *args))
        return list(await asyncio.gather(*[loop.run_in_executor(None, pipe.recv) for pipe in self.pipes]))

    async def all(self, command: str, *args: Any) -> list[Any]:
        return await self.call(command, [args] * len(self.pipes))

    def stop(self) -> None:
        for pipe in self.pipes:
            pipe.send(("exit",))
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()


async def connect(clients: Clients, port: int, n: int, at: float, group: int) -> None:
    await clients.call("connect", [(port, share, at, group) for share in clients.share(n)])


def flat(results: list[list[Any]]) -> list[Any]:
    return [item for part in results for item in part]


@dataclass
class Latency:
    subscribers: int
    delivery_ms: list[float] = field(default_factory=list)  # every (event, subscriber) pair
    ack_ms: list[float] = field(default_factory=list)  # author submit -> ACK
    missing: int = 0  # (event, subscriber) pairs never received
    cpu_us_per_delivery: float = math.nan


async def latency(broker: Broker, clients: Clients, n: int, packets: Sequence[tuple[str, bytes]],
                  warmup: Sequence[tuple[str, bytes]], rate: float) -> Latency:
    # in groups of 10 per process: below Comet's listen backlog of 50, so no SYN is dropped
    await connect(clients, broker.broadcast_port, n, time.monotonic(), 10)
    try:
        registered = flat(await clients.all("registered", 60.0))
        if None in registered:
            raise RuntimeError(f"{broker.name}: {registered.count(None)} of {n} subscribers not registered")
        # warm up and prove every subscriber is live (burstbus holds events until authenticate)
        for ivorn, raw in warmup:
            await submit(broker.receive_port, raw)
            got = flat(await clients.all("receipts", [ivorn], 30.0))
            if sum(1 for r in got if ivorn in r) != n:
                raise RuntimeError(f"{broker.name}: warm-up event did not reach all {n} subscribers")
        await asyncio.sleep(0.5)
        result = Latency(n)
        cpu_before = cpu_seconds(broker.proc.pid)
        submitted = await paced(broker.receive_port, packets, rate, time.monotonic(), result.ack_ms)
        ivorns = [ivorn for ivorn, _ in packets]
        got = flat(await clients.all("receipts", ivorns, 20.0))
        cpu = cpu_seconds(broker.proc.pid) - cpu_before
        for receipts in got:
            for ivorn in ivorns:
                if ivorn in receipts:
                    result.delivery_ms.append((receipts[ivorn] - submitted[ivorn]) * 1000)
                else:
                    result.missing += 1
        if result.delivery_ms:
            result.cpu_us_per_delivery = cpu / len(result.delivery_ms) * 1e6
        return result
    finally:
        await clients.all("close")


@dataclass
class Storm:
    subscribers: int
    registered_before_first: int = 0  # had the broker's authenticate when the first alert went out
    registered: int = 0  # ... within 20 s
    got_first: int = 0  # received the first alert
    got_all: int = 0  # received every one of the alerts


async def storm(broker: Broker, clients: Clients, n: int, packets: Sequence[tuple[str, bytes]], rate: float) -> Storm:
    """``n`` subscribers connect at one moment; STORM_LEAD s later the alerts go out."""
    at = time.monotonic() + 1.0  # time for every client process to be waiting for it
    connecting = asyncio.ensure_future(connect(clients, broker.broadcast_port, n, at, 0))
    try:
        first_at = at + STORM_LEAD
        await paced(broker.receive_port, packets, rate, first_at)
        await connecting
        ivorns = [ivorn for ivorn, _ in packets]
        got = flat(await clients.all("receipts", ivorns, 20.0))
        registered = flat(await clients.all("registered", max(0.0, at + 20 - time.monotonic())))
        return Storm(
            n,
            registered_before_first=sum(1 for t in registered if t is not None and t <= first_at),
            registered=sum(1 for t in registered if t is not None),
            got_first=sum(1 for r in got if ivorns[0] in r),
            got_all=sum(1 for r in got if all(iv in r for iv in ivorns)),
        )
    finally:
        await clients.all("close")


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Figures:
    ingest: dict[int, Ingest] = field(default_factory=dict)  # by number of authors
    latency: dict[int, Latency] = field(default_factory=dict)  # by number of subscribers
    storm: Storm | None = None


def packet_set(stream: str, n: int, tag: str) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        ivorn = f"ivo://bench.burstbus/{stream}#{tag}-{i}"
        out.append((ivorn, voevent(ivorn, ra=(i * 7.3) % 360, dec=((i * 3.1) % 170) - 85)))
    return out


async def measure(broker: Broker, clients: Clients, streams: dict[str, list[tuple[str, bytes]]],
                  args: argparse.Namespace) -> Figures:
    await wait_listening(broker)
    figures = Figures()
    for authors in INGEST_AUTHORS:
        packets = [raw for _, raw in streams[f"ingest{authors}"]]
        figures.ingest[authors] = found = await ingest_rate(broker.receive_port, packets, authors)
        windows = ", ".join(f"first {n:,}: {r:,.0f}/s" for n, r in found.windows.items())
        print(f"  {broker.name}: ingest, {authors:>3} authors: {found.rate:,.0f} events/s ({windows})", flush=True)
    for n in args.subscribers:
        figures.latency[n] = lat = await latency(broker, clients, n, streams[f"latency{n}"], streams[f"warmup{n}"], args.rate)
        print(f"  {broker.name}: latency, {n:>4} subscribers: p50 {percentile(lat.delivery_ms, 50):.1f} ms, "
              f"p99 {percentile(lat.delivery_ms, 99):.1f} ms ({lat.missing} missing), "
              f"CPU {lat.cpu_us_per_delivery:.0f} µs/delivery", flush=True)
    if args.storm:
        figures.storm = s = await storm(broker, clients, args.storm, streams["storm"], args.rate)
        print(f"  {broker.name}: storm of {s.subscribers}: registered {s.registered_before_first} before the first "
              f"alert, {s.registered} within 20 s; first alert to {s.got_first}, all {STORM_ALERTS} to {s.got_all}",
              flush=True)
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
        for n in ci.windows:
            rows.append((f"ingest, {who}, first {n:,} packets (events/s)", f"{ci.windows[n]:,.0f}", f"{bi.windows[n]:,.0f}"))
        rows.append((f"ingest, {who}, whole run of {args.events:,} (events/s)", f"{ci.rate:,.0f}", f"{bi.rate:,.0f}"))
    for n in args.subscribers:
        c, b = comet.latency[n], burstbus.latency[n]
        who = f"{n:,} subscriber{'s' if n > 1 else ''}"
        rows.append((f"submit → subscriber p50 / p99, {who} (ms)",
                     f"{ms(percentile(c.delivery_ms, 50))} / {ms(percentile(c.delivery_ms, 99))}",
                     f"{ms(percentile(b.delivery_ms, 50))} / {ms(percentile(b.delivery_ms, 99))}"))
        rows.append((f"submit → author ACK p50 / p99, {who} (ms)",
                     f"{ms(percentile(c.ack_ms, 50))} / {ms(percentile(c.ack_ms, 99))}" if c.ack_ms else "–",
                     f"{ms(percentile(b.ack_ms, 50))} / {ms(percentile(b.ack_ms, 99))}" if b.ack_ms else "–"))
        rows.append((f"broker CPU per delivery, {who} (µs)", f"{c.cpu_us_per_delivery:.0f}", f"{b.cpu_us_per_delivery:.0f}"))
        rows.append((f"deliveries missing, {who}", str(c.missing), str(b.missing)))
    cs, bs = comet.storm, burstbus.storm
    if cs is not None and bs is not None:
        rows.append((f"storm of {cs.subscribers:,}: registered before the first alert / within 20 s",
                     f"{cs.registered_before_first:,} / {cs.registered:,}", f"{bs.registered_before_first:,} / {bs.registered:,}"))
        rows.append((f"storm of {cs.subscribers:,}: received the first alert / all {STORM_ALERTS}",
                     f"{cs.got_first:,} / {cs.got_all:,}", f"{bs.got_first:,} / {bs.got_all:,}"))
    print(f"\n{args.events:,} packets per ingest run; latency: {args.latency_events} alerts at {args.rate:g}/s per "
          f"subscriber count; {args.procs} client processes; burstbus synchronous=FULL; {os.cpu_count()} CPUs; "
          f"net.core.somaxconn = {somaxconn()}\n")
    print("| figure | Comet | burstbus |")
    print("|---|---:|---:|")
    for name, c_value, b_value in rows:
        print(f"| {name} | {c_value} | {b_value} |")

    window = max(burstbus.ingest[16].windows)
    ratio = burstbus.ingest[16].windows[window] / comet.ingest[16].windows[window]
    top = max(args.subscribers)
    p99_c = percentile(comet.latency[top].delivery_ms, 99)
    p99_b = percentile(burstbus.latency[top].delivery_ms, 99)
    complete = burstbus.latency[top].missing == 0
    print("\n| goal | measured | |")
    print("|---|---|---|")
    print(f"| ingest ≥ {INGEST_TARGET:g}× Comet's, 16 authors, first {window:,} packets, durable appends | {ratio:.1f}× "
          f"| {'MET' if ratio >= INGEST_TARGET else 'NOT MET'} |")
    print(f"| p99, {top:,} subscribers at {args.rate:g}/s ≤ {LATENCY_TARGET:g}× Comet's, 0 missed | "
          f"{p99_b:.1f} ms vs {p99_c:.1f} ms ({p99_b / p99_c:.2f}×), {burstbus.latency[top].missing} missed "
          f"| {'MET' if p99_b <= LATENCY_TARGET * p99_c and complete else 'NOT MET'} |")
    print(f"| broker CPU per delivery, {top:,} subscribers (reported) | {burstbus.latency[top].cpu_us_per_delivery:.0f} µs "
          f"vs {comet.latency[top].cpu_us_per_delivery:.0f} µs | — |")
    if cs is not None and bs is not None:
        served = bs.registered == bs.subscribers and bs.got_all == bs.subscribers
        print(f"| storm of {bs.subscribers:,}: every subscriber registered and served | registered {bs.registered:,}, "
              f"all alerts to {bs.got_all:,} (Comet: {cs.registered:,}, {cs.got_all:,}) | {'MET' if served else 'NOT MET'} |")


async def run(args: argparse.Namespace, base: Path) -> tuple[Figures, Figures]:
    tag = uuid.uuid4().hex[:8]
    streams = {f"ingest{a}": packet_set(f"ingest{a}", args.events, tag) for a in INGEST_AUTHORS}
    for n in args.subscribers:
        streams[f"latency{n}"] = packet_set(f"latency{n}", args.latency_events, tag)
        streams[f"warmup{n}"] = packet_set(f"warmup{n}", 2, tag)
    streams["storm"] = packet_set("storm", STORM_ALERTS if args.storm else 0, tag)
    results: dict[str, Figures] = {}
    clients = Clients(args.procs)
    try:
        for name, start in (("Comet", start_comet), ("burstbus", start_burstbus)):
            print(f"{name}:", flush=True)
            broker = start(base / name.lower())
            try:
                results[name] = await measure(broker, clients, streams, args)
            finally:
                broker.stop()
    finally:
        clients.stop()
    expected = sum(len(packets) for packets in streams.values())
    stored = accepted_in_log(base / "burstbus" / "data")
    print(f"burstbus log after stop: {stored:,} voevent.accepted (expected {expected:,})", flush=True)
    if stored != expected:
        raise SystemExit("burstbus ACKed packets that are not in its log")
    return results["Comet"], results["burstbus"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000, help="packets per ingest run")
    parser.add_argument("--latency-events", type=int, default=50, help="alerts per latency run")
    parser.add_argument("--rate", type=float, default=10.0, help="alerts/s in the latency runs and the storm")
    parser.add_argument("--subscribers", type=lambda s: [int(x) for x in s.split(",")], default=[10, 100, 1000],
                        help="subscriber counts of the latency runs (comma-separated)")
    parser.add_argument("--storm", type=int, default=1000, help="subscribers connecting at once (0: no storm)")
    parser.add_argument("--procs", type=int, default=4, help="client processes holding the subscribers")
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
