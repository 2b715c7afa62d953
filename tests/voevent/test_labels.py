"""labels: IVORN parts, identifying Params, citations, instrument and mission."""

from __future__ import annotations

import pytest

from burstbus.voevent.labels import split_ivorn

from .builders import packet
from .summaries import summary


@pytest.mark.parametrize(
    ("ivorn", "want"),
    [
        ("ivo://nasa.gsfc.gcn/SWIFT#BAT_GRB_Pos_1", ("nasa.gsfc.gcn/SWIFT", "BAT_GRB_Pos_1")),
        ("ivo://test.burstbus/unit#", ("test.burstbus/unit", None)),
        ("ivo://test.burstbus/unit", ("test.burstbus/unit", None)),
        ("ivo://#x", (None, "x")),
        ("http://example.org/#x", (None, None)),
        (None, (None, None)),
    ],
)
def test_split_ivorn(ivorn: str | None, want: tuple) -> None:
    assert split_ivorn(ivorn) == want


def test_citations_skip_empty_and_keep_description() -> None:
    raw = packet(
        citations=[
            ("ivo://org.svom/fsc#sb1_eclairs-wakeup", "followup"),
            ("", "followup"),  # ANTARES sends an empty one
            ("ivo://gwnet/LVC#S1-1-Preliminary", "supersedes"),
            ("ivo://gwnet/LVC#S1-2-Initial", "retraction"),
        ],
        citation_description="This is the XRT Position for the original BAT trigger.",
    )
    s = summary(raw)
    assert s["citations"] == [
        {"ivorn": "ivo://org.svom/fsc#sb1_eclairs-wakeup", "type": "followup"},
        {"ivorn": "ivo://gwnet/LVC#S1-1-Preliminary", "type": "supersedes"},
        {"ivorn": "ivo://gwnet/LVC#S1-2-Initial", "type": "retraction"},
    ]
    assert s["citation_description"].startswith("This is the XRT Position")


def test_no_citations() -> None:
    s = summary(packet())
    assert s["citations"] == [] and s["citation_description"] is None


def test_params_nested_in_groups_and_value_elements() -> None:
    raw = packet(
        params=[("Packet_Type", "209"), ("Instrument", "MXT")],
        groups=[
            ("Svom_Identifiers", [("Notice_Level", "N2m"), ("Burst_Id", "sb26022501")]),
            ("Other", [("Packet_Type", "999")]),  # top level wins
        ],
        what_extra='\n    <Param name="GraceID"><Value>S230527ch</Value></Param>'
        '\n    <Param name="Not_Selected" value="x"/>',
    )
    assert summary(raw)["params"] == {
        "Packet_Type": "209",
        "Instrument": "MXT",
        "GraceID": "S230527ch",
        "Notice_Level": "N2m",
        "Burst_Id": "sb26022501",
    }


@pytest.mark.parametrize(
    ("ivorn", "params", "instrument", "mission"),
    [
        ("ivo://nasa.gsfc.gcn/SWIFT#BAT_GRB_Pos_532871-729", {}, "Swift/BAT", "SWIFT"),
        ("ivo://nasa.gsfc.gcn/SWIFT#XRT_Pos_644259-941", {}, "Swift/XRT", "SWIFT"),
        ("ivo://nasa.gsfc.gcn/SWIFT#UVOT_Pos_1121751-809", {}, "Swift/UVOT", "SWIFT"),
        ("ivo://nasa.gsfc.gcn/SWIFT#Point_Dir_2017-11-28", {}, "Swift", "SWIFT"),
        ("ivo://nasa.gsfc.gcn/Fermi#GBM_Flt_Pos_2026-02-07", {}, "Fermi/GBM", "Fermi"),
        ("ivo://nasa.gsfc.gcn/Fermi#LAT_Offline_Pos_2026", {}, "Fermi/LAT", "Fermi"),
        ("ivo://nasa.gsfc.gcn/INTEGRAL#Wakeup_Pos_010042-0-941", {}, "INTEGRAL", "INTEGRAL"),
        ("ivo://nasa.gsfc.gcn/INTEGRAL#SPIACS_006625-0-443", {}, "INTEGRAL/SPI-ACS", "INTEGRAL"),
        (
            "ivo://org.svom/fsc#sb26021102_eclairs-wakeup",
            {"Instrument": "ECLAIRs"},
            "SVOM/ECLAIRs",
            "SVOM",
        ),
        ("ivo://org.svom/fsc#sb26020401_grm-trigger", {}, "SVOM/GRM", "SVOM"),
        ("ivo://org.svom/fsc#sb26022501_mxt-initial_qf1", {}, "SVOM/MXT", "SVOM"),
        ("ivo://org.svom/fsc#sb26022501_slewing", {}, "SVOM", "SVOM"),
        ("ivo://gwnet/LVC#S230527ch-1-Preliminary", {}, "LVK", "LVK"),
        ("ivo://nasa.gsfc.gcn/GECAM#FLT_Event_2024", {}, "GECAM", "GECAM"),
        ("ivo://nasa.gsfc.gcn/AMON#ICECUBE_GOLD_Event2022", {}, "IceCube", "AMON"),
        ("ivo://gaia.cam.uk/alerts#Gaia16aac", {}, "gaia.cam.uk/alerts", "alerts"),
    ],
)
def test_instrument_and_mission(ivorn: str, params: dict, instrument: str, mission: str) -> None:
    s = summary(packet(ivorn=ivorn, params=list(params.items())))
    assert (s["instrument"], s["mission"]) == (instrument, mission)
