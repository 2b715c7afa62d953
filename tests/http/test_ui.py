"""The web pages over a real log, real projections and a real HTTP server on loopback.

The site is built as the service builds it (``Core``: log, ingest, burst identifier,
projections), filled with notices, process runs and a trigger, and served by ``make_app``
under a base path and without one. The checks read the HTML a browser would get.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from burstbus.bridges.http import make_app, sky
from burstbus.bridges.http.ui import VERIFIER
from burstbus.config import load_config
from burstbus.events import Event
from burstbus.service import Core
from burstbus.store.projections.triggers import TriggersProjection
from tests.packets import voevent
from tests.waiting import wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")

SVOM = "ivo://org.svom/fsc"
SWIFT = "ivo://nasa.gsfc.gcn/SWIFT"
BURST = "sb26112001"
#: The sites are served with a read token; the checks read as a signed-in reader (the
#: anonymous view, refusals and the sign-in form are in ``test_access.py``).
READ_TOKEN = "ui-read-token"
AUTH = {"Authorization": f"Bearer {READ_TOKEN}"}
#: The SVOM burst's event (trigger) time: WhereWhen's ISOTime of its notices.
TRIGGER = "2026-11-20T03:04:05.67"




def packets() -> list[bytes]:
    """An SVOM burst with three notices (wake-up, a better position, one far off), a Swift
    burst near RA 0h, a wide circle over the RA seam, notices without a position, every role."""
    return [
        voevent(f"{SVOM}#{BURST}_eclairs-wakeup", ra=123.4, dec=-45.0, err=0.2, params={"Burst_Id": BURST},
                authored="2026-11-20T03:05:00", time=TRIGGER),
        voevent(f"{SVOM}#{BURST}_vt-position", ra=123.41, dec=-45.01, err=0.0005, params={"Burst_Id": BURST},
                authored="2026-11-20T03:25:00", cites=[(f"{SVOM}#{BURST}_eclairs-wakeup", "followup")], time=TRIGGER),
        voevent(f"{SVOM}#{BURST}_grm-alert", ra=None, dec=None, params={"Burst_Id": BURST},
                authored="2026-11-20T03:06:00"),
        voevent(f"{SWIFT}#BAT_GRB_Pos_700001-1", ra=0.5, dec=20.0, err=0.05, authored="2026-11-19T10:00:00",
                time="2026-11-19T09:59:00"),
        voevent("ivo://test.example/gbm#wide-1", ra=359.0, dec=5.0, err=12.0, authored="2026-11-18T10:00:00",
                time="2026-11-18T09:58:00"),
        voevent("ivo://test.example/tests#ping-1", role="test", ra=None, dec=None, authored="2026-11-18T11:00:00"),
        voevent("ivo://test.example/pred#p-1", role="prediction", ra=200.0, dec=-30.0, err=1.0,
                authored="2026-11-17T11:00:00", time="2026-11-21T00:00:00"),  # predicted: authored before
        voevent("ivo://test.example/odd#<b>&'quote\"", ra=1.0, dec=2.0, err=0.1, authored="2026-11-16T11:00:00",
                time="2026-11-16T10:00:00"),
    ]


def process_events() -> list[Event]:
    def status(process: str, state: str, *, burst: str = BURST, obs: str = "o1", log: str = "") -> Event:
        data = {"process": process, "burst_id": burst, "obs_id": obs, "pass_id": "p1", "pipeline": "fsc-pipe",
                "status": state, "log": log}  # fmt: skip
        return Event("process.status", data, stream=burst, actor="nats:test")

    return [
        status("obtloc", "running"),
        status("obtloc", "complete", log="done\nlocalised at 123.41 -45.01"),
        status("vtloc", "running"),
        status("vtloc", "failed", log="Traceback...\nValueError: <no stars> & nothing"),
        status("grmlc", "queued"),
        status("other", "vanished", burst="sb26111999"),
    ]


@dataclass
class Site:
    core: Core
    runner: web.AppRunner
    app: web.Application
    url: str  # the server root, e.g. http://127.0.0.1:PORT
    base: str

    @property
    def home(self) -> str:
        return self.url + self.base

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession(headers=AUTH) as session, session.get(self.home + path) as response:
            return response.status, await response.text()


async def fill(core: Core) -> None:
    """Notices through the ingest, process runs and a trigger into the log / projections."""
    for raw in packets():
        result = await core.ingest.submit(raw, via="local", peer="test")
        assert result.outcome == "accepted", result
    await core.log.append(process_events())
    await core.catch_up()
    with sqlite3.connect(core.config.projections_path) as conn:
        TriggersProjection().create(conn)
        conn.execute(
            "INSERT OR REPLACE INTO triggers (request_id, telescope, burst_id, state, requested_by, requested_at, "
            "note, params, two_person, expires_at, approved_by, approved_at, first_seq, last_seq) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            ("r" * 32, "colibri", BURST, "approved", "alice@fsc.example", "2026-11-20T03:30:00.000000Z",
             "follow <VT> & go", '{"exposure": 60}', 1, "2026-11-20T03:40:00.000000Z", "bob@fsc.example",
             "2026-11-20T03:31:00.000000Z", 1, 2),
        )  # fmt: skip


async def open_core(data_dir: Path) -> Core:
    config = load_config(environ={}, overrides={
        "data": {"dir": str(data_dir)}, "vtp": {"enabled": False}, "nats": {"enabled": False},
        "http": {"enabled": False}})  # fmt: skip
    return await Core.open(config)


async def serve_app(core: Core, base: str, **options: Any) -> tuple[web.AppRunner, web.Application, str]:
    options.setdefault("read_token", READ_TOKEN)
    app = make_app(core.log, core.config.projections_path, base_path=base, **options)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, app, f"http://{host}:{port}"


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["", "/ops/burstbus"], ids=["root", "base-path"])
async def site(request: Any, tmp_path_factory: Any) -> AsyncIterator[Site]:
    core = await open_core(tmp_path_factory.mktemp("ui") / "data")
    try:
        await fill(core)
        runner, app, url = await serve_app(core, request.param)
        try:
            yield Site(core, runner, app, url, request.param)
        finally:
            await runner.cleanup()
    finally:
        await core.close()


def rows(html: str) -> list[str]:
    """The ``data-key`` of every result row, in page order."""
    section = html[html.index('id="results"'):]
    return re.findall(r'data-key="([^"]*)"', section)


def text(html: str) -> str:
    """What a reader sees: tags removed, entities decoded, runs of spaces as one."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def links(html: str) -> list[str]:
    return [unescape(h) for h in re.findall(r'(?:href|src|data-stream)="([^"]*)"', html)]


