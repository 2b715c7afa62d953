"""Log-append → NATS-subscriber receipt, beside raw nats-py publish → receive of the same messages.

burstbus: events are appended to the SQLite log (``synchronous=FULL``, as the service runs
it); the NATS outbox (:class:`burstbus.bridges.nats.outbound.Outbound`, core NATS, checkpoint
after each confirmed batch) follows the log and publishes them. Reference: nats-py publishing
the very same messages (subjects, headers, payload bytes, taken from the burstbus run's log)
to the same server in the same run. The subscriber is a separate process (the same program
for both), timestamping each message on receipt with the system-wide monotonic clock;
latency is append call (or publish call) → receipt.

* throughput: ``--events`` × each of ``--multiples`` (×1, ×10, ×100: the cost growth) events
  appended in calls of ``--batch`` by 4 concurrent producers, as fast as the log takes them; events/s = events / (first append → last receipt). The appends (SQLite, fsync per
  call) share the process with the outbox, as they do in the service.
* outbound path alone: ``--catchup`` events already in the log when the outbox starts
  (what it does after an outage or at start): log read → JSON → publish → receipt.
* latency: ``--paced`` events one per append at ``--rate`` events/s; p50 / p99.

Goal (issue 20): burstbus throughput ≥ 70% of raw.

    python bench/nats.py [--events 2000] [--multiples 1,10,100] [--catchup 20000] [--batch 100] [--paced 2000] [--rate 500]
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the nats package: keep its own folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402

import nats  # noqa: E402

from burstbus.bridges.nats.confirm import confirm_sent  # noqa: E402
from burstbus.bridges.nats.outbound import EVENT_ID, Outbound, OutMessage, messages_for  # noqa: E402
from burstbus.bridges.nats.server import EmbeddedNatsServer  # noqa: E402
from burstbus.events import Event  # noqa: E402
from burstbus.state import StateStore  # noqa: E402
from burstbus.store.sqlite import SQLiteEventLog  # noqa: E402

PREFIX = "bench"
#: Concurrent appenders in the throughput runs (transports append concurrently; the log
#: commits what is waiting together). ``--producers`` sets it.
APPENDERS = 4


def payload(i: int) -> dict[str, object]:
    """A realistic small event: a pipeline status with a log excerpt (~300 bytes as JSON)."""
    return {
        "process": f"eclairs-loc-{i % 50}",
        "burst_id": f"sb2611{i % 9999:04d}",
        "obs_id": str(i % 7),
        "pass_id": "1",
        "pipeline": "eclairs",
        "status": ("queued", "running", "complete")[i % 3],
        "log": f"step {i}: reading L1 products, attitude ok, {i * 7 % 1000} photons selected\n",
    }


# -- the subscriber (a child process) --------------------------------------------------------


async def subscriber(url: str, subject: str, count: int) -> None:
    nc = await nats.connect(url, pending_size=1 << 30)
    got: dict[str, int] = {}
    done = asyncio.Event()

    async def on_msg(msg: nats.aio.msg.Msg) -> None:
        got[(msg.headers or {})[EVENT_ID]] = time.monotonic_ns()
        if len(got) >= count:
            done.set()

    await nc.subscribe(subject, cb=on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
    await confirm_sent(nc, 30)  # the server has the SUB before the publishers start
    print("ready", flush=True)
    await done.wait()
    await nc.close()
    print(json.dumps(got), flush=True)


class Receiver:
    """The subscriber process for one run."""

    async def start(self, url: str, count: int) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--subscribe", url, f"{PREFIX}.events.>", str(count),
            stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        assert line.strip() == b"ready", line

    async def receipts(self) -> dict[str, int]:
        assert self.proc.stdout is not None
        out = await self.proc.stdout.read()
        await self.proc.wait()
        return {k: int(v) for k, v in json.loads(out).items()}


# -- the two publishers ---------------------------------------------------------------------


class Paced:
    """Yields when the next call is due (rate None: at once)."""

    def __init__(self, rate: float | None):
        self.rate = rate
        self.start = time.monotonic()
        self.n = 0

    async def wait(self) -> None:
        if self.rate:
            delay = self.start + self.n / self.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        self.n += 1


async def run_burstbus(
    url: str, work: Path, total: int, batch: int, rate: float | None, *, prefill: bool = False
) -> tuple[dict[str, int], dict[str, int], list[OutMessage]]:
    """Append, let the outbox publish; returns (sent times, receipt times, the messages).

    ``prefill``: the log holds every event before the outbox starts (its catch-up: the
    outbound path alone); sent time = when the outbox started."""
    log = await SQLiteEventLog.open(work / "log.sqlite")
    state = await StateStore.open(work / "state.sqlite")
    nc = await nats.connect(url)
    receiver = Receiver()
    await receiver.start(url, total)
    outbound = Outbound(nc, log, state, origin="bench", prefix=PREFIX)
    sent: dict[str, int] = {}
    # The producers' events exist before the clock starts, as the raw side's messages do.
    calls = [[Event("process.status", payload(i), stream="bench", actor="bench") for i in range(start, min(start + batch, total))]
             for start in range(0, total, batch)]
    task = None if prefill else asyncio.create_task(outbound.run())
    pace = Paced(rate)

    async def producer(mine: list[list[Event]]) -> None:
        for events in mine:
            await pace.wait()
            now = time.monotonic_ns()
            for e in events:
                sent[e.id] = now
            await log.append(events)

    try:
        producers = 1 if rate else APPENDERS
        await asyncio.gather(*(producer(calls[k::producers]) for k in range(producers)))
        if prefill:
            now = time.monotonic_ns()
            sent = dict.fromkeys(sent, now)
            task = asyncio.create_task(outbound.run())
        receipts = await receiver.receipts()
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    records = await log.read()
    messages = [m for r in records for m in messages_for(r, prefix=PREFIX, origin="bench")]
    await nc.close()
    await state.close()
    await log.close()
    return sent, receipts, messages


async def append_alone(work: Path, total: int, batch: int) -> float:
    """The log alone (no NATS): the ceiling of the end-to-end run in this process."""
    log = await SQLiteEventLog.open(work / "log.sqlite")
    calls = [[Event("process.status", payload(i), stream="bench", actor="bench") for i in range(start, min(start + batch, total))]
             for start in range(0, total, batch)]

    async def producer(mine: list[list[Event]]) -> None:
        for events in mine:
            await log.append(events)

    started = time.perf_counter()
    await asyncio.gather(*(producer(calls[k::APPENDERS]) for k in range(APPENDERS)))
    elapsed = time.perf_counter() - started
    await log.close()
    return total / elapsed


async def run_raw(url: str, messages: Sequence[OutMessage], batch: int, rate: float | None) -> tuple[dict[str, int], dict[str, int]]:
    """nats-py: publish the same messages in the same groups; flush at the end."""
    nc = await nats.connect(url)
    receiver = Receiver()
    await receiver.start(url, len(messages))
    sent: dict[str, int] = {}
    pace = Paced(rate)
    for start in range(0, len(messages), batch):
        await pace.wait()
        now = time.monotonic_ns()
        for m in messages[start:start + batch]:
            sent[m.headers[EVENT_ID]] = now
            await nc.publish(m.subject, m.payload, headers=m.headers)
        if rate:
            await nc.flush()  # paced: each message goes out now, as the outbox's would
    await nc.flush()
    receipts = await receiver.receipts()
    await nc.close()
    return sent, receipts


def summary(sent: dict[str, int], receipts: dict[str, int]) -> tuple[float, float, float]:
    """(events/s first send → last receipt, p50 ms, p99 ms)."""
    assert set(receipts) == set(sent), f"{len(set(sent) - set(receipts))} messages not received"
    latencies = sorted((receipts[k] - sent[k]) / 1e6 for k in sent)
    elapsed = (max(receipts.values()) - min(sent.values())) / 1e9
    quantiles = statistics.quantiles(latencies, n=100)
    return len(sent) / elapsed, quantiles[49], quantiles[98]


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedNatsServer(Path(tmp) / "server", port=0, jetstream=False)
        await server.start()
        try:
            rows = []
            for multiple in args.multiples:
                total = args.events * multiple
                sent, got, messages = await run_burstbus(server.url, Path(tmp) / f"t{multiple}", total, args.batch, None)
                ours = summary(sent, got)
                raw = summary(*await run_raw(server.url, messages, args.batch, None))
                rows.append((f"throughput (×{multiple}): {total:,} events appended in calls of {args.batch} by {APPENDERS} producers,"
                             " published as they commit", ours, raw))
            sent, got, messages = await run_burstbus(server.url, Path(tmp) / "c", args.catchup, args.batch, None, prefill=True)
            caught = summary(sent, got)
            raw = summary(*await run_raw(server.url, messages, args.batch, None))
            rows.append((f"outbound path alone: {args.catchup:,} events already in the log (catch-up)", caught, raw))
            alone = await append_alone(Path(tmp) / "a", args.catchup, args.batch)
            sent, got, messages = await run_burstbus(server.url, Path(tmp) / "p", args.paced, 1, args.rate)
            ours_paced = summary(sent, got)
            raw_paced = summary(*await run_raw(server.url, messages, 1, args.rate))
            rows.append((f"latency: {args.paced:,} events one per append at {args.rate:g}/s", ours_paced, raw_paced))
        finally:
            server.stop()
    print("| run | burstbus events/s | raw nats-py msg/s | ratio (goal ≥ 70% for throughput) | burstbus p50 / p99 ms | raw p50 / p99 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (rate, p50, p99), (raw_rate, raw_p50, raw_p99) in rows:
        ours_latency = "—" if name.startswith("outbound path alone") else f"{p50:.2f} / {p99:.2f}"
        print(f"| {name} | {rate:,.0f} | {raw_rate:,.0f} | {rate / raw_rate:.0%} | {ours_latency} | {raw_p50:.2f} / {raw_p99:.2f} |")
    print(f"| (log append alone, no NATS, {args.catchup:,} events: the ceiling of the throughput rows) | {alone:,.0f} | | | | |")
    print("\nburstbus: SQLite log (synchronous=FULL) → NATS outbox (core NATS, checkpoint per confirmed batch);"
          " raw: nats-py publish of the same messages; one nats-server, subscriber in its own process.")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--subscribe":
        asyncio.run(subscriber(sys.argv[2], sys.argv[3], int(sys.argv[4])))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000, help="throughput events at ×1")
    parser.add_argument("--multiples", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10, 100])
    parser.add_argument("--catchup", type=int, default=20_000, help="events in the log before the outbox starts")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--paced", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--producers", type=int, default=APPENDERS, help="concurrent appenders in the throughput runs")
    arguments = parser.parse_args()
    APPENDERS = arguments.producers
    asyncio.run(main(arguments))
