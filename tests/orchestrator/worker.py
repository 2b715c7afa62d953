"""A small real pipeline worker for the orchestrator's acceptance tests, in its own process.

It takes processing requests the way a science centre's pipeline would — a NATS request on
its subject (``--nats URL --subject S``), or an HTTP POST (``--http``: it listens on a free
port on 127.0.0.1 and prints ``ready <port>``) — and answers at once, then does the work
in the background: ``running``, one product per kind the request says it ``produces``
(``data.available`` with ``produced_by`` = the request id), ``complete``. It reports back
to burstbus over NATS (``burstbus.in.process`` / ``burstbus.in.data``, request/reply) or,
with ``--api URL --token T``, over HTTP (``POST /api/processes/status``, ``/api/data``),
re-sending each message until burstbus answers ``ACK`` / 2xx (burstbus may be restarting).

The request id is its idempotency key: a request it already has is answered again and not
worked twice. Every request received is appended to ``--journal`` as a JSON line
(``{"request_id", "attempt", "pipeline", "burst_id", "event": "received"|"worked"}``).

Modes (``--mode``): ``work`` (the above), ``silent`` (answer ACK, then never a word),
``fail`` (``running``, then ``failed`` with a log), ``hold`` (record the request, answer
only once the file ``--release`` exists, then work).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import nats
from aiohttp import web


class Worker:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.nc: Any = None
        self.session: aiohttp.ClientSession | None = None
        self.known: set[str] = set()
        self.journal = Path(args.journal)
        self.tasks: set[asyncio.Task[None]] = set()

    def note(self, payload: dict[str, Any], event: str) -> None:
        line = {"event": event, **{k: payload.get(k) for k in ("request_id", "attempt", "pipeline", "burst_id", "obs_id")}}
        with open(self.journal, "a") as handle:
            handle.write(json.dumps(line) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    async def take(self, payload: dict[str, Any]) -> str:
        """One request: noted, answered; worked once per request id."""
        self.note(payload, "received")
        if self.args.mode == "hold":
            while not Path(self.args.release).exists():
                await asyncio.sleep(0.05)
        request = str(payload["request_id"])
        if request in self.known:
            return f"ACK already have {request}"
        self.known.add(request)
        task = asyncio.create_task(self.work(payload))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return f"ACK {request}"

    async def work(self, payload: dict[str, Any]) -> None:
        if self.args.mode == "silent":
            return
        ids = {k: payload.get(k) for k in ("process", "burst_id", "obs_id", "pass_id", "pipeline", "request_id")}
        ids = {k: v for k, v in ids.items() if v is not None}
        await self.report("status", {**ids, "status": "running", "version": "worker-1.0", "log": "starting\n"})
        if self.args.mode == "fail":
            await self.report("status", {**ids, "status": "failed", "log": "reading inputs\nIOError: attitude file truncated\n"})
            self.note(payload, "worked")
            return
        for n, kind in enumerate(payload.get("produces") or ()):
            await self.report("data", {
                "burst_id": payload["burst_id"], "obs_id": payload.get("obs_id"), "kind": kind,
                "location": f"file:///products/{payload['burst_id']}/{payload['request_id']}/{n}.fits",
                "size": 1000 + n, "checksum": "sha256:" + format(abs(hash(kind)), "x").rjust(16, "0")[:16] * 4,
                "produced_by": payload["request_id"], "version": "worker-1.0",
            })
        await self.report("status", {**ids, "status": "complete", "version": "worker-1.0", "log": "done\n"})
        self.note(payload, "worked")

    async def report(self, what: str, body: dict[str, Any]) -> None:
        raw = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
        while True:
            try:
                if self.args.api:
                    assert self.session is not None
                    path = "/api/processes/status" if what == "status" else "/api/data"
                    async with self.session.post(self.args.api + path, data=raw,
                                                 headers={"Authorization": f"Bearer {self.args.token}"}) as response:
                        if response.status in (200, 201):
                            return
                        if response.status == 422:
                            raise SystemExit(f"refused: {await response.text()}")
                else:
                    subject = "burstbus.in.process" if what == "status" else "burstbus.in.data"
                    reply = await self.nc.request(subject, raw, timeout=5)
                    if reply.data == b"ACK":
                        return
                    raise SystemExit(f"refused: {reply.data!r}")
            except (aiohttp.ClientError, nats.errors.Error, TimeoutError, OSError):
                pass  # burstbus is down or restarting: send it again
            await asyncio.sleep(0.2)

    async def on_nats(self, msg: Any) -> None:
        answer = await self.take(json.loads(msg.data))
        try:
            await msg.respond(answer.encode())
        except Exception:
            pass  # the requester is gone (killed): it will ask again

    async def on_http(self, request: web.Request) -> web.Response:
        payload = await request.json()
        assert request.headers.get("Idempotency-Key") == payload["request_id"]
        return web.json_response({"receipt": await self.take(payload)}, status=202)

    async def run(self) -> None:
        self.session = aiohttp.ClientSession()
        if self.args.nats:
            self.nc = await nats.connect(self.args.nats, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        if self.args.subject:
            async def spawn(msg: Any) -> None:  # one task per request: a held one holds no other
                task = asyncio.create_task(self.on_nats(msg))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

            await self.nc.subscribe(self.args.subject, cb=spawn)
            await self.nc.flush()
            print("ready nats", flush=True)
        if self.args.http:
            app = web.Application()
            app.router.add_post("/run", self.on_http)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            print(f"ready {runner.addresses[0][1]}", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nats", default="")
    parser.add_argument("--subject", default="")
    parser.add_argument("--http", action="store_true")
    parser.add_argument("--api", default="")
    parser.add_argument("--token", default="")
    parser.add_argument("--mode", default="work", choices=["work", "silent", "fail", "hold"])
    parser.add_argument("--release", default="")
    parser.add_argument("--journal", required=True)
    args = parser.parse_args()
    try:
        asyncio.run(Worker(args).run())
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