# -- every page ---------------------------------------------------------------------------


async def test_every_page_renders_with_nav_and_relative_links(site: Site) -> None:
    for path in ("/", "/notices", "/processes", "/bursts", f"/bursts/{BURST}", "/log"):
        status, html = await site.get(path)
        assert status == 200, (path, html[:500])
        assert '<nav aria-label="Pages">' in html
        for link in links(html):
            # Never absolute to the host, never rooted outside the base.
            assert not re.match(r"^[a-z]+://", link), (path, link)
            assert not link.startswith("/"), (path, link)
        assert 'name="viewport"' in html


async def test_links_resolve_under_the_base_path(site: Site) -> None:
    """Follow every relative link of every page: each stays under the base and answers."""
    seen: set[str] = set()
    async with aiohttp.ClientSession(headers=AUTH) as session:
        for path in ("/", "/notices", f"/bursts/{BURST}", "/log"):
            page = site.home + path
            async with session.get(page) as response:
                html = await response.text()
            for link in links(html):
                target = str(response.url.join(aiohttp.client.URL(link)))
                if target in seen or "api/stream" in target:
                    continue
                seen.add(target)
                assert target.startswith(site.home + "/"), (path, link, target)
                async with session.get(target) as answer:
                    assert answer.status == 200, (path, link, target, answer.status)


async def test_base_path_root_redirects_and_static_is_served(site: Site) -> None:
    async with aiohttp.ClientSession() as session:
        if site.base:
            async with session.get(site.home, allow_redirects=False) as response:
                assert response.status == 302
                assert response.headers["Location"] == site.base + "/"
            async with session.get(site.url + "/notices") as response:
                assert response.status == 404  # nothing outside the base
        async with session.get(site.home + "/static/burstbus.css") as response:
            assert response.status == 200
            assert "prefers-color-scheme" in await response.text()
        async with session.get(site.home + "/static/live.js") as response:
            assert response.status == 200
            assert "EventSource" in await response.text()


# -- notices ------------------------------------------------------------------------------


def ivorns(html: str) -> list[str]:
    """The notices table's IVORNs, in page order."""
    section = html[html.index('id="results"'):]
    return [unescape(i) for i in re.findall(r'<tr data-key="[^"]*" data-ivorn="([^"]*)"', section)]


