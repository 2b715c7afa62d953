"""The contract every registered projection keeps (store/projections/registry.py), run over each:

* applying the log in batches of any size, with restarts in between, gives exactly the rows a
  rebuild gives, and a fresh file built in one pass;
* a batch that fails leaves neither rows nor a moved checkpoint (they share one transaction),
  and the next run redoes it;
* a version bump rebuilds the projection from the log when the runner opens.

The log is a real one, written through the real ingest, burst identifier and trigger event
shapes, with odd data beside the good."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from burstbus.bridges.kafka.messages import KafkaMessage, notice_accepted
from burstbus.catalogue import (
    NOTICE_ACCEPTED,
    PROCESS_STATUS,
    TRIGGER_APPROVED,
    TRIGGER_DENIED,
    TRIGGER_EXPIRED,
    TRIGGER_REQUESTED,
    TRIGGER_SENT,
)
from burstbus.events import Event, RecordedEvent
from burstbus.handlers.bursts import BurstIdentifier
from burstbus.ingest import Ingest
from burstbus.state import StateStore
from burstbus.store.projections.base import Projection
from burstbus.store.projections.registry import all_projections
from burstbus.store.projections.runner import ProjectionRunner
from burstbus.store.sqlite import SQLiteEventLog
from tests.handlers.orchestrator.history import orchestrated_history
from tests.packets import voevent

PROJECTIONS = [p.name for p in all_projections()]


def json_notices(rng: random.Random) -> list[tuple[str, bytes]]:
    """(topic, bytes) of JSON notices as GCN Kafka carries them."""
    out = []
    for n, alert in enumerate(["PRELIMINARY", "INITIAL", "RETRACTION"]):
        out.append(("igwn.gwalert", json.dumps({
            "superevent_id": "S261201ab", "alert_type": alert, "time_created": f"2026-12-01T0{n}:00:00Z",
            "event": None if alert == "RETRACTION" else {"time": "2026-12-01T00:00:00Z", "far": rng.random() * 1e-9,
                                                         "significant": True, "instruments": ["H1", "L1"]}}).encode()))
    out.append(("igwn.gwalert", json.dumps({"superevent_id": "MS261201x", "alert_type": "PRELIMINARY",
                                            "time_created": "2026-12-01T00:00:00Z", "event": None}).encode()))
    out.append(("gcn.notices.einstein_probe.wxt.alert", json.dumps({
        "$schema": "https://gcn.nasa.gov/schema/v4.1.0/gcn/notices/einstein_probe/wxt/alert.schema.json",
        "instrument": "WXT", "trigger_time": "2026-12-01T03:00:00Z", "id": ["01709000001"],
        "ra": rng.uniform(0, 360), "dec": rng.uniform(-89, 89), "ra_dec_error": 0.05}).encode()))
    return out


def fresh(name: str) -> Projection:
    return next(p for p in all_projections() if p.name == name)


async def fill(log: SQLiteEventLog, state: StateStore, rng: random.Random) -> None:
    """Notices (SVOM, Swift, citations, retractions, no position, a test packet), the
    identifier's decisions, process statuses and trigger lives — and some odd data."""
    ingest = Ingest(log)
    try:
        await orchestrated_history(log, rng)  # the orchestrator's decisions, workers' answers, late statuses
        for burst_no in range(6):
            burst = f"sb2612{burst_no:04d}"
            for n in range(rng.randint(1, 4)):
                ivorn = f"ivo://org.svom/fsc#{burst}-{n}"
                cites = [(f"ivo://org.svom/fsc#{burst}-0", rng.choice(["followup", "supersedes", "retraction"]))] if n else []
                has_position = rng.random() < 0.85
                raw = voevent(ivorn, params={"Burst_Id": burst, "Packet_Type": str(200 + n)},
                              ra=rng.uniform(0, 360) if has_position else None, dec=rng.uniform(-89, 89) if has_position else None,
                              err=rng.choice([0.01, 2.5]), cites=cites)
                assert (await ingest.submit(raw, via="local", peer="contract")).acknowledged
            swift = f"ivo://nasa.gsfc.gcn/SWIFT#BAT_GRB_Pos_{700000 + burst_no}"
            await ingest.submit(voevent(swift, params={"TrigID": str(700000 + burst_no), "Packet_Type": "61"}), via="local", peer="contract")
            await ingest.submit(voevent(f"ivo://test.example/t#{burst_no}", role="test"), via="local", peer="contract")
            statuses = ["queued", "running", rng.choice(["complete", "failed", "vanished"])]
            await log.append([
                Event(PROCESS_STATUS, {"process": "obtloc", "burst_id": burst, "obs_id": "01", "pass_id": str(p),
                                       "pipeline": "ECL", "status": s, "log": f"step {i}"}, stream=burst, actor="nats:test")
                for p in range(2) for i, s in enumerate(statuses)
            ])
            request = f"{burst_no:032x}"
            common = {"request_id": request, "telescope": "TAROT", "burst_id": burst}
            life = [Event(TRIGGER_REQUESTED, {**common, "requested_by": "alice@fsc.example", "note": "go",
                                              "params": {"ra": 1.0, "dec": 2.0}, "code_sha256": "x" * 64,
                                              "expires_at": "2026-12-01T03:00:00.000000Z", "two_person": True,
                                              "approvers": ["bob@fsc.example"]}, stream=burst, actor="xmpp:alice@fsc.example")]
            ending = burst_no % 3
            if ending == 0:
                life += [Event(TRIGGER_APPROVED, {**common, "approved_by": "bob@fsc.example"}, stream=burst),
                         Event(TRIGGER_SENT, {**common, "voevent_ivorn": f"ivo://fsc.example/trigger#{request}-ab"}, stream=burst),
                         Event(TRIGGER_DENIED, {**common, "denied_by": "late@fsc.example"}, stream=burst)]  # ignored: decided
            elif ending == 1:
                life += [Event(TRIGGER_DENIED, {**common, "denied_by": "bob@fsc.example", "reason": "clouds"}, stream=burst)]
            else:
                life += [Event(TRIGGER_EXPIRED, {**common, "expired_at": "2026-12-01T03:00:00.000000Z"}, stream=burst),
                         Event(TRIGGER_SENT, {**common, "voevent_ivorn": "never"}, stream=burst)]  # ignored: not approved
            await log.append(life)
        # JSON notices from Kafka: LVK alerts (one joins its VOEvent's superevent), an EP alert
        await ingest.submit(voevent("ivo://gwnet/LVC#S261201ab-1-Preliminary", params={"GraceID": "S261201ab"}),
                            via="local", peer="contract")
        for offset, value in enumerate(json_notices(rng)):
            await log.append([notice_accepted(KafkaMessage("gcn", value[0], 0, offset, value[1], 1796200000000))])
        # odd data every projection must survive the same way incrementally and in a rebuild
        await log.append([
            Event(NOTICE_ACCEPTED, {"topic": None, "position": "x"}, actor="kafka:odd"),
            Event(NOTICE_ACCEPTED, {"topic": "odd.topic", "position": {"ra": "a", "dec": 95}, "size": True}, actor="kafka:odd"),
            Event(PROCESS_STATUS, {"process": 7, "status": None}, actor="nats:test"),
            Event(TRIGGER_APPROVED, {"request_id": "unknown-request"}),
            Event(TRIGGER_REQUESTED, {"request_id": ""}),
            Event("burst.identified", {"burst_id": None}),
        ])
        identifier = BurstIdentifier(log, state, (), ("observation",))
        await identifier.start()
        await identifier.catch_up()
    finally:
        await ingest.close()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[SQLiteEventLog]:
    log = await SQLiteEventLog.open(tmp_path / "log.sqlite", poll_interval=0.05)
    state = await StateStore.open(tmp_path / "state.sqlite")
    try:
        await fill(log, state, random.Random(11))
        yield log
    finally:
        await state.close()
        await log.close()


