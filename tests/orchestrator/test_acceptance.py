"""Issue 13's acceptance, with a real nats-server, ``burstbus run`` in its own process and real
worker processes (tests/orchestrator/worker.py) — NATS-dispatched and HTTP-dispatched.

* data announcements start the right pipelines once all their inputs are there, not before;
  the products start the next stage; the whole graph completes;
* a silent worker's attempt vanishes after the timeout, also when burstbus was stopped and
  started again in between; retried up to the limit, then left failed with the reason; a
  worker that fails is retried to the limit too;
* SIGKILL of burstbus while dispatches wait for their answers: no run lost, none decided twice.

Every wait is for a condition, with generous deadlines; every process is stopped by its pid."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from burstbus.bridges.nats.server import free_port
from burstbus.events import utc_now
from tests.nats.conftest import Servers
from tests.orchestrator.harness import Burstbus, Procs, Worker, announce, procs_fixture
from tests.packets import voevent
from tests.waiting import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def procs() -> Iterator[Procs]:
    yield from procs_fixture()


GRAPH = """
[orchestrator]
data_kinds = ["vhf.eclairs", "vhf.attitude", "vhf.mxt"]
dispatch_timeout = 20

[[pipelines]]
name = "ecl-loc"
process = "eclairs-loc"
needs = ["vhf.eclairs", "vhf.attitude"]
nats_subject = "svom.pipelines.ecl"
produces = ["Q1.TT_ECL"]
timeout = 300
parameters = {{ threshold = "6.5" }}

[[pipelines]]
name = "mxt-loc"
needs = ["vhf.mxt"]
scope = "observation"
url = "http://127.0.0.1:{http_worker}/run"
produces = ["Q1.MXT_LOC"]
timeout = 300

