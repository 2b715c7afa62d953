"""Bad input is a 4xx with a JSON error that says what is wrong; never a 5xx."""

from __future__ import annotations

import itertools
import sqlite3
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.http.conftest import AUTH, Archive
from tests.waiting import wait_for

pytestmark = pytest.mark.asyncio(loop_scope="package")

#: (path and query, status, text the error message must contain, parameter it must name)
BAD: list[tuple[str, int, str, str | None]] = [
    ("/apiv1/count?bogus=1", 400, "unknown filter 'bogus'", "bogus"),
    ("/apiv1/list/ivorn?role=astronaut", 400, "role must be one of", "role"),
    ("/apiv1/count?cone=[1,2]", 400, "cone must be [ra,dec,radius]", "cone"),
    ("/apiv1/count?cone=banana", 400, "cone must be", "cone"),
    ("/apiv1/count?cone=[0,95,1]", 400, "invalid declination", "cone"),
    ("/apiv1/count?cone=[0,0,-1]", 400, "radius must not be negative", "cone"),
    ("/apiv1/count?cone=[NaN,0,1]", 400, "finite", "cone"),
    ("/apiv1/count?cone=[1e999,0,1]", 400, "finite", "cone"),
    ('/apiv1/count?cone=["a","b","c"]', 400, "finite", "cone"),
    ("/apiv1/count?cone={}", 400, "cone must be", "cone"),
    ("/apiv1/count?cone=" + "[" * 1200 + "]" * 1200, 400, "exceeds the limit", "cone"),  # was a RecursionError: 500
    ("/apiv1/count?cone=" + "[" * 400 + "]" * 400, 400, "nested more than", "cone"),
    ("/apiv1/count?cone=[" + "1" * 900 + ",0,1]", 400, "an integer of 900 digits", "cone"),
    ("/apiv1/count?dec_gt=abc", 400, "invalid declination", "dec_gt"),
    ("/apiv1/count?dec_lt=91", 400, "invalid declination", "dec_lt"),
    ("/apiv1/count?authored_since=yesterday", 400, "ISO-8601", "authored_since"),
    ("/apiv1/count?authored_until=2026-13-01", 400, "ISO-8601", "authored_until"),
    ("/apiv1/count?authored_since=9999-12-31T23:59:59-01:00", 400, "authored_since", "authored_since"),
    ("/apiv1/count?cited=maybe", 400, "true or false", "cited"),
    ("/apiv1/count?coord=1", 400, "true or false", "coord"),
    ("/apiv1/count?ref_any=yes", 400, "true or false", "ref_any"),
    ("/apiv1/list/ivorn?limit=abc", 400, "integer-valued row limit", "limit"),
    ("/apiv1/list/ivorn?limit=-1", 400, "must not be negative", "limit"),
    ("/apiv1/list/ivorn?limit=1.5", 400, "integer-valued", "limit"),
    ("/apiv1/list/ivorn?offset=x", 400, "integer-valued row offset", "offset"),
    ("/apiv1/list/ivorn?offset=-5", 400, "must not be negative", "offset"),
    ("/apiv1/list/ivorn?offset=" + "9" * 40, 400, "largest offset", "offset"),
    ("/apiv1/list/ivorn_nrefs?order=random", 400, "not a valid ordering", "order"),
    ("/apiv1/list/ivorn_ncites?order=id;DROP TABLE voevent", 400, "not a valid ordering", "order"),
    ("/apiv1/list/ivorn?limit=10001", 413, "the maximum is 10000", "limit"),
    ("/apiv1/list/ivorn?limit=" + "9" * 5000, 413, "the maximum is 10000", "limit"),
]


def _check_error(status: int, body: Any, want_status: int, text: str) -> dict[str, Any]:
    assert status == want_status, body
    assert isinstance(body, dict) and "error" in body, body
    error = body["error"]
    assert error["code"] == want_status
    assert text in error["message"], error
    return error


@pytest.mark.parametrize(("path", "status", "text", "parameter"), BAD, ids=[b[0][:60] for b in BAD])
async def test_bad_query_strings(archive: Archive, path: str, status: int, text: str, parameter: str | None) -> None:
    got_status, body, response = await archive.get(path)
    assert response.content_type == "application/json", body
    error = _check_error(got_status, body, status, text)
    assert error.get("parameter") == parameter


