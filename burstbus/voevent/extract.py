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

Coordinates. Every ``AstroCoordSystem`` id in the ~2,000 real GCN/SVOM/LVK/4PiSky/Gaia packets
looked at is one of ``UTC-FK5-GEO`` (GCN, LVK), ``UTC-ICRS-GEO`` (SVOM, ASAS-SN),
``UTC-FK5-TOPO`` (Catalina), ``TDB-ICRS-BARY`` (Gaia), ``FK5-UTC-GEO`` (GCN's Fermi 1.1 packets;
same system, tokens swapped) and ``UTC-GEOD-TOPO`` (only as an ObservatoryLocation, never the
event's position). The id is read as a set of tokens, so any order works:

* space frame: ``ICRS`` as is; ``FK5`` (J2000) and ``GALACTIC``/``GAL``/``GALACTIC_II`` and
  ``ECLIPTIC``/``ECL`` (J2000 mean ecliptic) are rotated to ICRS with 3x3 matrices that astropy
  computes once per process; they are then applied in pure Python (a few microseconds).
  The reference position (GEO/TOPO/BARY) is ignored: it shifts a position by far less than
  any GRB error circle. Other frames (FK4, GEOD...) give ``position: None``.
* time scale: ``UTC`` is parsed directly; ``TT``, ``TAI``, ``TDB``, ``TCG``, ``TCB`` and
  ``GPS`` (= TAI - 19 s) are converted to UTC with astropy.time (no light-travel-time
  correction for BARY: the instant is re-expressed in the UTC scale). A ``TimeScale`` element
  in the ``TimeInstant`` wins over the system id. No scale named at all: UTC is assumed.
  A leap second (``:60``) is clamped to ``:59.999999``.
* units: ``Position2D/@unit`` (default ``deg``; ``deg``, ``arcmin``, ``arcsec``, ``mas``, ``rad``;
  compound ``deg-deg``) applies to C1, C2 and ``Error2Radius`` unless the element carries its own
  ``unit``/``pos_unit`` attribute (STC 1.30 allows ``pos_unit``).

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

import math
import re
import threading
from datetime import datetime, timedelta
from typing import Any

from lxml import etree

__all__ = ["SELECTED_PARAMS", "summarize", "warm_up"]

_V2_0_NS = "http://www.ivoa.net/xml/VOEvent/v2.0"
_V1_1_NS = "http://www.ivoa.net/xml/VOEvent/v1.1"
_VERSION_OF_NS = {_V2_0_NS: "2.0", _V1_1_NS: "1.1"}
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"

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

_ISO_RE = re.compile(
    r"\s*(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?\s*\Z",
    re.IGNORECASE,
)

_TIME_SCALES = frozenset({"UTC", "TT", "TAI", "TDB", "TCG", "TCB", "GPS", "TDT", "ET", "UT1"})
_ASTROPY_SCALES = {
    "TT": "tt",
    "TDT": "tt",
    "ET": "tt",
    "TAI": "tai",
    "TDB": "tdb",
    "TCG": "tcg",
    "TCB": "tcb",
}
_FRAMES = {
    "ICRS": "ICRS",
    "FK5": "FK5",
    "J2000": "FK5",
    "GAL": "GALACTIC",
    "GALACTIC": "GALACTIC",
    "GALACTIC_II": "GALACTIC",
    "ECL": "ECLIPTIC",
    "ECLIPTIC": "ECLIPTIC",
}
#: Frames named in system ids that we recognise but cannot turn into a sky position.
_OTHER_FRAMES = frozenset({"FK4", "B1950", "GALACTIC_I", "SUPER_GALACTIC", "GEOD", "GEOC"})

_ANGLE_TO_DEG = {
    "deg": 1.0,
    "degree": 1.0,
    "degrees": 1.0,
    "arcmin": 1.0 / 60.0,
    "arcsec": 1.0 / 3600.0,
    "mas": 1.0 / 3_600_000.0,
    "rad": 180.0 / math.pi,
    "radian": 180.0 / math.pi,
    "radians": 180.0 / math.pi,
}

_KIND_RE = re.compile(r"coordinates are of the type:\s*([A-Za-z_/]+)", re.IGNORECASE)

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


# --------------------------------------------------------------------------- tree helpers


def _local(tag: object) -> str:
    """Local name of a tag ('' for comments and processing instructions)."""
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def _child(el: etree._Element | None, name: str) -> etree._Element | None:
    """First child of ``el`` with local name ``name``, in any namespace (1.1 uses STC's)."""
    if el is None:
        return None
    for child in el:
        tag = child.tag
        if isinstance(tag, str) and (tag == name or tag.endswith("}" + name)):
            return child
    return None


def _children(el: etree._Element | None, name: str) -> list[etree._Element]:
    if el is None:
        return []
    return [c for c in el if isinstance(c.tag, str) and _local(c.tag) == name]


def _path(el: etree._Element | None, *names: str) -> etree._Element | None:
    for name in names:
        el = _child(el, name)
        if el is None:
            return None
    return el


def _text(el: etree._Element | None) -> str | None:
    """Stripped text of an element, None if absent or blank."""
    if el is None or el.text is None:
        return None
    text = el.text.strip()
    return text or None


# --------------------------------------------------------------------------- time


def _format_utc(dt: datetime) -> str:
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T"
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}.{dt.microsecond:06d}Z"
    )


