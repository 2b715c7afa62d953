"""HTTP API throughput and tail latency over a 1,000,000-notice archive, against direct SQL.

Builds (or reuses) the synthetic log of ``bench/rebuild.py`` and its projections in ``--dir``
(default ``bench/out/http``, kept for the next run), serves ``make_app`` from a separate
process (so the load generator does not share its interpreter), and drives two voeventdb
queries with 1, 8 and 32 concurrent clients for a few seconds each:

* ``count`` with a 1-degree cone at a random position (``/apiv1/count?cone=[ra,dec,1]``);
* ``list/ivorn`` of one stream, newest first, a page of 100 at a random offset below 10,000
  (``/apiv1/list/ivorn?stream=S&order=-id&limit=100&offset=K``), as a client pages through.

Reference column: the same query through the same query helpers as direct SQL on the
projection file with ``sqlite3``, with as many threads (each its own connection) as clients.

    python bench/http_api.py                          # 1,000,000 events in bench/out/http
    python bench/http_api.py --events 100000 --seconds 3
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import aiohttp

from burstbus.store.projections.runner import ProjectionRunner
from burstbus.store.read import voeventdb as vdb

HERE = os.path.dirname(os.path.abspath(__file__))

# bench/rebuild.py's generator and projection list, loaded by path (bench is not a package).
_spec = importlib.util.spec_from_file_location("bench_rebuild", os.path.join(HERE, "rebuild.py"))
assert _spec is not None and _spec.loader is not None
rebuild = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rebuild)
build_log, projections = rebuild.build_log, rebuild.projections

STREAMS = ["nasa.gsfc.gcn/SWIFT", "nasa.gsfc.gcn/Fermi", "org.svom/ECLAIRs", "org.svom/MXT"]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100.0 * len(ordered)) - 1))]


# -- the archive -------------------------------------------------------------------------


async def prepare(workdir: Path, events: int, seed: int) -> int:
    """The log with ``events`` notices and projections level with it (built once, then reused)."""
    log = await build_log(workdir / "log.sqlite", events, 5000, seed)
    try:
        head = (await log.head()).seq
        runner = await ProjectionRunner.open(workdir / "projections.sqlite", projections())
        try:
            points = {c.name: c.seq for c in await runner.checkpoints()}
            behind = min((points.get(p.name, 0) for p in runner.projections), default=0)
            if behind == 0 and head > 0:
                print(f"projections: rebuilding from {head:,} events ...", flush=True)
                started = time.perf_counter()
                await runner.rebuild(log)
                print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)
            elif behind < head:
                print(f"projections: catching up {head - behind:,} events ...", flush=True)
                await runner.catch_up(log)
            else:
                print(f"projections: reusing {workdir / 'projections.sqlite'} (at seq {behind:,})")
        finally:
            await runner.close()
        return head
    finally:
        await log.close()


# -- the server (a child process) --------------------------------------------------------


async def serve(workdir: Path) -> None:
    from aiohttp import web

    from burstbus.bridges.http import make_app
    from burstbus.store.sqlite import SQLiteEventLog

    log = await SQLiteEventLog.open(workdir / "log.sqlite", synchronous="NORMAL")
    app = make_app(log, workdir / "projections.sqlite")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    print(json.dumps({"url": f"http://{host}:{port}"}), flush=True)
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes it
    finally:
        await runner.cleanup()
        await log.close()


# -- the load ----------------------------------------------------------------------------


class Queries:
    """Random query parameters, the same sequence for HTTP and SQL."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.lock = threading.Lock()

    def cone(self) -> tuple[float, float, float]:
        with self.lock:
            return (round(self.rng.uniform(0.0, 360.0), 4),
                    round(math.degrees(math.asin(self.rng.uniform(-1.0, 1.0))), 4), 1.0)  # fmt: skip

    def page(self) -> tuple[str, int]:
        with self.lock:
            return self.rng.choice(STREAMS), self.rng.randrange(0, 100) * 100


