"""The trigger workflow end to end at the domain level: every security case yields no
``trigger.sent``; the happy path delivers a valid VOEvent citing the burst's notices."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from lxml import etree

from burstbus.handlers.triggers.request import decision_id
from burstbus.ingest import accepted_event_id
from burstbus.voevent.examine import examine
from tests.bots.conftest import (
    ALICE,
    BOB,
    BURST,
    CAROL,
    DAVE,
    MALLORY,
    N1,
    N2,
    NO_POSITION,
    TAROT_JID,
    TAROT_SUBJECT,
    VIC,
    World,
    make_world,
)

ROOM = "ba@conference.fsc.example"
TRIGGER_TYPES = ("trigger.requested", "trigger.approved", "trigger.denied", "trigger.expired", "trigger.sent", "trigger.failed")


async def kinds(world: World) -> list[str]:
    return [e.type for e in await world.events(*TRIGGER_TYPES)]


async def nothing_sent(world: World) -> None:
    assert await world.events("trigger.sent") == []
    assert world.messenger.voevents == [] and world.publisher.messages == []


async def test_happy_path_request_approve_deliver(world: World, tmp_path: Path) -> None:
    reply, code = await world.request(ALICE, f"trigger TAROT {BURST} \u201cafter the slew\u201d")
    assert reply.text.startswith("Trigger request ")
    assert "someone other than you must approve" in reply.text
    assert {p.to for p in reply.pages} == {BOB, CAROL, DAVE}  # TAROT's approvers, never the requester
    assert code not in reply.text  # the code goes to approvers only, never to a room

    approved = await world.say(CAROL, f"approve {code.lower()} tarot")
    assert approved.text.startswith(f"Approved: TAROT on {BURST}")
    assert "Sent to TAROT via VTP; XMPP tarot@robots.example; NATS svom.trigger.tarot" in approved.text
    assert [(p.to, "approved your TAROT trigger" in p.text) for p in approved.pages] == [(ALICE, True)]

    # Delivered to the telescope's JID and NATS subject: the same bytes, accepted into the log.
    [(jid, xml, summary)] = world.messenger.voevents
    assert jid == TAROT_JID and summary.startswith(f"TRIGGER TAROT: {BURST}")
    [(subject, payload, headers)] = world.publisher.messages
    assert (subject, payload) == (TAROT_SUBJECT, xml)
    request = (await world.events("trigger.requested"))[0].data
    assert headers["Nats-Msg-Id"] == f"trigger:{request['request_id']}"

    # A valid VOEvent 2.0, role utility, citing the burst's notices, pointing where the BA saw.
    examined = examine(xml)
    # The IVORN was chosen at approval (request id + a random part) and recorded there.
    ivorn = (await world.events("trigger.approved"))[0].data["voevent_ivorn"]
    assert ivorn.startswith(f"ivo://fsc.example/trigger#{request['request_id']}-") and len(ivorn.rsplit("-", 1)[1]) == 12
    assert examined.summary["ivorn"] == ivorn and examined.summary["role"] == "utility"
    assert [c["ivorn"] for c in examined.summary["citations"]] == [N1, N2]
    assert {c["type"] for c in examined.summary["citations"]} == {"followup"}
    assert examined.summary["position"]["ra"] == round(request["params"]["ra"], 6)
    params = {p.get("name"): p.get("value") for p in examined.root.iter("Param")}
    assert params["Telescope"] == "TAROT" and params["BurstId"] == BURST
    assert params["RequestId"] == request["request_id"] and params["Note"] == "after the slew"
    accepted = await world.core.log.find(accepted_event_id(ivorn))
    assert accepted is not None and accepted.data["via"] == "local" and accepted.actor == "local:triggers"

    # Each step is in the log with who did it; the code only as its keyed hash.
    steps = [(e.type, e.actor) for e in await world.events(*TRIGGER_TYPES)]
    assert steps == [
        ("trigger.requested", f"xmpp:{ALICE}"),
        ("trigger.approved", f"xmpp:{CAROL}"),
        ("trigger.sent", "system:triggers"),
    ]
    sent = (await world.events("trigger.sent"))[0].data
    assert sent["voevent_ivorn"] == ivorn
    assert sent["channels"] == {"vtp": {"ivorn": ivorn, "stream": "ivo://fsc.example/trigger", "seq": accepted.seq},
                                "xmpp": [TAROT_JID], "nats": TAROT_SUBJECT}
    assert request["code_sha256"] != "" and code.replace("-", "") not in str(await world.core.log.read(0))

    # The burst identifier leaves the trigger out of the burst (role utility), and the
    # projection shows the request as sent.
    await world.sync()
    burst = (await world.say(VIC, f"burst {BURST}")).text
    assert "2 notices" in burst and "SENT" in burst and "approved by carol@fsc.example" in burst

    # `burstbus log` (the CLI) shows each step with who did it.
    await world.core.close()
    shown = subprocess.run(
        [sys.executable, "-m", "burstbus.cli", "--data-dir", str(world.config.data_dir), "log",
         "--type", "trigger.requested", "--type", "trigger.approved", "--type", "trigger.sent", "--type", "ba.command"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, stdin=subprocess.DEVNULL,
    )
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    for needle in ('"trigger.requested"', f'"xmpp:{ALICE}"', '"trigger.approved"', f'"xmpp:{CAROL}"',
                   '"trigger.sent"', '"system:triggers"', '"approve [code] tarot"'):
        assert needle in out, needle
    world.core = await type(world.core).open(world.config)  # reopen for the fixture's teardown


async def test_an_unlisted_jid_cannot_request_or_approve(world: World) -> None:
    refused = await world.say(MALLORY, f"trigger TAROT {BURST}")
    assert refused.text == "Sorry, 'trigger' needs the ba role; you are viewer."
    _, code = await world.request(ALICE, f"trigger TAROT {BURST}")
    assert "needs the approver role" in (await world.say(MALLORY, f"approve {code}")).text
    assert "needs the approver role" in (await world.say(VIC, f"approve {code}")).text
    await nothing_sent(world)
    assert await kinds(world) == ["trigger.requested"]


async def test_a_nickname_is_never_identity(world: World) -> None:
    _, code = await world.request(ALICE, f"trigger TAROT {BURST}")
    # Someone using an approver's nickname in a room that hides real JIDs...
    hidden = await world.say(None, f"approve {code}", via="room", room=ROOM, nick="carol")
    assert "hides your real address" in hidden.text
    # ...or with their own (server-stamped) JID and the approver's nickname.
    spoof = await world.say(MALLORY, f"approve {code}", via="room", room=ROOM, nick="carol")
    assert "needs the approver role" in spoof.text
    await nothing_sent(world)


async def test_no_self_approval_on_a_two_person_telescope(world: World) -> None:
    reply, code = await world.request(BOB, f"trigger TAROT {BURST}")  # bob is an approver himself
    assert BOB not in {p.to for p in reply.pages}
    refused = await world.say(BOB, f"approve {code}")
    assert refused.text == "Sorry, TAROT needs two people: someone other than you must approve your own request."
    await nothing_sent(world)
    assert "Sent to TAROT" in (await world.say(CAROL, f"approve {code}")).text


async def test_one_person_telescope_allows_self_approval(world: World) -> None:
    reply, code = await world.request(CAROL, f"trigger colibri {BURST}")
    assert CAROL in {p.to for p in reply.pages}
    approved = await world.say(CAROL, f"approve {code}")
    assert "Sent to COLIBRI via VTP" in approved.text
    sent = (await world.events("trigger.sent"))[0].data
    assert sent["voevent_ivorn"].startswith("ivo://fsc.example/trigger/colibri#")


async def test_a_code_works_once(world: World) -> None:
    _, code = await world.request(ALICE, f"trigger TAROT {BURST}")
    assert "Sent to TAROT" in (await world.say(CAROL, f"approve {code}")).text
    again = await world.say(DAVE, f"approve {code}")
    assert again.text.startswith("Sorry, that code was already used") and "approved by carol" in again.text
    assert "already used" in (await world.say(CAROL, f"deny {code} oops")).text
    assert await kinds(world) == ["trigger.requested", "trigger.approved", "trigger.sent"]
    assert len(world.messenger.voevents) == 1


async def test_an_expired_code_is_refused_and_recorded(world: World) -> None:
    _, code = await world.request(ALICE, f"trigger TAROT {BURST}")
    world.clock.advance(11)  # codes last 10 minutes here
    refused = await world.say(CAROL, f"approve {code}")
    assert refused.text.startswith("Sorry, that code expired at")
    await nothing_sent(world)
    assert await kinds(world) == ["trigger.requested", "trigger.expired"]
    assert "already used" in (await world.say(DAVE, f"approve {code}")).text


async def test_expiry_task_records_expired_and_tells_the_requester(world: World) -> None:
    _, code = await world.request(ALICE, f"trigger TAROT {BURST}")
    await world.sync()
    workflow = await world.bot.start()
    assert await workflow.expire_due() == 0  # not yet
    world.clock.advance(10.5)
    assert await workflow.expire_due() == 1
    assert await workflow.expire_due() == 0  # once
    expired = (await world.events("trigger.expired"))[0]
    assert expired.actor == "system:triggers" and expired.data["expired_at"]
    assert world.messenger.direct[0][0] == ALICE and "expired" in world.messenger.direct[0][1]
    await world.sync()
    assert "expired" in (await world.say(VIC, "triggers")).text
    assert "already used" in (await world.say(CAROL, f"approve {code}")).text
    await nothing_sent(world)


async def test_run_expiry_component(world: World) -> None:
    await world.request(ALICE, f"trigger TAROT {BURST}")
    await world.sync()
    world.clock.advance(11)
    task = asyncio.create_task(world.bot.run_expiry(interval=0.05))
    try:
        from tests.waiting import wait_for

        await wait_for(lambda: world.events("trigger.expired"), "the expiry component")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_code_for_one_telescope_cannot_approve_another(world: World) -> None:
    _, code = await world.request(ALICE, f"trigger COLIBRI {BURST}")
    named = await world.say(CAROL, f"approve {code} TAROT")
    assert named.text == "Sorry, that code approves a COLIBRI trigger, not TAROT. Nothing was sent."
    not_theirs = await world.say(BOB, f"approve {code}")  # bob approves TAROT only
    assert not_theirs.text.startswith("Sorry, you may not approve COLIBRI triggers")
    await nothing_sent(world)
    assert await kinds(world) == ["trigger.requested"]


async def test_requests_are_checked_before_they_are_recorded(world: World) -> None:
    assert "no telescope called 'HUBBLE'" in (await world.say(ALICE, f"trigger HUBBLE {BURST}")).text
    assert "has no position yet" in (await world.say(ALICE, f"trigger TAROT {NO_POSITION}")).text
    assert "no burst called 'sb0'" in (await world.say(ALICE, "trigger TAROT sb0")).text
    mine = await world.say(BOB, f"trigger COLIBRI {BURST}")
    assert mine.text.startswith("Sorry, you may not request COLIBRI triggers (your telescopes: TAROT)")
    assert "Usage: trigger TELESCOPE BURST" in (await world.say(ALICE, "trigger TAROT")).text
    assert await kinds(world) == []


async def test_deny(world: World) -> None:
    _, code = await world.request(ALICE, f"trigger TAROT {BURST}")
    denied = await world.say(BOB, f"deny {code} clouds over the site")
    assert denied.text.startswith("Refused: TAROT on")
    assert [(p.to, p.text.endswith("clouds over the site")) for p in denied.pages] == [(ALICE, True)]
    event = (await world.events("trigger.denied"))[0]
    assert (event.actor, event.data["denied_by"], event.data["reason"]) == (f"xmpp:{BOB}", BOB, "clouds over the site")
    assert "already used" in (await world.say(CAROL, f"approve {code}")).text
    await nothing_sent(world)


async def test_two_approvals_at_once_exactly_one_wins(world: World) -> None:
    _, code = await world.request(ALICE, f"trigger TAROT {BURST}")
    other = world.new_bot()  # a second bot over the same log: no shared lock, only the log's ids
    replies = await asyncio.gather(
        world.say(CAROL, f"approve {code}"), world.say(DAVE, f"approve {code}"), world.say(BOB, f"approve {code}", bot=other),
    )
    winners = [r for r in replies if r.text.startswith("Approved")]
    assert len(winners) == 1, [r.text for r in replies]
    assert all("already used" in r.text for r in replies if r not in winners)
    assert await kinds(world) == ["trigger.requested", "trigger.approved", "trigger.sent"]
    assert len(world.messenger.voevents) == 1 and len(world.publisher.messages) == 1


async def test_a_pending_request_survives_a_restart(tmp_path: Path) -> None:
    async with make_world(tmp_path) as world:
        _, code = await world.request(ALICE, f"trigger TAROT {BURST}")
    async with make_world(tmp_path) as world:  # a new core, a new bot, the same data
        approved = await world.say(CAROL, f"approve {code}")
        assert "Sent to TAROT" in approved.text
        assert await kinds(world) == ["trigger.requested", "trigger.approved", "trigger.sent"]


async def test_a_configured_secret_keys_the_code_hash(tmp_path: Path) -> None:
    secret = {"code_secret": "a-long-enough-test-secret"}
    async with make_world(tmp_path, triggers=secret) as world:
        _, code = await world.request(ALICE, f"trigger TAROT {BURST}")
        assert "Sent to TAROT" in (await world.say(CAROL, f"approve {code}")).text


async def test_failed_delivery_is_recorded_and_never_resent_as_success(world: World) -> None:
    world.messenger.unreachable.add(TAROT_JID)
    _, code = await world.request(ALICE, f"trigger TAROT {BURST}")
    reply = await world.say(CAROL, f"approve {code}")
    assert "Sorry, delivery failed: XMPP to tarot@robots.example: ConnectionError" in reply.text
    assert any(p.to == ALICE and "could not be delivered" in p.text for p in reply.pages)
    failed = (await world.events("trigger.failed"))[0].data
    assert failed["voevent_ivorn"].startswith("ivo://fsc.example/trigger#")
    assert failed["channels"]["nats"] == TAROT_SUBJECT  # what did go out is recorded too
    assert await world.events("trigger.sent") == []


async def test_nats_off_fails_a_telescope_that_needs_it(tmp_path: Path) -> None:
    async with make_world(tmp_path) as world:
        bot = world.new_bot()
        bot.publish = None
        workflow = await bot.start()
        workflow.publish = None
        _, code = await world.request(ALICE, f"trigger TAROT {BURST}")
        reply = await world.say(CAROL, f"approve {code}", bot=bot)
        assert "NATS svom.trigger.tarot: NATS is off" in reply.text


async def test_an_interrupted_delivery_is_finished_after_a_restart(tmp_path: Path) -> None:
    async with make_world(tmp_path) as world:
        _, code = await world.request(ALICE, f"trigger TAROT {BURST}")
        workflow = await world.bot.start()
        request = await workflow.find_by_code(code.replace("-", ""))
        assert request is not None
        # The approval is recorded, then the process dies before delivering.
        from burstbus.events import Event

        await world.core.log.append([Event("trigger.approved", {"request_id": request.request_id, "telescope": "TAROT",
                                           "burst_id": BURST, "approved_by": CAROL, "code_sha256": request.code_sha256},
                                           stream=BURST, actor=f"xmpp:{CAROL}", id=decision_id(request.request_id))])
    async with make_world(tmp_path) as world:
        await world.sync()
        workflow = await world.bot.start()
        assert await workflow.resume_undelivered() == 1
        assert await kinds(world) == ["trigger.requested", "trigger.approved", "trigger.sent"]
        assert len(world.messenger.voevents) == 1
        assert await workflow.resume_undelivered() == 0  # the projection lags; the log says sent
        await world.sync()
        assert await workflow.resume_undelivered() == 0


async def test_a_note_cannot_inject_xml(world: World) -> None:
    _, code = await world.request(CAROL, f"trigger COLIBRI {BURST} </Param><Param name=\"x\" value='1'/> & more")
    assert "Sent to COLIBRI" in (await world.say(DAVE, f"approve {code}")).text
    sent = (await world.events("trigger.sent"))[0].data
    accepted = await world.core.log.find(accepted_event_id(sent["voevent_ivorn"]))
    assert accepted is not None
    root = etree.fromstring(accepted.data["xml"].encode())
    names = [p.get("name") for p in root.iter("Param")]
    assert "x" not in names
    note = next(p.get("value") for p in root.iter("Param") if p.get("name") == "Note")
    assert note.startswith("</Param><Param")


async def test_a_telescope_template_override(tmp_path: Path) -> None:
    from burstbus.handlers.triggers.voevent import DEFAULT_TEMPLATE, TEMPLATES

    custom = tmp_path / "colibri.xml.j2"
    custom.write_text((TEMPLATES / DEFAULT_TEMPLATE).read_text().replace(
        '<Param name="Telescope"', '<Param name="Filter" value="r"/>\n    <Param name="Telescope"'))
    scopes = [{"name": "TAROT", "jids": [TAROT_JID], "nats_subject": TAROT_SUBJECT},
              {"name": "COLIBRI", "two_person": False, "template": str(custom)}]
    async with make_world(tmp_path, triggers={"telescopes": scopes}) as world:
        _, code = await world.request(CAROL, f"trigger COLIBRI {BURST}")
        assert "Sent to COLIBRI" in (await world.say(CAROL, f"approve {code}")).text
        sent = (await world.events("trigger.sent"))[0].data
        accepted = await world.core.log.find(accepted_event_id(sent["voevent_ivorn"]))
        assert accepted is not None and '<Param name="Filter" value="r"/>' in accepted.data["xml"]