#: Every notice of ``packets()`` by its event time, newest first, then those without one
#: (no position: no WhereWhen time in the archive) by authored time; ties by authored time.
#: Every notice with an event time has it in the order, positioned or not (the GRM alert has none).
BY_EVENT_TIME = ["p-1", "vt-position", "grm-alert", "eclairs-wakeup", "ping-1", "BAT_GRB_Pos_700001-1", "wide-1",
                 "odd#"]  # fmt: skip


def short(found: list[str]) -> list[str]:
    return [next(k for k in BY_EVENT_TIME if k in ivorn) for ivorn in found]


async def test_notices_by_event_time_with_svom_columns(site: Site) -> None:
    status, html = await site.get("/notices")
    assert status == 200
    body = text(html)
    assert "8 notices" in body and "by event time, newest first" in body
    assert f"{BURST}_vt-position" in body
    assert 'href="./bursts/sb26112001"' in html
    # SVOM's columns, each its own and sortable: authored, IVORN, role, RA, Dec, error, time,
    # instrument, burst; the received time stays.
    head = html[html.index('id="notice-table"'):html.index("</thead>")]
    assert re.findall(r'data-sort-key="([a-z]+)"', head) == ["authored", "ivorn", "role", "ra", "dec", "err", "time",
                                                             "instrument", "burst", "received"]  # fmt: skip
    assert 'data-sort-key="time" aria-sort="descending"' in head
    # Every row arrived within a second (as after an archive import): the event time orders them.
    assert short(ivorns(html)) == BY_EVENT_TIME
    row = html[html.index(f'data-ivorn="{SVOM}#{BURST}_vt-position"'):]
    row = row[:row.index("</tr>")]
    assert '<td data-label="Time" data-col="time"><time datetime="2026-11-20T03:04:05.670000Z">2026-11-20 03:04:05</time>' in row
    assert '<td data-label="Authored" data-col="authored"><time datetime="2026-11-20T03:25:00.000000Z">' in row
    assert 'data-col="ra" class="half num" data-value="123.4' in row and "123.410°" in row  # FK5 → ICRS
    assert "-45.010°" in row and "1.8&#34;" in row and 'class="ago" data-ago="2026-11-20T03:04:05.670000Z"' in row
    # The odd IVORN is escaped, not markup.
    assert "<b>&" not in html
    assert "ivo://test.example/odd#&lt;b&gt;&amp;" in html


@pytest.mark.parametrize(
    "sort, expected",
    [
        ("time", ["odd#", "wide-1", "BAT_GRB_Pos_700001-1", "ping-1", "eclairs-wakeup", "grm-alert", "vt-position", "p-1"]),
        ("-authored", ["vt-position", "grm-alert", "eclairs-wakeup", "BAT_GRB_Pos_700001-1", "ping-1", "wide-1", "p-1", "odd#"]),
        ("authored", ["odd#", "p-1", "wide-1", "ping-1", "BAT_GRB_Pos_700001-1", "eclairs-wakeup", "grm-alert", "vt-position"]),
        ("ra", ["BAT_GRB_Pos_700001-1", "odd#", "eclairs-wakeup", "vt-position", "p-1", "wide-1", "grm-alert", "ping-1"]),
        ("-dec", ["BAT_GRB_Pos_700001-1", "wide-1", "odd#", "p-1", "eclairs-wakeup", "vt-position", "grm-alert", "ping-1"]),
        ("err", ["vt-position", "BAT_GRB_Pos_700001-1", "odd#", "eclairs-wakeup", "p-1", "wide-1", "grm-alert", "ping-1"]),
        ("-err", ["wide-1", "p-1", "eclairs-wakeup", "odd#", "BAT_GRB_Pos_700001-1", "vt-position", "grm-alert", "ping-1"]),
    ],
)
async def test_notices_sort_by_any_column(site: Site, sort: str, expected: list[str]) -> None:
    status, html = await site.get(f"/notices?sort={quote(sort)}")
    assert status == 200
    assert short(ivorns(html)) == expected
    key = sort.lstrip("-")
    assert f'data-sort-key="{key}" aria-sort="{"descending" if sort.startswith("-") else "ascending"}"' in html
    # The header links flip the order of the sorted column and keep the other filters.
    _, html = await site.get(f"/notices?role=observation&sort={quote(sort)}")
    head = html[html.index('id="notice-table"'):html.index("</thead>")]
    flipped = key if sort.startswith("-") else "-" + key
    assert f'href="?role=observation&amp;sort={quote(flipped)}"' in head
    assert f'<input type="hidden" name="sort" value="{sort}">' in html  # applying a filter keeps the order


