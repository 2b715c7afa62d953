"""Shared by the per-module summary tests: how a summary is obtained and compared."""

from __future__ import annotations

import json

import astropy.units as u
from astropy.coordinates import SkyCoord

from burstbus.voevent import examine, parse_xml, summarize

LIMIT = 1_048_576
MAS = 1.0 / 3_600_000.0

KEYS = {
    "ivorn",
    "stream",
    "local_id",
    "role",
    "version",
    "author_ivorn",
    "authored",
    "time",
    "position",
    "citations",
    "citation_description",
    "params",
    "instrument",
    "mission",
}


def summary(raw: bytes, *, validate: bool = True) -> dict:
    """Summary via examine() (schema-valid packets) or straight from the tree."""
    if validate:
        return examine(raw).summary
    return summarize(parse_xml(raw, LIMIT))


def sep_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    a = SkyCoord(ra1 * u.deg, dec1 * u.deg)
    b = SkyCoord(ra2 * u.deg, dec2 * u.deg)
    return float(a.separation(b).deg)


def assert_json_clean(s: dict) -> None:
    text = json.dumps(s, allow_nan=False, sort_keys=True)
    assert json.loads(text) == s