[[pipelines]]
name = "summary"
needs = ["Q1.TT_ECL", "Q1.MXT_LOC"]
nats_subject = "svom.pipelines.summary"
produces = ["summary.report"]
timeout = 300
"""


def by_pipeline(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{r['pipeline']}/{r['obs_id'] or '-'}": r for r in rows}


async def test_the_graph_completes_over_nats_and_http(tmp_path: Path, procs: Procs, servers: Servers) -> None:
    server = await servers.start()
    burst = "sb26112001"
    http_port = free_port()  # burstbus's, which the HTTP worker reports to
    ecl = await Worker(procs, tmp_path, "ecl", nats_url=server.url, subject="svom.pipelines.ecl").ready()
    summary = await Worker(procs, tmp_path, "summary", nats_url=server.url, subject="svom.pipelines.summary").ready()
    mxt = await Worker(procs, tmp_path, "mxt", http=True, api=f"http://127.0.0.1:{http_port}").ready()
    bus = await Burstbus(procs, tmp_path, server.url, GRAPH.format(http_worker=mxt.port), http_port=http_port).start()

    alert = f"ivo://org.svom/fsc#{burst}_eclairs-wakeup"
    await send_voevent(server.url, voevent(alert, params={"Burst_Id": burst}))  # the alert opens the burst
    await announce(server.url, burst, "vhf.eclairs")
    rows = await wait_for(lambda: _rows_where(bus, burst, lambda r: r.get("ecl-loc/-", {}).get("status") == "idling"),
                          "ecl-loc to idle on half its inputs")
    assert rows["ecl-loc/-"]["reason"] == "waiting for vhf.attitude"
    assert ecl.entries() == []  # not before all its inputs are there

    await announce(server.url, burst, "vhf.attitude")
    await wait_for(lambda: ecl.entries("worked"), "the ECLAIRs worker to have worked")
    rows = await wait_for(lambda: _rows_where(bus, burst, lambda r: r.get("summary/-", {}).get("status") == "idling"),
                          "summary to wait for the MXT product")
    assert rows["ecl-loc/-"]["status"] == "complete" and rows["summary/-"]["reason"] == "waiting for Q1.MXT_LOC"

    await announce(server.url, burst, "vhf.mxt", obs_id="01")  # the HTTP-dispatched stage, per observation
    rows = await wait_for(lambda: _rows_where(bus, burst, lambda r: r.get("summary/-", {}).get("status") == "complete"),
                          "the whole graph to complete")
    assert {k: r["status"] for k, r in rows.items()} == {"ecl-loc/-": "complete", "mxt-loc/01": "complete",
                                                         "summary/-": "complete"}
    assert all(r["attempts"] == 1 for r in rows.values())
    for worker in (ecl, mxt, summary):  # each did its request once, and was asked once
        assert len(worker.entries("received")) == 1 and len(worker.entries("worked")) == 1

    events = await bus.events(burst)
    requested = [e for e in events if e["type"] == "process.requested"]
    assert [e["data"]["pipeline"] for e in requested] == ["ecl-loc", "mxt-loc", "summary"]
    data = {e["id"]: e for e in events if e["type"] == "data.available"}
    ecl_inputs = [data[i["event_id"]]["data"]["kind"] for i in requested[0]["data"]["inputs"]]
    assert ecl_inputs == ["vhf.eclairs", "vhf.attitude"]
    summary_inputs = [data[i["event_id"]]["data"] for i in requested[2]["data"]["inputs"]]
    assert {d["kind"]: d["produced_by"] for d in summary_inputs} == {
        "Q1.TT_ECL": requested[0]["id"], "Q1.MXT_LOC": requested[1]["id"]}
    assert requested[0]["data"]["parameters"] == {"threshold": "6.5"}
    dispatched = [e["data"] for e in events if e["type"] == "process.dispatched"]
    assert sorted(d["outcome"] for d in dispatched) == ["accepted"] * 3
    assert next(d for d in dispatched if d["pipeline"] == "mxt-loc")["target"] == {"url": f"http://127.0.0.1:{mxt.port}/run"}

    # Provenance of the final product: back through both stages to the raw data and the alert.
    report = next(e for e in events if e["type"] == "data.available" and e["data"]["kind"] == "summary.report")
    status, prov = await bus.get(f"/api/provenance/{report['id']}")
    assert status == 200, prov
    kinds = sorted(e["burstbus:kind"] for e in prov["entity"].values() if "burstbus:kind" in e)
    assert kinds == ["Q1.MXT_LOC", "Q1.TT_ECL", "summary.report", "vhf.attitude", "vhf.eclairs", "vhf.mxt"]
    assert sorted(a["burstbus:pipeline"] for a in prov["activity"].values()) == ["ecl-loc", "mxt-loc", "summary"]
    assert {a["burstbus:version"] for a in prov["activity"].values()} == {"worker-1.0"}
    [notice] = [e for e in prov["entity"].values() if e.get("prov:type") == "burstbus:notice"]
    assert notice["burstbus:ivorn"] == alert
    assert len(prov["wasInfluencedBy"]) == 3  # each raw data set, by the alert that opened the burst
    assert any(g["prov:entity"] == f"event:{report['id']}" for g in prov["wasGeneratedBy"].values())
    cli = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "burstbus.cli", "--config", str(bus.config),
                                                   "provenance", report["id"]], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == prov
    missing = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "burstbus.cli", "--config", str(bus.config),
                                                       "provenance", "no-such-id"], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "nothing in the log has the id" in missing.stderr

    # Request Process over the API: a reprocessing with another threshold is a new run.
    status, asked = await bus.post("/api/processes/request", {"pipeline": "ecl-loc", "burst_id": burst,
                                                              "parameters": {"threshold": "5"}})
    assert status == 202, asked
    rows = await wait_for(lambda: _by_run(bus, burst, asked["run_id"], "complete"), "the reprocessing to complete")
    assert rows["requested_by"] == "http:127.0.0.1 (write token)"
    assert len(ecl.entries("worked")) == 2
    events = await bus.events(burst)
    [rerun] = [e for e in events if e["type"] == "process.requested" and e["data"]["run_id"] == asked["run_id"]]
    assert rerun["data"]["parameters"] == {"threshold": "5"} and rerun["data"]["changed"] == {"threshold": "5"}
    product = next(e for e in events if e["type"] == "data.available" and e["data"].get("produced_by") == rerun["id"])
    status, prov = await bus.get(f"/api/provenance/{product['id']}")
    [run] = prov["activity"].values()
    assert run["burstbus:changed"] == {"threshold": "5"} and run["burstbus:reason"] == "asked by http:127.0.0.1 (write token)"
    assert any(r.get("prov:role") == "requester" and r["prov:agent"] == "agent:http:127.0.0.1"
               for r in prov["wasAssociatedWith"].values())
    status, refused = await bus.post("/api/processes/request", {"pipeline": "ecl-lok", "burst_id": burst})
    assert status == 422 and "I know no pipeline 'ecl-lok'" in refused["error"]["message"]


async def _by_run(bus: Burstbus, burst: str, run_id: str, status: str) -> dict[str, Any] | None:
    rows = {r["run_id"]: r for r in await bus.processes(burst)}
    row = rows.get(run_id)
    return row if row is not None and row["status"] == status else None


async def send_voevent(nats_url: str, raw: bytes) -> None:
    nc = await nats.connect(nats_url)
    try:
        assert (await nc.request("burstbus.in.voevent", raw, timeout=30)).data == b"ACK"
    finally:
        await nc.close()


async def _rows_where(bus: Burstbus, burst: str, condition: Any) -> dict[str, dict[str, Any]] | None:
    rows = by_pipeline(await bus.processes(burst))
    return rows if condition(rows) else None


WATCHED = """
[orchestrator]
data_kinds = ["vhf.grm", "vhf.vt"]

