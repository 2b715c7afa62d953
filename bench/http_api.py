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
Goal (issue 20): ``count``, 1 client, at least half the direct rate.

The server is the service's: :func:`~burstbus.bridges.http.server.start` (the connection
class with its time limits) and ``burstbus run``'s logging at INFO (written to
``DIR/server.log``), so aiohttp's access log costs here what it costs in the service. It is
measured once its startup walk of the hash chain (the audit page's, ~11 s on a million
events, in a low-priority child process) is done. The clients are a minimal keep-alive
HTTP/1.1 client (``raw``: microseconds a request, so the figure is the server's); one more
row gives ``count`` with 1 aiohttp client, a heavier client whose own time per request adds
to the server's. Growth: ``count`` with 1 client over archives of 1% and 10% of
``--events`` too (kept in ``DIR-N``).

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
    """The child: ``make_app`` behind the service's own server (:func:`~burstbus.bridges.http.
    server.start`, its connection limits) and ``burstbus run``'s logging (INFO, to a file here)."""
    import logging

    from burstbus.bridges.http import make_app
    from burstbus.bridges.http.server import start
    from burstbus.bridges.http.ui import VERIFIER
    from burstbus.store.sqlite import SQLiteEventLog

    logging.basicConfig(level=logging.INFO, filename=str(workdir / "server.log"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    log = await SQLiteEventLog.open(workdir / "log.sqlite", synchronous="NORMAL")
    app = make_app(log, workdir / "projections.sqlite")
    served = await start(app, "127.0.0.1", 0)
    verifier = app[VERIFIER]
    started = time.perf_counter()
    while verifier.state is None:  # the startup walk of the hash chain (a low-priority child process)
        await asyncio.sleep(0.2)
    logging.getLogger("bench").info("startup chain walk done in %.1f s", time.perf_counter() - started)
    host, port = served.addresses[0]
    print(json.dumps({"url": f"http://{host}:{port}"}), flush=True)
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes it
    finally:
        await served.cleanup()
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


async def raw_load(url: str, kind: str, clients: int, seconds: float, seed: int) -> tuple[float, list[float], int]:
    """``clients`` keep-alive connections, each sending its next GET when the previous answer
    is read: a minimal HTTP/1.1 client (a few µs a request), so the figure is the server's."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    queries = Queries(seed)
    latencies: list[float] = []
    errors = 0

    async def get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> int:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = next(int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
        await reader.readexactly(length)
        return status

    connections = [await asyncio.open_connection(host, int(port)) for _ in range(clients)]
    for reader, writer in connections[:4]:  # warm the server's statement caches
        await get(reader, writer, http_path(kind, queries))
    deadline = time.perf_counter() + seconds

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            path = http_path(kind, queries)
            started = time.perf_counter()
            if await get(reader, writer, path) != 200:
                errors += 1
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client(r, w) for r, w in connections))
    elapsed = time.perf_counter() - started
    for _, writer in connections:
        writer.close()
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


GOAL = 0.5  # count, 1 client: HTTP req/s >= half the direct SQL q/s (issue 20)

Row = tuple[str, str, int, float, list[float], int, float, list[float]]


class Server:
    """``make_app`` over ``workdir`` in a child process (this file with ``--serve``)."""

    def __init__(self, workdir: Path):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", "--dir", str(workdir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.url = json.loads(self.proc.stdout.readline())["url"]

    def stop(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def cell(server: Server, workdir: Path, kind: str, clients: int, seconds: float, seed: int,
               client: str = "raw") -> Row:  # fmt: skip
    load = raw_load if client == "raw" else http_load
    rate, latencies, errors = await load(server.url, kind, clients, seconds, seed)
    sql_rate, sql_latencies = await asyncio.to_thread(sql_load, workdir / "projections.sqlite", kind, clients,
                                                      seconds, seed)  # fmt: skip
    print(f"  {kind} x{clients} ({client} client): {rate:,.0f} req/s, p99 {percentile(latencies, 99) * 1000:.1f} ms "
          f"(SQL {sql_rate:,.0f} q/s)", flush=True)  # fmt: skip
    return kind, client, clients, rate, latencies, errors, sql_rate, sql_latencies


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="notices in the archive (default 1,000,000)")
    parser.add_argument("--dir", type=Path, default=Path(HERE) / "out" / "http", help="working directory, kept for reruns")
    parser.add_argument("--clients", default="1,8,32", help="concurrent clients, comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--growth", default="0.01,0.1",
                        help="smaller archives (fractions of --events, kept in DIR-N) for count x1; '' for none")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.serve:
        await serve(args.dir)
        return 0

    rows: list[Row] = []
    growth: list[tuple[int, Row]] = []
    sizes = [round(args.events * float(f)) for f in args.growth.split(",") if f.strip()]
    for events in sizes:
        workdir = args.dir.with_name(f"{args.dir.name}-{events}")
        workdir.mkdir(parents=True, exist_ok=True)
        total = await prepare(workdir, events, args.seed)
        server = Server(workdir)
        try:
            growth.append((total, await cell(server, workdir, "count", 1, args.seconds, args.seed)))
        finally:
            server.stop()
    total = await prepare(args.dir, args.events, args.seed)
    server = Server(args.dir)
    try:
        levels = [int(n) for n in args.clients.split(",")]
        for kind in ("count", "list"):
            for clients in levels:
                rows.append(await cell(server, args.dir, kind, clients, args.seconds, args.seed))
        rows.append(await cell(server, args.dir, "count", 1, args.seconds, args.seed, client="aiohttp"))
    finally:
        server.stop()
    growth.append((total, rows[0]))

    names = {
        "count": "`/apiv1/count?cone=[ra,dec,1]`",
        "list": "`/apiv1/list/ivorn?stream=S&order=-id&limit=100&offset=K`",
    }
    print()
    print(f"## bench/http_api.py: {total:,} notices, {args.seconds:g} s per cell, {os.cpu_count()} CPUs "
          "(server in its own process, after its startup chain walk)")  # fmt: skip
    print()
    print("| query | client | clients | HTTP req/s | HTTP p50 ms | HTTP p99 ms | errors | direct SQL q/s | SQL p50 ms "
          "| SQL p99 ms | HTTP / SQL | goal |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for kind, client, clients, rate, lat, errors, sql_rate, sql_lat in rows:
        goal = f">= {GOAL:.0%}" if kind == "count" and clients == 1 else ""
        print(f"| {names[kind]} | {client} | {clients} | {rate:,.0f} | {percentile(lat, 50) * 1000:.2f} | "
              f"{percentile(lat, 99) * 1000:.2f} | {errors} | {sql_rate:,.0f} | {percentile(sql_lat, 50) * 1000:.2f} | "
              f"{percentile(sql_lat, 99) * 1000:.2f} | {rate / sql_rate:.0%} | {goal} |")  # fmt: skip
    print()
    print("Growth: count with a 1-degree cone, 1 client (raw), by archive size")
    print()
    print("| notices | load | HTTP req/s | HTTP p99 ms | direct SQL q/s | HTTP / SQL |")
    print("|---|---|---|---|---|---|")
    for events, (_, _, _, rate, lat, _, sql_rate, _) in growth:
        print(f"| {events:,} | x{events / growth[0][0]:g} | {rate:,.0f} | {percentile(lat, 99) * 1000:.2f} | "
              f"{sql_rate:,.0f} | {rate / sql_rate:.0%} |")  # fmt: skip
    return 0 if all(row[5] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
