"""What kind of thing a notice reports: a gamma-ray burst, a GW event, a counterpart, a neutrino …

Why this exists: not every observation packet is a burst. GCN carries microlensing events
(MOA), optical/X-ray counterparts of something else (GCN COUNTERPART, Swift XRT/UVOT), neutrino
alerts (IceCube, ANTARES), known-source and monitor reports (Swift BAT known sources, Fermi LAT
monitor, MAXI) and spacecraft pointings, and each of them used to open a "burst" of its own as
soon as it carried a trigger number. The burst identifier lets only configured kinds open a
burst (``[bursts] kinds``) and only configured kinds take part in the cross-mission
coincidence rule (``[bursts] coincidence_kinds``); other kinds still join a burst by citation or
by an identifier the burst already has.

:func:`notice_kind` is pure and reads only the summary fields every accepted notice carries
(``mission``, ``instrument``, ``params.Packet_Type``, ``stream``), so it applies alike to
VOEvents and JSON notices, and to logs written before it existed. The tables are the GCN
packet types (https://gcn.gsfc.nasa.gov/filtering.html) seen in the archive, by mission.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["KINDS", "notice_kind"]

#: Every kind :func:`notice_kind` answers, for configuration checks and the docs.
#: ``grb``: a gamma-ray (or hard X-ray) burst trigger or localisation (Swift BAT, Fermi GBM/LAT,
#: INTEGRAL, AGILE, Konus, IPN, CALET, GECAM, SVOM ECLAIRs/GRM, Einstein Probe …); ``gw``:
#: a gravitational-wave event (LVK); ``counterpart``: an X-ray/UV/optical observation of
#: something already announced (Swift XRT/UVOT, SVOM MXT/VT, GCN COUNTERPART); ``neutrino``;
#: ``microlensing``; ``transient``: another kind of source (known sources, monitors, X-ray
#: novae, TeV flares); ``pointing``: where a spacecraft points or slews; ``other``: a packet
#: no table names (a centre's own stream, a mission not listed here).
KINDS: tuple[str, ...] = ("grb", "gw", "counterpart", "neutrino", "microlensing", "transient", "pointing", "other")

#: GCN packet types by kind, where the type decides (it wins over the mission's default).
_PACKET_KINDS: dict[str, str] = {
    **dict.fromkeys(("45", "154"), "counterpart"),  # GRB_CNTRPART, LVC_CNTRPART
    **dict.fromkeys(("67", "68", "69", "70", "71", "77", "78", "85", "86", "87", "88"), "counterpart"),  # Swift XRT
    **dict.fromkeys(("72", "73", "79", "80", "81", "89"), "counterpart"),  # Swift UVOT
    **dict.fromkeys(("209", "210", "211", "212", "213", "214"), "counterpart"),  # SVOM MXT, VT
    **dict.fromkeys(("137", "139"), "microlensing"),  # OGLE, MOA
    **dict.fromkeys(("149", "157", "158", "169", "170", "172", "173", "174", "175", "176"), "neutrino"),
    # Swift BAT monitor, transient, known source, sub-sub-threshold; Fermi LAT monitor and
    # transients; MAXI unknown/known sources; HAWC burst monitor (TeV); AMON test stream
    **dict.fromkeys(("84", "133", "140", "141", "123", "125", "134", "135", "171"), "transient"),
    # Swift FOM/slew/pointing, INTEGRAL/AGILE/Fermi pointing directions and slews
    **dict.fromkeys(("46", "47", "65", "66", "83", "103", "51", "107", "126", "129"), "pointing"),
}

#: Missions (lower case, as :mod:`.labels` names them; JSON notices' ``mission``) by kind.
_MISSION_KINDS: dict[str, str] = {
    **dict.fromkeys(("swift", "fermi", "integral", "agile", "konus", "konus-wind", "ipn", "calet", "gecam",
                     "hete", "hete-2", "gro", "cgro", "svom", "ep", "einsteinprobe", "einstein probe"), "grb"),
    "lvk": "gw",
    "counterpart": "counterpart",
    **dict.fromkeys(("moa", "ogle"), "microlensing"),
    **dict.fromkeys(("icecube", "antares", "antares_alert", "snews", "sk_sn", "super-kamiokande", "km3net"), "neutrino"),
    **dict.fromkeys(("maxi", "hawc"), "transient"),
}

#: Instrument labels (:mod:`.labels`) that decide before the mission does.
_INSTRUMENT_KINDS: dict[str, str] = {
    "swift/xrt": "counterpart", "swift/uvot": "counterpart", "svom/mxt": "counterpart", "svom/vt": "counterpart",
    "icecube": "neutrino", "antares": "neutrino", "super-kamiokande": "neutrino", "snews": "neutrino",
    "hawc": "transient", "moa": "microlensing",
}


def notice_kind(data: Mapping[str, Any]) -> str:
    """The kind of an accepted notice (one of :data:`KINDS`) from its summary fields."""
    params = data.get("params") or {}
    packet_type = str(params.get("Packet_Type") or "").strip() if isinstance(params, Mapping) else ""
    instrument = str(data.get("instrument") or "").strip().lower()
    mission = str(data.get("mission") or "").strip().lower()
    stream = str(data.get("stream") or "").strip().lower()
    if packet_type in _PACKET_KINDS and (stream.startswith("nasa.gsfc.gcn/") or mission in _MISSION_KINDS):
        return _PACKET_KINDS[packet_type]
    if instrument in _INSTRUMENT_KINDS:
        return _INSTRUMENT_KINDS[instrument]
    if mission == "amon":  # AMON's own coincidence streams (NU_EM, test): not a burst of their own
        return "neutrino"
    return _MISSION_KINDS.get(mission, "other")
