"""A real archive behind a real HTTP server on loopback, for the HTTP bridge's tests.

Packets are built with ``tests.packets.voevent``, submitted through ``burstbus.ingest.Ingest``
into a ``SQLiteEventLog`` in ``tmp_path``, projected with the ``ProjectionRunner``, and the app
from ``make_app`` is served as ``burstbus run`` serves it (:func:`burstbus.bridges.http.server.start`:
aiohttp's ``AppRunner`` under burstbus's connection handler) on 127.0.0.1, port 0.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web

from burstbus.bridges.http import make_app
from burstbus.bridges.http.server import Limits, Served, start
from burstbus.ingest import Ingest, IngestResult
from burstbus.store.projections.registry import all_projections
from burstbus.store.projections.runner import ProjectionRunner
from burstbus.store.sqlite import SQLiteEventLog
from tests.packets import voevent

TOKEN = "s3cret-token-for-tests"
#: The read-only token the shared archive is served with ([http] read_token).
READ_TOKEN = "read-only-token-for-tests"
#: What a reader with the read token sends: the log, triggers and the full stream are not public.
AUTH = {"Authorization": f"Bearer {READ_TOKEN}"}
SWIFT = "ivo://nasa.gsfc.gcn/SWIFT"
SVOM = "ivo://org.svom/fsc"
ODD_IVORN = "ivo://test.example/odd#a+b%20c/é?x=1&y='2';--"
LATIN1_IVORN = "ivo://test.example/latin#caf\u00e9-1"


def _without_date(raw: bytes) -> bytes:
    start = raw.index(b"<Date>")
    end = raw.index(b"</Date>") + len(b"</Date>")
    return raw[:start] + raw[end:]


def _latin1(raw: bytes) -> bytes:
    text = raw.decode("utf-8").replace("encoding='UTF-8'", "encoding='ISO-8859-1'")
    return text.encode("iso-8859-1")


def corpus() -> list[bytes]:
    """~40 packets covering every filter: roles, streams, months, positions (near RA 0/360,
    the poles, none), citations of every type (to known and unknown IVORNs), odd IVORNs,
    non-ASCII text, a non-UTF-8 packet and one without ``Who/Date``."""
    packets: list[bytes] = []
    months = ["2025-12-03T01:02:03", "2026-01-15T10:00:00+02:00", "2026-02-28T23:59:59.5"]
    # Swift BAT positions and their XRT follow-ups (citing them).
    bat_positions = [(10.0, 20.0), (359.95, -1.0), (0.05, -0.5), (180.0, 89.7), (200.0, -89.8), (45.0, 45.0)]
    for i, (ra, dec) in enumerate(bat_positions):
        bat = f"{SWIFT}#BAT_GRB_Pos_{700000 + i}-{i}"
        packets.append(voevent(bat, ra=ra, dec=dec, err=0.05, authored=months[i % 3]))
        if i % 2 == 0:
            xrt = f"{SWIFT}#XRT_Position_{700000 + i}-{i}"
            packets.append(
                voevent(xrt, ra=ra + 0.001 if ra < 359 else ra - 0.001, dec=dec, err=0.001,
                        authored=months[(i + 1) % 3], cites=[(bat, "followup")])
            )  # fmt: skip
    # SVOM: ECLAIRs wake-ups, a GRM alert without position, a retraction, a supersede.
    for i, (ra, dec) in enumerate([(359.99, 0.0), (0.01, 0.0), (123.0, -45.0), (300.0, 60.0)]):
        packets.append(voevent(f"{SVOM}#sb2611200{i}_eclairs-wakeup", ra=ra, dec=dec, err=0.2,
                               authored=months[i % 3], params={"Burst_Id": f"sb2611200{i}"}))  # fmt: skip
    packets.append(voevent(f"{SVOM}#sb26112000_grm-alert", ra=None, dec=None, authored=months[0]))
    packets.append(
        voevent(f"{SVOM}#sb26112001_eclairs-retraction", ra=None, dec=None, authored=months[1],
                cites=[(f"{SVOM}#sb26112001_eclairs-wakeup", "retraction")])
    )  # fmt: skip
    packets.append(
        voevent(f"{SVOM}#sb26112002_eclairs-update", ra=123.01, dec=-45.01, authored=months[2],
                cites=[(f"{SVOM}#sb26112002_eclairs-wakeup", "supersedes"),
                       ("ivo://elsewhere.example/never#seen", "followup")])
    )  # fmt: skip
    # Every role, several streams, positions scattered over the sky.
    roles = ["observation", "prediction", "utility", "test"]
    for i in range(16):
        role = roles[i % 4]
        ra, dec = (i * 23.7) % 360.0, -80.0 + i * 10.3
        with_position = i % 3 != 0
        packets.append(
            voevent(f"ivo://test.example/stream{i % 3}#n{i:02d}", role=role,
                    ra=ra if with_position else None, dec=dec if with_position else None,
                    err=0.5 if i % 5 else 1.5, authored=months[i % 3],
                    description=f"packet {i} — ünïcödé ✓" if i % 4 == 1 else "plain")
        )  # fmt: skip
    # Odd IVORNs: '+', '%', '/', '?', quotes and SQL metacharacters in the local id.
    packets.append(voevent(ODD_IVORN, ra=1.0, dec=2.0, authored=months[0],
                           cites=[(f"{SWIFT}#BAT_GRB_Pos_700000-0", "followup")]))  # fmt: skip
    packets.append(voevent("ivo://test.example/odd#100%25_like", ra=None, dec=None, authored=months[1]))
    # Not UTF-8: stored as base64 in the log, served with its own charset.
    packets.append(_latin1(voevent(LATIN1_IVORN, ra=5.0, dec=5.0, description="caf\u00e9 latin-1")))
    # No Who/Date: author_datetime is NULL.
    packets.append(_without_date(voevent("ivo://test.example/nodate#x1", ra=None, dec=None)))
    return packets


@dataclass
class Archive:
    """A log, its projections, an ingest and a served app; ``url`` is the server's root."""

    tmp: Path
    log: SQLiteEventLog
    runner: ProjectionRunner
    ingest: Ingest
    app: web.Application
    site_runner: Served
    url: str
    submitted: dict[str, bytes] = field(default_factory=dict)

    @property
    def projections_path(self) -> Path:
        return self.tmp / "projections.sqlite"

    async def submit(self, raw: bytes, via: str = "local") -> IngestResult:
        result = await self.ingest.submit(raw, via=via, peer="test")
        if result.outcome == "accepted" and result.ivorn:
            self.submitted[result.ivorn] = raw
        return result

    async def project(self) -> None:
        await self.runner.catch_up(self.log)

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        """GET ``path`` (relative to the server root); (status, JSON body or bytes, response)."""
        async with aiohttp.ClientSession() as session, session.get(self.url + path, **kwargs) as response:
            body = await response.read()
            if response.content_type == "application/json":
                return response.status, await response.json(), response
            return response.status, body, response

    async def close(self) -> None:
        await self.site_runner.cleanup()
        closing = self.ingest.close()
        if inspect.isawaitable(closing):
            await closing
        await self.runner.close()
        await self.log.close()


