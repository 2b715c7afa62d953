"""Defence in depth behind the authority rule: the trigger workflow only ever sends its own
packet. A packet it did not submit, found under the IVORN of an approved request (one that got
into the log before the rule existed, or through a misconfiguration), is never delivered: the
request ends ``trigger.failed`` with the reason, and the requester and approvers are told."""

from __future__ import annotations

from burstbus.events import Event
from burstbus.handlers.triggers import TriggerWorkflow
from burstbus.handlers.triggers.request import decision_id
from burstbus.ingest import accepted_event_id
from tests.bots.conftest import ALICE, BOB, BURST, CAROL, DAVE, World
from tests.packets import voevent

STREAM = "ivo://fsc.example/trigger"


async def plant(world: World, ivorn: str) -> None:
    """A foreign packet in the log under ``ivorn``, as an older version could have accepted it."""
    raw = voevent(ivorn, role="utility", ra=10.0, dec=80.0, params={"Telescope": "TAROT", "RequestId": "x"})
    await world.core.log.append([Event(
        type="voevent.accepted", id=accepted_event_id(ivorn), stream="", actor="vtp:10.6.6.6",
        data={"ivorn": ivorn, "role": "utility", "xml": raw.decode(), "via": "vtp", "peer": "10.6.6.6"},
    )])


async def nothing_went_out(world: World) -> None:
    assert world.messenger.voevents == [] and world.publisher.messages == []
    assert await world.events("trigger.sent") == []


async def test_a_foreign_packet_under_the_approved_ivorn_is_never_sent(world: World, monkeypatch: object) -> None:
    ivorn = f"{STREAM}#planted"
    monkeypatch.setattr(TriggerWorkflow, "_new_ivorn", lambda self, request: ivorn)  # type: ignore[attr-defined]
    await plant(world, ivorn)
    _, code = await world.request(ALICE, f"trigger TAROT {BURST}")
    reply = await world.say(CAROL, f"approve {code} TAROT")
    assert "delivery failed" in reply.text and "did not submit" in reply.text, reply.text
    await nothing_went_out(world)
    [failed] = await world.events("trigger.failed")
    assert "vtp:10.6.6.6" in failed.data["reason"]
    told = {p.to for p in reply.pages}
    assert told == {ALICE, BOB, DAVE}  # the requester and the other approvers; carol has the reply


async def test_an_interrupted_delivery_does_not_adopt_a_foreign_packet(world: World) -> None:
    """Approved before this version (no IVORN in ``trigger.approved``), delivery interrupted,
    and meanwhile someone put a packet under the IVORN the old code derived from the request id."""
    _, code = await world.request(ALICE, f"trigger TAROT {BURST}")
    [requested] = await world.events("trigger.requested")
    request_id = requested.data["request_id"]
    await world.core.log.append([Event(
        type="trigger.approved", id=decision_id(request_id), stream=BURST, actor=f"xmpp:{CAROL}",
        data={"request_id": request_id, "telescope": "TAROT", "burst_id": BURST, "approved_by": CAROL,
              "code_sha256": requested.data["code_sha256"]},
    )])
    await plant(world, f"{STREAM}#{request_id}")
    await world.sync()
    workflow = await world.bot.start()
    assert await workflow.resume_undelivered() == 1
    await nothing_went_out(world)
    [failed] = await world.events("trigger.failed")
    assert "did not submit" in failed.data["reason"]
    told = {jid for jid, text in world.messenger.direct if "could not be delivered" in text}
    assert told == {ALICE, BOB, DAVE}
