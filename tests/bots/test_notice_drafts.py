"""The Notice Creator from chat (issue 14, point 3, for retractions): a draft by one approver
cannot be published by the same person; published by a second it goes out once, the exact
packet drafted; every step is an event; a draft outdated by a later notice publishes nothing."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from burstbus.catalogue import (
    PUBLICATION_DECLINED,
    PUBLICATION_DRAFT_APPROVED,
    PUBLICATION_DRAFTED,
    PUBLICATION_REQUESTED,
    PUBLICATION_SENT,
    VOEVENT_ACCEPTED,
)
from burstbus.handlers.notices.config import NoticesSection
from burstbus.handlers.notices.drafts import NoticeDrafts
from burstbus.handlers.notices.instruments import load_instruments
from burstbus.handlers.notices.intake import NoticeIntake
from burstbus.handlers.notices.publisher import NoticePublisher
from burstbus.payload import xml_bytes
from tests.bots.conftest import BOB, CAROL, DAVE, World, make_world
from tests.handlers.notices.requests import BURST, MXT, SLEWING, WAKEUP

STREAM = "fsc.example/notices"
DRAFT = re.compile(r"publish ([0-9a-f]{8})")


class Notices:
    def __init__(self, world: World):
        section = world.config.section(NoticesSection)
        instruments = load_instruments()
        self.world = world
        self.intake = NoticeIntake(world.core.log, instruments)
        self.publisher = NoticePublisher(world.core.log, world.core.state, world.core.ingest, section, instruments)
        self.drafts = NoticeDrafts(world.core.log, section, instruments, clock=lambda: datetime.now(UTC))

    async def issue(self, *values: dict[str, object]) -> None:
        for value in values:
            assert (await self.intake.submit(json.dumps(value).encode(), via="nats", peer="burstbus.in.notice")).acknowledged
        await self.publisher.catch_up()


@pytest.fixture
async def notices(tmp_path: Path) -> AsyncIterator[Notices]:
    async with make_world(tmp_path, notices={"enabled": True, "stream": STREAM}) as world:
        made = Notices(world)
        world.bot = world.new_bot(drafts=lambda: made.drafts)
        yield made


async def test_a_retraction_drafted_by_one_approver_is_published_by_another_once(notices: Notices) -> None:
    world = notices.world
    await notices.issue(WAKEUP, SLEWING)
    drafted = await world.say(CAROL, f"retract {BURST} a flaring X-ray binary")
    assert "Drafted" in drafted.text and f"ivo://{STREAM}#{BURST}_retraction" in drafted.text
    assert {p.to for p in drafted.pages} == {BOB, DAVE}  # the other approvers (an admin is one too)
    match = DRAFT.search(drafted.pages[0].text)
    assert match is not None
    draft = match.group(1)
    [event] = await world.events(PUBLICATION_DRAFTED)
    assert event.actor == "xmpp:carol@fsc.example" and event.data["drafted_by"] == CAROL
    assert [c["type"] for c in event.data["citations"]] == ["retraction", "retraction"]

    own = await world.say(CAROL, f"publish {draft}")
    assert "needs two people" in own.text
    assert await world.events(PUBLICATION_DRAFT_APPROVED) == [] and len(await world.events(PUBLICATION_REQUESTED)) == 2
    published = await world.say(BOB, f"publish {draft}")
    assert f"Published draft {draft}" in published.text and [p.to for p in published.pages] == [CAROL]
    again = await world.say(DAVE, f"publish {draft}")
    assert "already published by bob@fsc.example" in again.text
    await notices.publisher.catch_up()
    accepted = await world.events(VOEVENT_ACCEPTED)
    retraction = [a for a in accepted if a.data["ivorn"] == f"ivo://{STREAM}#{BURST}_retraction"]
    assert len(retraction) == 1 and xml_bytes(retraction[0].data).decode() == event.data["xml"]  # what was approved
    assert len(await world.events(PUBLICATION_SENT)) == 3
    # every step an event, with who did it; the draft id is kept readable in the command record
    commands = [(c.data["jid"], c.data["command"], c.data["outcome"], c.data["text"]) for c in await world.events("ba.command")]
    assert (CAROL, "retract", "ok", f"retract {BURST} a flaring X-ray binary") in commands
    assert (CAROL, "publish", "refused", f"publish {draft}") in commands
    assert (BOB, "publish", "ok", f"publish {draft}") in commands
    [approved] = await world.events(PUBLICATION_DRAFT_APPROVED)
    assert (approved.actor, approved.data["approved_by"], approved.data["drafted_by"]) == ("xmpp:bob@fsc.example", BOB, CAROL)


async def test_a_draft_outdated_by_a_later_notice_publishes_nothing(notices: Notices) -> None:
    world = notices.world
    await notices.issue(WAKEUP)
    drafted = await world.say(CAROL, f"retract {BURST} not a GRB")
    draft = DRAFT.search(drafted.pages[0].text).group(1)  # type: ignore[union-attr]
    await notices.issue(MXT)  # the burst gets another notice: the retraction would cite it too
    assert "Published" in (await world.say(BOB, f"publish {draft}")).text
    await notices.publisher.catch_up()
    [declined] = await world.events(PUBLICATION_DECLINED)
    assert "changed since draft" in declined.data["reason"]
    assert f"ivo://{STREAM}#{BURST}_retraction" not in [a.data["ivorn"] for a in await world.events(VOEVENT_ACCEPTED)]


async def test_who_may_draft_and_what_cannot_be_drafted(notices: Notices) -> None:
    world = notices.world
    assert "Sorry" in (await world.say("alice@fsc.example", f"retract {BURST} no")).text  # a BA is no approver
    nothing = await world.say(CAROL, f"retract {BURST} nothing issued yet")
    assert "nothing to retract" in nothing.text and await world.events(PUBLICATION_DRAFTED) == []
    assert "no recent draft" in (await world.say(BOB, "publish 0badc0de")).text
    off = world.new_bot(drafts=lambda: None)
    assert "notices are off" in (await world.say(CAROL, f"retract {BURST} x", bot=off)).text
