"""Cross-mission coincidence: the same burst seen by two missions at (nearly) the same second.

Why this exists: SVOM's GRM and ECLAIRs and Fermi's GBM trigger on the same bright GRB within a
second or two of each other, but their notices share no identifier (``sb26042101`` vs
``fermi-798437606``) and cite nothing of each other, so identifiers alone made two unrelated
bursts of one GRB. Two gamma-ray triggers this close in time are very unlikely to be chance
(GBM triggers about once or twice a day: a random trigger falls within ±10 s of one with a
probability of ~3·10⁻⁴), so time decides, and the sky can only veto: when both sides have a
localisation with a known error, the separation must be within
``sigma × √(err₁² + err₂²)``, capped at ``max_separation`` degrees (so two all-sky-sized error
circles do not mean "anywhere").

Everything here is pure: a :class:`Sighting` is what the identifier remembers of a notice
already in a burst (its event time, position, error, mission, kind), and :func:`best_match`
picks, deterministically, the burst a new notice coincides with. The identifier records the
match (burst, matched notice, time difference, separation, allowed separation) in the
``burst.identified`` decision, so an audit sees why, and a replay reads it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from burstbus.voevent.kinds import notice_kind


@dataclass(frozen=True, slots=True)
class CoincidencePolicy:
    """The ``[bursts]`` coincidence settings (see ``burstbus.config.BurstsSection``)."""

    #: Kinds that take part (on both sides); empty: the rule is off.
    kinds: tuple[str, ...] = ("grb",)
    #: Largest difference of event times, seconds.
    window: float = 10.0
    #: Allowed separation in combined errors (1-sigma radii added in quadrature).
    sigma: float = 3.0
    #: The allowed separation never exceeds this (degrees).
    max_separation: float = 30.0


@dataclass(frozen=True, slots=True)
class Sighting:
    """One notice of a burst, as the coincidence rule needs it."""

    ivorn: str
    burst_id: str
    #: Lower-case mission (``svom``, ``fermi``).
    mission: str
    kind: str
    #: Event time, seconds since 1970 (UTC).
    time: float
    ra: float | None = None
    dec: float | None = None
    #: Error radius, degrees; None when unknown.
    err: float | None = None

    @property
    def localised(self) -> bool:
        """A position with a known error: only these can veto a coincidence."""
        return self.ra is not None and self.dec is not None and self.err is not None


@dataclass(frozen=True, slots=True)
class Match:
    """Why a notice joins ``burst_id``: its nearest notice in time there, and the sky test."""

    burst_id: str
    ivorn: str
    mission: str
    #: Event time of the new notice minus the matched one's, seconds.
    dt: float
    #: Separation from the burst's compatible localisation, degrees (None: no sky test).
    separation: float | None
    #: √(err₁² + err₂²) of that pair, degrees (None: no sky test).
    combined_err: float | None
    #: The separation allowed, degrees (None: no sky test).
    limit: float | None
    #: The localisation the sky test compared with (None: no sky test).
    position_ivorn: str | None

    def as_data(self) -> dict[str, Any]:
        """The decision's ``coincidence`` field (rounded: the log is read by people)."""
        def r(value: float | None, digits: int) -> float | None:
            return None if value is None else round(value, digits)

        return {"burst_id": self.burst_id, "ivorn": self.ivorn, "mission": self.mission, "dt": r(self.dt, 3),
                "separation": r(self.separation, 4), "combined_err": r(self.combined_err, 4), "limit": r(self.limit, 4),
                "position_ivorn": self.position_ivorn}


