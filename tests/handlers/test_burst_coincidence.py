"""Burst association across missions, and which kinds of notice open bursts (the pure rules)."""

from __future__ import annotations

import pytest

from burstbus.handlers.bursts import DEFAULT_POLICY, BurstPolicy, MemoryIndex, identify
from burstbus.handlers.coincidence import CoincidencePolicy, separation

T0 = "2026-04-21T04:13:21.170000Z"


def at(offset: float) -> str:
    """An event time ``offset`` seconds after T0, as summaries write it."""
    seconds = 21.17 + offset
    return f"2026-04-21T04:13:{seconds:09.6f}Z"


def svom(burst: str = "sb26042105", *, time: str = T0, ra: float | None = 120.0, dec: float | None = 30.0,
         err: float | None = 0.05, instrument: str = "SVOM/ECLAIRs", packet_type: str = "202") -> dict:
    position = None if ra is None else {"ra": ra, "dec": dec, "err": err, "kind": None}
    return {"role": "observation", "ivorn": f"ivo://org.svom/fsc#{burst}_{instrument[5:].lower()}", "citations": [],
            "params": {"Burst_Id": burst, "Packet_Type": packet_type}, "mission": "SVOM", "instrument": instrument,
            "stream": "org.svom/fsc", "time": time, "position": position}


def fermi(trig: str = "798437606", *, n: int = 1, time: str = T0, ra: float | None = None, dec: float | None = None,
          err: float | None = None, packet_type: str = "110") -> dict:
    position = None if ra is None else {"ra": ra, "dec": dec, "err": err, "kind": None}
    return {"role": "observation", "ivorn": f"ivo://nasa.gsfc.gcn/Fermi#GBM_{packet_type}_{trig}_{n}", "citations": [],
            "params": {"TrigID": trig, "Packet_Type": packet_type}, "mission": "Fermi", "instrument": "Fermi/GBM",
            "stream": "nasa.gsfc.gcn/Fermi", "time": time, "position": position}


def gcn(mission: str, instrument: str, packet_type: str, trig: str, *, time: str = T0, name: str = "X") -> dict:
    return {"role": "observation", "ivorn": f"ivo://nasa.gsfc.gcn/{mission}#{name}_{trig}", "citations": [],
            "params": {"TrigID": trig, "Packet_Type": packet_type}, "mission": mission, "instrument": instrument,
            "stream": f"nasa.gsfc.gcn/{mission}", "time": time, "position": {"ra": 120.0, "dec": 30.0, "err": 0.1}}


def decide(index: MemoryIndex, data: dict, policy: BurstPolicy = DEFAULT_POLICY):
    """identify, then record the decision as the identifier does (its burst, its alias)."""
    found = identify(data, index, policy=policy)
    if found is not None:
        index.record(data, found.burst_id, found.alias)
    return found


def test_a_fermi_trigger_at_the_same_second_joins_the_svom_burst_and_its_id_becomes_an_alias() -> None:
    index = MemoryIndex()
    assert decide(index, svom()).burst_id == "sb26042105"
    found = decide(index, fermi(time=at(0.17)))
    assert (found.burst_id, found.rule, found.alias) == ("sb26042105", "coincidence", "fermi-798437606")
    assert found.coincidence["burst_id"] == "sb26042105"
    assert found.coincidence["mission"] == "svom"
    assert found.coincidence["dt"] == pytest.approx(0.17)
    assert found.coincidence["separation"] is None  # the GBM alert has no position: time decides
    # the later Fermi packets of that trigger follow by the alias, wherever they put the burst
    later = decide(index, fermi(n=2, time=at(0.17), ra=150.0, dec=10.0, err=2.0, packet_type="112"))
    assert (later.burst_id, later.rule, later.alias) == ("sb26042105", "alias", "fermi-798437606")


def test_the_sky_test_uses_the_combined_errors() -> None:
    index = MemoryIndex()
    decide(index, svom())
    # 2.9 degrees away, errors 0.05 and 1.0: allowed 3 x 1.0012
    near = fermi(time=at(1.0), ra=120.0, dec=32.9, err=1.0, packet_type="111")
    found = identify(near, index)
    assert found.rule == "coincidence"
    assert found.coincidence["separation"] == pytest.approx(2.9, abs=1e-4)
    assert found.coincidence["combined_err"] == pytest.approx((0.05**2 + 1.0**2) ** 0.5, abs=1e-4)
    assert found.coincidence["limit"] == pytest.approx(3 * (0.05**2 + 1.0**2) ** 0.5, abs=1e-4)
    far = fermi(time=at(1.0), ra=120.0, dec=34.0, err=1.0, packet_type="111")  # 4 degrees: beyond 3 sigma
    assert (identify(far, index).burst_id, identify(far, index).rule) == ("fermi-798437606", "param:TrigID")