[[pipelines]]
name = "grm-loc"
needs = ["vhf.grm"]
nats_subject = "svom.pipelines.grm"
timeout = 8
max_attempts = 2
backoff = 0.5

[[pipelines]]
name = "vt-loc"
needs = ["vhf.vt"]
nats_subject = "svom.pipelines.vt"
timeout = 60
max_attempts = 3
backoff = 0.2
"""


async def test_a_silent_worker_vanishes_across_a_restart_and_a_failing_one_is_retried_to_the_limit(
    tmp_path: Path, procs: Procs, servers: Servers
) -> None:
    server = await servers.start()
    silent = await Worker(procs, tmp_path, "grm", nats_url=server.url, subject="svom.pipelines.grm", mode="silent").ready()
    failing = await Worker(procs, tmp_path, "vt", nats_url=server.url, subject="svom.pipelines.vt", mode="fail").ready()
    bus = await Burstbus(procs, tmp_path, server.url, WATCHED).start()
    burst = "sb26112002"

    await announce(server.url, burst, "vhf.grm")
    await wait_for(lambda: silent.entries("received"), "the silent worker to get the request")

    async def answered_row() -> dict[str, Any] | None:
        """The run's row once it shows the worker's answer (the deadline counts from it)."""
        answer = next((e for e in await bus.events(burst) if e["type"] == "process.dispatched"), None)
        row = by_pipeline(await bus.processes(burst)).get("grm-loc/-")
        return row if answer is not None and row is not None and row["last_seq"] >= answer["seq"] else None

    deadline = (await wait_for(answered_row, "the worker's answer in the process table"))["deadline"]
    bus.stop()  # burstbus is down while the deadline passes
    await wait_for(lambda: utc_now() > deadline, "the deadline to pass while burstbus is stopped", timeout=120)
    assert len(silent.entries("received")) == 1  # stopped before its deadline: nothing decided yet
    await bus.start()
    rows = await wait_for(lambda: _rows_where(bus, burst, lambda r: r.get("grm-loc/-", {}).get("status") == "failed"),
                          "the silent run to vanish, be retried once and be given up")
    row = rows["grm-loc/-"]
    assert row["attempts"] == 2
    assert row["reason"].startswith("attempt 2 of 2 vanished: no sign of life for 8 s")
    assert [e["attempt"] for e in silent.entries("received")] == [1, 2]
    events = await bus.events(burst)
    vanished = [e for e in events if e["type"] == "process.status" and e["data"]["status"] == "vanished"]
    assert [e["data"]["attempt"] for e in vanished] == [1, 2]
    assert vanished[0]["occurred_at"] == vanished[0]["data"]["deadline"] == deadline  # from the log's clock
    assert vanished[0]["actor"] == "system:orchestrator"
    retry = next(e for e in events if e["type"] == "process.retry_requested")
    assert retry["data"]["attempt"] == 2 and retry["data"]["reason"].startswith("attempt 1 vanished")
    assert [e["type"] for e in events].count("process.gave_up") == 1

    await announce(server.url, burst, "vhf.vt")
    rows = await wait_for(lambda: _rows_where(bus, burst, lambda r: r.get("vt-loc/-", {}).get("status") == "failed"
                                              and r["vt-loc/-"]["attempts"] == 3 and r["vt-loc/-"]["retry_requested"] is None
                                              and "of 3" in (r["vt-loc/-"]["reason"] or "")),
                          "the failing run to be retried to the limit")
    assert rows["vt-loc/-"]["reason"] == "attempt 3 of 3 failed: IOError: attitude file truncated"
    assert [e["attempt"] for e in failing.entries("received")] == [1, 2, 3]
    events = await bus.events(burst)
    reasons = [e["data"]["reason"] for e in events if e["type"] == "process.retry_requested" and e["data"]["pipeline"] == "vt-loc"]
    assert reasons == ["attempt 1 failed: IOError: attitude file truncated",
                       "attempt 2 failed: IOError: attitude file truncated"]


HELD = """
[orchestrator]
data_kinds = ["vhf.eclairs"]
dispatch_timeout = 120

