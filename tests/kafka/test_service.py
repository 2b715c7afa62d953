"""Acceptance (a), the whole ``burstbus run``: SVOM, Swift, Fermi and LVK alerts produced on their
GCN topics reach the log, a VTP subscriber, NATS and the web pages; ``/healthz`` and ``/metrics``
show the feed (positions, lag, last message, liveness); ``burstbus kafka check`` reads it.

burstbus runs as the real program (a child process, every port on loopback and free), the
broker is Tansu, the VTP subscriber burstbus's own client, the NATS subscriber nats-py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import nats
import pytest

from burstbus.broker.client import subscribe
from tests.kafka.notices import einstein_probe, lvk
from tests.kafka.tansu import TansuBroker, free_port
from tests.packets import SHARED_VOEVENTS, voevent
from tests.waiting import wait_for

SVOM = "gcn.notices.svom.voevent.eclairs"
SWIFT = "gcn.classic.voevent.SWIFT_BAT_GRB_POS_ACK"
FERMI = "gcn.classic.voevent.FERMI_GBM_FLT_POS"
LVK = "igwn.gwalert"
EP = "gcn.notices.einstein_probe.wxt.alert"
TOPICS = [SVOM, SWIFT, FERMI, LVK, EP]

#: The VTP client imports Comet's messages, so it installs the Twisted reactor, which is bound
#: to one loop for the process: the session's, as every other test touching the reactor.
pytestmark = pytest.mark.asyncio(loop_scope="session")


def alerts() -> dict[str, list[bytes]]:
    """Own packets always; real ones from ../shared/voevents too when it is there."""
    out = {
        SVOM: [voevent("ivo://org.svom/fsc#sb26120301_eclairs-wakeup_1", params={"Burst_Id": "sb26120301", "Packet_Type": "202"})],
        # other GRBs than SVOM's: at the same second the coincidence rule would make them one burst
        SWIFT: [voevent("ivo://nasa.gsfc.gcn/SWIFT#BAT_GRB_Pos_710001-123", params={"TrigID": "710001", "Packet_Type": "61"},
                        time="2026-11-20T04:00:00")],
        FERMI: [voevent("ivo://nasa.gsfc.gcn/Fermi#GBM_Flt_Pos_2026-12-03_786100000", params={"TrigID": "786100000"},
                        time="2026-12-03T00:00:00")],
        LVK: [lvk("S261203cd")],
        EP: [einstein_probe()],
    }
    for topic, name in ((SVOM, "svom_eclairs_wakeup.xml"), (SWIFT, "swift_bat_grb_pos_v2.0.xml"), (FERMI, "fermi_gbm_flt_pos.xml")):
        path = SHARED_VOEVENTS / name
        if path.is_file():
            out[topic].append(path.read_bytes())
    return out


def config_text(broker: TansuBroker, ports: dict[str, int]) -> str:
    return f"""
