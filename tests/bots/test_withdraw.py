"""A requester takes back their own pending request: one decision (``trigger.denied`` with
``withdrawn: true``), the approvers told their code is void, nobody else may do it."""

from __future__ import annotations

import asyncio

from burstbus.bots.bot import COMMAND_EVENT
from burstbus.chat import Asker, Command, Reply
from burstbus.handlers.triggers.request import WITHDRAWN_REASON, decision_id
from tests.bots.conftest import ALICE, BOB, BURST, CAROL, DAVE, FAR, VIC, World


async def request_id(world: World, index: int = -1) -> str:
    return str((await world.events("trigger.requested"))[index].data["request_id"])


async def test_the_requester_withdraws_their_one_pending_request(world: World) -> None:
    reply, code = await world.request(ALICE, f"trigger TAROT {BURST}")
    rid = await request_id(world)
    assert f"To take it back: withdraw {rid[:8]}" in reply.text

    withdrawn = await world.say(ALICE, "withdraw")
    assert withdrawn.text.startswith(f"Withdrawn: your TAROT trigger request on {BURST} (request {rid[:8]}). Nothing was sent.")
    assert {p.to for p in withdrawn.pages} == {BOB, CAROL, DAVE}  # the approvers who got the code
    assert all("withdrew" in p.text and "void" in p.text and code not in p.text for p in withdrawn.pages)

    [decision] = await world.events("trigger.approved", "trigger.denied", "trigger.expired")
    assert decision.type == "trigger.denied" and decision.id == decision_id(rid)
    assert decision.data == {"request_id": rid, "telescope": "TAROT", "burst_id": BURST, "denied_by": ALICE,
                             "reason": WITHDRAWN_REASON, "withdrawn": True}
    assert decision.actor == f"xmpp:{ALICE}"
    command = (await world.events(COMMAND_EVENT))[-1].data
    assert (command["command"], command["outcome"], command["text"], command["request_id"]) == ("withdraw", "ok", "withdraw", rid)

    # The code is void; the listing says what happened.
    late = await world.say(BOB, f"approve {code} TAROT")
    assert "already used" in late.text
    assert await world.events("trigger.sent") == []
    await world.sync()
    listing = (await world.say(VIC, "triggers")).text
    assert f"{rid[:8]} TAROT on {BURST} by alice" in listing and "withdrawn by the requester" in listing
    assert "nothing to withdraw" in (await world.say(ALICE, f"withdraw {rid[:8]}")).text
    assert "no trigger request waiting" in (await world.say(ALICE, "withdraw")).text


async def test_with_several_pending_the_id_says_which(world: World) -> None:
    await world.request(ALICE, f"trigger TAROT {BURST}")
    await world.request(ALICE, f"trigger COLIBRI {FAR}")
    first, second = await request_id(world, 0), await request_id(world, 1)
    which = await world.say(ALICE, "withdraw")
    assert "2 requests waiting" in which.text and first[:8] in which.text and second[:8] in which.text
    assert (await world.say(ALICE, f"withdraw {second[:8].upper()}")).text.startswith("Withdrawn: your COLIBRI")
    assert (await world.say(ALICE, "cancel")).text.startswith("Withdrawn: your TAROT")  # the one left; an alias
    assert [e.data["request_id"] for e in await world.events("trigger.denied")] == [second, first]
    recorded = [e.data["text"] for e in await world.events(COMMAND_EVENT)]
    assert f"withdraw {second[:8].upper()}" in recorded  # a request id is not a code: kept


async def test_only_the_requester_may_withdraw(world: World) -> None:
    await world.request(ALICE, f"trigger TAROT {BURST}")
    rid = await request_id(world)
    by_approver = await world.say(BOB, f"withdraw {rid[:8]}")
    assert by_approver.text.startswith(f"Sorry, only {ALICE}, who asked for it, can withdraw")
    assert "deny CODE" in by_approver.text
    assert "needs the ba role" in (await world.say(VIC, f"withdraw {rid[:8]}")).text
    assert "no trigger request waiting" in (await world.say(BOB, "withdraw")).text  # bob has none of his own
    assert "not a request id" in (await world.say(ALICE, "withdraw tarot")).text
    assert "no recent trigger request has that id" in (await world.say(ALICE, "withdraw abcdef12")).text
    assert await world.events("trigger.denied") == []


async def test_withdraw_racing_an_approval_gives_one_decision(world: World) -> None:
    outcomes = set()
    for head_start in (0.0, 0.0, 0.2):  # the last: the approval has a head start
        _, code = await world.request(ALICE, f"trigger TAROT {BURST}")
        rid = await request_id(world)
        other = world.new_bot()  # a second process deciding the same request

        async def withdraw(rid: str = rid, delay: float = head_start) -> Reply:
            await asyncio.sleep(delay)
            return await world.bot.handle(_command(ALICE, f"withdraw {rid[:8]}"))

        approved, withdrawn = await asyncio.gather(other.handle(_command(BOB, f"approve {code} TAROT")), withdraw())
        decisions = [e for e in await world.events("trigger.approved", "trigger.denied") if e.data["request_id"] == rid]
        assert len(decisions) == 1, decisions
        won_approval = decisions[0].type == "trigger.approved"
        outcomes.add(won_approval)
        assert approved.text.startswith("Approved") is won_approval
        assert withdrawn.text.startswith("Withdrawn") is not won_approval
        sent = [e for e in await world.events("trigger.sent") if e.data["request_id"] == rid]
        assert len(sent) == int(won_approval)
        if not won_approval:
            assert "already used" in approved.text
        else:
            assert "already approved" in withdrawn.text
    assert outcomes == {True, False}


async def test_deny_help_no_longer_promises_what_it_cannot_do(world: World) -> None:
    deny = (await world.say(BOB, "help deny")).text
    assert "withdraw" in deny and "requester may also withdraw their own request this way" not in deny
    assert (await world.say(ALICE, "help withdraw")).text.startswith("withdraw [REQUEST] — take back your own")


def _command(jid: str, text: str) -> Command:
    return Command(Asker(jid=jid, via="dm"), text)