async def test_notices_sort_by_text_columns_and_received(site: Site) -> None:
    _, html = await site.get("/notices?sort=ivorn")
    assert ivorns(html) == sorted(ivorns(html))
    _, html = await site.get("/notices?sort=-burst")
    assert short(ivorns(html))[:3] == ["vt-position", "grm-alert", "eclairs-wakeup"]  # the burst's, newest authored first
    _, html = await site.get("/notices?sort=role")
    assert short(ivorns(html))[-2:] == ["ping-1", "p-1"][::-1] or "prediction" in text(html)
    _, html = await site.get("/notices?sort=-received")
    assert len(ivorns(html)) == 8


@pytest.mark.parametrize("sort", ["random()", "time;drop", "--time", "seq", "-"])
async def test_unknown_sort_key_is_a_400_page(site: Site, sort: str) -> None:
    status, html = await site.get(f"/notices?sort={quote(sort)}")
    assert status == 400 and 'id="filter-error"' in html
    assert "is not a column to sort by" in text(html)
    assert '<input type="hidden" name="sort" value="-time">' in html  # the form does not keep the bad one
    status, html = await site.get(f"/bursts?sort={quote(sort)}")
    assert status == 400 and "is not a column to sort by" in text(html)


async def test_notices_pattern_is_case_insensitive(site: Site) -> None:
    for pattern in ("ECLAIRS", "eclairs", "EcLaIrS-wake"):
        _, html = await site.get(f"/notices?pattern={quote(pattern)}")
        assert short(ivorns(html)) == ["eclairs-wakeup"], pattern
    _, html = await site.get("/notices?pattern=bat_grb")  # "_" is a letter here, not LIKE's wildcard
    assert short(ivorns(html)) == ["BAT_GRB_Pos_700001-1"]
    _, html = await site.get("/notices?pattern=" + quote("%"))
    assert "No notices match" in text(html)
    _, html = await site.get("/notices?pattern=svom&role=observation&sort=authored")
    assert short(ivorns(html)) == ["eclairs-wakeup", "grm-alert", "vt-position"]
    assert "3 notices matching the filters" in text(html)


@pytest.mark.parametrize(
    "cone, count",
    [
        ("123.4 -45 1", 2),
        ("8h13m36s -45d00m00s 1deg", 2),  # 123.4° = 8h13m36s
        ("08:13:36 -45:00:00 60'", 2),
        ("08 13 36 -45 00 00 60arcmin", 2),
        ("123.4, -45, 0.5", 2),
        ("123.4 \u221245 1", 2),  # a phone's minus sign
        ("123.4 -45", 2),  # the radius defaults to 1°, as the bot's near
        ("123.41 -45.01 3.6arcsec", 1),
        ("0h02m00s +20d00m00s 10'", 1),  # 0.5° = 0h02m00s
    ],
)
async def test_notices_cone_accepts_what_the_bot_accepts(site: Site, cone: str, count: int) -> None:
    status, html = await site.get("/notices?cone=" + quote(cone))
    assert status == 200, text(html)
    assert f"{count} notice{'' if count == 1 else 's'} within" in text(html)


@pytest.mark.parametrize(
    "query, says",
    [
        ("cone=400+0+1", "cone: right ascension '400' is outside 0–360°"),
        ("cone=10+95+1", "cone: declination '95' is outside −90…+90°"),
        ("cone=banana", "cone: cannot read 'banana' as RA DEC [RADIUS]"),
        ("cone=10+5+200deg", "cone: the radius must be above 0 and at most 180°"),
        ("ra=400&dec=0&radius=1", "ra: right ascension '400' is outside 0–360°"),
        ("cone=10+5+1&ra=1&dec=2&radius=3", "not both"),
    ],
)
async def test_notices_cone_refusals_say_why(site: Site, query: str, says: str) -> None:
    status, html = await site.get("/notices?" + query)
    assert status == 400 and says in text(html), text(html)


