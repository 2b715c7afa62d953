"""kinds: what a notice reports, from the summary fields every accepted notice carries."""

from __future__ import annotations

import pytest

from burstbus.voevent.kinds import KINDS, notice_kind


@pytest.mark.parametrize(
    ("mission", "instrument", "packet_type", "stream", "want"),
    [
        ("SVOM", "SVOM/ECLAIRs", "202", "org.svom/fsc", "grb"),
        ("SVOM", "SVOM/GRM", "201", "org.svom/fsc", "grb"),
        ("SVOM", "SVOM/MXT", "209", "org.svom/fsc", "counterpart"),
        ("Fermi", "Fermi/GBM", "110", "nasa.gsfc.gcn/Fermi", "grb"),
        ("Fermi", "Fermi/LAT", "125", "nasa.gsfc.gcn/Fermi", "transient"),  # LAT monitor
        ("SWIFT", "Swift/BAT", "61", "nasa.gsfc.gcn/SWIFT", "grb"),
        ("SWIFT", "Swift/BAT", "141", "nasa.gsfc.gcn/SWIFT", "transient"),  # known source
        ("SWIFT", "Swift/XRT", "67", "nasa.gsfc.gcn/SWIFT", "counterpart"),
        ("SWIFT", "Swift/UVOT", "81", "nasa.gsfc.gcn/SWIFT", "counterpart"),
        ("SWIFT", "Swift", "66", "nasa.gsfc.gcn/SWIFT", "pointing"),  # spacecraft slew
        ("COUNTERPART", "nasa.gsfc.gcn/COUNTERPART", "45", "nasa.gsfc.gcn/COUNTERPART", "counterpart"),
        ("MOA", "MOA", "139", "nasa.gsfc.gcn/MOA", "microlensing"),
        ("AMON", "IceCube", "173", "nasa.gsfc.gcn/AMON", "neutrino"),
        ("Antares_Alert", "ANTARES", None, "nasa.gsfc.gcn/Antares_Alert", "neutrino"),
        ("LVK", "LVK", "150", "gwnet/LVC", "gw"),
        ("IceCube", "LVK_NU_TRACK_SEARCH", None, None, "neutrino"),  # a JSON notice
        ("EinsteinProbe", "WXT", None, None, "grb"),
        ("ASASSN", "voevent.4pisky.org/ASASSN", None, "voevent.4pisky.org/ASASSN", "other"),
        ("burstbus", "test.example/burstbus", "67", "test.example/burstbus", "other"),  # GCN numbers only count for GCN
    ],
)
def test_notice_kind(mission: str, instrument: str, packet_type: str | None, stream: str | None, want: str) -> None:
    data = {"mission": mission, "instrument": instrument, "stream": stream,
            "params": {"Packet_Type": packet_type} if packet_type else {}}
    assert notice_kind(data) == want
    assert want in KINDS


def test_a_notice_without_facts_is_other() -> None:
    assert notice_kind({}) == "other"
    assert notice_kind({"params": "odd", "mission": 7}) == "other"
