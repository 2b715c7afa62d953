"""Provenance from the log, as W3C PROV-JSON: a product back through its runs to the raw data and
the alert that opened the burst; a notice back through the packets it cites; a run by hand
names who asked and what changed."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from burstbus.events import Event
from burstbus.handlers.bursts import BurstIdentifier
from burstbus.handlers.orchestrator import provenance
from burstbus.ingest import Ingest
from burstbus.state import StateStore
from burstbus.store.base import ReadFilter
from burstbus.store.sqlite import SQLiteEventLog
from tests.handlers.orchestrator.history import orchestrated_history
from tests.packets import voevent

BURST = "sb26990000"
ALERT = f"ivo://org.svom/fsc#{BURST}-eclairs"
FOLLOWUP = f"ivo://org.svom/fsc#{BURST}-mxt"


@pytest.fixture
async def log(tmp_path: Path):  # type: ignore[no-untyped-def]
    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    state = await StateStore.open(tmp_path / "state.sqlite")
    ingest = Ingest(log)
    await ingest.submit(voevent(ALERT, params={"Burst_Id": BURST}), via="local", peer="test")
    await ingest.submit(voevent(FOLLOWUP, params={"Burst_Id": BURST}, cites=[(ALERT, "followup")]), via="local", peer="test")
    await orchestrated_history(log, random.Random(1), bursts=1)  # its bursts are sb2699NNNN: sb26990000 first
    identifier = BurstIdentifier(log, state)
    await identifier.start()
    await identifier.catch_up()
    try:
        yield log
    finally:
        await ingest.close()
        await state.close()
        await log.close()


async def test_raw_data_goes_back_to_the_alert(log: SQLiteEventLog) -> None:
    [raw] = [r for r in await log.read(filter=ReadFilter.of(["data.available"], stream=BURST))
             if r.data["kind"] == "vhf.eclairs"]
    doc = await provenance.load(log, raw.id)
    assert doc["prefix"]["event"] == "urn:burstbus:event:"
    assert doc["entity"][f"event:{raw.id}"]["prov:type"] == "burstbus:data"
    [influence] = doc["wasInfluencedBy"].values()
    alert = doc["entity"][influence["prov:influencer"]]
    assert alert["burstbus:ivorn"] == ALERT and alert["prov:type"] == "burstbus:notice"
    assert any(a["prov:agent"] == "agent:nats:burstbus.in.data" for a in doc["wasAttributedTo"].values())


async def test_a_run_by_hand_names_who_asked_and_what_changed(log: SQLiteEventLog) -> None:
    [run] = [r for r in await log.read(filter=ReadFilter.of(["process.requested"], stream=BURST)) if r.data["asked_id"]]
    doc = await provenance.load(log, run.id)
    activity = doc["activity"][f"event:{run.id}"]
    assert activity["burstbus:parameters"] == {"threshold": "5"} and activity["burstbus:changed"] == {"threshold": "5"}
    roles = {(r["prov:role"], r["prov:agent"]) for r in doc["wasAssociatedWith"].values()}
    assert ("requester", "agent:xmpp:alice@fsc.example") in roles
    assert ("pipeline", "agent:pipeline:ecl-loc") in roles and ("orchestrator", "agent:system:orchestrator") in roles
    assert len(doc["used"]) == 2  # its inputs: the ECLAIRs and attitude data


async def test_a_notice_goes_back_through_what_it_cites(log: SQLiteEventLog) -> None:
    doc = await provenance.load(log, FOLLOWUP)
    ivorns = {e["burstbus:ivorn"] for e in doc["entity"].values()}
    assert ivorns == {ALERT, FOLLOWUP}
    [derived] = doc["wasDerivedFrom"].values()
    assert derived["burstbus:citation"] == "followup"
    assert doc["entity"][derived["prov:usedEntity"]]["burstbus:ivorn"] == ALERT


async def test_unknown_and_unsuitable_ids_are_refused(log: SQLiteEventLog) -> None:
    with pytest.raises(provenance.NotFound, match="nothing in the log"):
        await provenance.load(log, "no-such-id")
    [command] = await log.append([Event("ba.command", {"text": "help"}, stream="ba")])
    with pytest.raises(provenance.NotFound, match="not a product, data, run or notice"):
        await provenance.load(log, command.id)