async def test_notices_cone_filter(site: Site) -> None:
    status, html = await site.get("/notices?ra=123.4&dec=-45&radius=1")
    assert status == 200
    body = text(html)
    assert "2 notices within 1° of RA 123.400°" in body
    assert "vt-position" in body and "eclairs-wakeup" in body
    assert "BAT_GRB_Pos" not in body
    assert "Distance" in body
    # Across RA 0h: 0.5 and 359.0 are 1.5° apart (the wide GBM circle's centre).
    status, html = await site.get("/notices?ra=0&dec=10&radius=11")
    body = text(html)
    assert "BAT_GRB_Pos_700001" in body and "wide-1" in body and "vt-position" not in body
    # The API's own spelling works too.
    status, html = await site.get("/notices?cone=" + quote("[123.4,-45,1]"))
    assert status == 200 and "2 notices" in text(html)


async def test_notices_other_filters(site: Site) -> None:
    _, html = await site.get("/notices?role=test")
    assert "1 notice " in text(html) and "ping-1" in text(html)
    _, html = await site.get("/notices?ivorn_contains=eclairs")
    assert "1 notice " in text(html)
    _, html = await site.get("/notices?authored_since=2026-11-19&authored_until=2026-11-19")
    assert "1 notice " in text(html) and "BAT_GRB_Pos" in text(html)
    _, html = await site.get("/notices?stream=org.svom/fsc&role=observation")
    assert "3 notices" in text(html)
    _, html = await site.get("/notices?limit=2")
    assert len(rows(html)) == 2 and "Older →" in html
    _, html = await site.get("/notices?limit=2&offset=2")
    assert "← Newer" in html and "3–4 of 8" in text(html)


@pytest.mark.parametrize(
    "query, says",
    [
        ("ra=10&dec=95&radius=1", "dec: declination '95' is outside"),
        ("ra=10&dec=5", "needs ra, dec and radius"),
        ("ra=ten&dec=5&radius=1", "ra: cannot read 'ten' as an angle"),
        ("ra=10&dec=5&radius=-1", "radius: cannot read '-1' as a radius"),
        ("role=boss", "role must be one of"),
        ("authored_since=yesterday", "authored_since: cannot read"),
        ("colour=red", "unknown filter 'colour'"),
        ("limit=100000", "limit: at most 500"),
        ("cone=" + quote("[1,2]"), "cone must be [ra,dec,radius]"),
        ("ra=nan&dec=1&radius=1", "ra: cannot read 'nan' as an angle"),
        ("cone=" + quote("[0,95,1]"), "invalid declination value"),  # the API's spelling: the API's checks
    ],
)
async def test_notices_bad_filters_are_messages(site: Site, query: str, says: str) -> None:
    status, html = await site.get("/notices?" + query)
    assert status == 400
    assert 'id="filter-error"' in html
    assert says in text(html), text(html)
    assert '<form class="filters"' in html  # the form is there to fix it


# -- processes ----------------------------------------------------------------------------


async def test_processes_table_with_status_colours(site: Site) -> None:
    status, html = await site.get("/processes")
    assert status == 200
    assert "4 runs" in text(html)
    assert 'class="status status-failed">failed<' in html
    assert "status-row-complete" in html and "status-row-vanished" in html
    assert "ValueError: &lt;no stars&gt; &amp; nothing" in html  # the last log line, escaped


async def test_processes_filters(site: Site) -> None:
    _, html = await site.get("/processes?status=failed")
    assert "1 run" in text(html) and "vtloc" in text(html) and "obtloc" not in text(html)
    _, html = await site.get("/processes?status=failed&status=queued")
    assert "2 runs" in text(html)
    assert 'value="failed" checked' in html and 'value="queued" checked' in html
    _, html = await site.get(f"/processes?burst_id={BURST}")
    assert "3 runs" in text(html)
    _, html = await site.get("/processes?process=loc")
    assert "2 runs" in text(html)
    _, html = await site.get("/processes?pipeline=fsc&status=vanished")
    assert "1 run" in text(html)
    today = site.core.config and (await site.core.log.head()).recorded_at
    assert today is not None
    _, html = await site.get(f"/processes?date={today[:10]}")
    assert "4 runs" in text(html)
    _, html = await site.get("/processes?date=2001-01-01")
    assert "No process runs match" in text(html)


@pytest.mark.parametrize("query, says", [("status=done", "status must be one of"),
                                         ("date=2026-02-30", "not a calendar date"),
                                         ("date=today", "a date as YYYY-MM-DD")])  # fmt: skip
async def test_processes_bad_filters(site: Site, query: str, says: str) -> None:
    status, html = await site.get("/processes?" + query)
    assert status == 400 and says in text(html)