async def rows(path: Path, projections: Sequence[Projection], log: SQLiteEventLog, *, rebuild: bool = False,
               batch_size: int = 2000) -> dict[str, dict[str, list[tuple[object, ...]]]]:
    runner = await ProjectionRunner.open(path, projections)
    try:
        if rebuild:
            await runner.rebuild(log)
        else:
            await runner.catch_up(log, batch_size=batch_size)
        return await runner.dump()
    finally:
        await runner.close()


@pytest.mark.parametrize("name", PROJECTIONS)
async def test_incremental_application_equals_rebuild(name: str, world: SQLiteEventLog, tmp_path: Path) -> None:
    log = world
    head = (await log.head()).seq
    path = tmp_path / "incremental.sqlite"
    rng = random.Random(name)
    position = 0
    while position < head:  # the log applied in uneven slices, the runner reopened between them
        position = min(head, position + rng.randint(1, 40))
        runner = await ProjectionRunner.open(path, [fresh(name)])
        await runner.catch_up(log, batch_size=rng.choice([1, 3, 7, 50]), stop_at=position)
        await runner.close()
    incremental = await rows(path, [fresh(name)], log)
    assert any(incremental[name].values()), f"{name} built no rows from the contract log"
    assert await rows(path, [fresh(name)], log, rebuild=True) == incremental
    assert await rows(tmp_path / "one-pass.sqlite", [fresh(name)], log) == incremental


