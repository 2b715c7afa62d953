"""Burst correlation: each accepted notice lands in the right burst, and the bursts table folds it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from burstbus.config import BurstRule
from burstbus.handlers.bursts import BurstIdentifier, CompiledRule, MemoryIndex, identify
from burstbus.ingest import Ingest
from burstbus.state import StateStore
from burstbus.store.base import ReadFilter
from burstbus.store.projections.bursts import BurstsProjection
from burstbus.store.projections.runner import ProjectionRunner
from burstbus.store.sqlite import SQLiteEventLog
from tests.packets import SHARED_VOEVENTS, voevent


def notice(**data):  # the parts of voevent.accepted data that identification reads
    base = {"role": "observation", "ivorn": "ivo://x/y#1", "citations": [], "params": {}, "mission": "SWIFT"}
    base.update(data)
    return base


nobody = MemoryIndex()


def test_svom_burst_id_wins_over_trigger_number() -> None:
    found = identify(notice(params={"Burst_Id": "sb26112001", "TrigID": "77"}, mission="SVOM"), nobody)
    assert (found.burst_id, found.rule) == ("sb26112001", "param:Burst_Id")


def test_lvk_grace_id() -> None:
    assert identify(notice(params={"GraceID": "S230524x"}, mission="LVK"), nobody).burst_id == "S230524x"


def test_gcn_trigger_number_is_scoped_by_mission() -> None:
    assert identify(notice(params={"TrigID": "0655721"}), nobody).burst_id == "swift-655721"
    assert identify(notice(params={"TrigID": "655721"}, mission="Fermi"), nobody).burst_id == "fermi-655721"


def test_placeholder_trigger_numbers_open_no_burst() -> None:
    assert identify(notice(params={"TrigID": "99999"}), nobody) is None
    assert identify(notice(params={"TrigID": "0"}), nobody) is None


def test_citation_of_a_known_notice_joins_its_burst() -> None:
    known = MemoryIndex(bursts={"ivo://gcn/SWIFT#BAT_1": "swift-1"})
    found = identify(notice(params={"TrigID": "2"}, citations=[{"ivorn": "ivo://gcn/SWIFT#BAT_1", "type": "followup"}]), known)
    assert (found.burst_id, found.rule, found.detail) == ("swift-1", "citation:followup", "ivo://gcn/SWIFT#BAT_1")


def test_a_notice_cited_earlier_joins_the_citing_burst() -> None:
    index = MemoryIndex()
    index.record({"ivorn": "ivo://gcn/INTEGRAL#Refined_1", "citations": [{"ivorn": "ivo://gcn/INTEGRAL#Wakeup_1"}]}, "integral-2")
    found = identify(notice(ivorn="ivo://gcn/INTEGRAL#Wakeup_1", params={"TrigID": "1"}), index)
    assert (found.burst_id, found.rule) == ("integral-2", "cited-by")


def test_test_and_utility_roles_never_open_bursts() -> None:
    assert identify(notice(role="test", params={"Burst_Id": "sb1"}), nobody) is None
    assert identify(notice(role="test", params={"Burst_Id": "sb1"}), nobody, roles=("observation", "test")).burst_id == "sb1"


def test_operator_rule_comes_first() -> None:
    from burstbus.payload import xml_fields

    rule = CompiledRule.of(BurstRule("grb-name", "//Param[@name='GRB_Name']/@value", "grb-"))
    data = notice(params={"TrigID": "5"}, **xml_fields(voevent(params={"GRB_Name": "GRB 261120A", "TrigID": "5"})))
    found = identify(data, nobody, [rule])
    assert (found.burst_id, found.rule) == ("grb-GRB-261120A", "config:grb-name")


async def ingest_and_project(tmp_path: Path, packets: list[bytes], rules=()) -> tuple[dict, dict]:
    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    state = await StateStore.open(tmp_path / "state.sqlite")
    runner = await ProjectionRunner.open(tmp_path / "p.sqlite", [BurstsProjection()])
    ingest = Ingest(log)
    identifier = BurstIdentifier(log, state, rules)
    await identifier.start()
    for raw in packets:  # one at a time, as they would arrive
        result = await ingest.submit(raw, via="local", peer="test")
        assert result.outcome == "accepted", result.reason
        await identifier.catch_up()
    await runner.catch_up(log)
    dump = (await runner.dump())["bursts"]
    await ingest.close()
    await runner.close()
    await state.close()
    await log.close()
    bursts = {row[0]: row for row in dump["bursts"]}
    notices = {row[0]: row[1] for row in dump["burst_notices"]}
    return bursts, notices


async def test_followups_share_a_burst_and_best_position_wins(tmp_path: Path) -> None:
    bat = voevent("ivo://gcn.example/SWIFT#BAT_GRB_Pos_1-1", params={"TrigID": "1"}, err=0.05)
    xrt = voevent("ivo://gcn.example/SWIFT#XRT_Pos_1-2", params={"TrigID": "1"}, ra=123.4561, err=0.0010,
                  cites=[("ivo://gcn.example/SWIFT#BAT_GRB_Pos_1-1", "followup")])
    other = voevent("ivo://gcn.example/SWIFT#BAT_GRB_Pos_2-1", params={"TrigID": "2"}, ra=10.0)
    bursts, notices = await ingest_and_project(tmp_path, [bat, xrt, other])
    assert notices["ivo://gcn.example/SWIFT#XRT_Pos_1-2"] == notices["ivo://gcn.example/SWIFT#BAT_GRB_Pos_1-1"]
    burst = bursts[notices["ivo://gcn.example/SWIFT#BAT_GRB_Pos_1-1"]]
    # burst_id, first, last, event_time, ra, dec, err, best_ivorn, count, instruments, retracted
    assert burst[8] == 2
    assert burst[6] == pytest.approx(0.001)
    assert burst[7] == "ivo://gcn.example/SWIFT#XRT_Pos_1-2"
    assert len(bursts) == 2


async def test_retraction_marks_the_burst(tmp_path: Path) -> None:
    first = voevent("ivo://gw.example/LVK#S261120a-1-Preliminary", params={"GraceID": "S261120a"})
    retraction = voevent("ivo://gw.example/LVK#S261120a-2-Retraction", params={"GraceID": "S261120a"}, ra=None,
                         cites=[("ivo://gw.example/LVK#S261120a-1-Preliminary", "retraction")])
    bursts, _ = await ingest_and_project(tmp_path, [first, retraction])
    assert bursts["S261120a"][10] == 1


async def test_every_notice_gets_exactly_one_decision_even_across_a_lost_state(tmp_path: Path) -> None:
    """burst.identified or burst.none, under the notice's one decision id; a replay with the
    state lost (or a second node) appends nothing and adopts the log's decisions."""
    from burstbus.notices import decided_notices, decision_id

    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    state = await StateStore.open(tmp_path / "state.sqlite")
    ingest = Ingest(log)
    identifier = BurstIdentifier(log, state)
    await identifier.start()
    packets = {
        "burst": voevent("ivo://gcn.example/SWIFT#BAT_1", params={"TrigID": "1"}),
        "nothing": voevent("ivo://gcn.example/SWIFT#plain"),
        "test": voevent("ivo://gcn.example/SWIFT#test", role="test", params={"TrigID": "2"}),
        "followup": voevent("ivo://gcn.example/SWIFT#XRT_1", cites=[("ivo://gcn.example/SWIFT#BAT_1", "followup")]),
    }
    for raw in packets.values():
        assert (await ingest.submit(raw, via="local", peer="test")).outcome == "accepted"
    await identifier.catch_up()
    notices = await log.read(filter=ReadFilter.of(types=["voevent.accepted"]))
    decisions = await log.read(filter=ReadFilter.of(types=["burst.identified", "burst.none"]))
    assert sorted(d.id for d in decisions) == sorted(decision_id(n.id) for n in notices)
    by_ivorn = {d.data["ivorn"]: d for d in decisions}
    assert by_ivorn["ivo://gcn.example/SWIFT#BAT_1"].data["burst_id"] == "swift-1"
    assert by_ivorn["ivo://gcn.example/SWIFT#XRT_1"].data["burst_id"] == "swift-1"
    plain, test = by_ivorn["ivo://gcn.example/SWIFT#plain"], by_ivorn["ivo://gcn.example/SWIFT#test"]
    assert (plain.type, plain.data["reason"], plain.stream) == ("burst.none", "unmatched", "gcn.example/SWIFT")
    assert (test.type, test.data["reason"], test.data["role"]) == ("burst.none", "role", "test")
    assert [(n.data["ivorn"], b) for n, b in await decided_notices(log, decisions)] == [
        (d.data["ivorn"], d.data.get("burst_id")) for d in decisions
    ]
    assert identifier.health()["position"] == notices[-1].seq
    head = (await log.head()).seq

    # the state is lost: the replay decides again, the log keeps its first decisions
    await state.close()
    (tmp_path / "state.sqlite").unlink()
    state = await StateStore.open(tmp_path / "state.sqlite")
    again = BurstIdentifier(log, state, roles=("observation", "test"))  # even with other rules now
    await again.start()
    await again.catch_up()
    assert (await log.head()).seq == head and again.identified_total == again.no_burst_total == 0
    index = dict(await state.run(lambda c: c.execute("SELECT ivorn, burst_id FROM burst_index").fetchall()))
    assert index == {"ivo://gcn.example/SWIFT#BAT_1": "swift-1", "ivo://gcn.example/SWIFT#XRT_1": "swift-1"}
    await ingest.close()
    await state.close()
    await log.close()


