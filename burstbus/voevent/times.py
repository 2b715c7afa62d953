"""Turn a VOEvent's ISO-8601 time, in whatever time scale it names, into one UTC string.

Why this exists: every time burstbus keeps (event time, position time, authored date) must be
comparable across missions and byte-for-byte reproducible on ``rebuild``, so all of them go
through :func:`iso_utc` and come out as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC, or ``None``.
Real packets carry odd times (GCN dates like ``2026-01--9130T00:00:00``, hours like ``569``),
so parsing never raises.

* ``UTC`` is parsed directly; ``TT``, ``TAI``, ``TDB``, ``TCG``, ``TCB`` and ``GPS``
  (= TAI - 19 s) are converted to UTC with astropy.time (no light-travel-time correction for
  BARY: the instant is re-expressed in the UTC scale). Which scale applies is the caller's
  business (a ``TimeScale`` element wins over the coordinate-system id; no scale named at all:
  UTC).
* A leap second (``:60``) is clamped to ``:59.999999``.
* astropy is imported lazily and its one-time leap-second check is made to run offline
  (:func:`prepare_astropy`), so nothing here reaches the network.
"""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta

__all__ = ["TIME_SCALES", "iso_utc", "prepare_astropy"]

_ISO_RE = re.compile(
    r"\s*(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?\s*\Z",
    re.IGNORECASE,
)

#: Time-scale tokens recognised in a coordinate-system id or a ``TimeScale`` element.
TIME_SCALES = frozenset({"UTC", "TT", "TAI", "TDB", "TCG", "TCB", "GPS", "TDT", "ET", "UT1"})
_ASTROPY_SCALES = {
    "TT": "tt",
    "TDT": "tt",
    "ET": "tt",
    "TAI": "tai",
    "TDB": "tdb",
    "TCG": "tcg",
    "TCB": "tcb",
}


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


def iso_utc(text: str | None, scale: str = "UTC") -> str | None:
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


def prepare_astropy() -> None:
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
    prepare_astropy()
    from astropy.time import Time

    try:
        utc = Time(dt, scale=astropy_scale).utc
        return utc.to_datetime()
    except Exception:  # out-of-range dates, leap-second instants
        return None
