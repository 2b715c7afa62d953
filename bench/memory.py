"""Memory of ``burstbus run`` over a 1,000,000-event log with 1,000 VTP subscribers and 300 SSE clients.

The service runs as ``burstbus run`` in a child process over a data directory whose log holds
the 1,000,000 synthetic notices of ``bench/rebuild.py`` (built once and kept in ``--dir``,
default ``bench/out/memory``; the first start also lets the projections and the burst
identifier catch up with it — ~10 minutes, and the identifier adds a ``burst.identified`` for
each notice, so the log then holds ~2,000,000 events — which is kept too; each run appends its
alerts, and their identifications, to that log). Then, with the service's resident set size (``VmRSS`` of the process)
sampled every ``--interval`` seconds:

1. the service alone, settled (every follower caught up): **start**;
2. VTP subscribers join in stages (10, 100, then ``--subscribers``, default 1,000; each
   answers ``authenticate``/``iamalive`` and ACKs every event, as ``bench/vtp.py``'s), spread
   over a few client processes; then SSE clients (3, 30, then ``--sse``, default 300) on
   ``/api/stream`` with a read token (every event type), half of them stalled: they send
   the request and never read (a small receive buffer, so the server's side fills soon);
3. alerts are submitted over VTP at ``--rate`` a second for ``--minutes`` (default 10):
   **max during** and **end of run**, and the drift from the first minute to the end;
4. every client leaves; after ``--settle`` seconds: **after clients leave**, and whether it
   came back to within 10% of what it was before they came.

Goal (issue 20): RSS <= 400 MB, flat over 10 minutes, given back when clients leave.
No reference: the figure is absolute. The growth table gives the RSS at each stage.

    python bench/memory.py                              # 10 minutes, 1,000 + 300 clients
    python bench/memory.py --minutes 1 --rate 2         # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from lxml import etree

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.packets builds the alerts
SUBSCRIBER_IVO = "ivo://bench/memory-subscriber"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
GOAL_MB = 400.0
TOKEN = "bench-memory-read-token"
HOST = "127.0.0.1"


def _load(name: str) -> ModuleType:
    """A sibling bench script as a module (bench is not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    if spec.name in sys.modules:
        return sys.modules[spec.name]
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """The process's resident set (``VmRSS``), in MB (10^6 bytes, as the goal)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


# -- the data and the service ------------------------------------------------------------------


def config_text(data: Path, receive: int, broadcast: int, http: int) -> str:
    return f"""
[data]
dir = "{data}"
[vtp]
receive_port = {receive}
broadcast_port = {broadcast}
local_ivo = "ivo://bench/burstbus"
[nats]
enabled = false
[http]
port = {http}
read_token = "{TOKEN}"
"""


async def build_data(data: Path, events: int) -> None:
    """The log of ``events`` synthetic notices (bench/rebuild.py's builder; kept)."""
    data.mkdir(parents=True, exist_ok=True)
    log = await _load("rebuild").build_log(data / "log.sqlite", events, 5000, 1)
    await log.close()


class Service:
    """``burstbus run`` on ``home/burstbus.toml``, stopped by its pid."""

    def __init__(self, home: Path, data: Path):
        home.mkdir(parents=True, exist_ok=True)
        self.receive, self.broadcast, self.http = free_port(), free_port(), free_port()
        config = home / "burstbus.toml"
        config.write_text(config_text(data, self.receive, self.broadcast, self.http))
        env = {k: v for k, v in os.environ.items() if not k.startswith("BURSTBUS_")}
        self.log_path = home / "burstbus.log"
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "burstbus.cli", "--config", str(config), "run"],
                                         cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)  # fmt: skip
        self.url = f"http://{HOST}:{self.http}"

    def health(self) -> dict[str, object] | None:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=10) as answer:
                return json.loads(answer.read())  # type: ignore[no-any-return]
        except OSError:
            return None
        except ValueError:
            return None

    def positions(self) -> tuple[int, dict[str, int]] | None:
        """The log's head and every follower's position (the projections', the identifier's …)."""
        found = self.health()
        if not found:
            return None
        head = int(found["log"]["head_seq"])  # type: ignore[index]
        at = {name: int(c["position"]) for name, c in found["components"].items()  # type: ignore[attr-defined]
              if isinstance(c.get("position"), int)}  # fmt: skip
        for name, p in found["projections"]["projections"].items():  # type: ignore[index]
            at[f"projection {name}"] = int(p["applied_seq"])
        return head, at

    def wait_settled(self, timeout: float) -> None:
        """Until nothing moves for 10 s: a follower of some types stays below the head once it
        has read past the rest, so "at the head" is not the test (the identifier's own events)."""
        deadline = time.monotonic() + timeout
        said = 0.0
        previous = None
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"burstbus exited ({self.proc.returncode}); see {self.log_path}")
            now = self.positions()
            if now is not None and now == previous:
                return
            previous = now
            if time.monotonic() > deadline:
                raise RuntimeError(f"burstbus did not settle in {timeout:g} s ({now})")
            if time.monotonic() - said > 30 and now is not None:
                print(f"  waiting for the service to catch up: head {now[0]:,}, {now[1]}", flush=True)
                said = time.monotonic()
            time.sleep(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


# -- client processes --------------------------------------------------------------------------


class Subscriber(asyncio.Protocol):
    """A VTP subscriber: answers ``authenticate`` and ``iamalive``, ACKs every event, counts them."""

    def __init__(self, messages: Any) -> None:
        self.messages = messages
        self.buffer = bytearray()
        self.received = 0
        self.authenticated = asyncio.Event()
        self.closed = asyncio.Event()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        from burstbus.broker.client import frame

        self.buffer += data
        while len(self.buffer) >= 4:
            size = int.from_bytes(self.buffer[:4], "big")
            if len(self.buffer) < 4 + size:
                break
            root = etree.fromstring(bytes(self.buffer[4 : 4 + size]), _PARSER)
            del self.buffer[: 4 + size]
            role = root.get("role")
            if role == "iamalive":
                reply = self.messages.iamaliveresponse(SUBSCRIBER_IVO, root.findtext("Origin"))
            elif role == "authenticate":
                reply = self.messages.authenticateresponse(SUBSCRIBER_IVO, root.findtext("Origin"), [])
                self.authenticated.set()
            elif role in ("ack", "nak"):
                continue
            else:
                self.received += 1
                reply = self.messages.ack(SUBSCRIBER_IVO, root.get("ivorn", ""))
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(frame(reply.raw_bytes))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()


async def vtp_clients(port: int, n: int) -> None:
    """``n`` VTP subscribers; ``ready`` when all are authenticated, then until stdin closes;
    prints how many events they received in all."""
    from burstbus.broker.client import _messages

    loop = asyncio.get_running_loop()
    messages = _messages()
    subscribers = [Subscriber(messages) for _ in range(n)]
    for start in range(0, n, 20):  # in small groups: a listen backlog may be short
        group = subscribers[start : start + 20]
        await asyncio.gather(*[loop.create_connection(lambda s=s: s, HOST, port) for s in group])  # type: ignore[misc]
    await asyncio.wait_for(asyncio.gather(*[s.authenticated.wait() for s in subscribers]), 120)
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    for s in subscribers:
        if s.transport is not None:
            s.transport.close()
    await asyncio.wait_for(asyncio.gather(*[s.closed.wait() for s in subscribers]), 60)
    print(json.dumps({"received": sum(s.received for s in subscribers)}), flush=True)


async def sse_clients(port: int, readers: int, stalled: int) -> None:
    """``readers`` SSE clients that read everything and ``stalled`` ones that never read."""
    request = (f"GET /api/stream HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
               "Accept: text/event-stream\r\n\r\n").encode()  # fmt: skip
    counts = [0]

    async def reader() -> asyncio.StreamWriter:
        r, w = await asyncio.open_connection(HOST, port)
        w.write(request)
        head = await r.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"the stream was refused: {head[:200]!r}")

        async def read() -> None:
            while chunk := await r.read(65536):
                counts[0] += chunk.count(b"\nid: ") + chunk.startswith(b"id: ")

        asyncio.get_running_loop().create_task(read())
        return w

    sockets = []
    for _ in range(stalled):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        s.connect((HOST, port))
        s.sendall(request)
        sockets.append(s)
    writers = [await reader() for _ in range(readers)]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for w in writers:
        w.close()
    for s in sockets:
        s.close()
    print(json.dumps({"received": counts[0]}), flush=True)


