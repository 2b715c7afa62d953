"""Data available → pipeline dispatched, beside the raw NATS request round trip; and the
watchdog's cost with 10,000 open runs.

burstbus: a service announces data (``burstbus.in.data``, NATS request/reply: the inbound
bridge appends ``data.available`` to the SQLite log, ``synchronous=FULL``, then ACKs); the
orchestrator (``handlers/orchestrator/node.py``) follows the log, decides, appends
``process.requested`` and dispatches it by a NATS request to the pipeline's subject, where
a worker takes it. Latency = the announcement's request call → the worker's receipt of the
dispatch, both timed in one child process (the "site": announcer and worker) with the
system-wide monotonic clock. Reference, in the same run and the same child: nats-py request
→ a plain responder → reply (the raw round trip). "added" = burstbus p99 − raw p99.

Watchdog: 10,000 bursts each with a dispatched attempt still open (timeout one hour). Shown:
the first round after a (re)start, which decides every open burst again (what makes timers
survive a restart); the CPU the idle watchdog uses meanwhile; and the latency above again
with those 10,000 runs open.

Goal (issue 13): added p99 ≤ 10 ms at 100 bursts/s.

    python bench/orchestrator.py [--slow 20] [--fast 1000] [--open 10000]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/nats.py is named like the nats package: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import nats  # noqa: E402
import nats.errors  # noqa: E402

from burstbus.bridges.nats.inbound import Inbound  # noqa: E402
from burstbus.bridges.nats.server import EmbeddedNatsServer  # noqa: E402
from burstbus.component import RequestNotDelivered, RequestUnanswered  # noqa: E402
from burstbus.events import Event  # noqa: E402
from burstbus.handlers.orchestrator.config import OrchestratorSection, Pipeline, PipelinesSection  # noqa: E402
from burstbus.handlers.orchestrator.node import Orchestrator  # noqa: E402
from burstbus.ingest import Ingest  # noqa: E402
from burstbus.state import StateStore  # noqa: E402
from burstbus.store.consumer import Start  # noqa: E402
from burstbus.store.sqlite import SQLiteEventLog  # noqa: E402

SUBJECT = "bench.pipelines.loc"
ECHO = "bench.echo"
PIPELINES = PipelinesSection((Pipeline("loc", needs=("vhf.eclairs",), nats_subject=SUBJECT, timeout=3600, max_attempts=1),))


# -- the site: announcer and worker (a child process) ----------------------------------------


async def site(url: str, count: int, rate: float, raw: int) -> None:
    """Announce ``count`` bursts at ``rate``/s and time each dispatch's arrival; then ``raw``
    plain request round trips. Prints one JSON line of results."""
    worker = await nats.connect(url)
    announcer = await nats.connect(url)
    received: dict[str, int] = {}
    done = asyncio.Event()

    async def on_dispatch(msg: Any) -> None:
        received.setdefault(json.loads(msg.data)["burst_id"], time.monotonic_ns())
        await msg.respond(b"ACK")
        if len(received) >= count:
            done.set()

    async def on_echo(msg: Any) -> None:
        await msg.respond(b"ACK")

    await worker.subscribe(SUBJECT, cb=on_dispatch)
    await worker.subscribe(ECHO, cb=on_echo)
    await worker.flush()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
    sent: dict[str, int] = {}
    tag = time.time_ns()

    async def announce(n: int) -> None:
        burst = f"sb{tag}-{n}"
        body = json.dumps({"burst_id": burst, "kind": "vhf.eclairs", "location": f"file:///vhf/{burst}.dat"}).encode()
        sent[burst] = time.monotonic_ns()
        reply = await announcer.request("burstbus.in.data", body, timeout=60)
        assert reply.data == b"ACK", reply.data

    start = time.monotonic()
    tasks = []
    for n in range(count):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(announce(n)))
    await asyncio.gather(*tasks)
    await asyncio.wait_for(done.wait(), timeout=120)
    rtts = []
    for _ in range(raw):
        t0 = time.monotonic_ns()
        await announcer.request(ECHO, b"{}", timeout=10)
        rtts.append(time.monotonic_ns() - t0)
        await asyncio.sleep(1 / rate if rate < 1000 else 0)
    print(json.dumps({"latency": [received[b] - sent[b] for b in sent], "raw": rtts}), flush=True)
    await worker.close()
    await announcer.close()


# -- burstbus ---------------------------------------------------------------------------------


class Bus:
    """The log, the NATS inbound bridge and the orchestrator, in this process."""

    async def open(self, url: str, work: Path) -> Bus:
        self.log = await SQLiteEventLog.open(work / "log.sqlite", synchronous="FULL")
        self.state = await StateStore.open(work / "state.sqlite")
        self.ingest = Ingest(self.log)
        self.nc = await nats.connect(url)
        self.inbound = Inbound(self.nc, self.log, self.ingest, origin="bench")
        await self.inbound.start()

        async def request(subject: str, payload: bytes, headers: dict[str, str], timeout: float) -> bytes:
            """The ``nats.request`` port, as the NATS bridge offers it (its errors translated)."""
            try:
                return bytes((await self.nc.request(subject, payload, timeout=timeout, headers=headers)).data)
            except nats.errors.NoRespondersError:
                raise RequestNotDelivered(f"no responders on {subject}") from None
            except nats.errors.TimeoutError:
                raise RequestUnanswered(f"no reply on {subject}") from None

        self.request = request
        self.orchestrator = Orchestrator(self.log, self.state, OrchestratorSection(), PIPELINES,
                                         request=lambda: request, start=Start.BEGINNING)
        self.task = asyncio.create_task(self.orchestrator.run())
        return self

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.inbound.stop()
        await self.nc.close()
        await self.ingest.close()
        await self.state.close()
        await self.log.close()


async def measure(url: str, count: int, rate: float, raw: int) -> dict[str, list[float]]:
    proc = await asyncio.create_subprocess_exec(sys.executable, __file__, "--site", url, str(count), str(rate), str(raw),
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    assert (await proc.stdout.readline()).strip() == b"ready"
    proc.stdin.write(b"go\n")
    await proc.stdin.drain()
    out = json.loads(await proc.stdout.readline())
    await proc.wait()
    return {k: [v / 1e6 for v in values] for k, values in out.items()}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def row(label: str, data: dict[str, list[float]]) -> str:
    lat, raw = data["latency"], data["raw"]
    return (f"{label:<34} {len(lat):>6} {statistics.median(lat):>8.2f} {pct(lat, 0.99):>8.2f} "
            f"{statistics.median(raw):>8.2f} {pct(raw, 0.99):>8.2f} {pct(lat, 0.99) - pct(raw, 0.99):>9.2f}")


async def open_runs(bus: Bus, n: int) -> float:
    """``n`` bursts whose attempts are dispatched and open; seconds until all are."""
    async def accept(msg: Any) -> None:
        await msg.respond(b"ACK")

    worker = await bus.nc.subscribe(SUBJECT, cb=accept)
    await bus.nc.flush()
    before = bus.orchestrator.dispatches["accepted"]
    started = time.perf_counter()
    for start in range(0, n, 500):
        await bus.log.append([Event("data.available", {"burst_id": f"open-{i}", "kind": "vhf.eclairs",
                                                        "location": f"file:///vhf/open-{i}"}, stream=f"open-{i}")
                              for i in range(start, min(n, start + 500))])
    while bus.orchestrator.dispatches["accepted"] < n + before:
        await asyncio.sleep(0.05)
    head = (await bus.log.head()).seq  # and the answers folded: the steady state, not the backlog
    while (bus.orchestrator.follower.position or 0) < head:
        await asyncio.sleep(0.05)
    took = time.perf_counter() - started
    await worker.unsubscribe()
    return took


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = EmbeddedNatsServer(work / "nats", port=0)
        await server.start()
        try:
            bus = await Bus().open(server.url, work / "a")
            print(f"{'':<34} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'raw p50':>8} {'raw p99':>8} {'added p99':>9}")
            print(row("1 burst/s", await measure(server.url, args.slow, 1.0, args.slow)))
            print(row("100 bursts/s", await measure(server.url, args.fast, 100.0, min(args.fast, 1000))))
            filled = await open_runs(bus, args.open)
            print(row(f"100 bursts/s, {args.open:,} runs open", await measure(server.url, args.fast, 100.0, min(args.fast, 1000))))
            await bus.close()

            bus = await Bus().open(server.url, work / "a")  # a restart over the same files
            while bus.orchestrator.rounds < 1:
                await asyncio.sleep(0.01)
            decided, first_round = bus.orchestrator.last_round or (0, 0.0)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await asyncio.sleep(args.idle)
            idle = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
            print()
            print(f"watchdog, {args.open:,} runs open: all decided and dispatched from their data in {filled:.1f} s; "
                  f"the first round after a restart looked at {decided:,} bursts in {first_round:.2f} s; "
                  f"idle CPU {idle * 100:.2f}% over {args.idle:g} s")
            await bus.close()
        finally:
            await server.close()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--site":
        asyncio.run(site(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow", type=int, default=20, help="bursts at 1/s (default 20)")
    parser.add_argument("--fast", type=int, default=1000, help="bursts at 100/s (default 1000)")
    parser.add_argument("--open", type=int, default=10_000, help="open runs for the watchdog (default 10,000)")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle watchdog to measure (default 10)")
    asyncio.run(main(parser.parse_args()))
