"""The web pages in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
driven by Selenium), against a real burstbus: VTP receiver, burst identifier, projection
runner and the HTTP app, all on loopback under a base path.

The browser signs in through the form (the audit page is not public), loads every page,
applies a cone filter and a status filter through the forms, and sees a notice submitted over
VTP appear without a reload (and one outside the cone not appear). It sorts the notices by
clicking their column headers and checks each order, checks the phone layout (results first,
filters folded, a short audit page), the stale banner when the server goes away, and the sky
view: Aladin Lite (vendored) starting offline and falling back to the SVG chart with CDS out of
reach (the browser blocks it), the SVG alone when it is not vendored, and the widget over a fake
HiPS survey on loopback. Screenshots of every page at phone (390x844) and desktop (1366x900) width go to
``$BURSTBUS_SCREENSHOTS`` (default ``tests/artifacts/screenshots/``).

Selenium is blocking: every browser call runs in a thread (``asyncio.to_thread``), so the
server on this test's loop keeps serving. VTP binds Twisted's reactor to one loop per
process, hence the session loop (as the broker tests).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import struct
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import pytest_asyncio
from aiohttp import web

from burstbus.bridges.http import make_app, sky
from burstbus.broker.client import publish
from burstbus.events import Event
from tests.broker.harness import Node, unique_ivorn
from tests.packets import voevent
from tests.waiting import wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService
    from selenium.webdriver.common.by import By
except ImportError:  # pragma: no cover - the test extra installs it
    webdriver = None  # type: ignore[assignment]

if webdriver is None or CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver) "
        "and selenium (pip install selenium): "
        f"chromium={CHROMIUM}, chromedriver={CHROMEDRIVER}, selenium={'yes' if webdriver else 'no'}",
        allow_module_level=True,
    )

BASE = "/burstbus"
BURST = "sb26112042"
SVOM = "ivo://org.svom/fsc"
PHONE = (390, 844)
DESKTOP = (1366, 900)
READ_TOKEN = "browser-read-token"
#: The sky survey's hosts (bridges/http/sky.py): blocked in the browser, so the tests run offline.
SURVEY_HOSTS = ("unistra.fr", "u-strasbg.fr")
SCREENSHOTS = Path(os.environ.get("BURSTBUS_SCREENSHOTS") or Path(__file__).resolve().parents[1] / "artifacts" / "screenshots")


class Browser:
    """One headless Chromium; ``call`` runs a blocking Selenium function off the loop."""

    def __init__(self) -> None:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--no-first-run", "--disable-extensions", "--disable-background-networking",
                    "--lang=en-GB", "--force-prefers-reduced-motion"):  # fmt: skip
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=DriverService(str(CHROMEDRIVER)), options=options)
        self.driver.set_page_load_timeout(60)
        # Offline, whatever this machine can reach: the sky view's survey (CDS) is never there.
        self.driver.execute_cdp_cmd("Network.enable", {})
        self.driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": [f"*{host}*" for host in SURVEY_HOSTS]})
        self.size(*DESKTOP)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    def size(self, width: int, height: int) -> None:
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})  # fmt: skip

    def screenshot(self, name: str, width: int, height: int) -> tuple[Path, int]:
        """The whole page (up to 6,000 px tall) at ``width``; a phone in dark mode (3 a.m.),
        a desktop in light mode, so both colour schemes are seen."""
        scheme = "dark" if width < 600 else "light"
        self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
            "features": [{"name": "prefers-color-scheme", "value": scheme}]})  # fmt: skip
        self.size(width, height)
        scroll_width = int(self.driver.execute_script("return document.documentElement.scrollWidth"))
        full = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.size(width, max(height, min(int(full), 6000)))
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}-{'phone' if width < 600 else 'desktop'}-{width}x{height}.png"
        self.driver.save_screenshot(str(path))
        self.size(*DESKTOP)
        self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
        return path, scroll_width

    # Read in one script: the live script may swap the elements between two WebDriver calls.
    def texts(self, css: str) -> list[str]:
        script = "return Array.from(document.querySelectorAll(arguments[0])).map(e => (e.innerText ?? e.textContent).trim())"
        return list(self.driver.execute_script(script, css))

    def attrs(self, css: str, name: str) -> list[str]:
        script = "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.getAttribute(arguments[1]) || '')"
        return list(self.driver.execute_script(script, css, name))

    def severe_console_errors(self) -> list[str]:
        """Errors in the console, but the blocked survey probe (the sky view's fallback is the
        point of blocking it; any other error, a CSP refusal included, counts)."""
        return [e["message"] for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"
                and "favicon.ico" not in e["message"]
                and not ("ERR_BLOCKED_BY_CLIENT" in e["message"] and any(h in e["message"] for h in SURVEY_HOSTS))]  # fmt: skip

    def quit(self) -> None:
        pid = self.driver.service.process.pid if self.driver.service.process else None
        try:
            self.driver.quit()
        finally:
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)  # chromedriver, if quit left it behind
                except ProcessLookupError:
                    pass


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    started = Browser()
    try:
        yield started
    finally:
        started.quit()


def _png(width: int = 64, height: int = 64) -> bytes:
    """A gradient PNG: the fake survey's tiles (and, 27 x 29 of them, its Allsky mosaic)."""
    row = b"".join(bytes((x * 4 % 256, 60, 110)) for x in range(width))
    raw = b"".join(b"\x00" + row for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


FAKE_HIPS_PROPERTIES = """creator_did = ivo://burstbus.test/P/fake
obs_title = burstbus test survey
dataproduct_type = image
hips_version = 1.4
hips_frame = equatorial
hips_order = 3
hips_order_min = 0
hips_tile_width = 64
hips_tile_format = png
hips_initial_fov = 180
"""


class FakeSurvey:
    """A HiPS survey on loopback (properties and one PNG for every tile), for the sky view's
    own path in a test with no network; records what the widget asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.tile = _png()
        self.allsky = _png(27 * 64, 29 * 64)  # order 3's 768 tiles, 27 to a row

    async def handle(self, request: web.Request) -> web.Response:
        tail = request.match_info["tail"]
        self.asked.append(tail)
        if tail == "properties":
            return web.Response(text=FAKE_HIPS_PROPERTIES, content_type="text/plain",
                                headers={"Access-Control-Allow-Origin": "*"})  # fmt: skip
        if tail.endswith(".png"):
            return web.Response(body=self.allsky if tail.endswith("Allsky.png") else self.tile, content_type="image/png", headers={"Access-Control-Allow-Origin": "*"})
        raise web.HTTPNotFound()


class Stack:
    def __init__(self, node: Node, runner: web.AppRunner, url: str, survey: FakeSurvey | None = None):
        self.node, self.runner, self.url = node, runner, url
        self.survey = survey or FakeSurvey()

    async def submit(self, raw: bytes) -> None:
        answer = await publish("127.0.0.1", self.node.receive_port, raw)
        assert answer.acknowledged, answer.reason

    async def projected(self) -> None:
        """Wait until the projections have applied everything in the log."""
        head = (await self.node.core.log.head()).seq
        await wait_for(lambda: self.node.core.projections.applied_seq >= head, f"projections at seq {head}")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(tmp_path_factory: Any) -> AsyncIterator[Stack]:
    node = await Node.start(tmp_path_factory.mktemp("ui-browser") / "data", broadcast=False)
    try:
        core = node.core
        app = make_app(core.log, core.config.projections_path, base_path=BASE, projection_runner=core.projections,
                       read_token=READ_TOKEN)  # fmt: skip
        survey = FakeSurvey()
        app.router.add_get(BASE + "/fake-hips/{tail:.*}", survey.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        stack = Stack(node, runner, f"http://{host}:{port}{BASE}", survey)
        try:
            await seed(stack)
            yield stack
        finally:
            await runner.cleanup()
    finally:
        await node.stop()


async def seed(stack: Stack) -> None:
    """A burst with two notices and processes, other notices over the sky: over VTP."""
    await stack.submit(voevent(f"{SVOM}#{BURST}_eclairs-wakeup", ra=150.0, dec=30.0, err=0.15,
                               params={"Burst_Id": BURST}, authored="2026-11-20T03:05:00"))  # fmt: skip
    await stack.submit(voevent(f"{SVOM}#{BURST}_vt-position", ra=150.02, dec=30.01, err=0.001,
                               params={"Burst_Id": BURST}, authored="2026-11-20T03:25:00",
                               cites=[(f"{SVOM}#{BURST}_eclairs-wakeup", "followup")]))  # fmt: skip
    for i, (ra, dec) in enumerate([(10.0, -20.0), (300.0, 60.0), (151.0, 31.0)]):
        await stack.submit(voevent(unique_ivorn(f"sky{i}"), ra=ra, dec=dec, err=0.5, authored="2026-11-19T00:00:00"))
    events = []
    for process, states in (("obtloc", ("running", "complete")), ("vtloc", ("running", "failed")), ("grmlc", ("queued",))):
        for state in states:
            data = {"process": process, "burst_id": BURST, "obs_id": "o1", "pass_id": "p1", "pipeline": "fsc",
                    "status": state, "log": f"{process} {state}"}  # fmt: skip
            events.append(Event("process.status", data, stream=BURST, actor="nats:test"))
    await stack.node.core.log.append(events)
    await wait_for(lambda: _burst_projected(stack), "the burst and its processes in the projections")


async def _burst_projected(stack: Stack) -> bool:
    await stack.projected()
    import sqlite3

    def check() -> bool:
        with sqlite3.connect(stack.node.core.config.projections_path) as conn:
            row = conn.execute("SELECT notice_count FROM bursts WHERE burst_id = ?", (BURST,)).fetchone()
            return bool(row and row[0] == 2)

    return await asyncio.to_thread(check)


PAGES = {
    "overview": "/",
    "notices": "/notices",
    "processes": "/processes",
    "bursts": "/bursts",
    "burst": f"/bursts/{BURST}",
    "log": "/log",
}


async def _live(browser: Browser) -> None:
    """Wait until the page's event stream is connected."""
    await wait_for(lambda: browser.call(lambda: "live" in browser.texts("#live-state")), "the live stream to connect")


def _signed_in(browser: Browser) -> bool:
    return browser.driver.get_cookie("burstbus_session") is not None


async def _sign_in_through_the_form(browser: Browser, token: str) -> None:
    """Type ``token`` into the sign-in form on the current page and submit it."""

    def fill() -> None:
        form = browser.driver.find_element(By.ID, "signin-form")
        box = form.find_element(By.NAME, "token")
        box.clear()
        box.send_keys(token)
        form.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()

    await browser.call(fill)


async def _ensure_signed_in(stack: Stack, browser: Browser) -> None:
    if not await browser.call(_signed_in, browser):
        await browser.call(browser.driver.get, stack.url + "/signin")
        await _sign_in_through_the_form(browser, READ_TOKEN)
        await wait_for(lambda: browser.call(_signed_in, browser), "the session cookie")


async def test_signing_in_through_the_form(stack: Stack, browser: Browser) -> None:
    await browser.call(browser.driver.delete_all_cookies)
    await browser.call(browser.driver.get, stack.url + "/log?type=process.status")
    # Not signed in: the audit page is the sign-in form, saying why; no events are shown.
    text = await browser.call(lambda: browser.driver.find_element(By.TAG_NAME, "main").text)
    assert "The audit log is not public" in text and not await browser.call(browser.texts, "#results tr")
    for width, height in (PHONE, DESKTOP):
        shot, scroll_width = await browser.call(browser.screenshot, "signin", width, height)
        assert shot.stat().st_size > 3000 and scroll_width <= width
    # A wrong token: the form again, with a message.
    await _sign_in_through_the_form(browser, "not-the-token")
    await wait_for(lambda: browser.call(lambda: browser.texts("#signin-error")), "the error message")
    assert "that token is not valid" in (await browser.call(browser.texts, "#signin-error"))[0]
    assert not await browser.call(_signed_in, browser)
    # The right one: back on the page asked for, with its events, live; the cookie is HttpOnly.
    await _sign_in_through_the_form(browser, READ_TOKEN)
    await wait_for(lambda: browser.call(lambda: browser.driver.current_url.endswith("/log?type=process.status")),
                   "the audit page after signing in")  # fmt: skip
    await _live(browser)
    assert await browser.call(browser.texts, "#results tr[data-key]")
    cookie = await browser.call(browser.driver.get_cookie, "burstbus_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and READ_TOKEN not in cookie["value"]
    assert await browser.call(lambda: browser.driver.execute_script("return document.cookie")) == ""
    errors = await browser.call(browser.severe_console_errors)
    assert [e for e in errors if "status of 401" not in e] == []  # the refusals above are 401s, as they should be


async def test_every_page_loads_and_is_screenshotted(stack: Stack, browser: Browser) -> None:
    await _ensure_signed_in(stack, browser)  # the audit page is for signed-in readers
    for name, path in PAGES.items():
        await browser.call(browser.driver.get, stack.url + path)
        title = await browser.call(lambda: browser.driver.title)
        assert title.endswith("· burstbus"), (name, title)
        nav = await browser.call(browser.texts, "header nav a")
        assert nav == ["Notices", "Bursts", "Processes", "Log"]
        await _live(browser)
        for width, height in (PHONE, DESKTOP):
            shot, scroll_width = await browser.call(browser.screenshot, name, width, height)
            assert shot.stat().st_size > 5000
            assert scroll_width <= width, f"{name} is wider ({scroll_width}px) than the screen ({width}px)"
        assert await browser.call(browser.severe_console_errors) == [], name
    # The burst page shows its position, the sky charts and its processes.
    await browser.call(browser.driver.get, stack.url + PAGES["burst"])
    assert await browser.call(browser.attrs, "svg.sky", "class") == ["sky allsky", "sky inset"]
    body = await browser.call(lambda: browser.driver.find_element(By.TAG_NAME, "body").text)
    assert "RA 150.0200° Dec +30.0100°" in body and "vtloc" in body and "No triggers." in body


async def test_phone_width_shows_cards_not_a_wide_table(stack: Stack, browser: Browser) -> None:
    await browser.call(browser.driver.get, stack.url + "/notices")
    await browser.call(browser.size, *PHONE)
    try:
        page_width = await browser.call(lambda: browser.driver.execute_script(
            "return document.documentElement.scrollWidth"))  # fmt: skip
        assert page_width <= PHONE[0]  # nothing overflows sideways
        head = await browser.call(lambda: browser.driver.execute_script(
            "return getComputedStyle(document.querySelector('table.cards thead')).display"))  # fmt: skip
        assert head == "none"
    finally:
        await browser.call(browser.size, *DESKTOP)


async def _submit_form(browser: Browser, form_id: str, fields: dict[str, str], checks: tuple[str, ...] = ()) -> None:
    def fill() -> None:
        form = browser.driver.find_element(By.ID, form_id)
        for name, value in fields.items():
            box = form.find_element(By.NAME, name)
            box.clear()
            box.send_keys(value)
        for value in checks:
            form.find_element(By.CSS_SELECTOR, f'input[name="status"][value="{value}"]').click()
        form.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()

    await browser.call(fill)


async def test_cone_filter_then_live_notices(stack: Stack, browser: Browser) -> None:
    await browser.call(browser.driver.get, stack.url + "/notices")
    # Typed as the bot reads it: sexagesimal, with a unit (150° = 10h).
    await _submit_form(browser, "notice-filters", {"cone": "10h00m00s +30d00m00s 2deg"})
    await wait_for(lambda: browser.call(lambda: "cone=10h" in browser.driver.current_url), "the filtered page")
    ivorns = await browser.call(browser.attrs, "#results tr[data-ivorn]", "data-ivorn")
    assert len(ivorns) == 3  # the burst's two notices and the one at (151, 31)
    assert all("sky0" not in i and "sky1" not in i for i in ivorns)
    summary = await browser.call(browser.texts, "#results .summary")
    assert "3 notices within 2° of RA 150.000°" in summary[0]
    await _live(browser)
    # Mark the document: a reload would lose the mark.
    await browser.call(lambda: browser.driver.execute_script(
        "window.__kept = true; window.__refreshed = 0;"
        "document.addEventListener('burstbus:refreshed', e => { window.__refreshed = Math.max(window.__refreshed, e.detail.seq); });"))  # fmt: skip

    # Outside the cone: the page refreshes for it but does not show it.
    outside = unique_ivorn("outside")
    await stack.submit(voevent(outside, ra=20.0, dec=-60.0, err=0.1))
    seq = (await stack.node.core.log.head()).seq
    await wait_for(lambda: browser.call(lambda: browser.driver.execute_script("return window.__refreshed") >= seq),
                   "the page to refresh after the notice outside the cone")  # fmt: skip
    ivorns = await browser.call(browser.attrs, "#results tr[data-ivorn]", "data-ivorn")
    assert outside not in ivorns and len(ivorns) == 3

    # Inside the cone: it appears, without a reload, marked as new.
    inside = unique_ivorn("inside")
    await stack.submit(voevent(inside, ra=150.5, dec=30.5, err=0.1, time="2026-11-21T00:00:00",
                               authored="2026-11-21T00:00:05"))  # the newest event: first in the table
    await wait_for(lambda: browser.call(lambda: inside in browser.attrs("#results tr[data-ivorn]", "data-ivorn")),
                   "the new notice to appear in the filtered table")  # fmt: skip
    assert await browser.call(lambda: browser.driver.execute_script("return window.__kept === true"))
    rows = await browser.call(browser.attrs, "#results tr[data-ivorn]", "data-ivorn")
    assert rows[0] == inside and outside not in rows
    fresh = await browser.call(browser.attrs, "#results tr.fresh", "data-ivorn")
    assert fresh == [inside]
    summary = await browser.call(browser.texts, "#results .summary")
    assert "4 notices within 2°" in summary[0]
    await browser.call(browser.screenshot, "notices-live", *PHONE)


async def test_status_filter_then_live_process(stack: Stack, browser: Browser) -> None:
    await browser.call(browser.driver.get, stack.url + "/processes")
    await _submit_form(browser, "process-filters", {}, checks=("failed",))
    await wait_for(lambda: browser.call(lambda: "status=failed" in browser.driver.current_url), "the filtered page")
    statuses = await browser.call(browser.texts, "#results td .status")
    assert statuses == ["failed"]
    await _live(browser)
    await browser.call(lambda: browser.driver.execute_script("window.__kept = true"))
    # A run that fails appears; one that completes does not.
    await stack.node.core.log.append([
        Event("process.status", {"process": "lateloc", "burst_id": BURST, "obs_id": "o2", "pass_id": "p1",
                                 "status": "complete"}, stream=BURST),
        Event("process.status", {"process": "ecllc", "burst_id": BURST, "obs_id": "o2", "pass_id": "p1",
                                 "status": "failed", "log": "out of memory"}, stream=BURST),
    ])  # fmt: skip
    await wait_for(lambda: browser.call(lambda: "ecllc" in browser.texts("#results td.strong")),
                   "the failed run to appear")  # fmt: skip
    names = await browser.call(browser.texts, "#results td.strong")
    assert "lateloc" not in names and set(names) == {"vtloc", "ecllc"}
    assert await browser.call(lambda: browser.driver.execute_script("return window.__kept === true"))


async def test_burst_page_follows_its_burst(stack: Stack, browser: Browser) -> None:
    await browser.call(browser.driver.get, stack.url + f"/bursts/{quote(BURST)}")
    await _live(browser)
    await stack.submit(voevent(f"{SVOM}#{BURST}_grm-update", ra=None, dec=None, params={"Burst_Id": BURST}))
    await wait_for(lambda: browser.call(lambda: any("grm-update" in k for k in browser.attrs(".timeline li", "data-key"))),
                   "the new notice in the burst's timeline")  # fmt: skip


async def test_audit_log_follows_the_log(stack: Stack, browser: Browser) -> None:
    # Signed out, the page is the sign-in form; signing in there comes back to it, live.
    await browser.call(browser.driver.delete_all_cookies)
    await browser.call(browser.driver.get, stack.url + "/log?type=process.status")
    await _sign_in_through_the_form(browser, READ_TOKEN)
    await wait_for(lambda: browser.call(lambda: browser.driver.current_url.endswith("/log?type=process.status")),
                   "the audit page after signing in")  # fmt: skip
    await _live(browser)
    chain = await browser.call(browser.texts, "#chain-state")
    assert "Hash chain intact" in chain[0]
    appended = await stack.node.core.log.append([
        Event("process.status", {"process": "auditme", "burst_id": BURST, "status": "running"}, stream=BURST),
    ])  # fmt: skip
    seq = str(appended[0].seq)
    await wait_for(lambda: browser.call(lambda: browser.attrs("#results tr[data-key]", "data-key")[:1] == [seq]),
                   "the new event at the top of the audit log")  # fmt: skip


# -- what a Burst Advocate needs at 3 a.m. (issue 16): SVOM's notice columns and their sort
# orders, the phone layout, the stale banner, and the sky view with its fallback ----------

NOTICE_COLUMNS = ["Authored", "IVORN", "Role", "RA", "Dec", "Error", "Time", "Instrument", "Burst", "Received"]


def _script(browser: Browser, script: str, *args: Any) -> Any:
    return browser.driver.execute_script(script, *args)


def _column(browser: Browser, col: str, attr: str) -> list[str]:
    """One notice column, in page order: an attribute of each cell (or of its <time>)."""
    return list(_script(browser, """
        return Array.from(document.querySelectorAll('#notice-table tbody td[data-col="' + arguments[0] + '"]'))
          .map(td => { const t = td.querySelector('time'); return (arguments[1] === 'datetime' ? (t && t.getAttribute('datetime'))
                                                                   : td.getAttribute(arguments[1])) || ''; });""", col, attr))  # fmt: skip


def _sorted_with_blanks_last(values: list[str], *, numeric: bool, descending: bool) -> bool:
    present = [v for v in values if v]
    if values[len(present):] and any(values[len(present):]):
        return False  # a blank before a value
    keys = [float(v) for v in present] if numeric else present
    return keys == sorted(keys, reverse=descending)


async def _click_sort(browser: Browser, key: str, expected: str) -> None:
    await browser.call(lambda: browser.driver.find_element(By.CSS_SELECTOR, f'th[data-sort-key="{key}"] a').click())
    await wait_for(lambda: browser.call(lambda: f"sort={quote(expected)}" in browser.driver.current_url),
                   f"the page sorted by {expected}")  # fmt: skip


async def test_notice_columns_and_sort_orders(stack: Stack, browser: Browser) -> None:
    await browser.call(browser.driver.get_log, "browser")  # read out what earlier tests left
    await browser.call(browser.driver.get, stack.url + "/notices")
    headers = [" ".join(h.split()) for h in await browser.call(browser.texts, "#notice-table thead th")]
    assert [h.rstrip(" ▲▼") for h in headers] == [c.upper() for c in NOTICE_COLUMNS]  # CSS capitals
    assert await browser.call(browser.texts, "#sort-order") == ["by event time, newest first"]
    # By default the event time, newest first; then the notices without one.
    times = await browser.call(_column, browser, "time", "datetime")
    assert _sorted_with_blanks_last(times, numeric=False, descending=True), times
    # A click on a header sorts by it (ascending for a position), a second click the other way.
    await _click_sort(browser, "ra", "ra")
    ras = await browser.call(_column, browser, "ra", "data-value")
    assert len([r for r in ras if r]) >= 5 and _sorted_with_blanks_last(ras, numeric=True, descending=False), ras
    headers = [" ".join(h.split()) for h in await browser.call(browser.texts, "#notice-table thead th")]
    assert headers[NOTICE_COLUMNS.index("RA")] == "RA ▲"
    await _click_sort(browser, "ra", "-ra")
    ras = await browser.call(_column, browser, "ra", "data-value")
    assert _sorted_with_blanks_last(ras, numeric=True, descending=True), ras
    await _click_sort(browser, "authored", "-authored")
    authored = await browser.call(_column, browser, "authored", "datetime")
    assert _sorted_with_blanks_last(authored, numeric=False, descending=True), authored
    await _click_sort(browser, "err", "err")
    errors = await browser.call(_column, browser, "err", "data-value")
    assert _sorted_with_blanks_last(errors, numeric=True, descending=False), errors
    # The filters keep the order; an unknown sort key is the page with a message, not a 500.
    await _submit_form(browser, "notice-filters", {"pattern": "SB26112042"})  # any case
    await wait_for(lambda: browser.call(lambda: "pattern=" in browser.driver.current_url), "the filtered page")
    assert "sort=err" in await browser.call(lambda: browser.driver.current_url)
    ivorns = await browser.call(browser.attrs, "#results tr[data-ivorn]", "data-ivorn")
    assert ivorns[:2] == [f"{SVOM}#{BURST}_vt-position", f"{SVOM}#{BURST}_eclairs-wakeup"]  # smaller error first
    assert all("grm-update" in i for i in ivorns[2:])  # no position, no error: last
    for width, height in (PHONE, DESKTOP):
        shot, scroll_width = await browser.call(browser.screenshot, "notices-sorted", width, height)
        assert shot.stat().st_size > 5000 and scroll_width <= width
    await browser.call(browser.driver.get, stack.url + "/notices?sort=colour")
    assert "is not a column to sort by" in (await browser.call(browser.texts, "#filter-error"))[0]
    errors = await browser.call(browser.severe_console_errors)
    assert [e for e in errors if "status of 400" not in e] == []  # the refusal is a 400, as it should be


async def test_phone_shows_the_table_first_with_the_filters_folded(stack: Stack, browser: Browser) -> None:
    await browser.call(browser.size, *PHONE)
    try:
        for path, table in (("/notices", "#notice-table"), ("/bursts", "table.bursts"), ("/processes", "table")):
            await browser.call(browser.driver.get, stack.url + path)
            folded = await browser.call(_script, browser, "return Array.from(document.querySelectorAll('details.fold')).map(d => d.open)")
            assert all(open_ is False for open_ in folded), (path, folded)
            top = await browser.call(_script, browser, f"return document.querySelector('{table}').getBoundingClientRect().top")
            assert top < PHONE[1] / 2, f"{path}: the results start {top}px down a {PHONE[1]}px screen"
        # A filter with a mistake stays unfolded, to fix it.
        await browser.call(browser.driver.get, stack.url + "/notices?cone=400+0+1")
        assert await browser.call(_script, browser, "return document.querySelector('details.fold').open") is True
        # The audit log: short cards, pages of 50, not a 27,000 px scroll.
        await _ensure_signed_in(stack, browser)
        await stack.node.core.log.append([Event("process.status", {"process": f"p{i}", "burst_id": BURST, "status": "running"},
                                                stream=BURST) for i in range(60)])  # fmt: skip
        await browser.call(browser.driver.get, stack.url + "/log")
        rows = await browser.call(browser.texts, "#results tr[data-key]")
        height = await browser.call(_script, browser, "return document.documentElement.scrollHeight")
        assert len(rows) == 50 and height < 9000, (len(rows), height)
        await browser.call(browser.screenshot, "log-50", *PHONE)
    finally:
        await browser.call(browser.size, *DESKTOP)


async def test_stale_banner_greys_the_page_when_the_server_is_gone(stack: Stack, browser: Browser) -> None:
    """The server goes away (its listener closed, its connections cut): within seconds the
    page says so and greys its data; when it is back, the banner goes and the page is live."""
    await browser.call(browser.driver.get_log, "browser")  # read out what earlier tests left
    await browser.call(browser.driver.get, stack.url + "/bursts")
    await _live(browser)
    state = "return [document.getElementById('stale-banner').hidden, document.getElementById('main').classList.contains('stale')]"
    assert await browser.call(_script, browser, state) == [True, False]
    runner = stack.runner
    host, port = runner.addresses[0][:2]
    for site in list(runner.sites):
        await site.stop()
    assert runner.server is not None
    await runner.server.shutdown(0.5)  # the open event stream too
    try:
        await wait_for(lambda: browser.call(lambda: _script(browser, state) == [False, True]), "the stale banner", timeout=30)
        banner = (await browser.call(browser.texts, "#stale-banner"))[0]
        assert "Live updates lost" in banner and "UTC" in banner
        opacity = "return parseFloat(getComputedStyle(document.getElementById('results')).opacity)"
        await wait_for(lambda: browser.call(lambda: _script(browser, opacity) < 0.6), "the data greyed")
        for width, height in (PHONE, DESKTOP):
            await browser.call(browser.screenshot, "bursts-stale", width, height)
    finally:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    await wait_for(lambda: browser.call(lambda: _script(browser, state) == [True, False]), "the banner to go", timeout=60)
    await _live(browser)
    errors = await browser.call(browser.severe_console_errors)  # read: the next test starts with a clean log
    assert all("api/stream" in e for e in errors), errors  # only the stream's refused reconnections


async def _sky_state(browser: Browser, done: tuple[str, ...]) -> str:
    script = "return document.documentElement.getAttribute('data-sky') || ''"
    await wait_for(lambda: browser.call(lambda: _script(browser, script) in done), f"the sky view to be one of {done}",
                   timeout=90)  # fmt: skip
    return str(await browser.call(_script, browser, script))


def _visible(browser: Browser, css: str) -> bool:
    return bool(_script(browser, "const e = document.querySelector(arguments[0]); return !!(e && e.getClientRects().length)", css))


needs_aladin = pytest.mark.skipif(sky.aladin_version() is None, reason=(
    "Aladin Lite is not vendored: run python -m burstbus.bridges.http.vendor (npm pack aladin-lite) first"))


@needs_aladin
async def test_sky_view_starts_offline_and_falls_back_to_the_svg(stack: Stack, browser: Browser) -> None:
    """The widget's code is ours (served from /static/vendor/): it starts with no network; the
    survey (CDS) being out of reach, the page keeps its SVG chart and says why."""
    for path, chart in ((f"/bursts/{BURST}", "svg.sky.allsky"), ("/notices", "#skyview svg.sky.allsky")):
        await browser.call(browser.driver.get, stack.url + path)
        assert await _sky_state(browser, ("no-tiles", "failed", "no-webgl", "absent")) == "no-tiles", path
        assert await browser.call(_script, browser, "return document.documentElement.getAttribute('data-sky-code')") == "ready"
        assert await browser.call(_visible, browser, chart), path
        note = (await browser.call(browser.texts, "#skyview .sky-note"))[0]
        assert "cannot be reached" in note
        assert await browser.call(browser.severe_console_errors) == [], path


async def test_sky_view_without_the_vendored_widget(stack: Stack, browser: Browser, monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.setattr(sky, "ALADIN_DIR", tmp_path / "not-vendored")
    for path in (f"/bursts/{BURST}", "/notices"):
        await browser.call(browser.driver.get, stack.url + path)
        assert await browser.call(browser.attrs, "#skyview", "data-aladin") == [""]
        assert await _sky_state(browser, ("absent", "failed", "no-tiles")) == "absent"
        assert await browser.call(_visible, browser, "#skyview svg.sky.allsky")
        assert await browser.call(browser.texts, "#skyview .sky-note") == [""]  # hidden: nothing to explain
        assert await browser.call(browser.severe_console_errors) == [], path


@needs_aladin
async def test_sky_view_over_a_reachable_survey(stack: Stack, browser: Browser, monkeypatch: Any) -> None:
    """With a survey that answers (a fake HiPS on loopback: these tests have no network) the
    widget replaces the SVG, with the burst's circles."""
    monkeypatch.setattr(sky, "SURVEY", stack.url + "/fake-hips")
    await browser.call(browser.driver.get, stack.url + f"/bursts/{BURST}")
    state = await _sky_state(browser, ("aladin", "no-tiles", "failed", "no-webgl"))
    note = await browser.call(browser.texts, "#skyview .sky-note")
    assert state == "aladin", note
    assert await browser.call(_visible, browser, "#skyview .aladin-box canvas")
    assert not await browser.call(_visible, browser, "#skyview svg.sky.allsky")
    await wait_for(lambda: any(a.endswith(".png") for a in stack.survey.asked), "the widget to ask for tiles")
    assert "properties" in stack.survey.asked
    for width, height in (PHONE, DESKTOP):
        await browser.call(browser.screenshot, "burst-aladin", width, height)
    # Nothing of ours fails. Aladin itself asks CDS's MocServer for survey metadata (blocked here)
    # and leaves that failure uncaught: one "Failed to fetch" in its own code, only with CDS blocked.
    severe = [e["message"] for e in await browser.call(browser.driver.get_log, "browser") if e.get("level") == "SEVERE"]
    blocked = [m for m in severe if "ERR_BLOCKED_BY_CLIENT" in m and any(h in m for h in SURVEY_HOSTS)]
    ours = [m for m in severe if m not in blocked and "/fake-hips/" not in m and "favicon.ico" not in m  # its 404 for Moc.fits
            and not ("/static/vendor/aladin/" in m and "Failed to fetch" in m)]  # fmt: skip
    assert ours == [], ours
