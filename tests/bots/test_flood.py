"""Flooding the bot: limited per sender before anything becomes an event; what is recorded of
a long message is capped."""

from __future__ import annotations

import hashlib
import logging

import pytest

from burstbus.bots.bot import COMMAND_EVENT, MAX_RECORDED
from burstbus.ratelimit import LISTED, PERIOD, UNLISTED, RateLimiter
from tests.bots.conftest import ALICE, BURST, MALLORY, VIC, World
from tests.bots.leaks import data_files, leaks_in_files

ROOM = "ba@conference.fsc.example"


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def outcomes(world: World) -> list[tuple[str | None, str]]:
    return [(e.data["jid"], e.data["outcome"]) for e in await world.events(COMMAND_EVENT)]


async def test_an_unlisted_flood_is_answered_once_then_dropped(world: World, caplog: pytest.LogCaptureFixture) -> None:
    ticks = Ticks()
    world.bot.limiter = RateLimiter(clock=ticks)
    caplog.set_level(logging.INFO)
    replies = [await world.say(MALLORY, f"burst {BURST} {i}") for i in range(UNLISTED + 30)]
    answered = [r.text for r in replies if r.text]
    assert len(answered) == UNLISTED + 1
    assert answered[-1].startswith(f"Sorry, that is more than {UNLISTED} messages in {PERIOD:g} seconds")
    assert all(r.text == "" and r.pages == [] for r in replies[UNLISTED + 1 :])
    assert await outcomes(world) == [(MALLORY, "refused")] * UNLISTED + [(MALLORY, "rate_limited")]
    limited = (await world.events(COMMAND_EVENT))[-1].data
    assert limited["reason"] == f"more than {UNLISTED} commands in {PERIOD:g}s" and limited["command"] == "burst"
    assert world.bot.probe()["rate_limit"]["dropped"] == 29
    assert world.bot.probe()["rate_limit"]["limited_now"] == [MALLORY]
    lines = [r for r in caplog.records if r.name == "burstbus.ratelimit"]
    assert len(lines) == 1 and MALLORY in lines[0].getMessage()  # one line per window, not one per message

    # Others are not affected; a listed person gets more; after the window mallory is heard again.
    assert (await world.say(VIC, "whoami")).text.startswith("You are vic")
    vic = [await world.say(VIC, "whoami") for _ in range(LISTED + 5)]
    assert sum(1 for r in vic if r.text.startswith("You are")) == LISTED - 1  # one spent above
    ticks.now += PERIOD
    assert (await world.say(MALLORY, "whoami")).text.startswith("You are mallory")
    status = (await world.say(VIC, "status")).text  # vic's window is over too by now
    assert "Rate limited: 2 times" in status


async def test_askers_a_room_hides_share_the_rooms_bucket(world: World) -> None:
    world.bot.limiter = RateLimiter(clock=Ticks())
    for i in range(UNLISTED):
        assert (await world.say(None, "help", via="room", room=ROOM, nick=f"nick{i}")).text
    refused = await world.say(None, "help", via="room", room=ROOM, nick="yet-another-nick")
    assert refused.text.startswith("Sorry, that is more than")
    assert (await world.say(None, "help", via="room", room=ROOM, nick="and-another")).text == ""


async def test_what_is_recorded_of_a_long_message_is_capped(world: World) -> None:
    body = "burst " + "x" * 100_000
    reply = await world.say(MALLORY, body)
    assert "too long for a command" in reply.text
    [event] = await world.events(COMMAND_EVENT)
    data = event.data
    assert data["outcome"] == "refused" and data["reason"] == "too long" and data["command"] == "burst"
    assert len(data["text"]) == MAX_RECORDED and data["text"].endswith("…")
    assert data["text_length"] == len(body)
    assert data["text_sha256"] == hashlib.sha256(body.encode()).hexdigest()  # nothing in it was code-like
    # A code in a long text: gone from the recorded start and from what was hashed.
    _, code = await world.request(ALICE, f"trigger TAROT {BURST}")
    await world.say(VIC, f"help {code} " + "y " * 1000 + code.lower())
    last = (await world.events(COMMAND_EVENT))[-1].data
    assert last["text"].startswith("help [code] y y") and "text_sha256" in last
    assert leaks_in_files(data_files(world.config.data_dir), code.replace("-", "")) == {}
    # A short command records no length or hash.
    await world.say(VIC, "whoami")
    assert "text_length" not in (await world.events(COMMAND_EVENT))[-1].data