@dataclass
class Clients:
    """Client processes (this file with ``--vtp`` or ``--sse``), ended by closing their stdin."""

    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def start(self, *args: str) -> None:
        proc = subprocess.Popen([sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)  # fmt: skip
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "ready":
            proc.kill()
            raise RuntimeError(f"a client process did not start ({args}): {line!r}")
        self.procs.append(proc)

    def close(self) -> list[int]:
        received = []
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in self.procs:
            assert proc.stdout is not None
            try:
                proc.wait(timeout=90)
                received.append(json.loads(proc.stdout.read().strip().splitlines()[-1])["received"])
            except (subprocess.TimeoutExpired, ValueError, IndexError):
                proc.kill()
                proc.wait()
                received.append(-1)
        self.procs.clear()
        return received


# -- the run -----------------------------------------------------------------------------------


class Sampler:
    """The service's RSS every ``interval`` seconds, in a thread."""

    def __init__(self, pid: int, interval: float):
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self.started = time.monotonic()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            self.now()
            self.stop.wait(self.interval)

    def now(self) -> float:
        value = rss_mb(self.pid)
        self.samples.append((time.monotonic() - self.started, value))
        return value

    def between(self, start: float, end: float) -> list[float]:
        return [v for t, v in self.samples if start <= t <= end]


async def publish_for(port: int, seconds: float, rate: float, tag: str) -> int:
    """Alerts over VTP at ``rate`` a second for ``seconds``; returns how many were ACKed."""
    from burstbus.broker.client import publish
    from tests.packets import voevent

    started = time.monotonic()
    acked = 0
    for i in range(int(seconds * rate) + 1):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if time.monotonic() - started > seconds:
            break
        ivorn = f"ivo://bench.burstbus/memory#{tag}-{i}"
        answer = await publish(HOST, port, voevent(ivorn, ra=(i * 7.3) % 360, dec=((i * 3.1) % 170) - 85), timeout=60)
        if not answer.acknowledged:
            raise RuntimeError(f"alert refused: {answer.reason}")
        acked += 1
    return acked


def stage_sizes(total: int, stages: Sequence[int]) -> list[int]:
    """How many to add at each stage so the running totals are ``stages`` (capped) then ``total``."""
    marks = sorted({min(s, total) for s in stages} | {total})
    return [b - a for a, b in zip([0, *marks], marks, strict=False)]


async def run(args: argparse.Namespace) -> int:
    data = args.dir / "data"
    if not (data / "log.sqlite").exists():
        await build_data(data, args.events)
    service = Service(args.dir / "home", data)
    clients = Clients()
    stages: list[tuple[str, float]] = []
    try:
        service.wait_settled(args.catch_up)
        sampler = Sampler(service.proc.pid, args.interval)
        time.sleep(args.settle)
        start_rss = sampler.now()
        stages.append(("service alone, settled", start_rss))
        vtp_per_process = 250
        for added in stage_sizes(args.subscribers, (10, 100)):
            while added > 0:
                n = min(added, vtp_per_process)
                clients.start("--vtp", str(service.broadcast), str(n))
                added -= n
            time.sleep(3)
            stages.append((f"{sum(_counts(clients.procs, '--vtp'))} VTP subscribers", sampler.now()))
        for added in stage_sizes(args.sse, (3, 30)):
            readers = added // 2
            clients.start("--sse-clients", str(service.http), str(readers), str(added - readers))
            time.sleep(3)
            stages.append((f"+ {sum(_counts(clients.procs, '--sse-clients'))} SSE clients (half stalled)",
                           sampler.now()))  # fmt: skip
        connected_rss = sampler.now()
        run_started = time.monotonic() - sampler.started
        print(f"  clients connected: RSS {connected_rss:.0f} MB; submitting at {args.rate:g}/s for "
              f"{args.minutes:g} min", flush=True)  # fmt: skip
        acked = await publish_for(service.receive, args.minutes * 60, args.rate, f"m{int(time.time())}")
        run_ended = time.monotonic() - sampler.started
        end_rss = sampler.now()
        during = sampler.between(run_started, run_ended)
        first_minute = sampler.between(run_started, run_started + min(60.0, (run_ended - run_started) / 2))
        received = clients.close()
        time.sleep(args.settle)
        left_rss = sampler.now()
        sampler.stop.set()
    finally:
        clients.close()
        service.stop()

    base = max(first_minute) if first_minute else connected_rss
    drift = end_rss - base
    given_back = left_rss <= start_rss * 1.10
    peak = max(during + [connected_rss, end_rss])
    print()
    print(f"## bench/memory.py: {args.events:,}-notice log, {args.subscribers:,} VTP subscribers, {args.sse} SSE clients "
          f"(half stalled), {args.rate:g} alerts/s for {args.minutes:g} min ({acked:,} ACKed), {os.cpu_count()} CPUs")  # fmt: skip
    print()
    print("| RSS (MB) | burstbus | goal |")
    print("|---|---|---|")
    print(f"| at start (settled, no clients) | {start_rss:.0f} | |")
    print(f"| clients connected | {connected_rss:.0f} | |")
    print(f"| max during the run | {peak:.0f} | <= {GOAL_MB:.0f} |")
    print(f"| end of run | {end_rss:.0f} | <= {GOAL_MB:.0f} |")
    print(f"| drift, first minute's max to end | {drift:+.0f} | flat |")
    print(f"| after clients leave ({args.settle:g} s) | {left_rss:.0f} ({'given back' if given_back else 'NOT given back'}) "
          f"| <= start + 10% |")  # fmt: skip
    print()
    print(f"Events received by the client processes: {received} (VTP processes first, then SSE)")
    print()
    print("RSS during the run, by minute (MB): " + ", ".join(
        f"{m}: {max(v for t, v in sampler.samples if run_started + 60 * m <= t < run_started + 60 * (m + 1)):.0f}"
        for m in range(int((run_ended - run_started) // 60) + 1)
        if any(run_started + 60 * m <= t < run_started + 60 * (m + 1) for t, _ in sampler.samples)))  # fmt: skip
    print()
    print("| stage (growth) | RSS MB |")
    print("|---|---|")
    for what, value in stages:
        print(f"| {what} | {value:.0f} |")
    ok = peak <= GOAL_MB and given_back
    return 0 if ok else 1


def _counts(procs: Sequence[subprocess.Popen[str]], kind: str) -> list[int]:
    out = []
    for proc in procs:
        argv = [str(a) for a in proc.args]  # type: ignore[union-attr]
        if kind in argv:
            i = argv.index(kind)
            out.append(sum(int(a) for a in argv[i + 2 :]))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=HERE / "out" / "memory", help="kept between runs")
    parser.add_argument("--events", type=int, default=1_000_000, help="notices in the log when it is first built")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--sse", type=int, default=300)
    parser.add_argument("--rate", type=float, default=5.0, help="alerts a second over VTP")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between RSS samples")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds to wait before the start and leave samples")
    parser.add_argument("--catch-up", type=float, default=1800.0, help="seconds the service may take to catch up")
    parser.add_argument("--vtp", nargs=2, type=int, metavar=("PORT", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--sse-clients", nargs=3, type=int, metavar=("PORT", "READERS", "STALLED"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args(argv)
    if args.vtp:
        asyncio.run(vtp_clients(*args.vtp))
        return 0
    if args.sse_clients:
        asyncio.run(sse_clients(*args.sse_clients))
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
