"""``burstbus demo``'s pipelines and the small real worker that runs them over NATS.

Why a real worker and not recorded statuses: the demo shows the orchestrator doing its job —
data announcements start pipelines, the worker answers the NATS processing request, reports
``running``, announces its products and ``complete`` (over ``<prefix>.in.process`` and
``<prefix>.in.data``, request/reply, as a pipeline would), the products start the next
stage, and the graph on each burst page fills. Two pipelines misbehave on purpose:
``vt-afterglow`` fails its first attempt (and is retried), ``grm-lightcurve`` never says a
word after accepting (it vanishes, is retried once, vanishes again and is given up).

The worker uses request ids as its idempotency key: a request it already has is answered
and not worked twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import nats

log = logging.getLogger(__name__)

SUBJECT_PREFIX = "burstbus.demo.pipelines"
#: What services announce in the demo (``[orchestrator] data_kinds``).
DATA_KINDS = ("vhf.eclairs", "vhf.attitude", "vhf.mxt", "vhf.vt", "vhf.grm")


def pipelines() -> list[dict[str, Any]]:
    """The demo's ``[[pipelines]]`` (used when the configuration has none)."""
    def nats_subject(name: str) -> str:
        return f"{SUBJECT_PREFIX}.{name}"

    return [
        {"name": "eclairs-loc", "needs": ("vhf.eclairs", "vhf.attitude"), "produces": ("Q1.TT_ECL",),
         "nats_subject": nats_subject("eclairs-loc"), "timeout": 120.0, "parameters": {"threshold": "6.5"}},
        {"name": "mxt-loc", "needs": ("vhf.mxt",), "scope": "observation", "produces": ("Q1.MXT_LOC",),
         "nats_subject": nats_subject("mxt-loc"), "timeout": 120.0},
        {"name": "burst-summary", "needs": ("Q1.TT_ECL", "Q1.MXT_LOC"), "produces": ("summary.report",),
         "nats_subject": nats_subject("burst-summary"), "timeout": 120.0},
        {"name": "vt-afterglow", "needs": ("vhf.vt",), "nats_subject": nats_subject("vt-afterglow"), "timeout": 120.0,
         "max_attempts": 3, "backoff": 5.0},
        {"name": "grm-lightcurve", "needs": ("vhf.grm",), "nats_subject": nats_subject("grm-lightcurve"),
         "timeout": 20.0, "max_attempts": 2, "backoff": 3.0},
    ]


class DemoWorker:
    """Answers the demo pipelines' requests on NATS and works them (see the module doc)."""

    def __init__(self, servers: list[str], prefix: str = "burstbus", pace: float = 1.5, options: dict[str, Any] | None = None):
        self.servers = servers
        self.prefix = prefix
        self.pace = pace
        self.options = options or {}
        self.known: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.nc: Any = None

    async def run(self) -> None:
        self.nc = await nats.connect(servers=self.servers, max_reconnect_attempts=-1, **self.options)
        try:
            await self.nc.subscribe(f"{SUBJECT_PREFIX}.>", cb=self._on_request)
            await self.nc.flush()
            log.info("demo worker takes processing requests on %s.>", SUBJECT_PREFIX)
            await asyncio.Event().wait()
        finally:
            for task in list(self.tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await self.nc.close()

    async def _on_request(self, msg: Any) -> None:
        payload = json.loads(msg.data)
        request = str(payload["request_id"])
        await msg.respond(f"ACK {request}".encode())
        if request in self.known:
            return
        self.known.add(request)
        task = asyncio.create_task(self._work(payload))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _work(self, p: dict[str, Any]) -> None:
        name, attempt = p["pipeline"], int(p["attempt"])
        if name == "grm-lightcurve":
            return  # accepted, then silence: the orchestrator's watchdog finds it vanished
        ids = {k: p.get(k) for k in ("process", "burst_id", "obs_id", "pass_id", "pipeline", "request_id")}
        await asyncio.sleep(self.pace)
        await self._report("process", {**ids, "status": "running", "version": "demo-1.0",
                                       "log": f"{name}: attempt {attempt}, {len(p.get('inputs') or ())} inputs\n"})
        await asyncio.sleep(self.pace)
        if name == "vt-afterglow" and attempt == 1:
            await self._report("process", {**ids, "status": "failed", "log": "reading VT frames\nTimeoutError: VT frames not delivered\n"})
            return
        for n, kind in enumerate(p.get("produces") or ()):
            await self._report("data", {"burst_id": p["burst_id"], "obs_id": p.get("obs_id"), "kind": kind,
                                        "location": f"file:///demo/products/{p['burst_id']}/{p['request_id'][:8]}-{n}.fits",
                                        "size": 10_000 + n, "produced_by": p["request_id"], "version": "demo-1.0"})
        await self._report("process", {**ids, "status": "complete", "version": "demo-1.0", "log": f"{name}: done\n"})

    async def _report(self, what: str, body: dict[str, Any]) -> None:
        raw = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
        for _ in range(50):  # burstbus may be starting: send it again until it answers
            try:
                reply = await self.nc.request(f"{self.prefix}.in.{what}", raw, timeout=10)
            except Exception as exc:
                log.debug("demo worker: %s not taken yet (%s)", what, exc)
                await asyncio.sleep(0.5)
                continue
            if reply.data != b"ACK":
                log.warning("demo worker: burstbus refused a %s message: %s", what, reply.data[:200])
            return