# -- bursts -------------------------------------------------------------------------------


async def test_bursts_list(site: Site) -> None:
    status, html = await site.get("/bursts")
    assert status == 200
    assert BURST in text(html)
    assert "1 failed" in text(html)  # the process summary per burst
    _, html = await site.get("/bursts?burst_id=sb2611200")
    assert rows(html) and all(k.startswith(BURST) for k in rows(html))
    status, html = await site.get("/bursts?since=31-12-2026")
    assert status == 400 and "since: a date" in text(html)


async def test_bursts_ordered_by_trigger_time_not_by_last_notice(tmp_path: Path) -> None:
    """An older burst with a late refinement stays below a newer trigger; times relative to
    now stand beside UTC."""
    core = await open_core(tmp_path / "data")
    try:
        late, new, bare = "sb26111801", "sb26112099", "sb26111999"
        for raw in (
            voevent(f"{SVOM}#{late}_eclairs", ra=10.0, dec=10.0, err=0.2, params={"Burst_Id": late},
                    authored="2026-11-18T01:00:00", time="2026-11-18T00:59:00"),
            voevent(f"{SVOM}#{new}_eclairs", ra=20.0, dec=20.0, err=0.2, params={"Burst_Id": new},
                    authored="2026-11-20T05:00:00", time="2026-11-20T04:59:00"),
            voevent(f"{SVOM}#{bare}_grm", ra=None, dec=None, params={"Burst_Id": bare}, authored="2026-11-19T12:00:00",
                    time="2026-11-20T03:04:05"),  # no position, but an event time
            # The old burst's refinement arrives last (and is authored last).
            voevent(f"{SVOM}#{late}_vt", ra=10.01, dec=10.01, err=0.001, params={"Burst_Id": late},
                    authored="2026-11-21T09:00:00", time="2026-11-18T00:59:00"),
        ):
            assert (await core.ingest.submit(raw, via="local", peer="test")).outcome == "accepted"
        await core.catch_up()
        runner, app, url = await serve_app(core, "")
        site = Site(core, runner, app, url, "")
        try:
            status, html = await site.get("/bursts")
            assert status == 200
            assert [k.split(":")[0] for k in rows(html)] == [new, bare, late]
            assert "newest trigger first" in text(html)
            head = html[html.index("<thead>"):html.index("</thead>")]
            assert 'data-sort-key="trigger" aria-sort="descending"' in head
            assert re.search(r'data-ago="2026-11-20T04:59:00.000000Z">\d+ d ago<', html)
            _, html = await site.get("/bursts?sort=-last_notice")
            assert [k.split(":")[0] for k in rows(html)] == [late, new, bare]
            _, html = await site.get("/bursts?sort=trigger")
            assert [k.split(":")[0] for k in rows(html)] == [late, bare, new]
            _, html = await site.get("/")  # the overview's latest bursts: the same order
            assert html.index(f">{new}<") < html.index(f">{late}<")
        finally:
            await runner.cleanup()
    finally:
        await core.close()


async def test_burst_page(site: Site) -> None:
    status, html = await site.get(f"/bursts/{BURST}")
    assert status == 200
    body = text(html)
    # The best position (the smallest error), in degrees and sexagesimal.
    assert "RA 123.4100° Dec -45.0100°" in body
    assert sky.ra_hms(123.41) in body and sky.dec_dms(-45.01) in body
    assert f"{BURST}_vt-position" in body
    # Sky charts: the all-sky map and, the error being small, the zoom.
    assert '<svg class="sky allsky"' in html and '<svg class="sky inset"' in html
    assert html.count('class="sky-err best"') == 2
    # Timeline in time order, the best position marked.
    timeline = html[html.index('class="timeline"'):html.index("</ol>")]
    order = re.findall(r'data-key="([^"]+)"', timeline)
    assert order == [f"{SVOM}#{BURST}_eclairs-wakeup", f"{SVOM}#{BURST}_grm-alert", f"{SVOM}#{BURST}_vt-position"]
    assert "best position" in text(timeline)
    # Processes and the trigger.
    assert "vtloc" in body and "status-row-failed" in html
    assert "colibri" in body and "bob@fsc.example" in body and "follow <VT> & go" in body
    assert "two-person" in body


async def test_unknown_burst_is_a_404_page(site: Site) -> None:
    status, html = await site.get("/bursts/sb00000000")
    assert status == 404
    assert "no burst 'sb00000000' is known" in text(html)
    assert "<!doctype html>" in html