def http_path(kind: str, queries: Queries) -> str:
    if kind == "count":
        ra, dec, r = queries.cone()
        return f"/apiv1/count?cone=[{ra},{dec},{r}]"
    stream, offset = queries.page()
    return f"/apiv1/list/ivorn?stream={stream}&order=-id&limit=100&offset={offset}"


def sql_query(kind: str, queries: Queries) -> Callable[[sqlite3.Connection], object]:
    if kind == "count":
        cone = queries.cone()
        return lambda conn: vdb.count(conn, vdb.Filters(cone=cone))
    stream, offset = queries.page()
    return lambda conn: vdb.list_ivorns(conn, vdb.Filters(stream=stream), "-id", 100, offset)


async def http_load(url: str, kind: str, clients: int, seconds: float, seed: int) -> tuple[float, list[float], int]:
    queries = Queries(seed)
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(min(clients, 4)):  # warm the connections and the server's statement caches
            async with session.get(url + http_path(kind, queries)) as response:
                await response.read()
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                path = http_path(kind, queries)
                started = time.perf_counter()
                async with session.get(url + path) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies, errors


def sql_load(path: Path, kind: str, clients: int, seconds: float, seed: int) -> tuple[float, list[float]]:
    queries = Queries(seed)
    latencies: list[float] = []
    lock = threading.Lock()
    uri = path.resolve().as_uri() + "?mode=ro"
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        sql_query(kind, queries)(conn)  # warm
        mine = []
        while time.perf_counter() < deadline:
            query = sql_query(kind, queries)
            started = time.perf_counter()
            query(conn)
            mine.append(time.perf_counter() - started)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies) / (time.perf_counter() - started), latencies


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="notices in the archive (default 1,000,000)")
    parser.add_argument("--dir", type=Path, default=Path(HERE) / "out" / "http", help="working directory, kept for reruns")
    parser.add_argument("--clients", default="1,8,32", help="concurrent clients, comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.serve:
        await serve(args.dir)
        return 0

    total = await prepare(args.dir, args.events, args.seed)
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--dir", str(args.dir)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    rows = []
    try:
        assert server.stdout is not None
        url = json.loads(server.stdout.readline())["url"]
        levels = [int(n) for n in args.clients.split(",")]
        for kind in ("count", "list"):
            for clients in levels:
                rate, latencies, errors = await http_load(url, kind, clients, args.seconds, args.seed)
                sql_rate, sql_latencies = await asyncio.to_thread(
                    sql_load, args.dir / "projections.sqlite", kind, clients, args.seconds, args.seed
                )
                rows.append((kind, clients, rate, percentile(latencies, 50), percentile(latencies, 99), errors,
                             sql_rate, percentile(sql_latencies, 50), percentile(sql_latencies, 99)))  # fmt: skip
                print(f"  {kind} x{clients}: {rate:,.0f} req/s, p99 {percentile(latencies, 99) * 1000:.1f} ms "
                      f"(SQL {sql_rate:,.0f} q/s)", flush=True)  # fmt: skip
    finally:
        if server.stdin:
            server.stdin.close()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    names = {
        "count": "`/apiv1/count?cone=[ra,dec,1]`",
        "list": "`/apiv1/list/ivorn?stream=S&order=-id&limit=100&offset=K`",
    }
    print()
    print(f"## bench/http_api.py: {total:,} notices, {args.seconds:g} s per cell, {os.cpu_count()} CPUs (server in its own process)")
    print()
    print("| query | clients | HTTP req/s | HTTP p50 ms | HTTP p99 ms | errors | direct SQL q/s | SQL p50 ms | SQL p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, clients, rate, p50, p99, errors, sql_rate, sql_p50, sql_p99 in rows:
        print(f"| {names[kind]} | {clients} | {rate:,.0f} | {p50 * 1000:.2f} | {p99 * 1000:.2f} | {errors} | "
              f"{sql_rate:,.0f} | {sql_p50 * 1000:.2f} | {sql_p99 * 1000:.2f} |")  # fmt: skip
    return 0 if all(row[5] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
