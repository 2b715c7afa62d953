"""Follow-up coming back, against a real log and projections (no network): telescopes' packets
citing a trigger advance it (acknowledged → observing → observed → data uploaded), each step
is paged to the requester, a silent telescope is flagged from the log's clock, and a packet
citing an unknown trigger is archived but changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from burstbus.catalogue import (
    DATA_AVAILABLE,
    FOLLOWUP_TYPES,
    TRIGGER_APPROVED,
    TRIGGER_DATA_UPLOADED,
    TRIGGER_REQUESTED,
    TRIGGER_SENT,
    TRIGGER_UNACKNOWLEDGED,
    VOEVENT_ACCEPTED,
)
from burstbus.config import load_config
from burstbus.events import Event, derived_event_id, format_time
from burstbus.handlers.triggers.attention import AckWatch, FollowupPager
from burstbus.handlers.triggers.config import TriggersSection
from burstbus.handlers.triggers.followup import read_reply, step_of
from burstbus.handlers.triggers.linker import FollowupLinker
from burstbus.service import Core
from burstbus.store.base import ReadFilter
from burstbus.store.consumer import Batch
from burstbus.store.read import lists as read_lists
from burstbus.store.reader import ProjectionReader
from tests.handlers.triggers.telescope import telescope_reply

BURST = "sb26112077"
ALICE = "alice@fsc.example"
COLIBRI = "ivo://fsc.example/trigger/colibri"


@dataclass
class Pages:
    sent: list[tuple[str, str]] = field(default_factory=list)

    async def send_direct(self, jid: str, text: str) -> None:
        self.sent.append((jid, text))

    async def send_voevent(self, jid: str, xml: bytes, summary: str) -> None:
        raise AssertionError("no VOEvent is sent here")

    def health(self) -> dict[str, object]:
        return {"up": True}


class World:
    def __init__(self, core: Core):
        self.core = core
        self.section = core.config.section(TriggersSection)
        self.reader = ProjectionReader(core.config.projections_path, threads=1)
        self.linker = FollowupLinker(core.log, core.state, self.section)
        self.pages = Pages()
        self.pager = FollowupPager(core.log, core.state, self.section, messenger=lambda: self.pages,
                                   link_base=lambda: "https://fsc.example/burstbus")
        self.now = datetime(2026, 11, 20, 3, 10, tzinfo=UTC)
        self.watch = AckWatch(core.log, self.section, self.reader.run, clock=lambda: self.now,
                              approvers=lambda telescope: ["bob@fsc.example"])

    async def sent_trigger(self, telescope: str, stream: str) -> str:
        """A trigger as the workflow leaves it in the log (requested, approved, sent); its IVORN."""
        request_id = f"{telescope.lower()}0123456789abcdef0123456789ab"[:32]
        ivorn = f"{stream}#{request_id}-0a1b2c3d4e5f"
        common = {"request_id": request_id, "telescope": telescope, "burst_id": BURST}
        sent_at = format_time(self.now)
        await self.core.log.append([
            Event(TRIGGER_REQUESTED, {**common, "requested_by": ALICE, "note": "", "params": {"ra": 1.0, "dec": 2.0},
                                      "code_sha256": "0" * 64, "expires_at": sent_at, "two_person": True,
                                      "approvers": ["bob@fsc.example"]},
                  stream=BURST, actor=f"xmpp:{ALICE}", id=derived_event_id("t", request_id, "r"), occurred_at=sent_at),
            Event(TRIGGER_APPROVED, {**common, "approved_by": "bob@fsc.example", "voevent_ivorn": ivorn},
                  stream=BURST, actor="xmpp:bob@fsc.example", id=derived_event_id("t", request_id, "a"), occurred_at=sent_at),
            Event(TRIGGER_SENT, {**common, "voevent_ivorn": ivorn, "channels": {}}, stream=BURST, actor="system:triggers",
                  id=derived_event_id("t", request_id, "s"), occurred_at=sent_at),
        ])
        return ivorn

    async def telescope_says(self, trigger_ivorn: str, status: str, n: int, **extra: Any) -> None:
        raw = telescope_reply(f"ivo://colibri.example/followup#{BURST}-{n}", trigger_ivorn, status, **extra)
        assert (await self.core.ingest.submit(raw, via="vtp", peer="192.0.2.40")).outcome == "accepted"

    async def settle(self) -> None:
        await self.linker.catch_up()
        await self.core.catch_up()

    async def trigger_row(self, request_id: str) -> Any:
        rows = await self.reader.run(read_lists.recent_triggers, 20)
        return next(r for r in rows if r.request_id == request_id)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    config = load_config(environ={}, overrides={
        "data": {"dir": str(tmp_path / "data")}, "nats": {"enabled": False}, "http": {"enabled": False},
        "vtp": {"enabled": False},
        "acl": {"users": [{"jid": ALICE, "roles": ["ba"]}, {"jid": "bob@fsc.example", "roles": ["approver"]}]},
        "triggers": {"authority": "fsc.example", "ack_minutes": 10, "telescopes": [
            {"name": "COLIBRI", "vtp_stream": COLIBRI, "reply_prefixes": ["ivo://colibri.example/"]},
            {"name": "TAROT", "ack_minutes": 5}]}})
    core = await Core.open(config)
    made = World(core)
    await made.pager.follower.begin()  # the pager's first run starts at the head: before the story
    try:
        yield made
    finally:
        made.reader.close()
        await core.close()


def test_status_words_are_read_loosely_and_data_locations_found() -> None:
    assert [step_of(w) for w in ("Acknowledged", "observation started", "Observation-Finished", "DATA_UPLOADED", "meh")] == [
        "acknowledged", "observing", "observed", "data_uploaded", None]
    reply = read_reply(telescope_reply("ivo://x/y#1", "ivo://t/trigger#r", "data uploaded",
                                       data_location="https://colibri.example/data/sb1.fits"))
    assert reply is not None and (reply.state, reply.data_location) == ("data_uploaded", "https://colibri.example/data/sb1.fits")
    by_reference = read_reply(telescope_reply("ivo://x/y#1", "ivo://t/trigger#r", "uploaded", reference="sftp://archive/sb1/"))
    assert by_reference is not None and by_reference.data_location == "sftp://archive/sb1/"
    assert read_reply(telescope_reply("ivo://x/y#1", "ivo://t/trigger#r", "sleeping")) is None
    assert read_reply(b"not xml") is None


async def test_the_telescopes_packets_advance_the_trigger_and_page_the_requester(world: World) -> None:
    trigger = await world.sent_trigger("COLIBRI", COLIBRI)
    request_id = trigger.partition("#")[2][:32]
    await world.telescope_says(trigger, "acknowledged", 1)
    await world.telescope_says(trigger, "observation started", 2)
    await world.telescope_says(trigger, "observation finished", 3)
    await world.telescope_says(trigger, "data uploaded", 4, data_location="https://colibri.example/data/sb26112077.fits")
    await world.settle()
    steps = await world.core.log.read(0, ReadFilter.of(types=FOLLOWUP_TYPES))
    assert [e.type for e in steps] == ["trigger.acknowledged", "trigger.observing", "trigger.observed", "trigger.data_uploaded"]
    assert {(e.stream, e.data["request_id"], e.data["requested_by"], e.data["source"]) for e in steps} == {
        (BURST, request_id, ALICE, "vtp:192.0.2.40")}
    uploaded = steps[-1]
    assert uploaded.data["data_location"] == "https://colibri.example/data/sb26112077.fits"
    [data] = await world.core.log.read(0, ReadFilter.of(types=[DATA_AVAILABLE]))  # the orchestrator's input
    assert data.data == {"burst_id": BURST, "obs_id": request_id, "kind": "followup.COLIBRI",
                         "location": "https://colibri.example/data/sb26112077.fits"}
    row = await world.trigger_row(request_id)
    assert row.state == "data_uploaded" and row.data_location == uploaded.data["data_location"]
    assert row.acknowledged_at and row.observing_at and row.observed_at and row.data_uploaded_at
    await world.pager.follower.catch_up()
    assert [jid for jid, _ in world.pages.sent] == [ALICE] * 4
    assert "COLIBRI uploaded its data on sb26112077" in world.pages.sent[-1][1]
    assert "https://colibri.example/data/sb26112077.fits" in world.pages.sent[-1][1]
    # a replay (a crash before the checkpoint, another node) records nothing twice
    everything = await world.core.log.read(0, ReadFilter.of(types=world.linker.follower.types))
    await FollowupLinker(world.core.log, world.core.state, world.section)._handle(Batch(everything))
    assert len(await world.core.log.read(0, ReadFilter.of(types=FOLLOWUP_TYPES))) == 4
    assert len(await world.core.log.read(0, ReadFilter.of(types=[DATA_AVAILABLE]))) == 1


async def test_a_step_back_changes_nothing_and_a_second_upload_is_still_recorded(world: World) -> None:
    trigger = await world.sent_trigger("COLIBRI", COLIBRI)
    request_id = trigger.partition("#")[2][:32]
    await world.telescope_says(trigger, "observed", 1)
    await world.telescope_says(trigger, "acknowledged", 2)  # late, out of order
    await world.telescope_says(trigger, "uploaded", 3, data_location="https://colibri.example/a.fits")
    await world.telescope_says(trigger, "uploaded", 4, data_location="https://colibri.example/b.fits")
    await world.settle()
    row = await world.trigger_row(request_id)
    assert (row.state, row.acknowledged_at, row.data_location) == ("data_uploaded", None, "https://colibri.example/a.fits")
    uploads = await world.core.log.read(0, ReadFilter.of(types=[TRIGGER_DATA_UPLOADED]))
    assert [u.data["data_location"] for u in uploads] == ["https://colibri.example/a.fits", "https://colibri.example/b.fits"]


async def test_a_packet_citing_an_unknown_trigger_or_from_elsewhere_is_archived_but_changes_nothing(world: World) -> None:
    trigger = await world.sent_trigger("COLIBRI", COLIBRI)
    await world.telescope_says(f"{COLIBRI}#00000000000000000000000000000000-ffffffffffff", "acknowledged", 1)
    forged = telescope_reply("ivo://elsewhere.example/x#1", trigger, "data uploaded", data_location="https://evil.example/")
    assert (await world.core.ingest.submit(forged, via="vtp", peer="203.0.113.9")).outcome == "accepted"
    await world.telescope_says(trigger, "having lunch", 2)
    await world.settle()
    assert len(await world.core.log.read(0, ReadFilter.of(types=[VOEVENT_ACCEPTED]))) == 3  # all archived
    assert await world.core.log.read(0, ReadFilter.of(types=FOLLOWUP_TYPES)) == []
    assert (await world.trigger_row(trigger.partition("#")[2][:32])).state == "sent"
    assert world.linker.ignored_total == 2


async def test_a_telescope_that_never_acknowledges_is_flagged_once_from_the_logs_clock(world: World) -> None:
    tarot = await world.sent_trigger("TAROT", "ivo://fsc.example/trigger")
    colibri = await world.sent_trigger("COLIBRI", COLIBRI)
    await world.settle()
    world.now += timedelta(minutes=4)
    assert await world.watch.check() == 0
    world.now += timedelta(minutes=2)  # past TAROT's own 5 minutes, within the 10 of [triggers]
    assert await world.watch.check() == 1
    await world.core.catch_up()
    assert await world.watch.check() == 0  # flagged once (and a restarted watch would find the event)
    [flag] = await world.core.log.read(0, ReadFilter.of(types=[TRIGGER_UNACKNOWLEDGED]))
    assert flag.data["telescope"] == "TAROT" and flag.data["ack_minutes"] == 5
    assert (await world.trigger_row(tarot.partition("#")[2][:32])).state == "unacknowledged"
    await world.pager.follower.catch_up()
    assert sorted(jid for jid, _ in world.pages.sent) == ["alice@fsc.example", "bob@fsc.example"]
    assert "No acknowledgement from TAROT" in world.pages.sent[0][1]
    # a late answer still counts
    await world.telescope_says(tarot, "acknowledged", 9)
    await world.settle()
    assert (await world.trigger_row(tarot.partition("#")[2][:32])).state == "acknowledged"
    assert (await world.trigger_row(colibri.partition("#")[2][:32])).state == "sent"
