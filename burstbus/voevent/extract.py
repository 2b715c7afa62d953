"""Read, once, the facts about a VOEvent that burstbus needs downstream.

Why this exists: projections (voeventdb, bursts), handlers (burst correlation, notices) and the
bots all need the same few facts: IVORN, role, when, where, which instrument, which burst
identifiers, what it cites. :func:`summarize` extracts them into a plain JSON-ready dict that
goes into the log with the packet, so nothing downstream parses XML again and every consumer
sees the same interpretation (and ``rebuild`` reproduces it exactly).

It never raises on a schema-valid packet: each field is read defensively, and a field that
cannot be read is ``None``. Real packets are odd (GCN IVORNs with dates like
``2026-01--9130T00:00:00``, positions of ``-1/-1``), and a notice must not be lost because one
field is strange.

How it is split: :mod:`.xmlnav` walks the tree, :mod:`.times` turns times into UTC,
:mod:`.frames` reads coordinate systems and units and rotates positions to ICRS, :mod:`.labels`
reads the IVORN, Params, citations and instrument. This module puts them together and decides,
from WhereWhen, which time scale applies (a ``TimeScale`` element in the ``TimeInstant`` wins
over the system id; no scale named at all: UTC) and whether there is a position at all. A
``Position2D/@unit`` (default ``deg``) applies to C1, C2 and ``Error2Radius`` unless the
element carries its own ``unit``/``pos_unit`` attribute (STC 1.30 allows ``pos_unit``).

When there is no usable position (``position: None``), from what real notices do:

* ``WhereWhen/Description`` says the coordinates are "unavailable/inappropriate" (GCN);
* RA/Dec outside [0, 360] x [-90, 90] or not finite (IPN "Raw" sends -1/-1, older GCN -999);
* RA = Dec = 0 exactly: GCN's placeholder (Fermi GBM_Alert, INTEGRAL SPI-ACS, Konus, AGILE
  MCAL, SNEWS with error 360, ...), never a real localisation in the corpus (LVK notices
  simply have no Position2D);
* an error radius of 180 degrees or more (the whole sky).

An error radius that is zero or negative means "unknown" (Swift lightcurves send 0, SVOM
GRM and INTEGRAL offline sometimes -1): the position is kept with ``err: None``.
GCN also says what the coordinates are; ``position.kind`` carries it ("source_object" or
"pointing_direction", e.g. Swift Point_Dir, XRT_Nack_Pos, UVOT images), else ``None`` — a
burst correlator must not take a pointing direction for a burst position.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from . import frames, labels, times
from .labels import SELECTED_PARAMS
from .xmlnav import child, children, number, path, text

__all__ = ["SELECTED_PARAMS", "summarize", "warm_up"]

_V2_0_NS = "http://www.ivoa.net/xml/VOEvent/v2.0"
_V1_1_NS = "http://www.ivoa.net/xml/VOEvent/v1.1"
_VERSION_OF_NS = {_V2_0_NS: "2.0", _V1_1_NS: "1.1"}
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"

_KIND_RE = re.compile(r"coordinates are of the type:\s*([A-Za-z_/]+)", re.IGNORECASE)


def _own_unit(el: etree._Element | None) -> str | None:
    """The unit an element states for itself (STC 1.30 also spells it ``pos_unit``), or None."""
    if el is None:
        return None
    return el.get("unit") or el.get("pos_unit")


def _coords_kind(wherewhen: etree._Element | None) -> str | None:
    """GCN's statement of what the coordinates are (WhereWhen/Description), lower case."""
    for desc in children(wherewhen, "Description"):
        m = _KIND_RE.search(desc.text or "")
        if m:
            return m.group(1).strip().rstrip(".").lower()
    return None


def _time_scale(coords: etree._Element, system_scale: str | None) -> str:
    """The scale of the event time: a known ``TimeScale`` element, else the system id's, else UTC."""
    scale_el = path(coords, "Time", "TimeInstant", "TimeScale")
    named = (text(scale_el) or "").upper()
    if named in times.TIME_SCALES:
        return named
    return system_scale or "UTC"


def _where_when(root: etree._Element) -> dict[str, Any]:
    """Event time and ICRS position from WhereWhen: {"time": ..., "position": ...}."""
    wherewhen = child(root, "WhereWhen")
    location = path(wherewhen, "ObsDataLocation", "ObservationLocation")
    coords = child(location, "AstroCoords")
    if coords is None:
        return {"time": None, "position": None}
    system_el = child(location, "AstroCoordSystem")
    system_id = (system_el.get("id") if system_el is not None else None) or coords.get(
        "coord_system_id"
    )
    scale, frame, frame_known = frames.parse_system(system_id)
    if (scale is None or frame is None) and system_el is not None:
        # STC 1.30 (VOEvent 1.1) ids are free-form; the STClib name is in xlink:href.
        href = system_el.get(_XLINK_HREF) or ""
        h_scale, h_frame, h_known = frames.parse_system(href.rpartition("#")[2].strip("/"))
        scale = scale or h_scale
        if frame is None:
            frame, frame_known = h_frame, frame_known and h_known

    time: str | None = None
    try:
        time = times.iso_utc(
            text(path(coords, "Time", "TimeInstant", "ISOTime")), _time_scale(coords, scale)
        )
    except Exception:  # never lose a packet over its time
        time = None

    position: dict[str, Any] | None = None
    try:
        position = _position(wherewhen, coords, frame, frame_known, system_id, time)
    except Exception:
        position = None
    return {"time": time, "position": position}


