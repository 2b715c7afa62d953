"""The web pages in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
driven by Selenium), against a real burstbus: VTP receiver, burst identifier, projection
runner and the HTTP app, all on loopback under a base path.

The browser signs in through the form (the audit page is not public), loads every page,
applies a cone filter and a status filter through the forms, and sees a notice submitted over
VTP appear without a reload (and one outside the cone not appear). Screenshots of every page at phone (390x844) and desktop (1366x900) width go to
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
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import pytest_asyncio
from aiohttp import web

from burstbus.bridges.http import make_app
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
        return [e["message"] for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"
                and "favicon.ico" not in e["message"]]  # fmt: skip

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


class Stack:
    def __init__(self, node: Node, runner: web.AppRunner, url: str):
        self.node, self.runner, self.url = node, runner, url

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
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        stack = Stack(node, runner, f"http://{host}:{port}{BASE}")
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
    await _submit_form(browser, "notice-filters", {"ra": "150", "dec": "30", "radius": "2"})
    await wait_for(lambda: browser.call(lambda: "radius=2" in browser.driver.current_url), "the filtered page")
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
    await stack.submit(voevent(inside, ra=150.5, dec=30.5, err=0.1))
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
