"""``burstbus run`` in its own process beside a real nats-server, and real workers: what the
orchestrator's acceptance tests drive. Every process is stopped by its pid at the end.

The test talks to burstbus as its users do: data announcements over NATS request/reply,
the process table and the log through the HTTP API (``/api/processes``, ``/api/log`` with
the token)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import nats

from burstbus.bridges.nats.server import free_port
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
TOKEN = "orchestrator-acceptance-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Procs:
    """Processes a test started; each stopped by its pid (SIGTERM, then SIGKILL) at the end."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(list(args), cwd=REPO, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.started:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


def procs_fixture() -> Iterator[Procs]:
    procs = Procs()
    try:
        yield procs
    finally:
        procs.stop_all()


class Worker:
    """A ``tests/orchestrator/worker.py`` process and its journal."""

    def __init__(self, procs: Procs, root: Path, name: str, *, nats_url: str = "", subject: str = "", http: bool = False,
                 api: str = "", mode: str = "work"):
        self.root = root / name
        self.root.mkdir(parents=True, exist_ok=True)
        self.journal = self.root / "journal.jsonl"
        self.release = self.root / "release"
        self.log = self.root / "worker.log"
        args = [sys.executable, "-m", "tests.orchestrator.worker", "--journal", str(self.journal), "--mode", mode,
                "--release", str(self.release)]
        if nats_url:
            args += ["--nats", nats_url]
        if subject:
            args += ["--subject", subject]
        if http:
            args += ["--http"]
        if api:
            args += ["--api", api, "--token", TOKEN]
        self.proc = procs.start(args, self.log)
        self.port: int | None = None

    async def ready(self) -> Worker:
        def line() -> str | None:
            assert self.proc.poll() is None, self.log.read_text()
            found = [x for x in self.log.read_text().splitlines() if x.startswith("ready ")]
            return found[0] if found else None

        ready = await wait_for(line, f"worker {self.root.name} to be ready")
        if ready != "ready nats":
            self.port = int(ready.split()[1])
        return self

    def entries(self, event: str | None = None) -> list[dict[str, Any]]:
        if not self.journal.exists():
            return []
        lines = [json.loads(x) for x in self.journal.read_text().splitlines() if x.strip()]
        return [x for x in lines if event is None or x["event"] == event]


class Burstbus:
    """``burstbus --config FILE run`` (stopped and started again by the tests)."""

    def __init__(self, procs: Procs, root: Path, nats_url: str, pipelines: str, *, http_port: int | None = None):
        self.procs = procs
        self.root = root
        self.http_port = http_port or free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.config = root / "burstbus.toml"
        self.log = root / "burstbus.log"
        self.config.write_text(f"""
[data]
dir = "{root / 'data'}"

[vtp]
receive_port = {free_port()}
broadcast_port = {free_port()}

[nats]
url = "{nats_url}"

[http]
port = {self.http_port}
token = "{TOKEN}"

{pipelines}
""")
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> Burstbus:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = self.procs.start([sys.executable, "-m", "burstbus.cli", "--config", str(self.config), "run"], self.log, env)

        async def up() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                status, body = await self.get("/healthz")
            except aiohttp.ClientError:
                return False
            parts = body.get("components", {}) if isinstance(body, dict) else {}
            return all(parts.get(name, {}).get("up") for name in ("nats", "orchestrator")) and \
                bool(parts.get("orchestrator", {}).get("caught_up"))

        await wait_for(up, "burstbus to run with NATS and the orchestrator up")
        return self

    def stop(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=60)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)

    async def get(self, path: str) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as session, session.get(self.url + path, headers=AUTH) as response:
            return response.status, await response.json()

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as session, session.post(self.url + path, json=body, headers=AUTH) as response:
            return response.status, await response.json()

    async def processes(self, burst: str) -> list[dict[str, Any]]:
        status, body = await self.get(f"/api/processes?burst_id={burst}&limit=100")
        assert status == 200, body
        return list(body["result"])

    async def events(self, burst: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        after = 0
        while True:
            status, body = await self.get(f"/api/log?stream={burst}&after={after}&limit=500")
            assert status == 200, body
            found += body["result"]
            if body["complete"]:
                return found
            after = body["next_after"]


async def announce(nats_url: str, burst: str, kind: str, *, obs_id: str | None = None, n: int = 0) -> None:
    """A service announcing data over NATS, as it would: request/reply, ACK after the append."""
    body: dict[str, Any] = {"burst_id": burst, "kind": kind, "location": f"file:///vhf/{burst}/{kind}/{n}.dat",
                            "size": 4096, "checksum": "sha256:" + "ab" * 32}
    if obs_id:
        body["obs_id"] = obs_id
    nc = await nats.connect(nats_url)
    try:
        while True:  # burstbus may still be subscribing
            try:
                reply = await nc.request("burstbus.in.data", json.dumps(body).encode(), timeout=10)
            except nats.errors.NoRespondersError:
                await asyncio.sleep(0.1)
                continue
            assert reply.data == b"ACK", reply.data
            return
    finally:
        await nc.close()
