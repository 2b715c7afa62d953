"""Issue 11, "codes never in the log", end to end: real Prosody, the real bot, real clients.

An approval code captured from the approver's page is typed back in every argument position
and spelling, by people who may and may not use it, in notes and reasons, in a room, from an
unlisted account; then every file of the data directory and the service log captured at
DEBUG are searched for it: nothing. The code still approves, once. And a flood from an
unlisted account is answered once and then dropped before it becomes events.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest

from burstbus.bots.bot import BurstBot
from burstbus.ratelimit import PERIOD, UNLISTED, RateLimiter
from burstbus.store.base import ReadFilter
from tests.bots.leaks import data_files, leaks_in_files, leaks_in_text, spellings
from tests.packets import voevent
from tests.waiting import wait_for
from tests.xmpp.conftest import Burstbus, Clients, Rooms
from tests.xmpp.harness import Prosody
from tests.xmpp.test_acceptance import BOT, MALLORY, ask, code_from_page, new_burst, start

pytestmark = pytest.mark.asyncio(loop_scope="session")


def the_bot(bus: Burstbus) -> BurstBot:
    bot = bus.bot
    assert bot is not None
    return bot


async def test_a_code_typed_in_every_position_and_spelling_is_nowhere_in_the_data_or_the_log(
    prosody: Prosody, rooms: Rooms, clients: Clients, started: list[Burstbus], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # the service log as `burstbus -vv run` would write it
    data = tmp_path / "data"
    bus = await start(prosody, rooms, started, data)
    # Many lines from few people in a few seconds: the rate limit has its own test below.
    the_bot(bus).limiter = RateLimiter(listed=10_000, unlisted=10_000)
    alice = await clients.login("alice")
    bob = await clients.login("bob")
    carol = await clients.login("carol")
    mallory = await clients.login("mallory")
    await clients.login("colibri", "mount")  # takes the trigger (not left offline for other tests)
    await alice.join(rooms.ba, "alice")
    burst = await new_burst(bus, alice, rooms)

    await ask(alice, f"trigger COLIBRI {burst}", "recorded")
    shown = await code_from_page(bob, burst, "COLIBRI")  # the approver's page: XXXX-XXXX
    code = shown.replace("-", "")
    typed = spellings(code)
    for form in typed.values():
        # carol is a viewer, mallory unlisted: refused before any code is looked at
        await ask(carol, f"approve {form}", "Sorry")  # first argument
        await ask(carol, f"approve COLIBRI {form}", "Sorry")  # second
        await ask(carol, f"approve code COLIBRI {form}", "Sorry")  # third
        await ask(carol, f"approve code {form}", "Sorry")
        await ask(carol, f"deny COLIBRI {form} because of clouds", "Sorry")
        await ask(carol, f"help {form}", "")  # "no command [code]", or usage when split
        await ask(carol, f"aprove {form}", "Sorry, I don't know")
        await ask(mallory, f"approve {form} COLIBRI", "Sorry")
        await ask(mallory, form, "Sorry, I don't know")
    # the approver himself, without deciding: a mistyped command, a reason after a wrong code
    await ask(bob, f"aprove {typed['lower']}", "Did you mean")
    await ask(bob, f"deny 2345-6789 it is not {typed['split']}", "no trigger request has that code")
    await ask(bob, f"deny 2345-6789 nor {typed['cyrillic']}", "no trigger request has that code")
    # a trigger note, and the room (which keeps an archive: the bot must not echo the code)
    await ask(alice, f"trigger TAROT {burst} keep {typed['en dash']} in mind", "recorded")
    answer = await ask(alice, f"help {typed['fullwidth']}", "Sorry", room=rooms.ba, nick="alice")
    assert not leaks_in_text(answer, code)

    # What everyone saw from the bot: the code only in the approvers' pages.
    for user in (alice, carol, mallory):
        from_bot = [m for m in user.received if m.frm.startswith(BOT) or m.frm.endswith("/burstbus")]
        assert from_bot and not [m.body for m in from_bot if leaks_in_text(m.body or "", code)]

    # The code still approves, exactly once.
    await ask(bob, f"approve {shown} COLIBRI", "Approved: COLIBRI")
    approvals = await bus.core.log.read(0, ReadFilter.of(["trigger.approved"]))
    assert [(a.data["approved_by"], a.data["telescope"]) for a in approvals] == [("bob@localhost", "COLIBRI")]
    head = (await bus.core.log.head()).seq
    await wait_for(lambda: bus.core.projections.applied_seq >= head, "the read models to catch up")

    commands = [c.data for c in await bus.core.log.read(0, ReadFilter.of(["ba.command"]))]
    assert len(commands) >= 9 * len(typed)
    texts = {c["text"] for c in commands}
    assert {"approve [code]", "approve COLIBRI [code]", "approve code COLIBRI [code]", "approve code [code]",
            "deny COLIBRI [code] because of clouds", "help [code]", "aprove [code]", "approve [code] COLIBRI",
            "[code]", "aprove [code]…", "deny [code] it is not [code]", f"trigger TAROT {burst} keep [code] in mind",
            } <= texts, texts
    requested = await bus.core.log.read(0, ReadFilter.of(["trigger.requested"]))
    assert requested[-1].data["note"] == "keep [code] in mind"

    assert leaks_in_files(data_files(data), code) == {}  # while running: the WAL holds the recent pages
    assert not leaks_in_text(caplog.text, code), leaks_in_text(caplog.text, code)
    assert any(r.levelno == logging.DEBUG for r in caplog.records)  # the capture did see debug lines
    await bus.stop()
    assert leaks_in_files(data_files(data), code) == {}  # and after the checkpoint at close
    assert not leaks_in_text(caplog.text, code)


async def test_an_unlisted_flood_is_answered_once_and_never_fills_the_log(
    prosody: Prosody, rooms: Rooms, clients: Clients, started: list[Burstbus], tmp_path: Path,
) -> None:
    bus = await start(prosody, rooms, started, tmp_path / "data")
    bot = the_bot(bus)
    mallory = await clients.login("mallory")
    flood = 3 * UNLISTED
    for i in range(flood):
        mallory.say(BOT, f"status {i}" if i != 2 else "x" * 100_000)  # one 100 KB body among them
    await wait_for(lambda: bot.limiter.refused_total + bot.limiter.dropped_total >= flood - UNLISTED,
                   "the bot to have read the flood")
    await mallory.wait_chat(BOT, f"more than {UNLISTED} messages in {PERIOD:g} seconds")
    commands = [c.data for c in await bus.core.log.read(0, ReadFilter.of(["ba.command"]))]
    assert [c["jid"] for c in commands] == [MALLORY] * (UNLISTED + 1)
    assert [c["outcome"] for c in commands][-1] == "rate_limited"
    long = [c for c in commands if "text_length" in c]
    assert len(long) == 1 and long[0]["text_length"] == 100_000 and len(long[0]["text"]) <= 500
    assert bot.limiter.dropped_total == flood - UNLISTED - 1
    assert len([m for m in mallory.chats(BOT)]) == UNLISTED + 1  # the rest unanswered

    # VOEvents from a JID not allowed to send them: refused and recorded, but not a flood of events.
    node = bus.xmpp
    before = len(await bus.core.log.read(0, ReadFilter.of(["voevent.rejected"])))
    for _ in range(flood):
        mallory.say(BOT, voevent(f"ivo://org.svom/fsc#flood-{uuid.uuid4().hex[:8]}").decode())
    await wait_for(lambda: node.voevent_limiter.dropped_total >= flood - UNLISTED - 1, "the VOEvent flood to be read")
    rejected = await bus.core.log.read(0, ReadFilter.of(["voevent.rejected"]))
    assert len(rejected) - before == UNLISTED + 1
    assert node.health()["voevent_rate_limit"]["limited_now"] == [MALLORY]  # type: ignore[index]
