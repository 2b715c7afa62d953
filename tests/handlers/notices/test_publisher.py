"""The notice publisher against a real log, ingest and projections (no network): one request,
one decision, one packet through the ordinary ingest — across re-sends and crashes between the
steps — and the authority rule that makes ``local:notices`` speak only for the centre."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from burstbus.authority import NOTICES_SOURCE
from burstbus.catalogue import (
    DATA_AVAILABLE,
    PUBLICATION_DECLINED,
    PUBLICATION_FAILED,
    PUBLICATION_ISSUED,
    PUBLICATION_REFUSED,
    PUBLICATION_REQUESTED,
    PUBLICATION_SENT,
    VOEVENT_ACCEPTED,
)
from burstbus.config import load_config
from burstbus.events import Event
from burstbus.handlers.notices.config import NoticesSection
from burstbus.handlers.notices.instruments import load_instruments
from burstbus.handlers.notices.intake import NoticeIntake
from burstbus.handlers.notices.products import NoticeProducts
from burstbus.handlers.notices.publisher import NoticePublisher
from burstbus.handlers.notices.render import render_notice
from burstbus.payload import xml_bytes
from burstbus.service import Core
from burstbus.store.base import ReadFilter
from burstbus.store.consumer import Batch
from burstbus.store.read import bursts as read_bursts
from burstbus.store.reader import ProjectionReader
from tests.handlers.notices.requests import BURST, MXT, RETRACTION, SEQUENCE, SLEWING, WAKEUP
from tests.packets import voevent

STREAM = "fsc.example/notices"
INSTRUMENTS = load_instruments()


class World:
    def __init__(self, core: Core):
        self.core = core
        self.section = core.config.section(NoticesSection)
        self.intake = NoticeIntake(core.log, INSTRUMENTS)
        self.publisher = self.restarted()

    def restarted(self) -> NoticePublisher:
        """A publisher as a fresh process would have it: its position from the checkpoint."""
        return NoticePublisher(self.core.log, self.core.state, self.core.ingest, self.section, INSTRUMENTS)

    async def ask(self, value: dict[str, Any]) -> Any:
        return await self.intake.submit(json.dumps(value).encode(), via="nats", peer="burstbus.in.notice")

    async def events(self, *types: str) -> list[Any]:
        return await self.core.log.read(0, ReadFilter.of(types=types))


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    config = load_config(environ={}, overrides={
        "data": {"dir": str(tmp_path / "data")}, "notices": {"enabled": True, "stream": STREAM, "short_name": "FSC"},
        "nats": {"enabled": False}, "http": {"enabled": False}, "vtp": {"enabled": False}})
    core = await Core.open(config)
    try:
        yield World(core)
    finally:
        await core.close()


async def test_four_requests_become_four_notices_through_the_ingest_and_the_burst_is_retracted(world: World) -> None:
    for value in SEQUENCE:
        assert (await world.ask(value)).outcome == "accepted"
    await world.publisher.catch_up()
    sent = await world.events(PUBLICATION_SENT)
    accepted = await world.events(VOEVENT_ACCEPTED)
    assert [e.data["ivorn"] for e in sent] == [a.data["ivorn"] for a in accepted] == [
        f"ivo://{STREAM}#{BURST}_eclairs-wakeup", f"ivo://{STREAM}#{BURST}_slewing",
        f"ivo://{STREAM}#{BURST}_mxt-initial_qf2", f"ivo://{STREAM}#{BURST}_retraction"]
    assert {a.actor for a in accepted} == {NOTICES_SOURCE} and {a.data["via"] for a in accepted} == {"local"}
    assert [e.data["accepted_seq"] for e in sent] == [a.seq for a in accepted]
    # the ordinary path after the ingest: the burst identifier and the projections
    await world.core.catch_up()
    reader = ProjectionReader(world.core.config.projections_path, threads=1)
    try:
        view = await reader.run(read_bursts.burst_view, BURST)
    finally:
        reader.close()
    assert view is not None and view.burst.retracted and view.burst.notice_count == 4
    assert (view.burst.err, view.burst.best_ivorn) == (MXT["err"], f"ivo://{STREAM}#{BURST}_mxt-initial_qf2")
    assert [n.retraction for n in view.notices] == [False, False, False, True]


async def test_a_re_sent_request_is_one_notice_and_a_reused_id_is_refused(world: World) -> None:
    first = await world.ask({**WAKEUP, "request_id": "eclairs:1"})
    again = await world.ask({**WAKEUP, "request_id": "eclairs:1"})
    other = await world.ask({**SLEWING, "request_id": "eclairs:1"})
    plain = await world.ask(SLEWING)
    plain_again = await world.ask(SLEWING)
    assert (first.outcome, again.outcome, other.outcome, plain.outcome, plain_again.outcome) == (
        "accepted", "duplicate", "refused", "accepted", "duplicate")
    assert other.code == "conflict" and "already used" in (other.reason or "")
    assert first.reply() == "ACK eclairs:1" and other.reply().startswith("NAK request id 'eclairs:1'")
    [refusal] = await world.events(PUBLICATION_REFUSED)
    assert refusal.data["code"] == "conflict" and refusal.actor == "nats:burstbus.in.notice"
    await world.publisher.catch_up()
    await world.restarted().catch_up()  # a second pass (another node, a replay) adds nothing
    assert len(await world.events(PUBLICATION_REQUESTED)) == 2
    assert len(await world.events(PUBLICATION_ISSUED)) == len(await world.events(PUBLICATION_SENT)) == 2
    assert len(await world.events(VOEVENT_ACCEPTED)) == 2


async def test_a_crash_between_the_decision_and_the_submission_publishes_the_decided_notice_once(world: World) -> None:
    await world.ask(WAKEUP)
    [request] = await world.events(PUBLICATION_REQUESTED)
    decision = await world.publisher._decision(request, request.data["request_id"])  # then the process dies
    assert await world.events(VOEVENT_ACCEPTED) == []
    await world.restarted().catch_up()
    [accepted] = await world.events(VOEVENT_ACCEPTED)
    [issued] = await world.events(PUBLICATION_ISSUED)
    assert issued.id == decision.id and accepted.data["ivorn"] == decision.data["ivorn"]
    assert xml_bytes(accepted.data) == render_notice(decision.data)  # the decision's bytes, not a new rendering
    assert len(await world.events(PUBLICATION_SENT)) == 1


async def test_a_crash_after_the_submission_finds_the_accepted_packet_and_records_the_outcome_once(world: World) -> None:
    await world.ask(WAKEUP)
    [request] = await world.events(PUBLICATION_REQUESTED)
    decision = await world.publisher._decision(request, request.data["request_id"])
    result = await world.core.ingest.submit(render_notice(decision.data), via="local", peer="notices")
    assert result.outcome == "accepted"  # … and the process dies before recording the outcome
    await world.restarted().catch_up()
    [sent] = await world.events(PUBLICATION_SENT)
    assert sent.data["accepted_seq"] == result.seq and len(await world.events(VOEVENT_ACCEPTED)) == 1


async def test_a_packet_someone_else_put_under_the_decided_ivorn_is_never_taken_for_ours(world: World) -> None:
    squatter = voevent(f"ivo://{STREAM}#{BURST}_eclairs-wakeup", params={"Burst_Id": BURST})
    assert (await world.core.ingest.submit(squatter, via="local", peer="demo")).outcome == "accepted"
    await world.ask(WAKEUP)
    await world.publisher.catch_up()
    [failed] = await world.events(PUBLICATION_FAILED)
    assert failed.data["code"] == "conflict" and "already accepted" in failed.data["reason"]
    assert await world.events(PUBLICATION_SENT) == []


async def test_a_retraction_of_nothing_is_declined_and_publishes_nothing(world: World) -> None:
    await world.ask(RETRACTION)
    await world.publisher.catch_up()
    [declined] = await world.events(PUBLICATION_DECLINED)
    assert "nothing to retract" in declined.data["reason"] and await world.events(VOEVENT_ACCEPTED) == []


async def test_bad_requests_are_refused_and_recorded(world: World) -> None:
    result = await world.intake.submit(b'{"burst_id": "sb1", "type": "eclairs-wakeup"}', via="http", peer="10.0.0.7")
    assert result.outcome == "refused" and result.reason == "'instrument' is required"
    [refusal] = await world.events(PUBLICATION_REFUSED)
    assert (refusal.data["code"], refusal.data["via"], refusal.actor) == ("invalid", "http", "http:10.0.0.7")
    assert refusal.data["excerpt"].startswith('{"burst_id"')


def test_the_publisher_speaks_only_for_the_centre_and_nobody_else_speaks_for_it(tmp_path: Path) -> None:
    config = load_config(environ={}, overrides={"data": {"dir": str(tmp_path)}, "notices": {"enabled": True, "stream": STREAM}})
    policy = config.authority_policy()
    ours = f"ivo://{STREAM}#{BURST}_eclairs-wakeup"
    assert policy.refusal("local", "notices", ours) is None
    assert "speaks only for the centre" in (policy.refusal("local", "notices", "ivo://nasa.gsfc.gcn/SWIFT#x") or "")
    assert "only burstbus's trigger workflow" in (policy.refusal("local", "notices", "ivo://burstbus.local/trigger#x") or "")
    for source in (("vtp", "192.0.2.7"), ("nats", "burstbus.in.voevent"), ("http", "10.0.0.1"), ("kafka", "gcn.notices.svom")):
        assert "reserved for burstbus's own components" in (policy.refusal(*source, ours) or "")
    off = load_config(environ={}, overrides={"data": {"dir": str(tmp_path)}, "notices": {"stream": STREAM}})
    assert off.authority_policy().refusal("vtp", "192.0.2.7", ours) is None  # notices off: the stream is not claimed


async def test_a_pipelines_product_announced_as_data_becomes_one_notice(world: World, tmp_path: Path) -> None:
    products = NoticeProducts(world.core.log, world.core.state, world.intake, ["notice.request"])
    await products.follower.begin()  # first run: from the head
    request_file = tmp_path / "mxt-result.json"
    request_file.write_text(json.dumps({k: v for k, v in WAKEUP.items() if k != "burst_id"}))
    inline = "data:application/json;base64," + base64.b64encode(json.dumps(SLEWING).encode()).decode()
    announced = [
        {"burst_id": BURST, "kind": "notice.request", "location": request_file.as_uri(), "produced_by": "run-1"},
        {"burst_id": BURST, "kind": "notice.request", "location": inline, "produced_by": "run-2"},
        {"burst_id": BURST, "kind": "notice.request", "location": "file:///nowhere/at/all.json"},
        {"burst_id": BURST, "kind": "vhf.eclairs", "location": "file:///data/vhf.dat"},  # data, not a notice
    ]
    await world.core.log.append([Event(DATA_AVAILABLE, d, stream=BURST, actor="nats:burstbus.in.data") for d in announced])
    await products.follower.catch_up()
    await products.follower.catch_up()
    requested = await world.events(PUBLICATION_REQUESTED)
    data = await world.events(DATA_AVAILABLE)
    assert [r.data["request_id"] for r in requested] == [f"data:{data[0].id}", f"data:{data[1].id}"]
    assert {r.actor for r in requested} == {"data:notice.request"}
    [refused] = await world.events(PUBLICATION_REFUSED)
    assert refused.data["code"] == "unreadable" and "/nowhere/at/all.json cannot be read" in refused.data["reason"]
    # the follower replayed (a crash before its checkpoint): nothing twice
    await products._handle(Batch(data))
    assert len(await world.events(PUBLICATION_REQUESTED)) == 2 and len(await world.events(PUBLICATION_REFUSED)) == 1
    await world.publisher.catch_up()
    assert [e.data["ivorn"] for e in await world.events(PUBLICATION_SENT)] == [
        f"ivo://{STREAM}#{BURST}_eclairs-wakeup", f"ivo://{STREAM}#{BURST}_slewing"]