def epoch_seconds(value: Any) -> float | None:
    """``2026-04-21T04:13:21.170000Z`` → seconds since 1970; None if absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def sighting_of(data: Mapping[str, Any], ivorn: str, burst_id: str) -> Sighting | None:
    """What to remember of an accepted notice now in ``burst_id``; None without a mission or
    an event time (it can never be matched by time)."""
    mission = str(data.get("mission") or "").strip().lower()
    moment = epoch_seconds(data.get("time"))
    if not mission or moment is None:
        return None
    position = data.get("position")
    ra = dec = err = None
    if isinstance(position, Mapping):
        ra, dec, err = _number(position.get("ra")), _number(position.get("dec")), _number(position.get("err"))
        if position.get("kind") == "pointing_direction":  # where a spacecraft looks is not the burst
            ra = dec = err = None
        if err is not None and err <= 0:
            err = None
    return Sighting(ivorn, burst_id, mission, notice_kind(data), moment, ra, dec, err)


def separation(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Angular distance in degrees (haversine: exact for small angles too)."""
    p1, p2 = math.radians(dec1), math.radians(dec2)
    half = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(ra2 - ra1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(half))))


def _sky_test(new: Sighting, positions: list[Sighting], policy: CoincidencePolicy) -> tuple[bool, Sighting | None, float | None, float | None]:
    """(compatible, the localisation compared with, combined error, limit). No localisation on
    either side: compatible, with nothing compared. Else compatible with any of the burst's
    localisations (the closest in units of its limit is the one reported): a mission's first
    localisation may be far off and be refined later."""
    if not new.localised or not positions:
        return True, None, None, None
    best: tuple[float, Sighting, float, float] | None = None
    assert new.ra is not None and new.dec is not None and new.err is not None
    for other in positions:
        assert other.ra is not None and other.dec is not None and other.err is not None
        combined = math.hypot(new.err, other.err)
        limit = min(policy.sigma * combined, policy.max_separation)
        ratio = separation(new.ra, new.dec, other.ra, other.dec) / limit if limit > 0 else math.inf
        key = (ratio, other.ivorn)
        if best is None or key < (best[0], best[1].ivorn):
            best = (ratio, other, combined, limit)
    assert best is not None
    return best[0] <= 1.0, best[1], best[2], best[3]


def best_match(new: Sighting, near: Iterable[Sighting], sightings_of: Callable[[str], Iterable[Sighting]],
               policy: CoincidencePolicy) -> Match | None:
    """The burst ``new`` coincides with, or None.

    ``near``: sightings whose time is within the window (more is fine: filtered here);
    ``sightings_of``: every sighting of a burst (for the mission and sky tests), asked only of
    the bursts a qualifying sighting in ``near`` belongs to. A burst qualifies when one of its notices of another mission and a coincidence
    kind is within the window, it has no notice of ``new``'s own mission (two triggers of one
    mission are two bursts: that mission's identifiers tell), and the sky does not veto. The
    nearest in time wins; ties by burst id, so the answer never depends on an order of rows."""
    if new.kind not in policy.kinds or policy.window <= 0:
        return None
    nearest: dict[str, Sighting] = {}
    for seen in near:
        if seen.kind not in policy.kinds or seen.mission == new.mission or abs(seen.time - new.time) > policy.window:
            continue
        known = nearest.get(seen.burst_id)
        if known is None or (abs(seen.time - new.time), seen.ivorn) < (abs(known.time - new.time), known.ivorn):
            nearest[seen.burst_id] = seen
    found: list[tuple[float, str, Match]] = []
    for burst_id, seen in nearest.items():
        members = list(sightings_of(burst_id))
        if any(m.mission == new.mission for m in members):
            continue
        positions = sorted((m for m in members if m.localised), key=lambda m: m.ivorn)
        ok, compared, combined, limit = _sky_test(new, positions, policy)
        if not ok:
            continue
        sep = None
        if compared is not None:
            assert new.ra is not None and new.dec is not None and compared.ra is not None and compared.dec is not None
            sep = separation(new.ra, new.dec, compared.ra, compared.dec)
        match = Match(burst_id, seen.ivorn, seen.mission, new.time - seen.time, sep, combined, limit,
                      compared.ivorn if compared else None)
        found.append((abs(match.dt), burst_id, match))
    return min(found, key=lambda item: (item[0], item[1]))[2] if found else None