async def test_burst_page_without_triggers_table(tmp_path: Path) -> None:
    core = await open_core(tmp_path / "data")
    try:
        for raw in packets()[:2]:
            await core.ingest.submit(raw, via="local", peer="test")
        await core.catch_up()
        with sqlite3.connect(core.config.projections_path) as conn:
            conn.execute("DROP TABLE IF EXISTS triggers")
        runner, _, url = await serve_app(core, "")
        try:
            async with aiohttp.ClientSession(headers=AUTH) as session:
                async with session.get(f"{url}/bursts/{BURST}") as response:
                    assert response.status == 200
                    assert "No triggers." in text(await response.text())
                async with session.get(f"{url}/bursts") as response:
                    assert response.status == 200
        finally:
            await runner.cleanup()
    finally:
        await core.close()


# -- the audit log ------------------------------------------------------------------------


async def test_log_page_lists_newest_first_and_filters(site: Site) -> None:
    head = (await site.core.log.head()).seq
    status, html = await site.get("/log")
    assert status == 200
    keys = [int(k) for k in rows(html)]
    assert keys[0] == head and keys == sorted(keys, reverse=True)
    assert "process.status" in html and "voevent.accepted" in html
    _, html = await site.get("/log?type=process.status")
    assert len(rows(html)) == 6 and "voevent.accepted</a>" not in html
    _, html = await site.get("/log?type=voevent.accepted,burst.identified&stream=" + BURST)
    assert {int(k) for k in rows(html)} and "burst.identified" in html
    _, html = await site.get("/log?after=2&limit=3")
    assert [int(k) for k in rows(html)] == [3, 4, 5]
    assert "Later →" in html
    _, html = await site.get(f"/log?before={head}&limit=2")
    assert [int(k) for k in rows(html)] == [head - 1, head - 2]


@pytest.mark.parametrize("query, says", [("after=-1", "after: a whole number"), ("type=DROP TABLE", "not an event type"),
                                         ("after=1&before=5", "not both")])  # fmt: skip
async def test_log_bad_filters(site: Site, query: str, says: str) -> None:
    status, html = await site.get("/log?" + query)
    assert status == 400 and says in text(html)


async def test_log_page_shows_the_chain_verification(site: Site) -> None:
    verifier = site.app[VERIFIER]
    await wait_for(lambda: verifier.state is not None, "the first verification")
    state = await verifier.check()
    status, html = await site.get("/log")
    assert "Hash chain intact:" in text(html)
    assert f"verified up to seq {state.head_seq} at" in text(html)


async def test_viewing_the_log_page_reverifies_a_grown_log(site: Site) -> None:
    verifier = site.app[VERIFIER]
    await wait_for(lambda: verifier.state is not None, "the first verification")
    await verifier.check()
    await site.core.log.append([Event("test.ui_nudge", {"why": "a log that grew"})])
    head = (await site.core.log.head()).seq
    verifier.min_gap = 0.0
    _, html = await site.get("/log")  # the page answers at once and starts a check
    await wait_for(lambda: verifier.state is not None and verifier.state.head_seq == head, "a check after the view")
    _, html = await site.get("/log")
    assert f"verified up to seq {head} at" in text(html)


async def test_damaged_chain_is_shown(tmp_path: Path) -> None:
    core = await open_core(tmp_path / "data")
    try:
        for raw in packets()[:3]:
            await core.ingest.submit(raw, via="local", peer="test")
        await core.catch_up()
        runner, app, url = await serve_app(core, "")
        try:
            verifier = app[VERIFIER]
            await wait_for(lambda: verifier.state is not None, "the first verification")
            # An edit that bypasses the append-only triggers.
            with sqlite3.connect(core.config.log_path) as conn:
                conn.execute("DROP TRIGGER events_append_only_update")
                conn.execute("UPDATE events SET actor = 'mallory' WHERE seq = 2")
            await verifier.check()
            async with aiohttp.ClientSession(headers=AUTH) as session, session.get(f"{url}/log") as response:
                body = text(await response.text())
            assert "Hash chain DAMAGED at seq 2" in body
            assert "Intact up to seq 1" in body
        finally:
            await runner.cleanup()
    finally:
        await core.close()


# -- fragments (what the live script fetches) ---------------------------------------------