@pytest.mark.parametrize(
    ("path", "status", "text"),
    [
        ("/apiv1/packet/xml/" + quote("ivo://nope.example/x#y", safe=""), 404, "not in the archive"),
        ("/apiv1/packet/synopsis/" + quote("ivo://nope.example/x#y", safe=""), 404, "not in the archive"),
        ("/apiv1/packet/synopsis/ivo://org.svom/fsc", 404, "cut at '#'"),
        ("/apiv1/packet/xml/", 400, "append a URL-encoded IVORN"),
        ("/apiv1/packet/synopsis/", 400, "append a URL-encoded IVORN"),
        ("/apiv1/packet/xml/%FF%FE", 400, "not valid UTF-8"),
        ("/apiv1/nope", 404, "no such endpoint: GET /apiv1/nope"),
        ("/nope", 404, "no such endpoint"),
        ("/apiv1/count/", 404, "no such endpoint"),
        ("/api/voevents", 405, "GET is not allowed here"),
    ],
)
async def test_bad_paths(archive: Archive, path: str, status: int, text: str) -> None:
    got_status, body, _ = await archive.get(path)
    _check_error(got_status, body, status, text)


async def test_wrong_method_is_json_405(archive: Archive) -> None:
    async with aiohttp.ClientSession() as session, session.post(archive.url + "/apiv1/count") as response:
        assert response.status == 405
        assert "GET" in response.headers["Allow"]
        body = await response.json()
        assert "POST is not allowed here" in body["error"]["message"]


NASTY = ["'", '"', ";", "--", "%", "_", "\\", "\x00", "[", "]", "{}", "null", "1e999", "-0", "💥",
         "' OR '1'='1", "x'); DROP TABLE voevent; --", "ivo://x#y", "%00", "*", "?", "&", "=", " ",
         "\u202e", "a" * 3000]  # fmt: skip
KEYS = ["authored_since", "authored_until", "cited", "cone", "coord", "dec_gt", "dec_lt", "ivorn_contains",
        "ivorn_prefix", "ref_any", "ref_contains", "ref_exact", "role", "stream", "limit", "offset", "order"]  # fmt: skip


async def test_nothing_is_5xx(archive: Archive) -> None:
    """Every filter and paging key with hostile values: 200 or a JSON 4xx, and the tables intact."""
    before = sqlite3.connect(archive.projections_path).execute("SELECT count(*) FROM voevent").fetchone()[0]
    async with aiohttp.ClientSession() as session:
        for endpoint, key, value in itertools.product(("count", "list/ivorn_ncites"), KEYS, NASTY):
            url = f"{archive.url}/apiv1/{endpoint}?{quote(key)}={quote(value, safe='')}"
            async with session.get(url) as response:
                body = await response.json()
                assert response.status in (200, 400, 413), (key, value, body)
                if response.status == 200:
                    if endpoint == "count" and key == "ivorn_contains":
                        assert body["result"] == sum(value in ivorn for ivorn in archive.submitted)
                else:
                    assert body["error"]["message"]
        # Raw bytes that are not UTF-8 once percent-decoded.
        for raw in ("stream=%FF", "ivorn_contains=%C3%28", "%FF=1"):
            async with session.get(f"{archive.url}/apiv1/count?{raw}") as response:
                assert response.status in (200, 400), raw
                await response.json()
    after = sqlite3.connect(archive.projections_path).execute("SELECT count(*) FROM voevent").fetchone()[0]
    assert before == after


async def test_sql_metacharacters_are_plain_text(archive: Archive) -> None:
    for value in ("' OR 1=1 --", '" OR ""="', "%", "_", "x'); DROP TABLE voevent; --"):
        status, body, _ = await archive.get("/apiv1/count", params={"ivorn_contains": value})
        expected = sum(value in ivorn for ivorn in archive.submitted)
        assert (status, body["result"]) == (200, expected), value
    # '%' and '_' are literal (4pisky's LIKE made them wildcards): only the IVORN holding "%25_".
    status, body, _ = await archive.get("/apiv1/list/ivorn", params={"ivorn_contains": "%25_"})
    assert body["result"] == ["ivo://test.example/odd#100%25_like"]