def _position(
    wherewhen: etree._Element | None,
    coords: etree._Element,
    frame: str | None,
    frame_known: bool,
    system_id: str | None,
    time: str | None,
) -> dict[str, Any] | None:
    pos = child(coords, "Position2D")
    value = child(pos, "Value2")
    if pos is None or value is None or frame is None or not frame_known:
        return None
    kind = _coords_kind(wherewhen)
    if kind is not None and kind.startswith("unavailable"):
        return None
    unit = pos.get("unit")
    c1_el, c2_el = child(value, "C1"), child(value, "C2")
    c1, c2 = number(c1_el), number(c2_el)
    f1 = frames.angle_factor(_own_unit(c1_el) or unit, 0)
    f2 = frames.angle_factor(_own_unit(c2_el) or unit, 1)
    if c1 is None or c2 is None or f1 is None or f2 is None:
        return None
    lon, lat = c1 * f1, c2 * f2
    if not (0.0 <= lon <= 360.0 and -90.0 <= lat <= 90.0):
        return None
    if lon == 0.0 and lat == 0.0:
        return None
    err_el = child(pos, "Error2Radius")
    err = number(err_el)
    fe = frames.angle_factor(_own_unit(err_el) or unit, 0)
    if err is not None and fe is not None:
        err *= fe
        if err >= 180.0:
            return None
        if err <= 0.0:
            err = None
    else:
        err = None
    ra, dec = frames.to_icrs(frame, lon, lat)
    return {
        "ra": round(ra, 8),
        "dec": round(dec, 8),
        "err": None if err is None else round(err, 10),
        "time": time,
        "system": system_id,
        "kind": kind,
    }


def _safe(fn, *args, default=None):  # type: ignore[no-untyped-def]
    try:
        return fn(*args)
    except Exception:  # one odd field must not lose the packet
        return default


def summarize(root: etree._Element) -> dict[str, Any]:
    """The JSON-ready facts about a VOEvent tree; never raises on a schema-valid packet.

    Always the same keys; ``None`` wherever a field is absent or unreadable::

        ivorn, stream ("nasa.gsfc.gcn/SWIFT"), local_id (after "#"), role, version ("2.0"/"1.1"),
        author_ivorn, authored (Who/Date, UTC "YYYY-MM-DDTHH:MM:SS.ffffffZ"),
        time (event time, UTC, same format),
        position: None | {ra, dec (ICRS deg), err (deg | None), time, system (original id),
                          kind ("source_object" | "pointing_direction" | None)},
        citations: [{ivorn, type ("followup" | "supersedes" | "retraction" | None)}],
        citation_description, params: {name: value as in the packet} (SELECTED_PARAMS),
        instrument ("Swift/BAT", "SVOM/MXT", "LVK", ... or the stream), mission.
    """
    ivorn = _safe(lambda: (root.get("ivorn") or "").strip() or None)
    stream, local_id = _safe(labels.split_ivorn, ivorn, default=(None, None))
    role = _safe(lambda: (root.get("role") or "observation").strip())
    version = _safe(lambda: _VERSION_OF_NS.get(root.tag.partition("}")[0].lstrip("{")))
    who = _safe(child, root, "Who")
    author_ivorn = _safe(lambda: text(child(who, "AuthorIVORN")))
    authored = _safe(lambda: times.iso_utc(text(child(who, "Date"))))
    where_when = _safe(_where_when, root, default={"time": None, "position": None})
    citations, citation_description = _safe(labels.citations, root, default=([], None))
    params = _safe(labels.params, root, default={})
    instrument, mission = _safe(labels.labels, stream, local_id, params, default=(stream, None))
    return {
        "ivorn": ivorn,
        "stream": stream,
        "local_id": local_id,
        "role": role,
        "version": version,
        "author_ivorn": author_ivorn,
        "authored": authored,
        "time": where_when["time"],
        "position": where_when["position"],
        "citations": citations,
        "citation_description": citation_description,
        "params": params,
        "instrument": instrument,
        "mission": mission,
    }


def warm_up() -> None:
    """Do the one-time astropy work now (import, leap seconds, rotation matrices).

    Optional: call it at service start so the first packet with an FK5 position does not pay
    about a second for it inside the thread pool.
    """
    frames.matrix("FK5")
