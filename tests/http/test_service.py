"""The HTTP side of a real ``burstbus run``: VTP and NATS report to /metrics and /healthz,
and the live stream shows an import made by another process, then ``projected``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.http.test_post_and_ops import samples
from tests.packets import voevent
from tests.waiting import wait_for

pytestmark = pytest.mark.asyncio(loop_scope="package")

EPHEMERAL_PORTS = {"BURSTBUS_VTP_RECEIVE_PORT": "0", "BURSTBUS_VTP_BROADCAST_PORT": "0",
                   "BURSTBUS_NATS_EMBEDDED_PORT": "0", "BURSTBUS_HTTP_PORT": "0"}  # fmt: skip
#: The service's read token (from the environment, as an operator may set it): the unfiltered
#: stream is not public.
READ_TOKEN = "service-read-token"


async def _get_json(session: aiohttp.ClientSession, url: str) -> dict:
    async with session.get(url) as response:
        return await response.json()


async def test_service_reports_transports_and_streams(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "burstbus.cli", "--data-dir", str(data), "run",
        cwd=tmp_path, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **EPHEMERAL_PORTS, "BURSTBUS_HTTP_READ_TOKEN": READ_TOKEN},
    )  # fmt: skip
    drain: asyncio.Task[None] | None = None
    try:
        assert proc.stderr is not None
        url = None
        while url is None:
            line = (await asyncio.wait_for(proc.stderr.readline(), 120)).decode()
            assert line, "the service stopped before serving HTTP"
            if "HTTP API on " in line:
                url = line.split("HTTP API on ", 1)[1].strip().rstrip("/")

        async def keep_draining() -> None:
            assert proc.stderr is not None
            while await proc.stderr.read(65536):
                pass

        drain = asyncio.create_task(keep_draining())
        async with aiohttp.ClientSession() as session:
            health: dict = {}

            async def all_up() -> bool:
                nonlocal health
                health = await _get_json(session, url + "/healthz")
                return health.get("status") == "ok"

            await wait_for(all_up, "every component up")
            components = health["components"]
            assert components["nats"]["connected"] is True and "published" in components["nats"]
            assert components["vtp-broadcaster"]["subscribers"] == 0
            assert "received" in components["vtp-receiver"]

            async with session.get(url + "/api/stream") as refused:
                assert refused.status == 401  # the service wired read_token: not public
            async with session.get(url + "/api/stream", headers={"Authorization": f"Bearer {READ_TOKEN}"}) as live:
                assert live.status == 200
                packet = tmp_path / "one.xml"
                packet.write_bytes(voevent("ivo://test.example/service#1", params={"Burst_Id": "sb26112077"}))
                imported = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "burstbus.cli", "--data-dir", str(data), "import", str(packet),
                    cwd=tmp_path, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
                assert await asyncio.wait_for(imported.wait(), 120) == 0
                seen: dict[str, int] = {}
                while "burst.identified" not in seen or seen.get("projected", 0) < seen["burst.identified"]:
                    line = (await asyncio.wait_for(live.content.readline(), 60)).decode()
                    if line.startswith("event: "):
                        kind = line[7:].strip()
                    elif line.startswith("data: "):
                        seen[kind] = json.loads(line[6:])["seq"]
                assert seen["voevent.accepted"] < seen["burst.identified"] <= seen["projected"]
                # What a page re-fetches on `projected` shows it.
                burst = await _get_json(session, url + "/api/bursts/sb26112077")
                assert burst["notices"][0]["ivorn"] == "ivo://test.example/service#1"

            async with session.get(url + "/metrics") as response:
                got = samples(await response.text())
            assert got['burstbus_metrics_provider_up{provider="vtp-broadcaster"}'] == 1
            assert got['burstbus_metrics_provider_up{provider="nats"}'] == 1
            assert got["burstbus_vtp_subscribers"] == 0
            assert got["burstbus_nats_connected"] == 1
            assert got["burstbus_nats_out_total"] >= 1
            assert got["burstbus_sse_connections_total"] == 1
            assert "burstbus_vtp_broadcaster_lag_events" in got and "burstbus_nats_out_lag_events" in got
            health = await _get_json(session, url + "/healthz")
            assert health["components"]["nats"]["last_activity"] is not None  # it published the import
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if drain is not None:
            drain.cancel()