async def open_archive(
    tmp: Path,
    packets: list[bytes],
    *,
    token: str | None = TOKEN,
    read_token: str | None = READ_TOKEN,
    configure: Callable[[Ingest], None] | None = None,
    limits: Limits | None = None,
    **app_options: Any,
) -> Archive:
    tmp.mkdir(parents=True, exist_ok=True)
    log = await SQLiteEventLog.open(tmp / "log.sqlite", synchronous="NORMAL")
    runner = await ProjectionRunner.open(tmp / "projections.sqlite", all_projections())
    ingest = Ingest(log, max_bytes=64 * 1024)
    if configure:
        configure(ingest)
    app = make_app(log, tmp / "projections.sqlite", ingest=ingest, token=token, read_token=read_token, **app_options)
    site_runner = await start(app, "127.0.0.1", 0, limits)
    host, port = site_runner.addresses[0][:2]
    archive = Archive(tmp, log, runner, ingest, app, site_runner, f"http://{host}:{port}")
    for raw in packets:
        result = await archive.submit(raw)
        assert result.outcome == "accepted", (result, raw[:300])
    await archive.project()
    return archive


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def archive(tmp_path_factory: Any) -> AsyncIterator[Archive]:
    """The shared read-only archive (tests that write build their own)."""
    opened = await open_archive(tmp_path_factory.mktemp("archive"), corpus())
    try:
        yield opened
    finally:
        await opened.close()
