"""The burstbus JSON API (``/api``): processes, bursts, one burst, triggers, the log, OpenAPI.

Expected answers come from what the tests put in (the events appended, the trigger rows
written), never from the server's own query helpers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import pytest_asyncio

from burstbus.bridges.http.app import ROUTES
from tests.http.conftest import AUTH, SVOM, Archive
from tests.http.world import PROCESSES, TRIGGERS, open_world

pytestmark = pytest.mark.asyncio(loop_scope="package")


@pytest_asyncio.fixture(scope="module", loop_scope="package")
async def world(tmp_path_factory: Any) -> AsyncIterator[Archive]:
    opened = await open_world(tmp_path_factory.mktemp("world"))
    try:
        yield opened
    finally:
        await opened.close()


async def ok(archive: Archive, path: str, **params: Any) -> Any:
    status, body, response = await archive.get(path, params=params or None)
    assert status == 200, body
    assert response.content_type == "application/json"
    return body


async def ok_read(archive: Archive, path: str, **params: Any) -> Any:
    """``ok`` with the read token: the triggers, the log and a burst's trigger details are not
    public (``test_access.py`` checks the refusals)."""
    status, body, response = await archive.get(path, params=params or None, headers=AUTH)
    assert status == 200, body
    assert response.content_type == "application/json"
    return body


def ids(body: dict[str, Any], key: str = "id") -> list[str]:
    return [row[key] for row in body["result"]]


# -- processes ---------------------------------------------------------------------------


async def test_processes_all(world: Archive) -> None:
    body = await ok_read(world, "/api/processes")
    assert body["count"] == len(PROCESSES) and body["limit"] == 100 and body["offset"] == 0
    got = {row["id"]: (row["status"], row["date"], row["attempts"]) for row in body["result"]}
    assert got == PROCESSES
    # Newest update first by default.
    assert ids(body)[0] == "lightcurve/-/-/-"
    row = next(r for r in body["result"] if r["id"] == "grb-pipeline/sb26112001/obs1/2")
    assert row["pipeline"] == "csc" and row["last_log"] == "last line of grb-pipeline" and row["burst_id"] == "sb26112001"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "failed"}, {"grb-pipeline/sb26112001/obs1/2"}),
        ({"status": "queued,complete"}, {"obtloc/sb26112002/obs2/1", "obtloc/sb26112000/obs1/1"}),
        ({"process": "obtloc"}, {"obtloc/sb26112002/obs2/1", "obtloc/sb26112000/obs1/1"}),
        ({"burst_id": "sb26112000"}, {"obtloc/sb26112000/obs1/1"}),
        ({"obs_id": "obs2"}, {"obtloc/sb26112002/obs2/1"}),
        ({"pass_id": "2"}, {"grb-pipeline/sb26112001/obs1/2"}),
        ({"pipeline": "csc"}, {"grb-pipeline/sb26112001/obs1/2"}),
        ({"date_from": "2026-11-21", "date_to": "2026-11-21"}, {"grb-pipeline/sb26112001/obs1/2"}),
        ({"date_from": "2026-11-22"}, {"obtloc/sb26112002/obs2/1", "lightcurve/-/-/-"}),
        ({"since": "2026-11-21T00:00:00Z", "until": "2026-11-21T23:59:59Z"}, {"grb-pipeline/sb26112001/obs1/2"}),
        ({"process": "obtloc", "status": "queued"}, {"obtloc/sb26112002/obs2/1"}),
        ({"burst_id": "' OR 1=1 --"}, set()),
    ],
)
async def test_process_filters(world: Archive, params: dict[str, str], expected: set[str]) -> None:
    body = await ok_read(world, "/api/processes", **params)
    assert set(ids(body)) == expected and body["count"] == len(expected)


async def test_process_paging_and_order(world: Archive) -> None:
    first = await ok_read(world, "/api/processes", order="updated_at", limit="2")
    second = await ok_read(world, "/api/processes", order="updated_at", limit="2", offset="2")
    assert first["count"] == second["count"] == 4 and len(first["result"]) == 2
    assert ids(first) + ids(second) == [
        "obtloc/sb26112000/obs1/1", "grb-pipeline/sb26112001/obs1/2", "obtloc/sb26112002/obs2/1", "lightcurve/-/-/-",
    ]  # fmt: skip
    body = await ok_read(world, "/api/processes", limit="0")
    assert body["result"] == [] and body["count"] == 4


# -- bursts ------------------------------------------------------------------------------


async def test_bursts(world: Archive) -> None:
    body = await ok(world, "/api/bursts", limit="1000")
    by_id = {row["burst_id"]: row for row in body["result"]}
    assert {"sb26112000", "sb26112001", "sb26112002", "sb26112003"} <= set(by_id)
    assert body["count"] == len(by_id)
    burst = by_id["sb26112002"]
    # The wake-up (error 0.2°) and its update (0.05°, superseding it) both belong to it;
    # the smaller error gives the burst's position.
    assert burst["notice_count"] == 2
    assert burst["position"]["ivorn"] == f"{SVOM}#sb26112002_eclairs-update"
    assert burst["position"]["ra"] == pytest.approx(123.01) and burst["position"]["err"] == pytest.approx(0.05)
    assert by_id["sb26112001"]["retracted"] is True and burst["retracted"] is False
    retracted = await ok(world, "/api/bursts", retracted="true")
    assert "sb26112001" in ids(retracted, "burst_id") and "sb26112002" not in ids(retracted, "burst_id")
    one = await ok(world, "/api/bursts", burst_id="sb26112003,nope")
    assert ids(one, "burst_id") == ["sb26112003"]
    none = await ok(world, "/api/bursts", since="2030-01-01T00:00:00Z")
    assert none == {"result": [], "count": 0, "limit": 100, "offset": 0}


async def test_one_burst_with_everything(world: Archive) -> None:
    body = await ok_read(world, "/api/bursts/sb26112001")
    assert body["burst_id"] == "sb26112001" and "restricted" not in body
    assert [n["ivorn"] for n in body["notices"]] == [f"{SVOM}#sb26112001_eclairs-wakeup", f"{SVOM}#sb26112001_eclairs-retraction"]
    notice = body["notices"][0]
    assert notice["role"] == "observation" and notice["retraction"] is False
    assert notice["links"]["xml"] == "/apiv1/packet/xml/" + quote(notice["ivorn"], safe="").replace("%20", "+")
    assert body["notices"][1]["retraction"] is True
    assert [p["id"] for p in body["processes"]] == ["grb-pipeline/sb26112001/obs1/2"]
    # The read side's one order (store/read/bursts.py): triggers newest request first.
    assert [t["request_id"] for t in body["triggers"]] == ["b" * 32, "a" * 32]
    assert body["triggers"][1]["params"] == {"exposure": 60} and body["triggers"][1]["two_person"] is True
    # Its log: every event with stream = the burst id, in order, without packet bytes.
    types = [e["type"] for e in body["log"]["result"]]
    assert types == ["burst.identified", "burst.identified", "process.status", "process.status"]
    assert body["log"]["complete"] is True
    assert all("xml" not in e["data"] for e in body["log"]["result"])
    assert body["links"] == {"self": "/api/bursts/sb26112001", "page": "/bursts/sb26112001",
                             "log": "/api/log?stream=sb26112001"}  # fmt: skip
    # The links work.
    status, xml, _ = await world.get(notice["links"]["xml"])
    assert status == 200 and xml == world.submitted[notice["ivorn"]]
    # The embedded log pages.
    paged = await ok_read(world, "/api/bursts/sb26112001", log_limit="1")
    assert paged["log"]["count"] == 1 and paged["log"]["complete"] is False
    rest = await ok_read(world, "/api/bursts/sb26112001", log_after=str(paged["log"]["next_after"]))
    assert [e["type"] for e in rest["log"]["result"]] == types[1:]


async def test_unknown_burst_is_404(world: Archive) -> None:
    status, body, _ = await world.get("/api/bursts/" + quote("sb00000000' OR '1'='1", safe=""))
    assert status == 404 and "no burst" in body["error"]["message"]
    assert body["error"]["burst_id"] == "sb00000000' OR '1'='1"


# -- triggers ----------------------------------------------------------------------------


async def test_triggers(world: Archive) -> None:
    body = await ok_read(world, "/api/triggers")
    assert ids(body, "request_id") == ["c" * 32, "b" * 32, "a" * 32]  # newest request first
    assert body["count"] == 3
    first = body["result"][2]
    expected = {**TRIGGERS[0], "two_person": True}
    assert {k: first[k] for k in expected} == expected
    assert first["denied_by"] is None
    for params, want in [
        ({"state": "sent"}, ["a" * 32]),
        ({"telescope": "colibri", "order": "requested_at"}, ["a" * 32, "c" * 32]),
        ({"burst_id": "sb26112002"}, ["c" * 32]),
        ({"requested_by": "carol@fsc.example"}, ["b" * 32]),
        ({"since": "2026-11-22T00:00:00Z"}, ["c" * 32]),
        ({"state": "expired"}, []),
    ]:
        got = await ok_read(world, "/api/triggers", **params)
        assert ids(got, "request_id") == want, params


async def test_triggers_before_the_table_exists(tmp_path: Path) -> None:
    from tests.http.conftest import open_archive

    archive = await open_archive(tmp_path, [])
    try:
        conn = sqlite3.connect(archive.projections_path)
        conn.execute("DROP TABLE IF EXISTS triggers")
        conn.commit()
        conn.close()
        assert await ok_read(archive, "/api/triggers") == {"result": [], "count": 0, "limit": 100, "offset": 0}
        assert (await ok(archive, "/api/bursts"))["result"] == []
        assert (await ok_read(archive, "/api/processes"))["result"] == []
    finally:
        await archive.close()


# -- the log -----------------------------------------------------------------------------


async def test_log_pages_through_everything_once(world: Archive) -> None:
    everything = await world.log.read()
    seen: list[int] = []
    after = 0
    while True:
        page = await ok_read(world, "/api/log", after=str(after), limit="7")
        seen += [e["seq"] for e in page["result"]]
        assert page["head"] == everything[-1].seq
        if page["complete"]:
            break
        after = page["next_after"]
    assert seen == [r.seq for r in everything]
    first = (await ok_read(world, "/api/log", limit="1"))["result"][0]
    record = everything[0]
    assert first == {
        "seq": record.seq, "id": record.id, "type": record.type, "stream": record.stream, "actor": record.actor,
        "occurred_at": record.occurred_at, "recorded_at": record.recorded_at, "hash": record.hash,
        "prev_hash": record.prev_hash, "data": {k: v for k, v in record.data.items() if k not in ("xml", "xml_base64")},
    }  # fmt: skip
    assert "xml" in record.data or "xml_base64" in record.data


async def test_log_filters(world: Archive) -> None:
    everything = await world.log.read()
    body = await ok_read(world, "/api/log", type="process.status,burst.identified", limit="1000")
    assert [e["seq"] for e in body["result"]] == [r.seq for r in everything if r.type in ("process.status", "burst.identified")]
    body = await ok_read(world, "/api/log", stream="sb26112000", type="process.status")
    assert [e["data"]["status"] for e in body["result"]] == ["queued", "running", "complete"]
    assert body["complete"] is True and body["next_after"] == everything[-1].seq
    # Time range on recorded_at: split the log at a record's time.
    middle = everything[len(everything) // 2]
    later = await ok_read(world, "/api/log", since=middle.recorded_at, limit="1000")
    assert [e["seq"] for e in later["result"]] == [r.seq for r in everything if r.recorded_at >= middle.recorded_at]
    earlier = await ok_read(world, "/api/log", until=middle.recorded_at, limit="1000")
    assert [e["seq"] for e in earlier["result"]] == [r.seq for r in everything if r.recorded_at <= middle.recorded_at]
    assert earlier["complete"] is True
    nothing = await ok_read(world, "/api/log", type="no.such.type")
    assert nothing["result"] == [] and nothing["complete"] is True


# -- OpenAPI -----------------------------------------------------------------------------


async def test_openapi_describes_every_route(world: Archive) -> None:
    doc = await ok(world, "/api/openapi.json")
    assert doc["openapi"].startswith("3.1") and doc["servers"] == [{"url": "/"}]
    registered = set()
    for resource in world.app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        if not path or not path.startswith(("/api/", "/apiv1")):
            continue
        for route in resource:
            if route.method != "HEAD":
                registered.add((route.method.lower(), path))
    assert registered, "no routes found"
    described = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    missing = registered - described
    assert not missing, f"routes missing from openapi.json: {sorted(missing)}"
    # Every path parameter is declared; every $ref resolves; every operation has responses.
    schemas = doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            wanted = {part[1:-1] for part in path.split("/") if part.startswith("{")}
            assert declared == wanted, (method, path)
            assert op["responses"] and op["summary"]
            for text in _refs(op):
                assert text.removeprefix("#/components/schemas/") in schemas, text
    # Parameters as the route table has them.
    processes = {p["name"] for p in doc["paths"]["/api/processes"]["get"]["parameters"]}
    assert {"date_from", "date_to", "process", "burst_id", "obs_id", "pass_id", "status", "pipeline",
            "limit", "offset"} <= processes  # fmt: skip
    count = {p["name"] for p in doc["paths"]["/apiv1/count"]["get"]["parameters"]}
    assert {"cone", "role", "stream", "ivorn_contains", "authored_since"} <= count
    assert doc["paths"]["/api/voevents"]["post"]["security"] == [{"bearer": []}]
    assert len(world.app[ROUTES]) == len(described)


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [v for k, v in value.items() if k == "$ref"] + [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


async def test_base_path_and_relative_links(tmp_path: Path) -> None:
    archive = await open_world(tmp_path, base_path="/burstbus/")
    try:
        status, body, _ = await archive.get("/api/bursts")
        assert status == 404
        body = await ok(archive, "/burstbus/api/bursts/sb26112001")
        assert body["links"]["self"] == "/burstbus/api/bursts/sb26112001"
        assert body["notices"][0]["links"]["synopsis"].startswith("/burstbus/apiv1/packet/synopsis/")
        status, synopsis, _ = await archive.get(body["notices"][0]["links"]["synopsis"],
                                                 headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "gopher"})  # fmt: skip
        assert status == 200 and synopsis["result"]["voevent"]["ivorn"] == body["notices"][0]["ivorn"]
        doc = await ok(archive, "/burstbus/api/openapi.json")
        assert doc["servers"] == [{"url": "/burstbus"}]
        assert "/api/processes" in doc["paths"]
        assert (await ok_read(archive, "/burstbus/api/processes"))["count"] == 4
    finally:
        await archive.close()
