"""A real log holding what the orchestrator writes, for the projection's tests and contract.

The decisions are the pure core's (``decide``) on the log's own records, with ``now`` moved
ahead by hand so that attempts vanish, are retried and given up without waiting; the workers'
answers are the events a worker's statuses and products become. Odd and legacy events are
mixed in (a status without request id, an older attempt's late status, a refused dispatch)."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

from burstbus.events import Event, format_time, parse_time, utc_now
from burstbus.handlers.orchestrator.config import Pipeline, PipelinesSection
from burstbus.handlers.orchestrator.core import decide
from burstbus.handlers.orchestrator.runs import FOLLOWED
from burstbus.store.base import EventLog, ReadFilter

PIPELINES = PipelinesSection((
    Pipeline("ecl-loc", needs=("vhf.eclairs", "vhf.attitude"), produces=("Q1.TT_ECL",), nats_subject="p.ecl",
             timeout=0.05, max_attempts=3, backoff=0.0, parameters={"threshold": "6.5"}),
    Pipeline("summary", needs=("Q1.TT_ECL",), url="http://127.0.0.1:9/summary", timeout=0.05, max_attempts=2),
    Pipeline("mxt-loc", needs=("vhf.mxt",), scope="observation", nats_subject="p.mxt", timeout=0.05, max_attempts=1),
))


def ahead(seconds: float) -> str:
    return format_time(parse_time(utc_now()) + timedelta(seconds=seconds))


async def settle(log: EventLog, burst: str, now: str | None = None,
                 pipelines: PipelinesSection = PIPELINES) -> list[Event]:
    """Append what the core decides for ``burst`` until it decides nothing more."""
    decided: list[Event] = []
    for _ in range(30):
        records = await log.read(filter=ReadFilter.of(types=FOLLOWED, stream=burst))
        decision = decide(burst, records, pipelines, now or utc_now())
        if not decision.events:
            return decided
        await log.append(decision.events)
        decided += decision.events
    raise AssertionError("the core keeps deciding")


def data(burst: str, kind: str, n: int = 0, **extra: str) -> Event:
    return Event("data.available", {"burst_id": burst, "kind": kind, "location": f"file:///d/{burst}/{kind}/{n}", **extra},
                 stream=burst, actor="nats:burstbus.in.data")


def status(burst: str, request: str | None, state: str, log: str = "", process: str = "ecl-loc") -> Event:
    body = {"process": process, "burst_id": burst, "status": state, "pipeline": process}
    if request:
        body["request_id"] = request
    if log:
        body["log"] = log
    return Event("process.status", body, stream=burst, actor="nats:burstbus.in.process")


def dispatched(burst: str, request: str, outcome: str = "accepted") -> Event:
    return Event("process.dispatched", {"request_id": request, "burst_id": burst, "outcome": outcome, "detail": outcome},
                 stream=burst, actor="system:orchestrator")


def requested(events: list[Event], pipeline: str) -> Event:
    return next(e for e in events if e.type == "process.requested" and e.data["pipeline"] == pipeline)


async def orchestrated_history(log: EventLog, rng: random.Random, bursts: int = 3) -> None:
    for n in range(bursts):
        burst = f"sb2699{n:04d}"
        await log.append([data(burst, "vhf.eclairs")])
        await settle(log, burst)  # idling: attitude missing
        await log.append([data(burst, "vhf.attitude"), data(burst, "vhf.mxt", obs_id="01"), data(burst, "vhf.mxt", 1, obs_id="02")])
        decided = await settle(log, burst)
        ecl = requested(decided, "ecl-loc")
        outcome = rng.choice(["complete", "failed", "silent", "refused"])
        if outcome == "refused":
            await log.append([dispatched(burst, ecl.id, "refused")])
        else:
            await log.append([dispatched(burst, ecl.id), status(burst, ecl.id, "running", "starting\n")])
        if outcome == "complete":
            await log.append([data(burst, "Q1.TT_ECL", produced_by=ecl.id), status(burst, ecl.id, "complete", "done")])
            await settle(log, burst)
        elif outcome == "failed":
            await log.append([status(burst, ecl.id, "failed", "IOError: no attitude")])
        await settle(log, burst, ahead(3600))  # silent ones vanish; failures are retried
        await asyncio.sleep(0.06)  # past every 0.05 s timeout, in the log's own time
        await log.append([status(burst, ecl.id, "complete", "too late"), status(burst, None, "running", "legacy, no id")])
        for _ in range(4):
            await settle(log, burst, ahead(7200))  # every attempt left runs out
        await log.append([status(burst, None, "running", "a pipeline the orchestrator never started", process="other")])
    await log.append([data("sb26999999", "vhf.eclairs")])
    await settle(log, "sb26999999")  # idles for good: its attitude never comes
    asked = Event("process.asked", {"pipeline": "ecl-loc", "burst_id": "sb26990000", "parameters": {"threshold": "5"},
                                    "requested_by": "xmpp:alice@fsc.example"}, stream="sb26990000",
                  actor="xmpp:alice@fsc.example")
    await log.append([asked])
    await settle(log, "sb26990000")