# -- the real packets beside the project ------------------------------------------------

needs_shared = pytest.mark.skipif(not SHARED_VOEVENTS.is_dir(), reason="shared/voevents not present")

#: Groups of curated packets that belong together (one burst each), by file name.
SAME_BURST = [
    ("swift_bat_grb_pos_655721-214.xml", "swift_xrt_pos_655721-326_followup.xml"),
    ("integral_wakeup_pos.xml", "integral_refined_pos_followup.xml"),
    ("lvc_s190518bb_1_preliminary.xml", "lvc_s190518bb_2_retraction.xml"),
    ("lvc_s230524x_early_warning.xml", "lvc_s230524x_retraction.xml"),
]


@needs_shared
async def test_real_packets_land_in_the_right_bursts(tmp_path: Path) -> None:
    files = sorted(SHARED_VOEVENTS.glob("*.xml"))
    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    state = await StateStore.open(tmp_path / "state.sqlite")
    runner = await ProjectionRunner.open(tmp_path / "p.sqlite", [BurstsProjection()])
    ingest = Ingest(log)
    identifier = BurstIdentifier(log, state)
    await identifier.start()
    ivorn_of: dict[str, str] = {}
    for path in files:
        result = await ingest.submit(path.read_bytes(), via="import", peer=path.name)
        if result.outcome == "accepted":
            ivorn_of[path.name] = result.ivorn
    await identifier.catch_up()
    await runner.catch_up(log)
    dump = (await runner.dump())["bursts"]
    notices = {row[0]: row[1] for row in dump["burst_notices"]}
    bursts = {row[0]: row for row in dump["bursts"]}
    for group in SAME_BURST:
        ids = {notices.get(ivorn_of[name]) for name in group}
        assert len(ids) == 1 and None not in ids, (group, ids)
    # every citation between two accepted packets stays inside one burst
    for record in await log.read():
        if record.type == "voevent.accepted" and record.data["ivorn"] in notices:
            for cite in record.data["citations"]:
                if cite["ivorn"] in notices:
                    assert notices[cite["ivorn"]] == notices[record.data["ivorn"]]
    assert bursts[notices[ivorn_of["lvc_s190518bb_1_preliminary.xml"]]][10] == 1  # retracted
    for name in ("svom_eclairs_wakeup.xml", "svom_mxt_initial.xml", "fermi_gbm_flt_pos.xml", "swift_bat_grb_pos_v2.0.xml"):
        assert ivorn_of[name] in notices, name
    assert notices[ivorn_of["svom_eclairs_wakeup.xml"]] == "sb26021102"
    for name in ("swift_bat_grb_test_pos_role_test.xml", "swift_point_dir_role_utility.xml"):
        assert ivorn_of.get(name) not in notices, name
    print(json.dumps({b: r[8] for b, r in bursts.items()}, indent=1))
    await ingest.close()
    await runner.close()
    await state.close()
    await log.close()