[vtp]
receive_port = {ports["receive"]}
broadcast_port = {ports["broadcast"]}
[nats]
embedded_port = {ports["nats"]}
[http]
port = {ports["http"]}
public_read = true
[[kafka.upstreams]]
name = "tansu"
bootstrap_servers = "{broker.bootstrap}"
topics = {json.dumps(TOPICS)}
heartbeat = "gcn.heartbeat"
silence_after = 600
start = "earliest"
"""


async def test_alerts_from_kafka_reach_the_log_vtp_nats_and_the_web_pages(tansu: TansuBroker, tmp_path: Path) -> None:
    tansu.create_topics([*TOPICS, "gcn.heartbeat"])
    tansu.produce("gcn.heartbeat", [b'{"alert_datetime": "2026-12-03T00:00:00Z"}'])
    ports = {name: free_port() for name in ("receive", "broadcast", "nats", "http")}
    config = tmp_path / "burstbus.toml"
    config.write_text(config_text(tansu, ports))
    data = tmp_path / "data"
    log_file = open(tmp_path / "service.log", "wb")  # noqa: SIM115 - the child's, closed below
    child = subprocess.Popen([sys.executable, "-m", "burstbus.cli", "--config", str(config), "--data-dir", str(data), "run"],
                             cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{ports['http']}"
    received_vtp: list[str] = []
    vtp_task: asyncio.Task[None] | None = None
    nc = None
    try:
        async with aiohttp.ClientSession() as session:

            async def health() -> dict:
                try:
                    async with session.get(f"{base}/healthz") as response:
                        return await response.json()
                except (aiohttp.ClientError, ValueError):
                    return {}

            async def up() -> bool:
                state = await health()
                components = state.get("components") or {}
                kafka = components.get("kafka.in.tansu") or {}
                return (bool(kafka.get("assigned")) and bool(components.get("nats", {}).get("up"))
                        and bool(components.get("vtp-broadcaster", {}).get("up")))

            await wait_for(up, "burstbus serving, reading Kafka and on NATS", timeout=120)
            nc = await nats.connect(f"nats://127.0.0.1:{ports['nats']}")
            on_nats: list[tuple[str, bytes]] = []

            async def got(msg) -> None:  # type: ignore[no-untyped-def]
                on_nats.append((msg.subject, msg.data))

            await nc.subscribe("burstbus.voevent.>", cb=got)
            await nc.subscribe("burstbus.events.notice.accepted", cb=got)
            await nc.flush()
            vtp_task = asyncio.create_task(subscribe("127.0.0.1", ports["broadcast"], local_ivo="ivo://test.example/sub", max_delay=1.0,
                                                     on_event=lambda ivorn, raw: received_vtp.append(ivorn)))

            async def vtp_subscribed() -> bool:
                if vtp_task is not None and vtp_task.done():
                    vtp_task.result()  # the subscriber failed: say why, not "timed out"
                state = await health()
                return any(isinstance(c, dict) and c.get("subscribers") for c in (state.get("components") or {}).values())

            await wait_for(vtp_subscribed, "the VTP subscriber connected")
            packets = alerts()
            for topic, values in packets.items():
                tansu.produce(topic, values)
            voevents = [v for t, vs in packets.items() if t not in (LVK, EP) for v in vs]
            await wait_for(lambda: len(received_vtp) >= len(voevents), "every VOEvent on the VTP subscriber")
            await wait_for(lambda: len(on_nats) >= len(voevents) + 2, "every VOEvent and JSON notice on NATS")
            assert "ivo://org.svom/fsc#sb26120301_eclairs-wakeup_1" in received_vtp
            raw_on_nats = {data for subject, data in on_nats if subject.startswith("burstbus.voevent.")}
            assert set(voevents) <= raw_on_nats  # the exact bytes, whatever transport brought them
            json_on_nats = [json.loads(data) for subject, data in on_nats if subject == "burstbus.events.notice.accepted"]
            assert {n["data"]["topic"] for n in json_on_nats} == {LVK, EP}

            async def page_shows(path: str, *texts: str) -> bool:
                async with session.get(f"{base}{path}") as response:
                    body = await response.text()
                return response.status == 200 and all(t in body for t in texts)

            await wait_for(lambda: page_shows("/notices", "sb26120301_eclairs-wakeup_1", "BAT_GRB_Pos_710001"), "the notices page")
            await wait_for(lambda: page_shows("/bursts/sb26120301", "sb26120301_eclairs-wakeup_1"), "the burst page")
            # JSON notices: their own archive in the API (exact bytes back), the notices page, their burst
            await wait_for(lambda: page_shows("/notices", "JSON notices (Kafka)", "S261203cd-PRELIMINARY", EP), "JSON notices listed")
            await wait_for(lambda: page_shows("/bursts/S261203cd", "igwn.gwalert#S261203cd-PRELIMINARY"), "the LVK alert's burst")
            async with session.get(f"{base}/api/json-notices", params={"topic": LVK}) as response:
                listed = await response.json()
            [alert] = listed["result"]
            assert alert["superevent_id"] == "S261203cd" and alert["burst_id"] == "S261203cd" and alert["mission"] == "LVK"
            async with session.get(f"{base}{alert['links']['json']}") as response:
                assert response.status == 200 and await response.read() == packets[LVK][0]
            async with session.get(f"{base}/api/json-notices/999999") as response:
                assert response.status == 404
            state = await health()
            kafka = state["components"]["kafka.in.tansu"]
            assert kafka["up"] and kafka["lag"] == 0 and kafka["topics"][SVOM]["last_message"]
            assert kafka["topics"][SVOM]["partitions"]["0"]["position"] == len(packets[SVOM])
            assert kafka["liveness"]["watching"] == "gcn.heartbeat" and kafka["liveness"]["last_heard"]
            async with session.get(f"{base}/metrics") as response:
                metrics = await response.text()
            assert f'burstbus_kafka_in_messages_total{{upstream="tansu",topic="{SVOM}",outcome="accepted"}}' in metrics
            assert 'burstbus_kafka_in_lag_messages{upstream="tansu",topic="' in metrics
            assert 'burstbus_kafka_in_silent{upstream="tansu"} 0' in metrics
        check = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "burstbus.cli", "--config", str(config), "--data-dir", str(data), "kafka", "check",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ})
        out, err = await asyncio.wait_for(check.communicate(), 120)
        assert check.returncode == 0, (out, err)
        # (Tansu under-reports a partition's end to offset queries, so the line may say so: the position is what counts)
        assert f"{SVOM}[0]: position {len(packets[SVOM])}".encode() in out and b"Traceback" not in out + err
    finally:
        if vtp_task is not None:
            vtp_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await vtp_task
        if nc is not None:
            await nc.close()
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(30)
        log_file.close()
        lines = (tmp_path / "service.log").read_text(errors="replace").splitlines()
        print("\n".join(line for line in lines if "aiohttp.access" not in line)[-12000:])  # shown when the test fails