[[pipelines]]
name = "ecl-loc"
needs = ["vhf.eclairs"]
nats_subject = "svom.pipelines.ecl"
produces = ["Q1.TT_ECL"]
timeout = 300
"""


async def test_sigkill_during_dispatch_loses_no_run_and_decides_none_twice(tmp_path: Path, procs: Procs, servers: Servers) -> None:
    server = await servers.start()
    worker = await Worker(procs, tmp_path, "ecl", nats_url=server.url, subject="svom.pipelines.ecl", mode="hold").ready()
    bus = await Burstbus(procs, tmp_path, server.url, HELD).start()
    bursts = [f"sb261120{n:02d}" for n in range(10, 16)]
    for burst in bursts:
        await announce(server.url, burst, "vhf.eclairs")
    await wait_for(lambda: len(worker.entries("received")) == len(bursts), "every request to reach the worker")
    bus.kill()  # every dispatch is waiting for its answer: requested in the log, no dispatched
    worker.release.touch()  # the worker answers into the void, works, and reports until burstbus is back
    await bus.start()
    for burst in bursts:
        await wait_for(lambda b=burst: _rows_where(bus, b, lambda r: r.get("ecl-loc/-", {}).get("status") == "complete"),
                       f"{burst}'s run to complete")
    received = Counter(e["request_id"] for e in worker.entries("received"))
    worked = Counter(e["request_id"] for e in worker.entries("worked"))
    journal = [(e["event"], e["burst_id"], e["attempt"], e["request_id"][:8]) for e in worker.entries()]
    assert len(received) == len(bursts) and all(n >= 2 for n in received.values()), \
        (received, journal, [(e["type"], e["actor"], e["data"].get("attempt"), e["data"].get("status"), e["id"][:8])
                             for e in await bus.events(bursts[0])])  # dispatched again
    assert set(worked) == set(received) and all(n == 1 for n in worked.values()), worked  # worked once: the key
    for burst in bursts:
        events = await bus.events(burst)
        decided = Counter(e["type"] for e in events if e["actor"] == "system:orchestrator")
        assert decided == {"process.requested": 1, "process.dispatched": 1}, (burst, decided)
        [requested] = [e for e in events if e["type"] == "process.requested"]
        assert requested["data"]["attempt"] == 1 and requested["id"] in received
        [row] = await bus.processes(burst)
        assert (row["status"], row["attempts"]) == ("complete", 1)
