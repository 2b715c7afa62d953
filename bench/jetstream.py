"""The JetStream event log's append (R1 and 3-node R3), beside raw JetStream publish with acks.

burstbus: :class:`burstbus.store.jetstream.JetStreamEventLog` ``append`` of one event per call
by ``C`` concurrent appenders (as the transports and handlers use the log: one call per
received notice), ``--events`` × multiple events; events/s = events / (first call → last
confirmed append). Every append is hash-chained and checked against the stream's head and the
id's earlier record (see the module's docstring: the publishes of the log are serialised).
Reference in the same run: nats-py ``js.publish`` (waits for each ack) of the same payload
bytes and ``Nats-Msg-Id`` headers, to a stream of the same configuration (same subjects
filter, file storage, replicas, ``deny_delete``/``deny_purge``, ``allow_direct``), by the same
number of concurrent publishers. Each measurement gets a fresh stream.

* R1: one nats-server (``-js``, loopback, temp store).
* R3: a 3-node nats-server cluster on loopback (free client and route ports, one temp store
  each), started by the test harness (``tests/nats/test_cluster.py``); the client connects to
  all three seeds.
* Cost growth: each cell at ×1, ×10, ×100 of ``--events``.

Goal (issue 20): burstbus ≥ 50% of raw, R1 and R3.

    python bench/jetstream.py [--events 100] [--concurrency 1,16] [--multiples 1,10,100]
"""

from __future__ import annotations

import sys
from pathlib import Path

# The repository root (for the tests' cluster harness), not this folder, on the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import itertools  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Awaitable, Callable, Sequence  # noqa: E402

import nats  # noqa: E402
from nats.aio.client import Client as NATS  # noqa: E402
from nats.js.api import StorageType, StreamConfig  # noqa: E402

from burstbus.bridges.nats.server import EmbeddedNatsServer  # noqa: E402
from burstbus.events import GENESIS_HASH, Event  # noqa: E402
from burstbus.store.jetstream import _payload, id_token, type_tokens  # noqa: E402
from tests.nats.conftest import Servers  # noqa: E402
from tests.nats.test_cluster import open_log, replicas_current, start_cluster  # noqa: E402
from tests.waiting import wait_for  # noqa: E402

PREFIX = "bench"
_names = itertools.count(1)


def event(i: int) -> Event:
    """A realistic small event: a pipeline status with a log excerpt (~300 bytes as JSON)."""
    return Event("process.status", {
        "process": f"eclairs-loc-{i % 50}", "burst_id": f"sb2611{i % 9999:04d}", "obs_id": str(i % 7), "pass_id": "1",
        "pipeline": "eclairs", "status": ("queued", "running", "complete")[i % 3],
        "log": f"step {i}: reading L1 products, attitude ok, {i * 7 % 1000} photons selected\n",
    }, stream="bench", actor="bench")


def raw_message(i: int, e: Event) -> tuple[str, bytes, dict[str, str]]:
    """The subject, payload bytes and headers the log would publish for ``e`` at seq ``i + 1``."""
    payload = _payload(i + 1, e, e.data_json(), e.occurred_at, GENESIS_HASH, "0" * 64)
    return f"{PREFIX}.log.{id_token(e.id)}.{type_tokens(e.type)}", payload, {"Nats-Msg-Id": e.id}


async def drive(total: int, concurrency: int, one: Callable[[int], Awaitable[object]]) -> float:
    """``total`` calls of ``one(i)`` by ``concurrency`` workers; calls per second."""
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            await one(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)


async def run_log(seeds: list[str], replicas: int, total: int, concurrency: int) -> float:
    name = f"BENCH_LOG_{next(_names)}"
    event_log = await wait_for(lambda: open_log(seeds, stream=name, replicas=replicas), "the stream")
    try:
        if replicas > 1:
            await wait_for(lambda: replicas_current(event_log), "three current replicas")
        events = [event(i) for i in range(total)]
        rate = await drive(total, concurrency, lambda i: event_log.append([events[i]]))
        head = await event_log.head()
        assert head.seq == total, f"{head.seq} records for {total} appends"
        return rate
    finally:
        await event_log.js.delete_stream(name)
        await event_log.close()


async def run_raw(nc: NATS, replicas: int, total: int, concurrency: int) -> float:
    name = f"BENCH_RAW_{next(_names)}"
    js = nc.jetstream(timeout=10.0)
    await js.add_stream(StreamConfig(
        name=name, subjects=[f"{PREFIX}.raw{name}.log.>"], storage=StorageType.FILE, num_replicas=replicas,
        deny_delete=True, deny_purge=True, allow_direct=True, duplicate_window=120.0,
    ))
    try:
        messages = [raw_message(i, event(i)) for i in range(total)]
        messages = [(s.replace(f"{PREFIX}.log.", f"{PREFIX}.raw{name}.log.", 1), p, h) for s, p, h in messages]

        async def one(i: int) -> object:
            subject, payload, headers = messages[i]
            return await js.publish(subject, payload, headers=headers)

        rate = await drive(total, concurrency, one)
        info = await js.stream_info(name)
        assert info.state.messages == total
        return rate
    finally:
        await js.delete_stream(name)


async def measure(seeds: list[str], label: str, replicas: int, args: argparse.Namespace,
                  rows: list[tuple[str, int, int, float, float]]) -> None:
    nc = await nats.connect(seeds)
    try:
        for concurrency in args.concurrency:
            for multiple in args.multiples:
                total = args.events * multiple
                ours = await run_log(seeds, replicas, total, concurrency)
                raw = await run_raw(nc, replicas, total, concurrency)
                rows.append((label, concurrency, total, ours, raw))
                print(f"  {label} c={concurrency} {total:,}: {ours:,.0f} vs {raw:,.0f}", file=sys.stderr, flush=True)
    finally:
        await nc.close()


async def main(args: argparse.Namespace) -> None:
    rows: list[tuple[str, int, int, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        registry = Servers(Path(tmp))
        try:
            if "R1" in args.replicas:
                single = registry.track(EmbeddedNatsServer(Path(tmp) / "r1", port=0))
                await single.start()
                await measure([single.url], "R1", 1, args, rows)
                single.stop()
            if "R3" in args.replicas:
                nodes = await start_cluster(registry, Path(tmp) / "r3")
                await measure([n.url for n in nodes], "R3", 3, args, rows)
        finally:
            registry.stop_all()
    print("| replicas | concurrent appenders | events (× load) | burstbus append events/s | raw js.publish msg/s | ratio | goal |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, concurrency, total, ours, raw in rows:
        print(f"| {label} | {concurrency} | {total:,} (×{total // args.events}) | {ours:,.0f} | {raw:,.0f} | {ours / raw:.0%} | ≥ 50% |")
    print("\nburstbus: JetStreamEventLog.append, one event per call; raw: nats-py js.publish (awaits each ack) of the"
          " same payloads and Nats-Msg-Id, same stream config; nats-server on loopback, R3 = 3-node cluster.")


def _ints(text: str) -> Sequence[int]:
    return [int(x) for x in text.split(",")]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100, help="events at ×1")
    parser.add_argument("--concurrency", type=_ints, default=[1, 16], help="concurrent appenders, comma-separated")
    parser.add_argument("--multiples", type=_ints, default=[1, 10, 100], help="load multiples, comma-separated")
    parser.add_argument("--replicas", type=lambda s: s.split(","), default=["R1", "R3"])
    asyncio.run(main(parser.parse_args()))
