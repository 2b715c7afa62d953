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


# -- association across missions, through a real log ---------------------------------------

ECLAIRS = "ivo://org.svom/fsc#sb26042105_eclairs-wakeup"
GBM_ALERT = "ivo://nasa.gsfc.gcn/Fermi#GBM_Alert_2026-04-21T04:13:21.17_798437606_1-001"
GBM_FLT = "ivo://nasa.gsfc.gcn/Fermi#GBM_Flt_Pos_2026-04-21T04:13:21.17_798437606_44-002"
GBM_GND = "ivo://nasa.gsfc.gcn/Fermi#GBM_Gnd_Pos_2026-04-21T04:13:21.17_798437606_57-003"
MOA = "ivo://nasa.gsfc.gcn/MOA#Lensing_Event_2026-04-21T04:13:21.17_321-004"
IPN = "ivo://nasa.gsfc.gcn/IPN#Raw_2026-04-21T04:13:21.17_-00001-005"


def cross_mission_packets() -> list[bytes]:
    """An SVOM burst, Fermi's trigger of it 0.17 s later (three packets), and unrelated packets."""
    return [
        voevent(ECLAIRS, params={"Burst_Id": "sb26042105", "Packet_Type": "202", "Instrument": "ECLAIRs"},
                time="2026-04-21T04:13:21.000", ra=62.68, dec=-4.40, err=0.05),
        voevent(GBM_ALERT, params={"TrigID": "798437606", "Packet_Type": "110"}, time="2026-04-21T04:13:21.17",
                ra=None),
        voevent(GBM_FLT, params={"TrigID": "798437606", "Packet_Type": "111"}, time="2026-04-21T04:13:21.17",
                ra=60.0, dec=-2.0, err=7.5),
        voevent(MOA, params={"TrigID": "321", "Packet_Type": "139"}, time="2026-04-21T04:13:22.0"),
        voevent(IPN, params={"TrigID": "-00001", "Packet_Type": "31"}, time="2026-04-21T04:13:21.5", ra=None),
    ]


async def test_a_cross_mission_pair_is_one_burst_and_a_rebuilt_state_decides_alike(tmp_path: Path) -> None:
    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    state = await StateStore.open(tmp_path / "state.sqlite")
    runner = await ProjectionRunner.open(tmp_path / "p.sqlite", [BurstsProjection()])
    ingest = Ingest(log)
    identifier = BurstIdentifier(log, state)
    await identifier.start()
    for raw in cross_mission_packets():
        assert (await ingest.submit(raw, via="local", peer="test")).outcome == "accepted"
        await identifier.catch_up()
    decisions = {d.data["ivorn"]: d for d in await log.read(filter=ReadFilter.of(types=["burst.identified", "burst.none"]))}
    alert = decisions[GBM_ALERT].data
    assert (alert["burst_id"], alert["rule"], alert["alias"], alert["kind"]) == ("sb26042105", "coincidence", "fermi-798437606", "grb")
    assert alert["coincidence"] == {"burst_id": "sb26042105", "ivorn": ECLAIRS, "mission": "svom", "dt": 0.17,
                                    "separation": None, "combined_err": None, "limit": None, "position_ivorn": None}
    assert decisions[GBM_ALERT].stream == "sb26042105"
    flt = decisions[GBM_FLT].data
    assert (flt["burst_id"], flt["rule"], flt["alias"]) == ("sb26042105", "alias", "fermi-798437606")
    ipn = decisions[IPN].data
    assert (ipn["burst_id"], ipn["rule"]) == ("sb26042105", "coincidence")  # no id of its own (-00001): time decides
    moa = decisions[MOA]
    assert (moa.type, moa.data["reason"], moa.data["kind"]) == ("burst.none", "kind", "microlensing")
    await runner.catch_up(log)
    dump = (await runner.dump())["bursts"]
    assert [row[0] for row in dump["bursts"]] == ["sb26042105"]
    assert json.loads(dump["bursts"][0][9]) == ["Fermi/GBM", "IPN", "SVOM/ECLAIRs"]
    rules = {row[0]: row[3] for row in dump["burst_notices"]}
    assert rules[GBM_ALERT] == "coincidence" and rules[GBM_FLT] == "alias"

    def tables(conn):
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall())
                for t in ("burst_index", "burst_citations", "burst_aliases", "burst_sightings")}

    before = await state.run(tables)
    assert before["burst_aliases"] == [("fermi-798437606", "sb26042105")]
    head = (await log.head()).seq

    # the state is lost: the replay adopts the log's decisions and rebuilds the same index ...
    await state.close()
    (tmp_path / "state.sqlite").unlink()
    state = await StateStore.open(tmp_path / "state.sqlite")
    again = BurstIdentifier(log, state)
    await again.start()
    await again.catch_up()
    assert (await log.head()).seq == head
    assert await state.run(tables) == before
    # ... so a later packet of the Fermi trigger still follows the alias
    gnd = voevent(GBM_GND, params={"TrigID": "798437606", "Packet_Type": "112"}, time="2026-04-21T04:13:21.17",
                  ra=63.0, dec=-5.0, err=3.0)
    assert (await ingest.submit(gnd, via="local", peer="test")).outcome == "accepted"
    await again.catch_up()
    last = (await log.read(after=head))[-1]
    assert (last.type, last.data["burst_id"], last.data["rule"]) == ("burst.identified", "sb26042105", "alias")
    await ingest.close()
    await runner.close()
    await state.close()
    await log.close()

    # a fresh log of the same packets, decided in one batch, gives the same decisions
    log = await SQLiteEventLog.open(tmp_path / "again.sqlite")
    state = await StateStore.open(tmp_path / "again-state.sqlite")
    ingest = Ingest(log)
    for raw in [*cross_mission_packets(), gnd]:
        assert (await ingest.submit(raw, via="local", peer="test")).outcome == "accepted"
    fresh = BurstIdentifier(log, state)
    await fresh.start()
    await fresh.catch_up()
    replayed = {d.data["ivorn"]: (d.type, d.data.get("burst_id"), d.data.get("rule"), d.data.get("coincidence"))
                for d in await log.read(filter=ReadFilter.of(types=["burst.identified", "burst.none"]))}
    assert replayed == {ivorn: (d.type, d.data.get("burst_id"), d.data.get("rule"), d.data.get("coincidence"))
                        for ivorn, d in decisions.items()} | {GBM_GND: ("burst.identified", "sb26042105", "alias", None)}
    await ingest.close()
    await state.close()
    await log.close()