async def test_query_time_limit_is_a_clear_refusal(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A query over its time limit is stopped and answered (503 with the reason), not left
    running; the reader thread works again afterwards."""
    from burstbus.bridges.http import READER
    from burstbus.store import reader as reader_module
    from tests.http.conftest import corpus, open_archive

    monkeypatch.setattr(reader_module, "_PROGRESS_STEPS", 1)
    archive = await open_archive(tmp_path, corpus()[:3], query_timeout=0.0)
    try:
        status, body, _ = await archive.get("/apiv1/count?ivorn_contains=x")
        assert status == 503
        assert "took longer than" in body["error"]["message"]
        archive.app[READER].timeout = 10.0
        status, body, _ = await archive.get("/apiv1/count")
        assert (status, body["result"]) == (200, 3)
    finally:
        await archive.close()


# -- the /api endpoints ------------------------------------------------------------------

API_BAD: list[tuple[str, int, str, str | None]] = [
    ("/api/processes?bogus=1", 400, "unknown parameter 'bogus'", "bogus"),
    ("/api/processes?status=exploded", 400, "must be one of idling, queued", "status"),
    ("/api/processes?date_from=yesterday", 400, "YYYY-MM-DD", "date_from"),
    ("/api/processes?date_to=2026-02-30", 400, "valid date", "date_to"),
    ("/api/processes?since=noon", 400, "ISO-8601", "since"),
    ("/api/processes?order=id;DROP TABLE processes", 400, "must be one of", "order"),
    ("/api/processes?limit=abc", 400, "whole number", "limit"),
    ("/api/processes?limit=-1", 400, "must not be negative", "limit"),
    ("/api/processes?limit=1001", 413, "the maximum is 1000", "limit"),
    ("/api/processes?limit=" + "9" * 5000, 413, "the maximum is 1000", "limit"),
    ("/api/processes?offset=" + "9" * 40, 400, "largest value", "offset"),
    ("/api/processes?process=" + "p" * 600, 400, "longer than 500", "process"),
    ("/api/processes?burst_id=" + ",".join(f"b{i}" for i in range(101)), 400, "at most 100 values", "burst_id"),
    ("/api/bursts?retracted=maybe", 400, "true or false", "retracted"),
    ("/api/bursts?has_position=2", 400, "true or false", "has_position"),
    ("/api/bursts?until=2026-13-01", 400, "ISO-8601", "until"),
    ("/api/bursts?order=random()", 400, "must be one of", "order"),
    ("/api/bursts?cone=[1,2,3]", 400, "unknown parameter 'cone'", "cone"),
    ("/api/bursts/sb1?log_limit=501", 413, "the maximum is 500", "limit"),
    ("/api/bursts/sb1?log_after=x", 400, "whole number", "log_after"),
    ("/api/bursts/" + "b" * 300, 400, "1 to 200 characters", "burst_id"),
    ("/api/triggers?state=pending", 400, "must be one of requested", "state"),
    ("/api/triggers?two_person=1", 400, "unknown parameter", "two_person"),
    ("/api/log?after=-3", 400, "must not be negative", "after"),
    ("/api/log?after=1.5", 400, "whole number", "after"),
    ("/api/log?after=" + "9" * 30, 400, "largest value", "after"),
    ("/api/log?limit=1000000", 413, "the maximum is 1000", "limit"),
    ("/api/log?type=voevent accepted", 400, "an event type is", "type"),
    ("/api/log?type=a'--", 400, "an event type is", "type"),
    ("/api/log?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", 400, "is after until", "since"),
    ("/api/log?since=0001-01-01T00:00:00Z", 400, "out of range", "since"),
    ("/api/log?stream=%00", 400, "NUL", "stream"),
    ("/api/stream?after=x", 400, "whole number", "after"),
    ("/api/stream?type=a;b", 400, "an event type is", "type"),
    ("/api/stream?bogus=1", 400, "unknown parameter", "bogus"),
]


@pytest.mark.parametrize(("path", "status", "text", "parameter"), API_BAD, ids=[b[0][:60] for b in API_BAD])
async def test_api_bad_query_strings(archive: Archive, path: str, status: int, text: str, parameter: str | None) -> None:
    # With the read token: the log, triggers and the full stream refuse everyone else first.
    got_status, body, response = await archive.get(path, headers=AUTH)
    assert response.content_type == "application/json", body
    error = _check_error(got_status, body, status, text)
    assert error.get("parameter") == parameter


@pytest.mark.parametrize(
    ("path", "headers", "status", "text"),
    [
        ("/api/bursts/nope", {}, 404, "no burst 'nope' is known"),
        ("/api/bursts/" + quote("x'; DROP TABLE bursts; --", safe=""), {}, 404, "no burst"),
        ("/api/bursts/%FF%FE", {}, 404, "no burst"),  # aiohttp decodes it with U+FFFD
        ("/api/bursts/", {}, 404, "no such endpoint"),
        ("/api/stream", {"Last-Event-ID": "abc"}, 400, "Last-Event-ID header must be"),
        ("/api/stream", {"Last-Event-ID": "-1"}, 400, "Last-Event-ID header must be"),
        ("/api/stream?after=0", {}, 200, ""),  # a short archive: replaying from 0 is fine
        ("/api/openapi.json?x=1", {}, 200, ""),
        ("/api/nope", {}, 404, "no such endpoint: GET /api/nope"),
    ],
)
async def test_api_bad_paths_and_headers(archive: Archive, path: str, headers: dict[str, str], status: int, text: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(archive.url + path, headers={**AUTH, **headers}) as response:
        assert response.status == status
        if status == 200:
            return
        body = await response.json()
        _check_error(response.status, body, status, text)


async def test_stream_refuses_a_backlog_too_long(archive: Archive) -> None:
    from burstbus.bridges.http import app as app_module

    hub = archive.app[app_module.EVENT_HUB]
    handler = next(r.handler for r in archive.app[app_module.ROUTES] if r.path == "/api/stream")
    stream = handler.__self__.stream  # the Api's StreamHandler
    old, stream.max_backlog = stream.max_backlog, 5
    await wait_for(lambda: not hub.clients, "earlier streams to be noticed gone")
    try:
        status, body, _ = await archive.get("/api/stream?after=0", headers=AUTH)
        _check_error(status, body, 400, "page through the log with /api/log?after=0")
        assert not hub.clients  # refused before anything was streamed; nothing left registered
    finally:
        stream.max_backlog = old


API_KEYS = {
    "/api/processes": ["date_from", "date_to", "since", "until", "process", "burst_id", "obs_id", "pass_id", "status",
                       "pipeline", "order", "limit", "offset"],
    "/api/bursts": ["since", "until", "burst_id", "instrument", "retracted", "has_position", "order", "limit", "offset"],
    "/api/triggers": ["since", "until", "burst_id", "telescope", "state", "requested_by", "order", "limit", "offset"],
    "/api/log": ["after", "type", "stream", "since", "until", "limit"],
    "/api/bursts/sb26112001": ["log_after", "log_limit"],
}  # fmt: skip


async def test_api_nothing_is_5xx(archive: Archive) -> None:
    """Every /api key with hostile values: 200 or a JSON 4xx; the tables intact."""
    conn = sqlite3.connect(archive.projections_path)
    tables = ("processes", "bursts", "burst_notices", "voevent")
    before = [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables]
    async with aiohttp.ClientSession(headers=AUTH) as session:  # the token: past the log's refusal
        for endpoint, keys in API_KEYS.items():
            for key, value in itertools.product(keys, NASTY):
                url = f"{archive.url}{endpoint}?{quote(key)}={quote(value, safe='')}"
                async with session.get(url) as response:
                    body = await response.json()
                    assert response.status in (200, 400, 404, 413), (endpoint, key, value, body)
                    if response.status != 200:
                        assert body["error"]["message"]
            for raw in ("burst_id=%FF", "%FF=1", "since=%C3%28"):
                async with session.get(f"{archive.url}{endpoint}?{raw}") as response:
                    assert response.status in (200, 400), (endpoint, raw)
                    await response.json()
        for value in NASTY:
            async with session.get(f"{archive.url}/api/bursts/{quote(value, safe='')}") as response:
                assert response.status in (400, 404), value
                assert (await response.json())["error"]["message"]
    after = [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables]
    conn.close()
    assert before == after