async def test_results_fragment_keeps_the_filters(site: Site) -> None:
    status, html = await site.get("/notices?ra=123.4&dec=-45&radius=1&fragment=results")
    assert status == 200
    assert html.lstrip().startswith('<section id="results"')
    assert "<nav" not in html.split('<nav class="pager"')[0]
    assert len(rows(html)) == 2
    for path in ("/processes?status=failed", "/bursts", f"/bursts/{BURST}", "/log", "/"):
        sep = "&" if "?" in path else "?"
        status, html = await site.get(path + sep + "fragment=results")
        assert status == 200 and html.lstrip().startswith('<section id="results"'), path


async def test_live_attributes(site: Site) -> None:
    _, html = await site.get("/notices?role=observation")
    main = re.search(r"<main [^>]*>", html)
    assert main is not None
    tag = main.group(0)
    assert 'data-stream="./api/stream"' in tag
    assert 'data-types="voevent.accepted,burst.identified"' in tag
    assert 'data-projected="1"' in tag
    _, html = await site.get(f"/bursts/{BURST}")
    tag = re.search(r"<main [^>]*>", html).group(0)  # type: ignore[union-attr]
    assert 'data-stream="../api/stream"' in tag and "&#34;burst_id&#34;" in tag or "&quot;burst_id&quot;" in tag
    # An older page of results is a fixed window: not live.
    _, html = await site.get("/notices?limit=2&offset=2")
    assert "data-live" not in html


async def test_sky_view_markup_and_policy(site: Site, tmp_path: Path, monkeypatch: Any) -> None:
    """Not vendored: the SVG chart and the pages' strict policy. Vendored: the widget's local URL
    and, on the pages that serve it only, the policy it needs (WebAssembly, CDS tiles)."""
    async def page(path: str) -> tuple[str, str]:
        async with aiohttp.ClientSession(headers=AUTH) as session, session.get(site.home + path) as response:
            assert response.status == 200
            return await response.text(), response.headers["Content-Security-Policy"]

    monkeypatch.setattr(sky, "ALADIN_DIR", tmp_path / "absent")
    for path in ("/notices", f"/bursts/{BURST}"):
        html, policy = await page(path)
        assert 'data-aladin=""' in html and '<svg class="sky allsky"' in html and "wasm" not in policy
        assert 'class="sky-markers">[{"ra":' in html and "static/skyview.js?v=" in html
    vendored = tmp_path / "vendor" / "aladin"
    vendored.mkdir(parents=True)
    (vendored / "aladin.js").write_text("export default {};")
    (vendored / "VERSION.json").write_text('{"version": "3.8.2"}')
    monkeypatch.setattr(sky, "ALADIN_DIR", vendored)
    html, policy = await page("/notices")
    assert 'data-aladin="./static/vendor/aladin/aladin.js?v=3.8.2"' in html
    assert "'wasm-unsafe-eval'" in policy and "https://*.unistra.fr" in policy and "script-src 'self' 'wasm-unsafe-eval';" in policy
    html, policy = await page(f"/bursts/{BURST}")
    assert 'data-aladin="../static/vendor/aladin/aladin.js?v=3.8.2"' in html and "'wasm-unsafe-eval'" in policy
    for path in ("/", "/processes", "/bursts"):  # no sky view: the strict policy
        _, policy = await page(path)
        assert "wasm" not in policy and "unistra" not in policy
    _, policy = await page("/notices?role=test")  # no positioned notice: nothing to show, nothing widened
    assert "wasm" not in policy


async def test_a_bursts_other_name_leads_to_the_burst_it_joined(tmp_path: Path) -> None:
    import sqlite3

    from tests.http.conftest import open_archive
    from tests.packets import voevent

    archive = await open_archive(tmp_path, [voevent("ivo://org.svom/fsc#sb26120105_grm", params={"Burst_Id": "sb26120105"})])
    try:
        with sqlite3.connect(tmp_path / "projections.sqlite") as db:  # as a coincidence decision leaves it
            db.execute("INSERT INTO burst_aliases (alias, burst_id, seq) VALUES ('fermi-792135758', 'sb26120105', 1)")
        async with aiohttp.ClientSession() as session:
            async with session.get(archive.url + "/bursts/fermi-792135758", allow_redirects=False) as moved:
                assert moved.status == 302 and moved.headers["Location"] == "../bursts/sb26120105"
            async with session.get(archive.url + "/bursts/fermi-0") as missing:
                assert missing.status == 404
    finally:
        await archive.close()
