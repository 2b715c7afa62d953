"""Topic lists by mission, so an operator writes ``presets = ["svom", "lvk"]`` instead of 20 names.

Names from GCN's public documentation (gcn.nasa.gov/docs/notices, checked 2026-12). SVOM's
notices are VOEvent only (``.vt`` is announced, not yet published: subscribing to a topic
that does not exist yet is harmless, it is reported by ``burstbus kafka check`` and read once
it appears). LVK is JSON only since 2026-07 (``igwn.gwalert``). A preset never includes
``gcn.heartbeat``: that is the upstream's ``heartbeat`` setting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

PRESETS: Mapping[str, tuple[str, ...]] = {
    "svom": (
        "gcn.notices.svom.voevent.eclairs",
        "gcn.notices.svom.voevent.grm",
        "gcn.notices.svom.voevent.mxt",
        "gcn.notices.svom.voevent.vt",
    ),
    "swift": (
        "gcn.classic.voevent.SWIFT_BAT_GRB_POS_ACK",
        "gcn.classic.voevent.SWIFT_XRT_POSITION",
        "gcn.classic.voevent.SWIFT_UVOT_POS",
        "gcn.notices.swift.bat.guano",
    ),
    "fermi": (
        "gcn.classic.voevent.FERMI_GBM_ALERT",
        "gcn.classic.voevent.FERMI_GBM_FLT_POS",
        "gcn.classic.voevent.FERMI_GBM_GND_POS",
        "gcn.classic.voevent.FERMI_GBM_FIN_POS",
        "gcn.classic.voevent.FERMI_GBM_SUBTHRESH",
    ),
    "lvk": ("igwn.gwalert",),
    "ep": ("gcn.notices.einstein_probe.wxt.alert",),
    "icecube": (
        "gcn.classic.voevent.ICECUBE_ASTROTRACK_GOLD",
        "gcn.classic.voevent.ICECUBE_ASTROTRACK_BRONZE",
        "gcn.notices.icecube.lvk_nu_track_search",
    ),
}


def expand(presets: Iterable[str], topics: Iterable[str]) -> tuple[str, ...]:
    """The topics of ``presets`` then ``topics``, each once, in that order.

    An unknown preset raises ``KeyError`` with its name (the config check turns it into a
    ``ConfigError`` naming the key)."""
    out: list[str] = []
    for name in presets:
        out.extend(PRESETS[name.lower()])
    out.extend(topics)
    return tuple(dict.fromkeys(out))
