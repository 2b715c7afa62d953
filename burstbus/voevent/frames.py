"""Read a VOEvent coordinate system and units, and put a sky position into ICRS degrees.

Why this exists: burst correlation compares positions from every mission, so each one must be
in the same frame and unit whatever the packet used; and this is the only code that needs
astropy's coordinate machinery, kept here behind three small rotation matrices so a packet
costs a few microseconds, not astropy's per-call overhead.

Every ``AstroCoordSystem`` id in the ~2,000 real GCN/SVOM/LVK/4PiSky/Gaia packets looked at is
one of ``UTC-FK5-GEO`` (GCN, LVK), ``UTC-ICRS-GEO`` (SVOM, ASAS-SN), ``UTC-FK5-TOPO``
(Catalina), ``TDB-ICRS-BARY`` (Gaia), ``FK5-UTC-GEO`` (GCN's Fermi 1.1 packets; same system,
tokens swapped) and ``UTC-GEOD-TOPO`` (only as an ObservatoryLocation, never the event's
position). :func:`parse_system` reads the id as a set of tokens, so any order works:

* space frame: ``ICRS`` as is; ``FK5`` (J2000) and ``GALACTIC``/``GAL``/``GALACTIC_II`` and
  ``ECLIPTIC``/``ECL`` (J2000 mean ecliptic) are rotated to ICRS with 3x3 matrices that astropy
  computes once per process; they are then applied in pure Python (a few microseconds).
  The reference position (GEO/TOPO/BARY) is ignored: it shifts a position by far less than
  any GRB error circle. Other frames (FK4, GEOD...) are reported as not usable.
* time scale: the id's time token (one of :data:`~burstbus.voevent.times.TIME_SCALES`) is
  returned for :func:`~burstbus.voevent.times.iso_utc`.
* units (:func:`angle_factor`): ``deg``, ``arcmin``, ``arcsec``, ``mas``, ``rad``; compound
  ``deg-deg`` gives one unit per coordinate. No unit at all means degrees.
"""

from __future__ import annotations

import math
import re
import threading

from .times import TIME_SCALES, prepare_astropy

__all__ = ["angle_factor", "matrix", "parse_system", "to_icrs"]

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


_matrices_lock = threading.Lock()
_matrices: dict[str, tuple[tuple[float, float, float], ...] | None] | None = None


def _build_matrices() -> dict[str, tuple[tuple[float, float, float], ...] | None]:
    """Rotation matrices frame -> ICRS, computed once with astropy.

    Column j of a matrix is the image in ICRS of the frame's j-th unit vector, found by
    transforming the three unit vectors with astropy; all these transforms are pure rotations.
    """
    prepare_astropy()
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


def matrix(frame: str) -> tuple[tuple[float, float, float], ...] | None:
    """Rotation ``frame`` -> ICRS (None for ICRS itself); the first call builds them all."""
    global _matrices
    if _matrices is None:
        with _matrices_lock:
            if _matrices is None:
                _matrices = _build_matrices()
    return _matrices[frame]


def to_icrs(frame: str, lon: float, lat: float) -> tuple[float, float]:
    """Rotate (lon, lat) in degrees from ``frame`` to ICRS (ra, dec) in degrees."""
    m = matrix(frame)
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


def parse_system(system_id: str | None) -> tuple[str | None, str | None, bool]:
    """Split a coordinate-system id into (time scale, frame, frame_known).

    Tokens may come in any order ("UTC-FK5-GEO", "FK5-UTC-GEO"). ``frame`` is a key of the
    rotation table, or None; ``frame_known`` is False if a frame token is present but is one
    we cannot turn into a sky position.
    """
    scale: str | None = None
    frame: str | None = None
    known = True
    for token in re.split(r"[-\s]+", (system_id or "").upper()):
        if token in TIME_SCALES and scale is None:
            scale = token
        elif token in _FRAMES and frame is None:
            frame = _FRAMES[token]
        elif token in _OTHER_FRAMES:
            known = False
    return scale, frame, known


def angle_factor(unit: str | None, index: int) -> float | None:
    """Degrees per unit for coordinate ``index`` of a (possibly compound) unit; None if unknown."""
    if unit is None or not unit.strip():
        return 1.0
    parts = [p for p in unit.strip().split("-") if p]
    part = parts[index] if index < len(parts) else parts[0]
    return _ANGLE_TO_DEG.get(part.strip().lower())