class _Failing(Projection):
    """Wraps a projection; fails once on the batch holding ``fail_at`` (after writing rows)."""

    def __init__(self, inner: Projection, fail_at: int):
        self.inner, self.fail_at, self.failed = inner, fail_at, False
        self.name, self.version, self.tables, self.event_types = inner.name, inner.version, inner.tables, inner.event_types

    def create(self, conn):  # type: ignore[no-untyped-def]
        self.inner.create(conn)

    def apply(self, conn, records: Sequence[RecordedEvent]) -> None:  # type: ignore[no-untyped-def]
        self.inner.apply(conn, records)  # rows written, then the failure: all must roll back
        if not self.failed and any(r.seq >= self.fail_at for r in records):
            self.failed = True
            raise RuntimeError("a projection bug")

    def dump(self, conn):  # type: ignore[no-untyped-def]
        return self.inner.dump(conn)

    def secondary_indexes(self, conn):  # type: ignore[no-untyped-def]
        return self.inner.secondary_indexes(conn)


@pytest.mark.parametrize("name", PROJECTIONS)
async def test_a_failed_batch_moves_neither_rows_nor_checkpoint(name: str, world: SQLiteEventLog, tmp_path: Path) -> None:
    log = world
    head = (await log.head()).seq
    half = head // 2
    path = tmp_path / "p.sqlite"
    runner = await ProjectionRunner.open(path, [fresh(name)])
    await runner.catch_up(log, stop_at=half)
    before_rows, before_points = await runner.dump(), await runner.checkpoints()
    await runner.close()

    failing = _Failing(fresh(name), fail_at=half + 1)
    runner = await ProjectionRunner.open(path, [failing])
    with pytest.raises(RuntimeError, match="a projection bug"):
        await runner.catch_up(log, batch_size=head)
    assert await runner.dump() == before_rows and await runner.checkpoints() == before_points
    await runner.catch_up(log)  # the same batch again, now it passes
    await runner.close()
    assert await rows(path, [fresh(name)], log) == await rows(tmp_path / "rebuilt.sqlite", [fresh(name)], log, rebuild=True)


@pytest.mark.parametrize("name", PROJECTIONS)
async def test_a_version_bump_rebuilds_the_projection_at_open(name: str, world: SQLiteEventLog, tmp_path: Path) -> None:
    log = world
    path = tmp_path / "p.sqlite"
    built = await rows(path, [fresh(name)], log)
    bumped = fresh(name)
    bumped.version = fresh(name).version + 1  # type: ignore[misc]
    runner = await ProjectionRunner.open(path, [bumped])
    try:
        points = {c.name: c for c in await runner.checkpoints()}
        assert points[name].seq == 0 and points[name].version == bumped.version  # reset, to be replayed
        assert not any((await runner.dump())[name].values())
        await runner.catch_up(log)
        assert await runner.dump() == built
    finally:
        await runner.close()
