"""The process table's SVOM columns and filters (obs id, pass id, idling, the custom filter) and
each burst's graph of inputs → runs → products, drawn on the server."""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from burstbus.handlers.bursts import BurstIdentifier
from burstbus.state import StateStore
from tests.handlers.orchestrator.history import orchestrated_history
from tests.http.conftest import READ_TOKEN, Archive, open_archive
from tests.packets import voevent

BURST = "sb26990000"


@pytest_asyncio.fixture
async def site(tmp_path: Path) -> AsyncIterator[Archive]:
    archive = await open_archive(tmp_path / "site", [voevent(f"ivo://org.svom/fsc#{BURST}-1", params={"Burst_Id": BURST})],
                                 public_processes=True)  # the pages, not who may read them (tests/http/test_access.py)
    state = await StateStore.open(tmp_path / "state.sqlite")
    try:
        await orchestrated_history(archive.log, random.Random(5), bursts=2)
        identifier = BurstIdentifier(archive.log, state)
        await identifier.start()
        await identifier.catch_up()
        await archive.project()
        yield archive
    finally:
        await state.close()
        await archive.close()


def text(html: bytes) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.decode()))


async def test_the_burst_page_draws_its_runs_and_data(site: Archive) -> None:
    status, html, _ = await site.get(f"/bursts/{BURST}")
    assert status == 200, html
    page = html.decode()
    [svg] = re.findall(r'<svg class="flow".*?</svg>', page, re.S)
    assert svg.count('class="flow-node flow-data"') == 4  # eclairs, attitude, two mxt observations
    assert 'class="flow-node flow-run status-fill-' in svg and "flow-edge" in svg
    assert "ecl-loc" in svg and "mxt-loc" in svg
    assert re.search(r'<a href="\.\./api/provenance/[0-9a-f-]{36}">', svg)  # relative, to each node's provenance
    _, live, _ = await site.get(f"/bursts/{BURST}", headers={"Authorization": f"Bearer {READ_TOKEN}"})
    assert "process.requested" in re.search(r'data-types="([^"]*)"', live.decode()).group(1)  # type: ignore[union-attr]


async def test_process_filters_obs_pass_idling_and_the_custom_filter(site: Archive) -> None:
    _, html, _ = await site.get("/processes?status=idling")
    assert "idling" in text(html) and "waiting for vhf.attitude" in text(html)
    _, html, _ = await site.get("/processes?obs_id=02")
    rows = re.findall(r'data-label="Obs">([^<]*)<', html.decode())
    assert rows and set(rows) == {"02"}
    _, html, _ = await site.get("/processes?q=status:failed+mxt")
    processes = re.findall(r'data-label="Process" class="strong">([^<]*)<', html.decode())
    statuses = re.findall(r'class="status status-([a-z]+)"', html.decode())
    assert processes and set(processes) == {"mxt-loc"} and set(statuses) == {"failed"}
    status, html, _ = await site.get("/processes?q=colour:red")
    assert status == 400 and "unknown key &#39;colour&#39; in the custom filter" in text(html)
    code, body, _ = await site.get("/api/processes?q=pipeline:summary")
    assert code == 200 and {r["pipeline"] for r in body["result"]} <= {"summary"}
    code, body, _ = await site.get("/api/processes?q=status:done")
    assert code == 400 and "status must be one of idling" in body["error"]["message"]
    code, body, _ = await site.get("/api/processes?status=idling")
    assert code == 200 and body["result"] and all(r["status"] == "idling" for r in body["result"])
    assert all(r["reason"].startswith("waiting for") for r in body["result"])
