"""The SVOM notice types the centre can issue: Packet_Type codes, IVORN names, notice levels.

Why a table in code and not configuration: these are the FSC's published conventions
(fsc.svom.org, "Notices levels"): what a subscriber's filter keys on. An instrument's *content*
(its parameters, its How text) is the operator's business and lives in files
(:mod:`.instruments`); a new parameter needs no code change, a new Packet_Type does.

The IVORN of a notice is ``ivo://<stream>#<burst id>_<name>[_<qualifier>][_r<revision>]``:
``name`` is the FSC's notice type (``eclairs-wakeup``, ``slewing``, ``mxt-initial``), the
qualifier what the pipeline adds (MXT's quality factor ``qf1``), the revision counter only
where the same name repeats for one burst (the first has none, as FSC IVORNs do).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NoticeKind:
    """One notice type: what a request's ``type`` names."""

    #: The FSC notice type, also the IVORN's name part.
    name: str
    packet_type: int
    #: The notice level's digit: ``N<level><instrument letter>`` (N1e, N2m, N3e).
    level: int
    #: Instruments that issue it (canonical spelling); empty: any (a retraction).
    instruments: tuple[str, ...]
    summary: str
    retraction: bool = False


KINDS: tuple[NoticeKind, ...] = (
    NoticeKind("grm-trigger", 201, 1, ("GRM",), "GRM trigger, with a raw localisation when three detectors saw it"),
    NoticeKind("eclairs-wakeup", 202, 1, ("ECLAIRs",), "ECLAIRs trigger of a new potential burst"),
    NoticeKind("eclairs-catalog", 203, 1, ("ECLAIRs",), "ECLAIRs trigger on a flaring source of the on-board catalogue"),
    NoticeKind("slewing", 204, 1, ("ECLAIRs",), "updated ECLAIRs localisation; the platform slews"),
    NoticeKind("not-slewing", 205, 1, ("ECLAIRs",), "updated ECLAIRs localisation; no slew"),
    NoticeKind("mxt-initial", 209, 2, ("MXT",), "MXT first localisation"),
    NoticeKind("mxt-update", 210, 2, ("MXT",), "MXT updated localisation"),
    NoticeKind("vt-candidate", 211, 2, ("VT",), "VT best candidate localisation"),
    NoticeKind("retraction", 219, 3, (), "the alert sequence is retracted: every earlier notice is cited", retraction=True),
)
_BY_NAME = {kind.name: kind for kind in KINDS}


def kind_named(name: str) -> NoticeKind | None:
    """The notice type called ``name`` (case-insensitive), or None."""
    return _BY_NAME.get(name.strip().lower())


def kind_names() -> list[str]:
    return [kind.name for kind in KINDS]
