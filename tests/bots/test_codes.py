"""Approval codes never reach the log (``ba.command`` text, reason and nickname, a trigger's
note, a deny's reason) nor the service log, however and wherever they are typed — and the
code still approves, once."""

from __future__ import annotations

import logging

import pytest

from burstbus.bots.bot import COMMAND_EVENT
from burstbus.ratelimit import RateLimiter
from tests.bots.conftest import ALICE, BOB, BURST, CAROL, MALLORY, VIC, World
from tests.bots.leaks import data_files, leaks_in_files, leaks_in_text, spellings
from tests.packets import voevent

ROOM = "ba@conference.fsc.example"


def generous(world: World) -> None:
    """These tests type many lines from few people; the rate limit has its own tests."""
    world.bot.limiter = RateLimiter(listed=10_000, unlisted=10_000)


async def texts(world: World) -> list[str]:
    return [e.data["text"] for e in await world.events(COMMAND_EVENT)]


async def test_a_code_typed_anywhere_never_reaches_the_log(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    generous(world)
    _, shown = await world.request(ALICE, f"trigger TAROT {BURST}")
    code = shown.replace("-", "")
    replies = []
    for typed in spellings(code).values():
        for jid, line in [
            (VIC, f"approve {typed}"), (VIC, f"approve TAROT {typed}"), (VIC, f"approve code {typed} for TAROT"),
            (MALLORY, f"deny TAROT {typed} because bad weather"), (VIC, f"help {typed}"), (VIC, f"aprove {typed}"),
            (MALLORY, typed), (VIC, f"burst {typed}"), (VIC, f"near {typed} 12"), (ALICE, f"approve {typed}"),
        ]:
            replies.append(await world.say(jid, line))
    # The approver, without deciding: a wrong code, the right one in the reason (4 wrong codes < 5).
    for typed in ("lower", "split", "cyrillic", "fullwidth"):
        replies.append(await world.say(CAROL, f"deny 2345-6789 it is not {spellings(code)[typed]} sorry"))
    # A room nickname (a room hiding real JIDs), and a note of another request.
    replies.append(await world.say(None, "status", via="room", room=ROOM, nick=code))
    noted = await world.say(ALICE, f"trigger COLIBRI {BURST} remember {spellings(code)['split']} please")
    assert noted.text.startswith("Trigger request") and "[code]" in noted.text
    for reply in replies:
        assert not leaks_in_text(reply.text, code), reply.text  # no echo either (a room keeps an archive)

    # The code still works, once.
    approved = await world.say(BOB, f"approve {shown} TAROT")
    assert approved.text.startswith("Approved: TAROT"), approved.text
    assert len(await world.events("trigger.approved")) == 1
    await world.sync()

    assert leaks_in_files(data_files(world.config.data_dir), code) == {}
    assert not leaks_in_text(caplog.text, code)
    assert code not in caplog.text
    recorded = await texts(world)
    assert "approve TAROT [code]" in recorded and "approve code [code] for TAROT" in recorded
    assert "deny TAROT [code] because bad weather" in recorded
    assert "deny [code] it is not [code] sorry" in recorded
    assert "help [code]" in recorded and "aprove [code]" in recorded and "[code]" in recorded
    assert "burst [code]" in recorded and "near [code] 12" in recorded
    note = (await world.events("trigger.requested"))[1].data["note"]
    assert note == "remember [code] please"
    nick = [e for e in await world.events(COMMAND_EVENT) if e.data["via"] == "room"][0]
    assert nick.data["nick"] == "[code]" and code not in nick.actor


async def test_typed_with_look_alikes_the_code_approves(world: World) -> None:
    _, shown = await world.request(ALICE, f"trigger TAROT {BURST}")
    cyrillic = spellings(shown.replace("-", ""))["cyrillic"]
    approved = await world.say(BOB, f"approve tarot code {cyrillic[:4]} {cyrillic[4:]}")
    assert approved.text.startswith("Approved: TAROT"), approved.text
    assert (await texts(world))[-1] == "approve tarot code [code]"


async def test_the_code_in_other_positions_approves(world: World) -> None:
    _, first = await world.request(ALICE, f"trigger TAROT {BURST}")
    assert (await world.say(BOB, f"approve TAROT {first.lower()}")).text.startswith("Approved")
    _, second = await world.request(ALICE, f"trigger COLIBRI {BURST}")
    assert (await world.say(CAROL, f"approve code {second[:4]} {second[5:]}")).text.startswith("Approved")
    _, third = await world.request(ALICE, f"trigger TAROT {BURST}")
    refused = await world.say(BOB, f"approve {third} COLIBRI")  # the other telescope named: refused
    assert "not COLIBRI" in refused.text
    unclear = await world.say(BOB, f"approve {third} tarrot")  # a misspelt name: nothing approved, no echo
    assert "could not place every word" in unclear.text and third not in unclear.text
    assert (await texts(world))[-1] == "approve [code]"  # what could not be placed could be code
    assert len(await world.events("trigger.approved")) == 2


async def test_a_code_without_digits_is_found_by_its_hash(world: World, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """No shape rule can tell ``KQXMPDRT`` from a word: the redaction checks the request's HMAC."""
    caplog.set_level(logging.DEBUG)
    generous(world)
    monkeypatch.setattr("burstbus.handlers.triggers.workflow.new_code", lambda: "KQXMPDRT")
    _, shown = await world.request(ALICE, f"trigger TAROT {BURST}")
    assert shown == "KQXM-PDRT"
    for line in ("help kqxmpdrt", "approve TAROT KQXM PDRT", "KQ XM PD RT", "deny 2345-6789 was kqxm-pdrt",
                 "burst КQХМРDRТ"):
        await world.say(VIC if not line.startswith("deny") else CAROL, line)
    await world.say(ALICE, f"trigger COLIBRI {BURST} not kqxmpdrt")
    await world.sync()
    assert leaks_in_files(data_files(world.config.data_dir), "KQXMPDRT") == {}
    assert not leaks_in_text(caplog.text, "KQXMPDRT")
    assert (await world.say(CAROL, "approve kqxmpdrt")).text.startswith("Approved")


async def test_a_failing_command_logs_no_code(world: World, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _, shown = await world.request(ALICE, f"trigger TAROT {BURST}")

    async def broken(what: str, typed: str) -> None:
        raise RuntimeError(f"cannot read {typed}")

    monkeypatch.setattr(world.bot, "_burst", broken)
    reply = await world.say(VIC, f"burst {shown.lower()}")
    assert "something went wrong" in reply.text
    assert "bot command failed" in caplog.text and "RuntimeError" in caplog.text
    assert not leaks_in_text(caplog.text, shown.replace("-", ""))


async def test_a_known_burst_id_that_looks_like_a_code_stays_readable(world: World) -> None:
    odd = "sbf93386e3"  # hex-like, no 0 or 1: the shape of a code
    raw = voevent(f"ivo://svom.example/ECLAIRs#{odd}_1", params={"Burst_Id": odd}, ra=10.0, dec=20.0, err=0.1)
    assert (await world.core.ingest.submit(raw, via="local", peer="tests")).outcome == "accepted"
    await world.sync()
    assert (await world.say(VIC, f"burst {odd}")).text.startswith(odd)
    await world.say(VIC, "burst sbf93386e4")  # unknown: it could be anything, so it goes
    assert (await texts(world))[-2:] == [f"burst {odd}", "burst [code]"]
