"""The notice VOEvent from a recorded decision, built with voevent-parse (pure, deterministic).

The decision (``publication.issued`` data, :mod:`.decide`) holds every value, so the same
decision renders the same bytes whatever the configuration or the clock says now: a submission
repeated after a crash finds the packet the ingest already has (``duplicate``), never a
conflict. The layout follows the FSC's notices: ``Packet_Type``, ``Pkt_Ser_Num``,
``Instrument``, the ``Svom_Identifiers`` group (``Notice_Level``, ``Burst_Id``), the
instrument's groups, ``WhereWhen`` in ``UTC-ICRS-GEO`` from ``GEOLEO``, ``How``, and
``Citations``.

voevent-parse 1.0.3 on Python ≥ 3.10: its ``_listify`` uses the removed
``collections.Iterable``, so ``add_citations`` and ``add_how`` with a reference raise; those
elements are appended here directly (voevent-parse's own element builders, not its list
helpers). Its ``Voevent()`` also writes a ``Who/Description`` naming its version, dropped here:
the bytes must not change with a library upgrade.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import voeventparse as vp
from lxml import etree

from burstbus.events import parse_time

#: The FSC's coordinate system and observatory location.
COORD_SYSTEM = "UTC-ICRS-GEO"
OBSERVATORY = "GEOLEO"


def _naive_utc(moment: str) -> datetime:
    return parse_time(moment).astimezone(UTC).replace(tzinfo=None)


def render_notice(issued: Mapping[str, Any]) -> bytes:
    """The packet's bytes (UTF-8, with an XML declaration)."""
    ivorn = str(issued["ivorn"])
    stream, _, local = ivorn[len("ivo://"):].partition("#")
    v = vp.Voevent(stream=stream, stream_id=local, role=str(issued.get("role") or "observation"))
    del v.Who.Description  # names voevent-parse's version: not part of what we say
    author = issued.get("author") or {}
    vp.set_who(v, date=parse_time(str(issued["authored"])).replace(microsecond=0),
               author_ivorn=str(author.get("ivorn", "")).removeprefix("ivo://") or None)
    vp.set_author(v, title=author.get("title"), shortName=author.get("short_name"),
                  contactName=author.get("contact_name"), contactEmail=author.get("contact_email"))
    _what(v, issued)
    _where_when(v, issued)
    how = issued.get("how")
    if how:
        vp.add_how(v, descriptions=str(how["description"]))
        if how.get("reference"):
            v.How.append(vp.Reference(str(how["reference"])))
    _citations(v, issued)
    return bytes(vp.dumps(v, pretty_print=True))


def _what(v: Any, issued: Mapping[str, Any]) -> None:
    v.What.append(vp.Param("Packet_Type", value=str(issued["packet_type"]), ucd="meta.id", ac=False))
    v.What.append(vp.Param("Pkt_Ser_Num", value=str(issued["revision"]), ucd="meta.id", ac=False))
    v.What.append(vp.Param("Instrument", value=str(issued["instrument"]), ucd="instr", ac=False))
    v.What.append(vp.Group([
        vp.Param("Notice_Level", value=str(issued["level"]), ucd="meta.id", ac=False),
        vp.Param("Burst_Id", value=str(issued["burst_id"]), ucd="meta.id", ac=False),
    ], name="Svom_Identifiers"))
    for group in issued.get("groups") or ():
        params = [vp.Param(str(p["name"]), value=str(p["value"]), unit=p.get("unit"), ucd=p.get("ucd"), ac=False)
                  for p in group["params"]]
        v.What.append(vp.Group(params, name=str(group["name"])))


def _where_when(v: Any, issued: Mapping[str, Any]) -> None:
    ra, dec, err = issued.get("ra"), issued.get("dec"), issued.get("err")
    has_position = ra is not None and dec is not None
    coords = vp.Position2D(ra=float(ra) if ra is not None else 0.0, dec=float(dec) if dec is not None else 0.0,
                           err=float(err) if err is not None else 0.0, units="deg", system=COORD_SYSTEM)
    vp.add_where_when(v, coords=coords, obs_time=_naive_utc(str(issued["time"])), observatory_location=OBSERVATORY,
                      allow_tz_naive_datetime=True)
    position = v.WhereWhen.ObsDataLocation.ObservationLocation.AstroCoords.Position2D
    if not has_position:  # a GRM trigger from two detectors, a retraction of a burst never placed
        position.getparent().remove(position)
    elif err is None:
        position.remove(position.Error2Radius)


def _citations(v: Any, issued: Mapping[str, Any]) -> None:
    cited = issued.get("citations") or []
    if not cited:
        return
    citations = etree.SubElement(v, "Citations")
    for citation in cited:
        citations.append(vp.EventIvorn(str(citation["ivorn"]), str(citation["type"])))
    if issued.get("reason"):
        citations.Description = str(issued["reason"])  # objectify: a child element with this text
