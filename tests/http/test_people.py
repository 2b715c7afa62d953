"""People's own web identities (issue 15): accounts and sessions, CSRF, per-person API tokens,
single sign-on through the proxy, and the permission table — over a real app, state store and
log, every write path checked for who it records.

The browser's side (signing in, a viewer refused a BA page, the BA forms, CSRF, sign-out, the
proxy header from elsewhere) is in ``test_people_browser.py``."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from burstbus import accounts
from burstbus.acl import AclSection, AclUser
from burstbus.bridges.http.app import ACCESS
from burstbus.bridges.http.permissions import markdown
from burstbus.handlers.notices.config import NoticesSection
from burstbus.handlers.notices.drafts import NoticeDrafts
from burstbus.handlers.notices.instruments import load_instruments
from burstbus.handlers.notices.intake import NoticeIntake
from burstbus.state import StateStore
from tests.http.conftest import TOKEN, Archive, open_archive

REPO = Path(__file__).resolve().parents[2]
STREAM = "fsc.example/notices"
DRAFTS = "/api/notices/drafts"
PASSWORD = "a long enough passphrase"
ACL = AclSection(users=(AclUser("alice@fsc.example", ("ba",), ("*",)), AclUser("victor@fsc.example", ("viewer",)),
                        AclUser("ada@fsc.example", ("admin",)), AclUser("paula@fsc.example", ("approver",)),
                        AclUser("quinn@fsc.example", ("approver",))))


class Site:
    def __init__(self, archive: Archive, state: StateStore):
        self.archive = archive
        self.state = state
        self.url = archive.url

    async def account(self, name: str, password: str = PASSWORD) -> None:
        hashed = accounts.hash_password(password)
        await self.state.transaction(lambda c: accounts.add_account(c, name, hashed))

    async def token(self, name: str, scope: str, **options: Any) -> str:
        secret, _ = await self.state.transaction(lambda c: accounts.add_token(c, name, scope, **options))
        return secret

    async def csrf(self, session: aiohttp.ClientSession, path: str = "/signin") -> str:
        async with session.get(self.url + path) as response:
            html = await response.text()
        found = re.search(r'name="csrf" value="([^"]+)"', html)
        assert found, html[:3000]
        return found.group(1)

    async def sign_in(self, session: aiohttp.ClientSession, name: str, password: str = PASSWORD) -> aiohttp.ClientResponse:
        csrf = await self.csrf(session)
        async with session.post(self.url + "/signin", data={"name": name, "password": password, "csrf": csrf, "next": "log"},
                                allow_redirects=False) as response:
            await response.read()
            return response

    async def events(self, type_: str) -> list[Any]:
        return [r for r in await self.archive.log.read(0) if r.type == type_]


async def _site(tmp_path: Path, **options: Any) -> AsyncIterator[Site]:
    state = await StateStore.open(tmp_path / "state.sqlite")
    await state.run(accounts.ensure_schema)
    log_holder: dict[str, Any] = {}

    def intake() -> NoticeIntake | None:
        return log_holder.get("intake")

    def drafts() -> NoticeDrafts | None:
        return log_holder.get("drafts")

    archive = await open_archive(tmp_path / "site", [], state=state, acl=ACL, notices=intake, drafts=drafts, **options)
    log_holder["intake"] = NoticeIntake(archive.log, load_instruments())
    log_holder["drafts"] = NoticeDrafts(archive.log, NoticesSection(enabled=True, stream=STREAM), load_instruments(),
                                        clock=lambda: datetime.now(UTC))
    try:
        yield Site(archive, state)
    finally:
        await archive.close()
        await state.close()


@pytest_asyncio.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async for opened in _site(tmp_path):
        yield opened


def jar() -> aiohttp.CookieJar:
    return aiohttp.CookieJar(unsafe=True)


NOTICE = {"burst_id": "sb26120201", "instrument": "eclairs", "type": "eclairs-wakeup", "time": "2026-12-02T03:04:05Z",
          "ra": 10.0, "dec": -20.0, "err": 0.1}


async def test_a_session_opens_the_protected_pages_and_sign_out_ends_it_on_the_server(site: Site) -> None:
    await site.account("victor@fsc.example")
    async with aiohttp.ClientSession(cookie_jar=jar()) as session:
        signed = await site.sign_in(session, "Victor@FSC.example")  # the JID as typed on a phone
        assert signed.status == 303 and signed.headers["Location"] == "/log"
        morsel = signed.cookies["burstbus_person"]
        assert morsel["httponly"] and morsel["samesite"] == "Strict" and PASSWORD not in morsel.value
        async with session.get(site.url + "/log") as page:
            html = await page.text()
        assert page.status == 200 and "victor@fsc.example" in html and 'id="signout"' in html
        async with session.get(site.url + "/api/log") as api:
            assert api.status == 200
        cookie = morsel.value
        csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
        async with session.post(site.url + "/signout", data={"csrf": "wrong"}, allow_redirects=False) as refused:
            assert refused.status == 403  # a forged sign-out is refused too
        async with session.post(site.url + "/signout", data={"csrf": csrf}, allow_redirects=False) as out:
            assert out.status == 303
    # the old cookie, replayed, opens nothing: the session is gone on the server, not just in the browser
    async with aiohttp.ClientSession(cookie_jar=jar()) as replay:
        replay.cookie_jar.update_cookies({"burstbus_person": cookie})
        async with replay.get(site.url + "/api/log") as api:
            assert api.status == 401


async def test_wrong_passwords_are_refused_alike_and_throttled_per_account(site: Site) -> None:
    await site.account("alice@fsc.example")
    async with aiohttp.ClientSession(cookie_jar=jar()) as session:
        for name in ("alice@fsc.example", "nobody@fsc.example"):  # no way to tell which names exist
            response = await site.sign_in(session, name, "not the password at all")
            assert response.status == 401 and "burstbus_person" not in response.cookies
        async with session.post(site.url + "/signin", data={"name": "alice@fsc.example", "password": PASSWORD},
                                allow_redirects=False) as no_csrf:
            assert no_csrf.status == 403 and "form has expired" in await no_csrf.text()
    # ten wrong guesses at one account from spread addresses: the account is throttled, right password or not
    people = site.archive.app[ACCESS].people
    for _ in range(10):
        people.account_throttle.failed("alice@fsc.example")
    async with aiohttp.ClientSession(cookie_jar=jar()) as session:
        response = await site.sign_in(session, "alice@fsc.example")
        assert response.status == 429 and "Retry-After" in response.headers


async def test_a_disabled_account_or_a_new_password_ends_its_sessions(site: Site) -> None:
    await site.account("victor@fsc.example")
    async with aiohttp.ClientSession(cookie_jar=jar()) as session:
        assert (await site.sign_in(session, "victor@fsc.example")).status == 303
        await site.state.transaction(lambda c: accounts.set_disabled(c, "victor@fsc.example", True))
        async with session.get(site.url + "/api/log") as api:
            assert api.status == 401
        assert (await site.sign_in(session, "victor@fsc.example")).status == 401
        await site.state.transaction(lambda c: accounts.set_disabled(c, "victor@fsc.example", False))
        assert (await site.sign_in(session, "victor@fsc.example")).status == 303
        hashed = accounts.hash_password("another long passphrase")
        await site.state.transaction(lambda c: accounts.set_password(c, "victor@fsc.example", hashed))
        async with session.get(site.url + "/api/log") as api:
            assert api.status == 401


async def test_a_session_write_needs_the_csrf_token_and_is_recorded_with_the_person(site: Site) -> None:
    await site.account("alice@fsc.example")
    await site.account("victor@fsc.example")
    async with aiohttp.ClientSession(cookie_jar=jar()) as session:
        assert (await site.sign_in(session, "alice@fsc.example")).status == 303
        async with session.post(site.url + DRAFTS, json=NOTICE) as forged:
            body = await forged.json()
            assert forged.status == 403 and "CSRF" in body["error"]["message"]
        assert await site.events("publication.drafted") == []
        csrf = await site.csrf(session, "/notices/new")
        async with session.post(site.url + DRAFTS, json=NOTICE, headers={"X-CSRF-Token": csrf}) as ok:
            assert ok.status == 201, await ok.text()
    [requested] = await site.events("publication.drafted")
    assert requested.actor == "web:alice@fsc.example"
    async with aiohttp.ClientSession(cookie_jar=jar()) as session:  # a viewer may not, CSRF token or not
        assert (await site.sign_in(session, "victor@fsc.example")).status == 303
        async with session.get(site.url + "/notices/new") as page:
            html = await page.text()
            assert page.status == 403 and "needs the role <strong>ba</strong>" in html and "Traceback" not in html
        csrf = await site.csrf(session, "/log")
        async with session.post(site.url + DRAFTS, json={**NOTICE, "burst_id": "sb26120202"},
                                headers={"X-CSRF-Token": csrf}) as refused:
            assert refused.status == 403 and "needs the role ba" in (await refused.json())["error"]["message"]


async def test_api_tokens_are_scoped_expire_and_are_revoked(site: Site) -> None:
    await site.account("alice@fsc.example")
    reader = await site.token("alice@fsc.example", "viewer", label="dashboard")
    writer = await site.token("alice@fsc.example", "admin")  # more than alice has: acts as ba
    async with aiohttp.ClientSession() as session:
        async with session.get(site.url + "/api/log", headers={"Authorization": f"Bearer {reader}"}) as r:
            assert r.status == 200
        async with session.post(site.url + DRAFTS, json=NOTICE, headers={"Authorization": f"Bearer {reader}"}) as r:
            assert r.status == 403 and "alice@fsc.example is viewer" in (await r.json())["error"]["message"]
        async with session.post(site.url + DRAFTS, json=NOTICE, headers={"Authorization": f"Bearer {writer}"}) as r:
            assert r.status == 201  # a bearer token is not ambient: no CSRF token needed
        async with session.post(site.url + "/api/voevents", data=b"<x/>", headers={"Authorization": f"Bearer {writer}"}) as r:
            assert r.status == 403 and "needs the role admin" in (await r.json())["error"]["message"]  # scope capped at ba
        [requested] = await site.events("publication.drafted")
        assert requested.actor == "web:alice@fsc.example"
        listed = await site.state.run(lambda c: accounts.list_tokens(c, "alice@fsc.example"))
        assert {t.label for t in listed} == {"dashboard", ""} and all(t.state(time.time()) == "active" for t in listed)
        kept = (site.state.path.read_bytes())
        assert reader.encode() not in kept and reader.split("_")[-1].encode() not in kept  # only a hash at rest
        await site.state.transaction(lambda c: accounts.revoke_token(c, reader.split("_")[1]))
        async with session.get(site.url + "/api/log", headers={"Authorization": f"Bearer {reader}"}) as r:
            assert r.status == 401 and "expired, revoked or unknown" in (await r.json())["error"]["message"]
        expired = await site.token("alice@fsc.example", "viewer", days=1, now=time.time() - 2 * 86400)
        async with session.get(site.url + "/api/log", headers={"Authorization": f"Bearer {expired}"}) as r:
            assert r.status == 401
        async with session.get(site.url + "/api/log", headers={"Authorization": "Bearer bbt_0_forged"}) as r:
            assert r.status == 401


async def test_the_shared_write_token_still_acts_as_the_operator(site: Site) -> None:
    async with aiohttp.ClientSession() as session, session.post(
            site.url + "/api/notices", json=NOTICE, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        assert r.status == 202
    [requested] = await site.events("publication.requested")
    assert requested.actor.startswith("http:127.0.0.1")


@pytest.mark.parametrize("proxies, trusted", [(["127.0.0.1/32"], True), (["10.9.9.9"], False)])
async def test_the_sso_header_is_believed_only_from_the_proxy(tmp_path: Path, proxies: list[str], trusted: bool) -> None:
    async for site in _site(tmp_path, sso_header="X-Remote-User", sso_proxies=proxies):
        headers = {"X-Remote-User": "alice@fsc.example"}
        async with aiohttp.ClientSession() as session:
            async with session.get(site.url + "/log", headers=headers) as page:
                html = await page.text()
            assert (page.status == 200 and "alice@fsc.example" in html) is trusted
            if trusted:  # ambient: a write needs the CSRF token of the page
                csrf = re.search(r'name="csrf-token" content="([^"]+)"', html)
                async with session.post(site.url + DRAFTS, json=NOTICE, headers=headers) as forged:
                    assert forged.status == 403
                async with session.post(site.url + DRAFTS, json=NOTICE,
                                        headers={**headers, "X-CSRF-Token": csrf.group(1) if csrf else ""}) as ok:
                    assert ok.status == 201, await ok.text()
                [requested] = await site.events("publication.drafted")
                assert requested.actor == "web:alice@fsc.example"
            else:
                assert page.status == 401 and "signed-in-as" not in html


def test_the_permission_table_in_the_docs_is_the_one_enforced() -> None:
    assert (REPO / "docs" / "permissions.md").read_text() == markdown()


def test_account_rules() -> None:
    with pytest.raises(accounts.AccountError, match="bare JID"):
        accounts.account_name("alice")
    with pytest.raises(accounts.AccountError, match="at least 12"):
        accounts.hash_password("short")
    stored = accounts.hash_password(PASSWORD)
    assert stored.startswith("$argon2id$") and accounts.password_matches(stored, PASSWORD)
    assert not accounts.password_matches(stored, PASSWORD + "x") and not accounts.password_matches(None, PASSWORD)


async def _draft_page(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as page:
        return page.status, await page.text()


async def test_a_notice_drafted_on_the_web_is_published_only_by_somebody_else_once(site: Site) -> None:
    for name in ("alice@fsc.example", "paula@fsc.example", "quinn@fsc.example"):
        await site.account(name)
    async with aiohttp.ClientSession(cookie_jar=jar()) as alice:
        assert (await site.sign_in(alice, "alice@fsc.example")).status == 303
        csrf = await site.csrf(alice, "/notices/new?burst_id=sb26120201")
        form = {k: str(v) for k, v in NOTICE.items()} | {"csrf": csrf}
        async with alice.post(site.url + "/notices/new", data=form, allow_redirects=False) as drafted:
            assert drafted.status == 303, await drafted.text()
            where = site.url + drafted.headers["Location"]
        [event] = await site.events("publication.drafted")
        assert event.actor == "web:alice@fsc.example" and event.data["drafted_by"] == "alice@fsc.example"
        status, html = await _draft_page(alice, where)
        assert status == 200 and event.data["sha256"] in html and 'id="draft-packet"' in html
        assert "ivo://fsc.example/notices#sb26120201_eclairs-wakeup" in html and 'id="publish-form"' not in html
        async with alice.post(where, data={"csrf": csrf}) as own:  # a BA may not publish (nor their own)
            assert own.status == 403 and "needs the role" in await own.text()
        # a retraction needs an approver to draft it; the refusal is recorded
        retraction = {"burst_id": "sb26120201", "type": "retraction", "reason": "cosmic ray", "csrf": csrf}
        async with alice.post(site.url + "/notices/new", data=retraction, allow_redirects=False) as refused:
            assert refused.status == 422 and "needs the role approver" in await refused.text()
        assert [e.data["code"] for e in await site.events("publication.refused")] == ["role"]
    assert await site.events("publication.draft_approved") == []
    async with aiohttp.ClientSession(cookie_jar=jar()) as paula:
        assert (await site.sign_in(paula, "paula@fsc.example")).status == 303
        status, html = await _draft_page(paula, where)
        assert 'id="publish-form"' in html
        csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
        async with paula.post(where, data={"csrf": "forged"}) as forged:
            assert forged.status in (403, 422) and "CSRF" in await forged.text()
        assert await site.events("publication.draft_approved") == []
        async with paula.post(where, data={"csrf": csrf}) as published:
            text = await published.text()
            assert published.status == 202 and "Published" in text, text[:2000]
        async with paula.post(where, data={"csrf": csrf}) as again:
            assert again.status == 409 and "already published by paula@fsc.example" in await again.text()
    [approved] = await site.events("publication.draft_approved")
    assert approved.actor == "web:paula@fsc.example" and approved.data["drafted_by"] == "alice@fsc.example"
    [requested] = await site.events("publication.requested")
    assert requested.data["request_id"] == f"draft:{event.data['draft_id']}" and requested.actor == "web:paula@fsc.example"
    assert [e.data["code"] for e in await site.events("publication.refused")] == ["role", "already_published"]


async def test_the_drafts_api_keeps_two_people_apart_for_scripts_too(site: Site) -> None:
    await site.account("paula@fsc.example")
    await site.account("quinn@fsc.example")
    paula = {"Authorization": f"Bearer {await site.token('paula@fsc.example', 'approver')}"}
    quinn = {"Authorization": f"Bearer {await site.token('quinn@fsc.example', 'approver')}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(site.url + DRAFTS, json={"burst_id": "sb26120201", "type": "retraction",
                                                         "reason": "x"}, headers=paula) as nothing:
            assert nothing.status == 422  # nothing to retract yet: refused and recorded
        async with session.post(site.url + DRAFTS, json=NOTICE, headers=paula) as drafted:
            body = await drafted.json()
            assert drafted.status == 201 and body["approvers"] == ["ada@fsc.example", "quinn@fsc.example"], body
        async with session.get(site.url + body["packet"], headers=quinn) as packet:
            assert packet.status == 200 and packet.headers["X-Burstbus-Drafted-By"] == "paula@fsc.example"
            assert hashlib.sha256(await packet.read()).hexdigest() == body["sha256"]
        publish = f"{site.url}{DRAFTS}/{body['draft_id'][:8]}/publish"
        async with session.post(publish, headers=paula) as own:
            assert own.status == 409 and "two people" in (await own.json())["error"]["message"]
        async with session.post(publish, headers={"Authorization": f"Bearer {TOKEN}"}) as shared:
            assert shared.status in (401, 403)  # the shared token is nobody: it cannot be the second person
        async with session.post(publish, headers=quinn) as ok:
            assert ok.status == 202 and (await ok.json())["request_id"] == f"draft:{body['draft_id']}"
        async with session.post(f"{site.url}{DRAFTS}/abcdef12/publish", headers=quinn) as unknown:
            assert unknown.status == 404
    codes = [e.data["code"] for e in await site.events("publication.refused")]
    assert codes == ["draft", "same_person", "unknown_draft"]