def test_the_allowed_separation_is_capped() -> None:
    index = MemoryIndex()
    decide(index, svom())
    huge = fermi(time=at(1.0), ra=120.0, dec=65.0, err=20.0, packet_type="111")  # 35 degrees, 3 sigma = 60
    assert identify(huge, index).rule == "param:TrigID"
    assert identify(huge, index, policy=BurstPolicy(coincidence=CoincidencePolicy(max_separation=40.0))).rule == "coincidence"


def test_outside_the_time_window_it_is_another_burst() -> None:
    index = MemoryIndex()
    decide(index, svom())
    found = identify(fermi(time=at(10.5)), index)
    assert (found.burst_id, found.rule) == ("fermi-798437606", "param:TrigID")
    assert identify(fermi(time=at(-9.5)), index).rule == "coincidence"
    wide = BurstPolicy(coincidence=CoincidencePolicy(window=30.0))
    assert identify(fermi(time=at(10.5)), index, policy=wide).rule == "coincidence"


def test_the_same_mission_never_merges_by_coincidence() -> None:
    index = MemoryIndex()
    decide(index, fermi("798437606"))
    second = decide(index, fermi("798437607", time=at(1.0)))  # a second GBM trigger: its own burst
    assert (second.burst_id, second.rule) == ("fermi-798437607", "param:TrigID")
    # and a burst that already has a Fermi notice takes no other Fermi trigger by coincidence
    index = MemoryIndex()
    decide(index, svom())
    decide(index, fermi("798437606", time=at(0.5)))
    third = identify(fermi("798437608", time=at(1.0)), index)
    assert (third.burst_id, third.rule) == ("fermi-798437608", "param:TrigID")


def test_the_nearest_in_time_wins_and_ties_go_by_burst_id() -> None:
    index = MemoryIndex()
    decide(index, svom("sb26042106", time=at(-9.0)))
    assert decide(index, gcn("GECAM", "GECAM", "188", "4242", time=at(3.0))).rule == "param:TrigID"  # 12 s apart
    assert identify(fermi(time=at(0.5)), index).burst_id == "gecam-4242"
    index = MemoryIndex()
    decide(index, svom("sb26042106", time=at(-1.0), ra=170.0))
    assert decide(index, gcn("GECAM", "GECAM", "188", "4242", time=at(1.0))).rule == "param:TrigID"  # 43 deg apart
    assert identify(fermi(), index).burst_id == "gecam-4242"  # equal |dt|: "gecam-4242" < "sb26042106"


def test_a_known_identifier_wins_over_coincidence() -> None:
    index = MemoryIndex()
    decide(index, svom())
    decide(index, fermi("798437606", time=at(30.0)))  # opened on its own, 30 s away
    found = identify(fermi("798437606", n=2, time=at(0.1)), index)
    assert (found.burst_id, found.rule) == ("fermi-798437606", "param:TrigID")


def test_a_notice_without_an_identifier_joins_by_coincidence_and_opens_nothing_otherwise() -> None:
    ipn = {"role": "observation", "ivorn": "ivo://nasa.gsfc.gcn/IPN#Raw_1", "citations": [], "mission": "IPN",
           "instrument": "IPN", "params": {"TrigID": "-00001", "Packet_Type": "31"}, "time": at(0.8), "position": None}
    assert identify(ipn, MemoryIndex()) is None
    index = MemoryIndex()
    decide(index, svom())
    found = identify(ipn, index)
    assert (found.burst_id, found.rule, found.alias) == ("sb26042105", "coincidence", None)


@pytest.mark.parametrize(
    ("mission", "instrument", "packet_type"),
    [("MOA", "MOA", "139"), ("AMON", "IceCube", "173"), ("COUNTERPART", "nasa.gsfc.gcn/COUNTERPART", "45"),
     ("SWIFT", "Swift/XRT", "67"), ("SWIFT", "Swift/BAT", "141"), ("SWIFT", "Swift", "66")],
)
def test_only_configured_kinds_open_bursts(mission: str, instrument: str, packet_type: str) -> None:
    data = gcn(mission, instrument, packet_type, "1121751")
    assert identify(data, MemoryIndex()) is None
    # they still join a burst their identifier names, or that they cite
    index = MemoryIndex()
    index.record(gcn(mission, "x", "61", "1121751", name="Y"), f"{mission.lower()}-1121751")
    assert identify(data, index).rule == "param:TrigID"
    cites = {**data, "citations": [{"ivorn": "ivo://nasa.gsfc.gcn/SWIFT#BAT_1", "type": "followup"}]}
    assert identify(cites, MemoryIndex(bursts={"ivo://nasa.gsfc.gcn/SWIFT#BAT_1": "swift-1"})).burst_id == "swift-1"
    # and a configured kind opens: [bursts] kinds
    opened = identify(data, MemoryIndex(), policy=BurstPolicy(open_kinds=("grb", "neutrino", "microlensing",
                                                                          "counterpart", "transient", "pointing")))
    assert opened.burst_id == f"{mission.lower()}-1121751"


