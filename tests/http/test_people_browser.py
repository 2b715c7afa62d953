"""Issue 15's acceptance in a real headless Chromium: people sign in with their own accounts, a
viewer is refused a BA page with a clear page, a BA drafts a notice through the Notice Creator
(recorded as ``web:<jid>``) and an approver publishes it (issue 14's two people: the running
notice publisher then issues exactly that packet, once), a BA requests a process from a running
orchestrator, a form whose CSRF token was tampered with is refused and records nothing,
sign-out ends the session, and the single sign-on header is ignored when the request does not
come from the configured proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from burstbus import accounts
from burstbus.acl import AclSection, AclUser
from burstbus.bridges.http import make_app
from burstbus.handlers.notices.drafts import NOTICE_DRAFTS
from burstbus.handlers.notices.intake import NOTICE_INTAKE
from burstbus.handlers.orchestrator.component import ORCHESTRATOR
from burstbus.handlers.orchestrator.config import PipelinesSection
from tests.broker.harness import Node
from tests.http.test_ui_browser import Browser, By
from tests.packets import voevent
from tests.waiting import wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

PASSWORD = "a passphrase for the night shift"
ACL = AclSection(users=(AclUser("alice@fsc.example", ("ba",), ("*",)), AclUser("victor@fsc.example", ("viewer",)),
                        AclUser("paula@fsc.example", ("approver",))))
BURST = "sb26120201"
SECTIONS = {
    "notices": {"enabled": True, "stream": "fsc.example/notices"},
    "orchestrator": {"data_kinds": ["vhf.eclairs"]},
    "pipelines": {"pipelines": [{"name": "ecl-loc", "needs": ["vhf.eclairs"], "nats_subject": "svom.pipelines.ecl",
                                 "timeout": 300, "parameters": {"threshold": "6.5"}}]},
}


class Stack:
    def __init__(self, url: str, core: Any):
        self.url = url
        self.core = core


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    started = Browser()
    try:
        yield started
    finally:
        started.quit()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(tmp_path_factory: Any) -> AsyncIterator[Stack]:
    node = await Node.start(tmp_path_factory.mktemp("people-browser") / "data", sections=SECTIONS, broadcast=False)
    try:
        core = node.core
        for name in ("alice@fsc.example", "victor@fsc.example", "paula@fsc.example"):
            hashed = accounts.hash_password(PASSWORD)
            await core.state.run(accounts.ensure_schema)
            await core.state.transaction(lambda c, n=name, h=hashed: accounts.add_account(c, n, h))
        ports = node.service.host.ports  # type: ignore[union-attr]
        packet = voevent(f"ivo://org.svom/fsc#{BURST}_grm-trigger", params={"Burst_Id": BURST},
                         time="2026-12-02T03:04:00")
        assert (await core.ingest.submit(packet, via="test", peer="browser")).outcome == "accepted"
        await wait_for(lambda: core.projections.applied_seq >= 1, "the burst projected")
        app = make_app(core.log, core.config.projections_path, projection_runner=core.projections, state=core.state,
                       acl=ACL, notices=lambda: ports.get(NOTICE_INTAKE), drafts=lambda: ports.get(NOTICE_DRAFTS),
                       pipelines=core.config.section(PipelinesSection), orchestrator=lambda: ports.get(ORCHESTRATOR),
                       sso_header="X-Remote-User", sso_proxies=["10.9.9.9"])
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            yield Stack(f"http://{host}:{port}", core)
        finally:
            await runner.cleanup()
    finally:
        await node.stop()


def _main_text(browser: Browser) -> str:
    return str(browser.driver.find_element(By.TAG_NAME, "main").text)


async def _sign_in(stack: Stack, browser: Browser, name: str, next_: str = "") -> None:
    await browser.call(browser.driver.get, stack.url + "/signin" + (f"?next={next_}" if next_ else ""))

    def fill() -> None:
        form = browser.driver.find_element(By.ID, "account-form")
        form.find_element(By.NAME, "name").send_keys(name)
        form.find_element(By.NAME, "password").send_keys(PASSWORD)
        form.find_element(By.ID, "account-signin").click()

    await browser.call(fill)
    await wait_for(lambda: browser.call(lambda: bool(browser.texts("#signed-in-as"))), f"{name} signed in")


async def _sign_out(browser: Browser) -> None:
    await browser.call(lambda: browser.driver.find_element(By.ID, "signout").click())
    await wait_for(lambda: browser.call(lambda: browser.driver.get_cookie("burstbus_person") is None), "the session cookie gone")


async def _events(stack: Stack, type_: str) -> list[Any]:
    return [r for r in await stack.core.log.read(0) if r.type == type_]


async def test_a_viewer_is_refused_the_notice_creator_with_a_page_saying_why(stack: Stack, browser: Browser) -> None:
    await browser.call(browser.driver.delete_all_cookies)
    await browser.call(browser.driver.get, stack.url + "/notices/new")
    assert "New notice: sign in" in await browser.call(_main_text, browser)  # nobody signed in: the form
    await _sign_in(stack, browser, "victor@fsc.example")
    await browser.call(browser.driver.get, stack.url + "/notices/new")
    text = await browser.call(_main_text, browser)
    assert "needs the role ba" in text and "victor@fsc.example" in text and "Traceback" not in text
    assert not await browser.call(browser.texts, "#notice-form")
    await browser.call(browser.screenshot, "refused", 390, 844)
    await _sign_out(browser)


async def test_a_ba_drafts_a_notice_a_tampered_form_is_refused_and_an_approver_publishes_it(
        stack: Stack, browser: Browser) -> None:
    await browser.call(browser.driver.delete_all_cookies)
    await _sign_in(stack, browser, "Alice@fsc.example")
    await browser.call(browser.driver.get, stack.url + f"/notices/new?burst_id={BURST}")  # a burst page's link

    def fill(tamper: bool) -> None:
        form = browser.driver.find_element(By.ID, "notice-form")
        form.find_element(By.CSS_SELECTOR, 'select[name="instrument"] option[value="eclairs"]').click()
        form.find_element(By.CSS_SELECTOR, 'select[name="type"] option[value="eclairs-wakeup"]').click()
        for name, value in (("time", "2026-12-02T03:04:05Z"), ("ra", "83.6"), ("dec", "22.0"), ("err", "0.1")):
            form.find_element(By.NAME, name).send_keys(value)
        if tamper:
            browser.driver.execute_script("document.querySelector('#notice-form input[name=csrf]').value = 'forged'")
        form.find_element(By.ID, "notice-submit").click()

    await browser.call(fill, True)
    await wait_for(lambda: browser.call(lambda: browser.texts("#form-error")), "the refusal")
    assert "CSRF token is missing or wrong" in (await browser.call(browser.texts, "#form-error"))[0]
    assert await _events(stack, "publication.drafted") == []
    await browser.call(browser.driver.get, stack.url + f"/notices/new?burst_id={BURST}")
    await browser.call(fill, False)
    await wait_for(lambda: browser.call(lambda: browser.texts("#draft-packet")), "the draft's page with its packet")
    packet = (await browser.call(browser.texts, "#draft-packet"))[0]
    assert f"ivo://fsc.example/notices#{BURST}_eclairs-wakeup" in packet
    assert "needs the role approver" in (await browser.call(browser.texts, "#why-not"))[0]  # a BA drafts only
    await browser.call(browser.screenshot, "notice-draft", 1366, 900)
    draft_url = await browser.call(lambda: browser.driver.current_url)
    [drafted] = await _events(stack, "publication.drafted")
    assert drafted.actor == "web:alice@fsc.example" and drafted.data["burst_id"] == BURST
    cookie = await browser.call(browser.driver.get_cookie, "burstbus_person")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and PASSWORD not in cookie["value"]
    await _sign_out(browser)
    await browser.call(browser.driver.get, stack.url + "/log")
    assert "sign in" in (await browser.call(_main_text, browser)).lower()

    await _sign_in(stack, browser, "paula@fsc.example")
    await browser.call(browser.driver.get, draft_url)
    await browser.call(lambda: browser.driver.find_element(By.ID, "publish-submit").click())
    await wait_for(lambda: browser.call(lambda: browser.texts("#form-done")), "the draft published")
    [approved] = await _events(stack, "publication.draft_approved")
    assert approved.actor == "web:paula@fsc.example" and approved.data["drafted_by"] == "alice@fsc.example"
    [issued] = await wait_for(lambda: _events(stack, "publication.sent"), "the publisher to issue the draft")
    accepted = [r for r in await _events(stack, "voevent.accepted") if r.data.get("ivorn") == drafted.data["ivorn"]]
    assert len(accepted) == 1 and accepted[0].actor == "local:notices"
    await _sign_out(browser)


async def test_a_ba_requests_a_process_from_the_running_orchestrator(stack: Stack, browser: Browser) -> None:
    await browser.call(browser.driver.delete_all_cookies)
    await _sign_in(stack, browser, "alice@fsc.example")
    await browser.call(browser.driver.get, stack.url + f"/processes/request?burst_id={BURST}")

    def fill() -> None:
        form = browser.driver.find_element(By.ID, "process-request-form")
        form.find_element(By.CSS_SELECTOR, 'select[name="pipeline"] option[value="ecl-loc"]').click()
        form.find_element(By.NAME, "parameters").send_keys("threshold=5")
        form.find_element(By.ID, "process-request-submit").click()

    await browser.call(fill)
    await wait_for(lambda: browser.call(lambda: browser.texts("#form-done")), "the request recorded")
    await browser.call(browser.screenshot, "process-request", 390, 844)
    [asked] = await _events(stack, "process.asked")
    assert asked.actor == "web:alice@fsc.example" and asked.stream == BURST
    assert asked.data["parameters"] == {"threshold": "5"} and asked.data["requested_by"] == "web:alice@fsc.example"
    await wait_for(lambda: _events(stack, "process.idling"), "the orchestrator to make the asked run its own")
    await _sign_out(browser)


async def test_the_sso_header_from_elsewhere_than_the_proxy_signs_nobody_in(stack: Stack, browser: Browser) -> None:
    await browser.call(browser.driver.delete_all_cookies)
    await browser.call(browser.driver.execute_cdp_cmd, "Network.setExtraHTTPHeaders",
                       {"headers": {"X-Remote-User": "alice@fsc.example"}})
    try:
        await browser.call(browser.driver.get, stack.url + "/notices/new")
        text = await browser.call(_main_text, browser)
        assert "New notice: sign in" in text and not await browser.call(browser.texts, "#signed-in-as")
    finally:
        await browser.call(browser.driver.execute_cdp_cmd, "Network.setExtraHTTPHeaders", {"headers": {}})