#: SVOM/Fermi pairs of the archive (files under shared/voevents/corpus/gcn-notice-parser): each
#: group is one GRB seen by both missions, within a second or so.
PARSER = "corpus/gcn-notice-parser"
CROSS_MISSION = [
    ("svom/eclairs/eclairs_311.xml", "svom/grm/grm_331.xml", "fermi/fermi_gbm_alert/fermi_gbm_alert_3973.xml",
     "fermi/fermi_gbm_fin_pos/fermi_gbm_fin_pos_1047.xml", "fermi/fermi_gbm_gnd_pos/fermi_gbm_gnd_pos_1870.xml"),
    ("svom/grm/grm_289.xml", "fermi/fermi_gbm_alert/fermi_gbm_alert_3787.xml",
     "fermi/fermi_gbm_flt_pos/fermi_gbm_flt_pos_8131.xml"),
    ("svom/eclairs/eclairs_319.xml", "svom/grm/grm_353.xml", "fermi/fermi_gbm_fin_pos/fermi_gbm_fin_pos_1060.xml"),
]
#: 15.6 s apart: beyond the default window, two bursts.
APART = ("svom/grm/grm_291.xml", "fermi/fermi_gbm_alert/fermi_gbm_alert_3791.xml")


@needs_shared
async def test_real_svom_and_fermi_pairs_are_one_burst(tmp_path: Path) -> None:
    files = sorted(SHARED_VOEVENTS.glob("*.xml")) + sorted((SHARED_VOEVENTS / PARSER).glob("[fs][ev]*/*/*.xml"))
    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    state = await StateStore.open(tmp_path / "state.sqlite")
    ingest = Ingest(log)
    identifier = BurstIdentifier(log, state)
    await identifier.start()
    ivorn_of: dict[str, str] = {}
    for path in files:
        result = await ingest.submit(path.read_bytes(), via="import", peer=path.name)
        if result.outcome in ("accepted", "duplicate") and result.ivorn:
            ivorn_of[str(path.relative_to(SHARED_VOEVENTS))] = result.ivorn
    await identifier.catch_up()
    decisions = {d.data["ivorn"]: d for d in await log.read(filter=ReadFilter.of(types=["burst.identified", "burst.none"]))}

    def burst(name: str) -> str | None:
        return decisions[ivorn_of[name]].data.get("burst_id")

    for group in CROSS_MISSION:
        ids = {burst(f"{PARSER}/{name}") for name in group}
        assert len(ids) == 1 and None not in ids, (group, ids)
        rules = {decisions[ivorn_of[f"{PARSER}/{name}"]].data["rule"] for name in group}
        assert "coincidence" in rules, (group, rules)
    assert burst(f"{PARSER}/{APART[0]}") != burst(f"{PARSER}/{APART[1]}")
    for name in ("moa_lensing_event.xml", "amon_icecube_gold.xml", "swift_bat_known_pos.xml", "swift_uvot_pos.xml"):
        decision = decisions[ivorn_of[name]]
        assert decision.type == "burst.none", (name, decision.data)
    assert not any("--" in str(d.data.get("burst_id", "")) for d in decisions.values())
    await ingest.close()
    await state.close()
    await log.close()