def test_a_mission_burst_name_opens_whatever_the_kind() -> None:
    mxt = svom("sb26022501", instrument="SVOM/MXT", packet_type="209")
    assert identify(mxt, MemoryIndex()).burst_id == "sb26022501"


def test_neutrinos_and_counterparts_never_join_by_coincidence() -> None:
    index = MemoryIndex()
    decide(index, svom())
    icecube = gcn("AMON", "IceCube", "173", "137910", time=at(0.5))
    assert identify(icecube, index) is None
    xrt = gcn("SWIFT", "Swift/XRT", "67", "1121751", time=at(0.5))
    assert identify(xrt, index) is None
    off = BurstPolicy(coincidence=CoincidencePolicy(kinds=()))
    assert identify(fermi(time=at(0.1)), index, policy=off).rule == "param:TrigID"


@pytest.mark.parametrize("trig", ["-1355732300", "-1", "0", "-00001", "99999"])
def test_negative_and_placeholder_trigger_numbers_name_no_burst(trig: str) -> None:
    known = gcn("SWIFT", "Swift/BAT", "61", trig, name="BAT_GRB_Pos")
    assert identify(known, MemoryIndex()) is None
    index = MemoryIndex(ids={f"swift-{trig}", f"swift--{trig.lstrip('-')}"})
    assert identify(known, index) is None


def test_separation_is_exact_for_small_and_large_angles() -> None:
    assert separation(10.0, 0.0, 10.0, 1e-6) == pytest.approx(1e-6)
    assert separation(0.0, 89.0, 180.0, 89.0) == pytest.approx(2.0)
    assert separation(0.0, 0.0, 180.0, 0.0) == pytest.approx(180.0)


def test_a_flood_in_one_second_reads_a_bounded_number_of_candidates() -> None:
    """Thousands of notices at one time (a replayed test stream) must not make every later
    notice read them all: its own mission's are never candidates, and of the others only the
    nearest MAX_CANDIDATES in time are read."""
    import sqlite3

    from burstbus.handlers import bursts as identifier
    from burstbus.handlers.coincidence import CoincidencePolicy

    db = sqlite3.connect(":memory:")
    db.executescript(identifier._INDEX)
    rows = [(f"ivo://x#{m}{i}", f"{m}-{i}", m, "grb", 1000.0 + (i % 7) * 0.1, None, None, None)
            for m in ("svom", "fermi") for i in range(identifier.MAX_CANDIDATES + 300)]
    db.executemany("INSERT INTO burst_sightings VALUES (?,?,?,?,?,?,?,?)", rows)
    policy = CoincidencePolicy()
    index = identifier._load_index(db, [], [], [(1000.0, "svom")], policy)
    found = index.ids
    assert len(found) == identifier.MAX_CANDIDATES and all(b.startswith("fermi-") for b in found)
    assert identifier._load_index(db, [], [], [(1000.0, "svom")], policy).ids == found  # the same ones, always


def test_a_flood_of_one_mission_in_one_batch_is_never_searched_by_its_own_notices() -> None:
    """A catch-up batch of thousands of one mission's notices at one time (a replayed stream, a
    back-fill) records each decision in the batch's index; a later notice of that mission must
    not read the earlier ones (two triggers of one mission are two bursts), or the batch is
    quadratic. Counted, not timed: no sighting of the flood's own mission is ever returned."""
    read: list[str] = []

    class Counting(MemoryIndex):
        def near(self, time: float, window: float, other_than: str):
            found = list(super().near(time, window, other_than))
            read.extend(s.mission for s in found)
            return found

    index = Counting()
    flood = 500
    for i in range(flood):
        assert decide(index, svom(f"sb2604{i:04d}")).burst_id == f"sb2604{i:04d}"
    assert read == []  # 500 notices, no candidate read: linear
    found = decide(index, fermi(time=at(0.1)))  # another mission still finds them all
    assert found is not None and found.rule == "coincidence"
    assert read.count("svom") == flood
