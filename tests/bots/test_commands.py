"""Every command's answer over a real log with real notices, and the ba.command it records."""

from __future__ import annotations

from burstbus.bots.bot import COMMAND_EVENT
from burstbus.ingest import accepted_event_id
from tests.bots.conftest import (
    BURST,
    CAROL,
    FAR,
    LINK,
    MALLORY,
    N1,
    N2,
    NO_POSITION,
    VIC,
    World,
)


async def commands(world: World) -> list[dict]:
    return [dict(e.data) | {"actor": e.actor} for e in await world.events(COMMAND_EVENT)]


async def test_bursts(world: World) -> None:
    reply = await world.say(VIC, "bursts")
    lines = reply.text.splitlines()
    assert lines[0] == "3 most recent bursts:"
    assert [line.split(" ")[0] for line in lines[1:4]] == [NO_POSITION, BURST, FAR]  # newest notice first
    assert "2 notices" in lines[2] and "RA 123.4601° Dec -12.5012°" in lines[2]
    assert lines[-1] == f"{LINK}/bursts"
    assert (await world.say(VIC, "Bursts 1")).text.splitlines()[1].startswith(NO_POSITION)
    assert "not a number" in (await world.say(VIC, "bursts many")).text
    assert "between 1 and 25" in (await world.say(VIC, "bursts 500")).text


async def test_burst_summary_with_notices_processes_and_triggers(world: World) -> None:
    reply = await world.say(VIC, "Burst SB26112001")  # phones capitalise; ids match ignoring case
    text = reply.text
    assert text.splitlines()[0] == BURST
    assert "2 notices" in text and "Event time 2026-11-20 03:04:05 UTC" in text
    assert "Best position: RA 123.4601° Dec -12.5012° ±7.2″ (MXT#sb26112001_2)" in text
    assert "ECLAIRs#sb26112001_1" in text
    assert "Processes: 1 complete, 1 failed" in text and "ERROR: no attitude file" in text
    assert "Triggers: none" in text
    assert text.splitlines()[-1] == f"{LINK}/bursts/{BURST}"
    unknown = await world.say(VIC, "burst sb99")
    assert unknown.text.startswith("Sorry, I know no burst called 'sb99'")


async def test_notices_and_processes(world: World) -> None:
    notices = (await world.say(VIC, "notices sb26112001")).text.splitlines()
    assert notices[0] == f"{BURST}: 2 notices"
    assert notices[1].endswith("ECLAIRs#sb26112001_1") and notices[2].endswith("MXT#sb26112001_2")
    processes = (await world.say(VIC, "processes sb26112001")).text
    assert processes.startswith(f"{BURST}: 2 processes (1 complete, 1 failed)")
    assert "mxt-pipe 01/1: failed" in processes and "obtloc 01/1: complete" in processes
    assert (await world.say(VIC, f"processes {NO_POSITION}")).text == f"{NO_POSITION}: no pipeline processes reported."
    assert "Usage: notices ID" in (await world.say(VIC, "notices")).text


async def test_near_reads_positions_as_typed_on_phones(world: World) -> None:
    for typed in ("near 123.456 -12.5 1", "near 8h13m49.4s \u221212\u00b030\u2032 30'", "near 123.456, -12.5, 2",
                  "near 8 13 49.4 -12 30 00", "NEAR 123,456 -12,5"):
        text = (await world.say(VIC, typed)).text
        lines = text.splitlines()
        assert lines[0].startswith("2 notices RA 123.45"), (typed, text)
        assert lines[1].endswith(f"ECLAIRs#{BURST}_1 [{BURST}] ±6.0′") and f"MXT#{BURST}_2 [{BURST}]" in lines[2], text
    assert (await world.say(VIC, "near 10 10 1")).text.startswith("No notices RA 10.0000° Dec +10.0000° within 1°")
    far = (await world.say(VIC, "near 250 45 0.1")).text
    assert f"[{FAR}]" in far
    bad = await world.say(VIC, "near 25h 0")
    assert bad.text.startswith("Sorry, right ascension '25h'") or "25h" in bad.text
    assert "Usage: near RA DEC" in (await world.say(VIC, "near 1")).text
    assert "at most 30°" in (await world.say(VIC, "near 1 1 45")).text


async def test_status_reports_components_chat_and_triggers(world: World) -> None:
    text = (await world.say(VIC, "status")).text
    assert text.startswith("Log: ")
    assert "Read models: up to date." in text
    assert "Up: projections" in text
    assert "DOWN vtp-receiver: OSError: address in use since 11-20 03:01" in text
    assert "Chat: connected, last activity 11-20 03:05" in text
    assert "Trigger requests waiting for approval: 0" in text
    world.messenger.up = False
    assert "Chat: NOT connected" in (await world.say(VIC, "status")).text


