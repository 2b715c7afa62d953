"""What a VOEvent says it is: its IVORN's parts, identifying Params, citations, instrument.

Why this exists: burst correlation and the bots group notices by these facts (a GCN TrigID, an
SVOM Burst_Id, an LVK GraceID, "which instrument saw it", "which packet does this one
supersede"), and every mission spells them differently: Params at the top of What or inside
Groups, as a ``value`` attribute or a ``Value`` element, the instrument in the IVORN's stream,
its local id or a Param. The rules that turn those spellings into one answer live here, apart
from time and position handling, so a new mission's quirk is one table entry or one branch.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from .xmlnav import child, children, local, text

__all__ = ["SELECTED_PARAMS", "citations", "labels", "params", "split_ivorn"]

#: Param names copied into ``summary["params"]`` (top level of What first, then Groups).
#: Identifiers a burst-correlation rule needs (GCN TrigID, SVOM Burst_Id, LVK GraceID,
#: GECAM/Super-K Trigger_Number, LVK-RAVEN external coincidences) and what classifies a notice.
SELECTED_PARAMS: tuple[str, ...] = (
    "Packet_Type",
    "Pkt_Ser_Num",
    "TrigID",
    "Trigger_ID",
    "Trigger_Number",
    "Segment_Num",
    "Burst_Id",
    "Notice_Level",
    "Instrument",
    "Swift_Trig_Id",
    "GraceID",
    "AlertType",
    "Group",
    "Pipeline",
    "Significant",
    "HardwareInj",
    "Instruments",
    "External_Ivorn",
    "External_GCN_Notice_Id",
    "External_Observatory",
)
_SELECTED = frozenset(SELECTED_PARAMS)

_CITE_TYPES = frozenset({"followup", "supersedes", "retraction"})

_GCN_LABELS = {
    "SWIFT": "Swift",
    "FERMI": "Fermi",
    "INTEGRAL": "INTEGRAL",
    "AGILE": "AGILE",
    "MAXI": "MAXI",
    "GECAM": "GECAM",
    "KONUS": "Konus-Wind",
    "IPN": "IPN",
    "CALET": "CALET",
    "SNEWS": "SNEWS",
    "SK_SN": "Super-Kamiokande",
    "MOA": "MOA",
    "HETE": "HETE-2",
    "GRO": "CGRO",
    "ANTARES_ALERT": "ANTARES",
}
_SVOM_INSTRUMENTS = {"ECLAIRS": "ECLAIRs", "GRM": "GRM", "MXT": "MXT", "VT": "VT"}
_SVOM_LOCAL_RE = re.compile(r"_(eclairs|grm|mxt|vt)(?:[-_]|\Z)", re.IGNORECASE)


def split_ivorn(ivorn: str | None) -> tuple[str | None, str | None]:
    """(stream, local_id) of 'ivo://stream#local_id'; parts that are absent are None."""
    if not ivorn or not ivorn.startswith("ivo://"):
        return None, None
    stream, sep, local_id = ivorn[len("ivo://") :].partition("#")
    return (stream or None), (local_id if sep and local_id else None)


def _param_value(param: etree._Element) -> str | None:
    value = param.get("value")
    if value is None:
        value = text(child(param, "Value"))
    return value


def params(root: etree._Element) -> dict[str, str]:
    """Selected Params by name: What's own Params first, then those inside Groups."""
    what = child(root, "What")
    found: dict[str, str] = {}
    if what is None:
        return found
    nested: list[etree._Element] = []
    for el in what:
        name = local(el.tag)
        if name == "Param":
            key = el.get("name")
            if key in _SELECTED and key not in found:
                value = _param_value(el)
                if value is not None:
                    found[key] = value
        elif name == "Group":
            nested.extend(c for c in el if local(c.tag) == "Param")
    for el in nested:
        key = el.get("name")
        if key in _SELECTED and key not in found:
            value = _param_value(el)
            if value is not None:
                found[key] = value
    return found


def citations(root: etree._Element) -> tuple[list[dict[str, Any]], str | None]:
    """([{ivorn, type}], Citations/Description); a type outside the three known ones is None."""
    cits = child(root, "Citations")
    out: list[dict[str, Any]] = []
    for ev in children(cits, "EventIVORN"):
        ivorn = text(ev)
        if ivorn is None:  # ANTARES sends <EventIVORN cite="followup"></EventIVORN>
            continue
        cite = (ev.get("cite") or "").strip()
        out.append({"ivorn": ivorn, "type": cite if cite in _CITE_TYPES else None})
    return out, text(child(cits, "Description"))


def labels(
    stream: str | None, local_id: str | None, params: dict[str, str]
) -> tuple[str | None, str | None]:
    """(instrument, mission) labels from the stream, the local id and the params."""
    if not stream:
        return None, None
    authority, _, path = stream.partition("/")
    last = path.rstrip("/").rpartition("/")[2] or authority
    local_part = local_id or ""
    upper_local = local_part.upper()
    authority_l = authority.lower()
    if authority_l == "gwnet":
        return "LVK", "LVK"
    if authority_l == "org.svom" or last.lower() == "svom":
        name = (params.get("Instrument") or "").strip().upper()
        label = _SVOM_INSTRUMENTS.get(name)
        if label is None:
            m = _SVOM_LOCAL_RE.search(local_part)
            label = _SVOM_INSTRUMENTS.get(m.group(1).upper()) if m else None
        return (f"SVOM/{label}" if label else "SVOM"), "SVOM"
    if last.lower() == "einsteinprobe":
        return "EP/WXT", "EP"
    if authority_l == "nasa.gsfc.gcn":
        key = last.upper()
        label = _GCN_LABELS.get(key)
        if key == "SWIFT":
            for prefix in ("BAT", "XRT", "UVOT"):
                if upper_local.startswith(prefix + "_"):
                    return f"Swift/{prefix}", last
            return "Swift", last
        if key == "FERMI":
            for prefix in ("GBM", "LAT"):
                if upper_local.startswith(prefix + "_"):
                    return f"Fermi/{prefix}", last
            return "Fermi", last
        if key == "INTEGRAL":
            return ("INTEGRAL/SPI-ACS" if upper_local.startswith("SPIACS") else "INTEGRAL"), last
        if key == "AGILE" and "MCAL" in upper_local:
            return "AGILE/MCAL", last
        if key == "AMON":
            if upper_local.startswith("ICECUBE"):
                return "IceCube", last
            if upper_local.startswith("HAWC"):
                return "HAWC", last
            return "AMON", last
        if label is not None:
            return label, last
    return stream, last