def _parse_iso(text: str | None) -> datetime | None:
    """Parse an ISO-8601 date-time into a naive datetime (offset applied), or None."""
    if not text:
        return None
    m = _ISO_RE.match(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction, zone = m.group(7), m.group(8)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    if second == 60:  # leap second: datetime cannot hold it
        second, micro = 59, 999_999
    try:
        dt = datetime(year, month, day, hour, minute, second, micro)
    except ValueError:
        return None
    if zone and zone.upper() != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        try:
            dt -= sign * offset
        except OverflowError:
            return None
    return dt


def _iso_utc(text: str | None, scale: str = "UTC") -> str | None:
    """ISO text in time scale ``scale`` -> 'YYYY-MM-DDTHH:MM:SS.ffffffZ' in UTC, or None."""
    dt = _parse_iso(text)
    if dt is None:
        return None
    if scale != "UTC":
        dt = _scale_to_utc(dt, scale)
        if dt is None:
            return None
    return _format_utc(dt)


_astropy_lock = threading.Lock()
_astropy_ready = False


def _prepare_astropy() -> None:
    """Import astropy once and make its one-time leap-second check run offline.

    astropy checks its leap-second table on the first UTC conversion of the process and,
    if the bundled table is getting old, downloads a new one. burstbus must not reach the
    network from here, so the check is triggered once with downloads switched off.
    """
    global _astropy_ready
    if _astropy_ready:
        return
    with _astropy_lock:
        if _astropy_ready:
            return
        from astropy.time import Time
        from astropy.utils import iers

        with iers.conf.set_temp("auto_download", False):
            Time("2000-01-01T00:00:00", scale="tt").utc  # noqa: B018 - triggers the check
        _astropy_ready = True


def _scale_to_utc(dt: datetime, scale: str) -> datetime | None:
    """Convert a naive datetime in a non-UTC scale to UTC with astropy.time."""
    if scale == "GPS":
        dt = dt + timedelta(seconds=19)  # GPS = TAI - 19 s, exactly
        scale = "TAI"
    astropy_scale = _ASTROPY_SCALES.get(scale)
    if astropy_scale is None:  # UT1 would need IERS tables (network); unknown scales
        return None
    _prepare_astropy()
    from astropy.time import Time

    try:
        utc = Time(dt, scale=astropy_scale).utc
        return utc.to_datetime()
    except Exception:  # out-of-range dates, leap-second instants
        return None


# --------------------------------------------------------------------------- coordinates


_matrices_lock = threading.Lock()
_matrices: dict[str, tuple[tuple[float, float, float], ...] | None] | None = None


def _build_matrices() -> dict[str, tuple[tuple[float, float, float], ...] | None]:
    """Rotation matrices frame -> ICRS, computed once with astropy.

    Column j of a matrix is the image in ICRS of the frame's j-th unit vector, found by
    transforming the three unit vectors with astropy; all these transforms are pure rotations.
    """
    _prepare_astropy()
    import astropy.units as u
    import numpy as np
    from astropy.coordinates import (
        FK5,
        ICRS,
        BarycentricMeanEcliptic,
        Galactic,
        UnitSphericalRepresentation,
    )

    basis = UnitSphericalRepresentation(lon=[0.0, 90.0, 0.0] * u.deg, lat=[0.0, 0.0, 90.0] * u.deg)
    frames = {
        "FK5": FK5(equinox="J2000"),
        "GALACTIC": Galactic(),
        "ECLIPTIC": BarycentricMeanEcliptic(equinox="J2000"),
    }
    out: dict[str, tuple[tuple[float, float, float], ...] | None] = {"ICRS": None}
    for name, frame in frames.items():
        icrs = frame.realize_frame(basis).transform_to(ICRS())
        m = np.asarray(icrs.cartesian.xyz.value, dtype=float)  # shape (3, 3): columns
        if not np.allclose(m @ m.T, np.eye(3), atol=1e-12):
            raise RuntimeError(f"{name} -> ICRS is not a rotation")
        out[name] = tuple((float(row[0]), float(row[1]), float(row[2])) for row in m)
    return out


def _matrix(frame: str) -> tuple[tuple[float, float, float], ...] | None:
    global _matrices
    if _matrices is None:
        with _matrices_lock:
            if _matrices is None:
                _matrices = _build_matrices()
    return _matrices[frame]


def _to_icrs(frame: str, lon: float, lat: float) -> tuple[float, float]:
    """Rotate (lon, lat) in degrees from ``frame`` to ICRS (ra, dec) in degrees."""
    m = _matrix(frame)
    if m is None:
        return lon % 360.0, lat
    lo, la = math.radians(lon), math.radians(lat)
    cl = math.cos(la)
    v0, v1, v2 = cl * math.cos(lo), cl * math.sin(lo), math.sin(la)
    x = m[0][0] * v0 + m[0][1] * v1 + m[0][2] * v2
    y = m[1][0] * v0 + m[1][1] * v1 + m[1][2] * v2
    z = m[2][0] * v0 + m[2][1] * v1 + m[2][2] * v2
    ra = math.degrees(math.atan2(y, x)) % 360.0
    dec = math.degrees(math.atan2(z, math.hypot(x, y)))
    return ra, dec


def _parse_system(system_id: str | None) -> tuple[str | None, str | None, bool]:
    """Split a coordinate-system id into (time scale, frame, frame_known).

    Tokens may come in any order ("UTC-FK5-GEO", "FK5-UTC-GEO"). ``frame`` is a key of the
    rotation table, or None; ``frame_known`` is False if a frame token is present but is one
    we cannot turn into a sky position.
    """
    scale: str | None = None
    frame: str | None = None
    known = True
    for token in re.split(r"[-\s]+", (system_id or "").upper()):
        if token in _TIME_SCALES and scale is None:
            scale = token
        elif token in _FRAMES and frame is None:
            frame = _FRAMES[token]
        elif token in _OTHER_FRAMES:
            known = False
    return scale, frame, known


def _angle_factor(unit: str | None, index: int) -> float | None:
    """Degrees per unit for coordinate ``index`` of a (possibly compound) unit; None if unknown."""
    if unit is None or not unit.strip():
        return 1.0
    parts = [p for p in unit.strip().split("-") if p]
    part = parts[index] if index < len(parts) else parts[0]
    return _ANGLE_TO_DEG.get(part.strip().lower())


def _own_unit(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    return el.get("unit") or el.get("pos_unit")


def _number(el: etree._Element | None) -> float | None:
    text = _text(el)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _coords_kind(wherewhen: etree._Element | None) -> str | None:
    """GCN's statement of what the coordinates are (WhereWhen/Description), lower case."""
    for desc in _children(wherewhen, "Description"):
        m = _KIND_RE.search(desc.text or "")
        if m:
            return m.group(1).strip().rstrip(".").lower()
    return None


def _time_scale(coords: etree._Element, system_scale: str | None) -> str:
    scale_el = _path(coords, "Time", "TimeInstant", "TimeScale")
    named = (_text(scale_el) or "").upper()
    if named in _TIME_SCALES:
        return named
    return system_scale or "UTC"


def _where_when(root: etree._Element) -> dict[str, Any]:
    """Event time and ICRS position from WhereWhen: {"time": ..., "position": ...}."""
    wherewhen = _child(root, "WhereWhen")
    location = _path(wherewhen, "ObsDataLocation", "ObservationLocation")
    coords = _child(location, "AstroCoords")
    if coords is None:
        return {"time": None, "position": None}
    system_el = _child(location, "AstroCoordSystem")
    system_id = (system_el.get("id") if system_el is not None else None) or coords.get(
        "coord_system_id"
    )
    scale, frame, frame_known = _parse_system(system_id)
    if (scale is None or frame is None) and system_el is not None:
        # STC 1.30 (VOEvent 1.1) ids are free-form; the STClib name is in xlink:href.
        href = system_el.get(_XLINK_HREF) or ""
        h_scale, h_frame, h_known = _parse_system(href.rpartition("#")[2].strip("/"))
        scale = scale or h_scale
        if frame is None:
            frame, frame_known = h_frame, frame_known and h_known

    time: str | None = None
    try:
        time = _iso_utc(
            _text(_path(coords, "Time", "TimeInstant", "ISOTime")), _time_scale(coords, scale)
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
    pos = _child(coords, "Position2D")
    value = _child(pos, "Value2")
    if pos is None or value is None or frame is None or not frame_known:
        return None
    kind = _coords_kind(wherewhen)
    if kind is not None and kind.startswith("unavailable"):
        return None
    unit = pos.get("unit")
    c1_el, c2_el = _child(value, "C1"), _child(value, "C2")
    c1, c2 = _number(c1_el), _number(c2_el)
    f1 = _angle_factor(_own_unit(c1_el) or unit, 0)
    f2 = _angle_factor(_own_unit(c2_el) or unit, 1)
    if c1 is None or c2 is None or f1 is None or f2 is None:
        return None
    lon, lat = c1 * f1, c2 * f2
    if not (0.0 <= lon <= 360.0 and -90.0 <= lat <= 90.0):
        return None
    if lon == 0.0 and lat == 0.0:
        return None
    err_el = _child(pos, "Error2Radius")
    err = _number(err_el)
    fe = _angle_factor(_own_unit(err_el) or unit, 0)
    if err is not None and fe is not None:
        err *= fe
        if err >= 180.0:
            return None
        if err <= 0.0:
            err = None
    else:
        err = None
    ra, dec = _to_icrs(frame, lon, lat)
    return {
        "ra": round(ra, 8),
        "dec": round(dec, 8),
        "err": None if err is None else round(err, 10),
        "time": time,
        "system": system_id,
        "kind": kind,
    }


# --------------------------------------------------------------------------- the rest


def _split_ivorn(ivorn: str | None) -> tuple[str | None, str | None]:
    """(stream, local_id) of 'ivo://stream#local_id'; parts that are absent are None."""
    if not ivorn or not ivorn.startswith("ivo://"):
        return None, None
    stream, sep, local = ivorn[len("ivo://") :].partition("#")
    return (stream or None), (local if sep and local else None)


def _param_value(param: etree._Element) -> str | None:
    value = param.get("value")
    if value is None:
        value = _text(_child(param, "Value"))
    return value


def _params(root: etree._Element) -> dict[str, str]:
    """Selected Params by name: What's own Params first, then those inside Groups."""
    what = _child(root, "What")
    found: dict[str, str] = {}
    if what is None:
        return found
    nested: list[etree._Element] = []
    for el in what:
        name = _local(el.tag)
        if name == "Param":
            key = el.get("name")
            if key in _SELECTED and key not in found:
                value = _param_value(el)
                if value is not None:
                    found[key] = value
        elif name == "Group":
            nested.extend(c for c in el if _local(c.tag) == "Param")
    for el in nested:
        key = el.get("name")
        if key in _SELECTED and key not in found:
            value = _param_value(el)
            if value is not None:
                found[key] = value
    return found


def _citations(root: etree._Element) -> tuple[list[dict[str, Any]], str | None]:
    cits = _child(root, "Citations")
    out: list[dict[str, Any]] = []
    for ev in _children(cits, "EventIVORN"):
        ivorn = _text(ev)
        if ivorn is None:  # ANTARES sends <EventIVORN cite="followup"></EventIVORN>
            continue
        cite = (ev.get("cite") or "").strip()
        out.append({"ivorn": ivorn, "type": cite if cite in _CITE_TYPES else None})
    return out, _text(_child(cits, "Description"))


def _labels(
    stream: str | None, local_id: str | None, params: dict[str, str]
) -> tuple[str | None, str | None]:
    """(instrument, mission) labels from the stream, the local id and the params."""
    if not stream:
        return None, None
    authority, _, path = stream.partition("/")
    last = path.rstrip("/").rpartition("/")[2] or authority
    local = local_id or ""
    upper_local = local.upper()
    authority_l = authority.lower()
    if authority_l == "gwnet":
        return "LVK", "LVK"
    if authority_l == "org.svom" or last.lower() == "svom":
        name = (params.get("Instrument") or "").strip().upper()
        label = _SVOM_INSTRUMENTS.get(name)
        if label is None:
            m = _SVOM_LOCAL_RE.search(local)
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
    stream, local_id = _safe(_split_ivorn, ivorn, default=(None, None))
    role = _safe(lambda: (root.get("role") or "observation").strip())
    version = _safe(lambda: _VERSION_OF_NS.get(root.tag.partition("}")[0].lstrip("{")))
    who = _safe(_child, root, "Who")
    author_ivorn = _safe(lambda: _text(_child(who, "AuthorIVORN")))
    authored = _safe(lambda: _iso_utc(_text(_child(who, "Date"))))
    where_when = _safe(_where_when, root, default={"time": None, "position": None})
    citations, citation_description = _safe(_citations, root, default=([], None))
    params = _safe(_params, root, default={})
    instrument, mission = _safe(_labels, stream, local_id, params, default=(stream, None))
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
    _matrix("FK5")