async def test_triggers_list(world: World) -> None:
    assert (await world.say(VIC, "triggers")).text == "No trigger requests yet."
    await world.request("alice@fsc.example", f"trigger TAROT {BURST} after the slew")
    await world.sync()
    text = (await world.say(VIC, "triggers")).text
    assert text.splitlines()[0] == "Trigger requests (1 waiting for approval):"
    assert f"TAROT on {BURST} by alice" in text and "waiting for approval until" in text


async def test_unknown_commands_get_a_suggestion_and_an_event(world: World) -> None:
    reply = await world.say(VIC, "statsu")
    assert reply.text == "Sorry, I don't know 'statsu'. Did you mean 'status'? Say 'help' for what you can ask."
    nothing = await world.say(VIC, "xyzzy plugh")
    assert nothing.text == "Sorry, I don't know 'xyzzy'. Say 'help' for what you can ask."
    # A viewer is never pointed at a command they may not run.
    assert "approve" not in (await world.say(VIC, "aprove")).text
    recorded = await commands(world)
    assert [(c["command"], c["outcome"], c["text"]) for c in recorded[-2:-1]] == [(None, "unknown", "xyzzy plugh")]
    assert all(c["outcome"] == "unknown" for c in recorded)


async def test_every_command_is_an_event_with_who_where_and_outcome(world: World) -> None:
    await world.say(VIC, "bursts")
    await world.say(MALLORY, "trigger TAROT sb26112001", via="room", room="ba@conference.fsc.example", nick="alice")
    await world.say(None, "approve K7QX-M2PD", via="room", room="ba@conference.fsc.example", nick="carol")
    await world.say(CAROL, "approve k7qx-m2pd TAROT")
    await world.say(CAROL, "approve k7qx m2pd")
    await world.say(CAROL, "aprove K7QXM2PD")
    await world.say(CAROL, "deny K7QX-M2PD too cloudy")
    await world.say(CAROL, "")
    recorded = await commands(world)
    summary = [(c["jid"], c["via"], c["room"], c["nick"], c["command"], c["outcome"]) for c in recorded]
    room = "ba@conference.fsc.example"
    assert summary == [
        (VIC, "dm", None, None, "bursts", "ok"),
        (MALLORY, "room", room, "alice", "trigger", "refused"),
        (None, "room", room, "carol", "approve", "refused"),
        (CAROL, "dm", None, None, "approve", "refused"),
        (CAROL, "dm", None, None, "approve", "refused"),
        (CAROL, "dm", None, None, None, "unknown"),
        (CAROL, "dm", None, None, "deny", "refused"),
        (CAROL, "dm", None, None, None, "unknown"),
    ]
    assert recorded[1]["actor"] == f"xmpp:{MALLORY}"
    assert recorded[1]["reason"] == "needs role ba"
    assert recorded[2]["reason"] == "real JID hidden by the room"
    assert recorded[3]["reason"] == "no request with that code"
    # Codes never reach the log in clear, however they were typed.
    texts = [c["text"] for c in recorded]
    assert texts[2:7] == ["approve [code]", "approve [code] TAROT", "approve [code]", "aprove [code]…", "deny [code] too cloudy"]
    for event in await world.events(COMMAND_EVENT):
        assert "K7QX" not in str(event.data).upper()


async def test_wrong_codes_are_limited_per_person(world: World) -> None:
    for _ in range(5):
        assert "no trigger request has that code" in (await world.say(CAROL, "approve 2345-6789")).text
    assert "too many wrong codes" in (await world.say(CAROL, "approve 2345-6789")).text
    assert "no trigger request has that code" in (await world.say("dave@fsc.example", "approve 2345-6789")).text


async def test_the_fixture_notices_are_in_the_log(world: World) -> None:
    for ivorn in (N1, N2):
        assert await world.core.log.find(accepted_event_id(ivorn)) is not None


async def test_the_bot_package_builds_the_bot_where_a_chat_transport_offers_messages(world: World) -> None:
    from burstbus.bots.bot import BurstBot
    from burstbus.bots.component import PACKAGE
    from burstbus.chat import CHAT, CHATBOT
    from burstbus.service import Service

    service = Service(world.core)
    assert service.host is not None
    followup = ["trigger-followup", "trigger-pages", "trigger-ack-watch"]
    # no chat transport: nobody could ask, no bot; what follows a sent trigger runs anyway
    assert [c.name for c in PACKAGE.build(service.host)] == followup
    assert service.host.ports.get(CHATBOT) is None
    service.host.ports.offer(CHAT, world.messenger, by="test")
    for component in PACKAGE.build(service.host):
        service.add_component(component)
    bot = service.host.ports.get(CHATBOT)
    assert isinstance(bot, BurstBot) and service.part(BurstBot) is bot
    assert [c.name for c in service.components] == ["bot-expiry", *followup]
    assert bot.publish is None  # NATS not offered in this service
    try:
        text = (await world.say(VIC, "status", bot=bot)).text
        assert "DOWN bot-expiry" in text and "Chat: connected" in text
    finally:
        await service.close()
