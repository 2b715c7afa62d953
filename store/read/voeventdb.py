"""The VOEvent archive's queries: 4pisky voeventdb's filters, cone search, lists, synopsis, counts.

The read side of :mod:`burstbus.store.projections.voeventdb` (whose docstring explains the
tables and the zone index the cone search uses), behind ``/apiv1`` and the notices pages.
Pure functions of a ``sqlite3.Connection`` (run on the read connections of
:class:`~burstbus.store.reader.ProjectionReader`). Every value a user supplies is a bound
parameter; only the *shape* of the SQL depends on which filters are present.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar

from burstbus.events import format_time, normalise_time

# The archive's vocabulary and geometry live with its tables; ``X as X`` re-exports what
# the /apiv1 handlers and the pages name through this module.
from burstbus.store.projections.voeventdb import ACCEPTED as ACCEPTED
from burstbus.store.projections.voeventdb import CITE_TYPES as CITE_TYPES
from burstbus.store.projections.voeventdb import ROLES as ROLES
from burstbus.store.projections.voeventdb import finite, normal_ra, zone_of
from burstbus.store.projections.voeventdb import unit_vector as unit_vector
from burstbus.store.read.rows import (
    CITE_COLUMNS,
    COORD_COLUMNS,
    VOEVENT_COLUMNS,
    CiteRow,
    ConeMatch,
    CoordRow,
    IvornCount,
    Synopsis,
    VOEventRow,
)
from burstbus.untrusted import parse_json

#: Margin added to a cone's bounds (degrees): far below any position's precision, far above
#: the rounding error of the trigonometry that sizes them.
_MARGIN = 1e-9


@dataclass(frozen=True, slots=True)
class Cone:
    """A cone on the sky (degrees): centre and radius."""

    ra: float
    dec: float
    radius: float

    def __post_init__(self) -> None:
        ra, dec, radius = finite(self.ra), finite(self.dec), finite(self.radius)
        if ra is None or dec is None or radius is None:
            raise ValueError(
                f"cone needs finite ra, dec and radius (got {self.ra!r}, {self.dec!r}, {self.radius!r})"
            )
        if not -90.0 <= dec <= 90.0:
            raise ValueError(f"invalid declination value {dec!r}: must be within [-90, 90]")
        if radius < 0:
            raise ValueError(f"cone radius must not be negative (got {radius!r})")
        object.__setattr__(self, "ra", normal_ra(ra))
        object.__setattr__(self, "dec", dec)
        object.__setattr__(self, "radius", min(radius, 180.0))

    def dec_range(self) -> tuple[float, float]:
        r = self.radius + _MARGIN
        return max(self.dec - r, -90.0), min(self.dec + r, 90.0)

    def ra_ranges(self) -> list[tuple[float, float]]:
        """One or two RA intervals (two when the cone straddles RA 0/360) containing the cone."""
        r = self.radius + _MARGIN
        if abs(self.dec) + r >= 90.0:  # the cone contains a pole: every RA
            return [(0.0, 360.0)]
        # The widest RA offset of a small circle that does not contain a pole.
        ratio = math.sin(math.radians(r)) / math.cos(math.radians(self.dec))
        half = math.degrees(math.asin(min(1.0, ratio))) + _MARGIN
        lo, hi = self.ra - half, self.ra + half
        if lo < 0.0:
            return [(lo + 360.0, 360.0), (0.0, hi)]
        if hi > 360.0:
            return [(lo, 360.0), (0.0, hi - 360.0)]
        return [(lo, hi)]

    def centre(self) -> tuple[float, float, float]:
        return unit_vector(self.ra, self.dec)

    def max_chord2(self) -> float:
        """Squared chord of the radius: a unit vector is inside iff ``|v - centre|² <=`` this."""
        return (2.0 * math.sin(math.radians(self.radius) / 2.0)) ** 2 * (1.0 + 1e-12) + 1e-30


def zones_between(dec_lo: float, dec_hi: float) -> list[int]:
    """Every zone that holds a declination in [dec_lo, dec_hi]."""
    if dec_lo > dec_hi:
        return []
    return list(range(zone_of(max(dec_lo, -90.0)), zone_of(min(dec_hi, 90.0)) + 1))


def chord2_to_degrees(chord2: float) -> float:
    """Angular distance (degrees) from a squared chord between unit vectors (exact near 0)."""
    return math.degrees(2.0 * math.asin(min(1.0, math.sqrt(max(chord2, 0.0)) / 2.0)))


_CONE_CANDIDATES = (
    "SELECT v.ivorn, c.ra, c.dec, c.error, "
    "(c.cx - ?1) * (c.cx - ?1) + (c.cy - ?2) * (c.cy - ?2) + (c.cz - ?3) * (c.cz - ?3) AS d2 "
    "FROM coord AS c INDEXED BY coord_zone JOIN voevent AS v ON v.id = c.voevent_id "
    "WHERE c.zone IN (SELECT value FROM json_each(?4)) AND c.ra BETWEEN ?5 AND ?6 AND d2 <= ?7"
)


def cone_search(
    conn: sqlite3.Connection, ra: float, dec: float, radius_deg: float, limit: int | None = None
) -> list[ConeMatch]:
    """Notices positioned within ``radius_deg`` of (ra, dec), nearest first; equal distances
    go by IVORN."""
    cone = Cone(ra, dec, radius_deg)
    cx, cy, cz = cone.centre()
    zones = json.dumps(zones_between(*cone.dec_range()))
    chord2 = cone.max_chord2()
    found: dict[str, tuple[str, float, float, float | None, float]] = {}
    for ra_lo, ra_hi in cone.ra_ranges():
        for row in conn.execute(_CONE_CANDIDATES, (cx, cy, cz, zones, ra_lo, ra_hi, chord2)):
            found[row[0]] = row
    ordered = sorted(found.values(), key=lambda row: (row[4], row[0]))
    if limit is not None:
        ordered = ordered[: max(int(limit), 0)]
    return [
        ConeMatch(ivorn, c_ra, c_dec, error, chord2_to_degrees(d2))
        for ivorn, c_ra, c_dec, error, d2 in ordered
    ]


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _as_bool(name: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"{name} must be true or false (got {value!r})")


def _time_bound(name: str, value: Any) -> str | None:
    """A time filter bound in the log's form; accepts ISO dates, date-times, ``YYYY-MM``, ``YYYY``."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_time(value)
    text = str(value).strip()
    if re.fullmatch(r"\d{4}", text):
        text += "-01-01"
    elif re.fullmatch(r"\d{4}-\d\d", text):
        text += "-01"
    try:
        return normalise_time(text)
    except ValueError:
        raise ValueError(f"{name}: cannot read {value!r} as an ISO-8601 date or time") from None


def _prefix_end(prefix: str) -> str | None:
    """The least string above every string starting with ``prefix`` (None: no bound).

    Text compares as UTF-8 bytes, which is code-point order, so ``ivorn >= prefix AND
    ivorn < _prefix_end(prefix)`` is exactly "starts with" and can use the IVORN index.
    """
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            nxt = 0xE000 if 0xD800 <= last + 1 <= 0xDFFF else last + 1
            return prefix[:-1] + chr(nxt)
        prefix = prefix[:-1]
    return None


def _dec(name: str, value: Any) -> float | None:
    if value is None:
        return None
    number = finite(value)
    if number is None or not -90.0 <= number <= 90.0:
        raise ValueError(f"{name}: invalid declination value {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class Filters:
    """The voeventdb (4pisky apiv1) filters. Unset fields do not filter.

    Different filters combine with AND. Repeated values of one filter combine as 4pisky
    does: ``ivorn_contains`` with AND; ``ivorn_prefix``, ``ref_contains``, ``ref_exact``,
    ``role`` and ``stream`` with OR. Position filters (``cone``, ``dec_gt``, ``dec_lt``)
    select notices that have a position satisfying all of them. Invalid values raise
    ``ValueError`` with a message fit for the user.
    """

    # Each field takes what a query string or a caller may give (a str, a number, one value
    # or several) and holds its normal form once constructed: a fixed-width UTC time, a
    # bool, a float, a Cone, a tuple of str.
    authored_since: str | datetime | None = None
    authored_until: str | datetime | None = None
    cited: bool | str | None = None
    cone: Cone | tuple[float, float, float] | str | None = None
    coord: bool | str | None = None
    dec_gt: float | str | None = None
    dec_lt: float | str | None = None
    ivorn_contains: tuple[str, ...] | str = ()
    ivorn_prefix: tuple[str, ...] | str = ()
    ref_any: bool | str | None = None
    ref_contains: tuple[str, ...] | str = ()
    ref_exact: tuple[str, ...] | str = ()
    role: tuple[str, ...] | str = ()
    stream: tuple[str, ...] | str = ()

    #: Filters that may be given several times in a query string.
    MULTI: ClassVar[frozenset[str]] = frozenset(
        {"ivorn_contains", "ivorn_prefix", "ref_contains", "ref_exact", "role", "stream"}
    )

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "authored_since", _time_bound("authored_since", self.authored_since))
        put(self, "authored_until", _time_bound("authored_until", self.authored_until))
        for name in ("cited", "coord", "ref_any"):
            put(self, name, _as_bool(name, getattr(self, name)))
        cone = self.cone
        if cone is not None and not isinstance(cone, Cone):
            if isinstance(cone, str):
                text = cone
                try:
                    cone = parse_json(text, max_bytes=1000, max_depth=1)
                except ValueError as exc:
                    raise ValueError(f"cone must be [ra,dec,radius] in degrees: {exc} (got {text[:80]!r})") from None
            try:
                ra, dec, radius = cone
            except (TypeError, ValueError):
                raise ValueError(
                    f"cone must be [ra,dec,radius] in degrees (got {self.cone!r})"
                ) from None
            put(self, "cone", Cone(ra, dec, radius))
        put(self, "dec_gt", _dec("dec_gt", self.dec_gt))
        put(self, "dec_lt", _dec("dec_lt", self.dec_lt))
        for name in self.MULTI:
            put(self, name, _as_tuple(getattr(self, name)))
        bad = [r for r in self.role if r not in ROLES]
        if bad:
            raise ValueError(f"role must be one of {', '.join(ROLES)} (got {bad[0]!r})")

    @classmethod
    def from_query(
        cls, items: Iterable[tuple[str, str]], ignore: Iterable[str] = ("limit", "offset", "order")
    ) -> Filters:
        """Filters from query-string pairs (repeats allowed); an unknown key raises ValueError."""
        known = {f.name for f in fields(cls)}
        skip = set(ignore)
        values: dict[str, Any] = {}
        for key, value in items:
            if key in skip:
                continue
            if key not in known:
                raise ValueError(f"unknown filter {key!r} (known: {', '.join(sorted(known))})")
            if key in cls.MULTI:
                values.setdefault(key, []).append(value)
            else:
                values.setdefault(key, value)  # as 4pisky: the first value of a single-valued key
        return cls(**values)

    def where(self) -> tuple[str, list[Any]]:
        """The WHERE clause over ``voevent AS v`` and its parameters."""
        clauses: list[str] = []
        params: list[Any] = []
        if self.authored_since is not None:
            clauses.append("v.author_datetime >= ?")
            params.append(self.authored_since)
        if self.authored_until is not None:
            clauses.append("v.author_datetime <= ?")
            params.append(self.authored_until)
        for text in self.ivorn_contains:
            clauses.append("instr(v.ivorn, ?) > 0")
            params.append(text)
        if self.ivorn_prefix:
            ranges = []
            for prefix in self.ivorn_prefix:
                upper = _prefix_end(prefix)
                if upper is None:
                    ranges.append("v.ivorn >= ?")
                    params.append(prefix)
                else:
                    ranges.append("(v.ivorn >= ? AND v.ivorn < ?)")
                    params += [prefix, upper]
            clauses.append("(" + " OR ".join(ranges) + ")")
        if self.role:
            clauses.append(f"v.role IN ({','.join('?' * len(self.role))})")
            params += self.role
        if self.stream:
            clauses.append(f"v.stream IN ({','.join('?' * len(self.stream))})")
            params += self.stream
        if self.ref_exact:
            clauses.append(
                f"v.id IN (SELECT voevent_id FROM cite WHERE ref_ivorn IN ({','.join('?' * len(self.ref_exact))}))"
            )
            params += self.ref_exact
        if self.ref_contains:
            clauses.append(
                "EXISTS (SELECT 1 FROM cite AS k WHERE k.voevent_id = v.id AND ("
                + " OR ".join("instr(k.ref_ivorn, ?) > 0" for _ in self.ref_contains)
                + "))"
            )
            params += self.ref_contains
        if self.ref_any is not None:
            clauses.append(
                ("" if self.ref_any else "NOT ")
                + "EXISTS (SELECT 1 FROM cite AS k WHERE k.voevent_id = v.id)"
            )
        if self.cited is not None:
            clauses.append(
                ("" if self.cited else "NOT ")
                + "EXISTS (SELECT 1 FROM cite AS k WHERE k.ref_ivorn = v.ivorn)"
            )
        if self.coord is not None:
            clauses.append(
                ("" if self.coord else "NOT ")
                + "EXISTS (SELECT 1 FROM coord AS c WHERE c.voevent_id = v.id)"
            )
        if self.cone is not None or self.dec_gt is not None or self.dec_lt is not None:
            sql, more = self._position_subquery()
            clauses.append(f"v.id IN ({sql})")
            params += more
        return (" AND ".join(clauses) if clauses else "1"), params

    def _position_subquery(self) -> tuple[str, list[Any]]:
        """Ids of notices with a position passing every position filter, via the zone index."""
        lo = -90.0 if self.dec_gt is None else float(self.dec_gt)  # already floats: for mypy
        hi = 90.0 if self.dec_lt is None else float(self.dec_lt)
        ranges = [(0.0, 360.0)]
        exact = []
        exact_params: list[Any] = []
        if isinstance(self.cone, Cone):
            cone_lo, cone_hi = self.cone.dec_range()
            lo, hi = max(lo, cone_lo), min(hi, cone_hi)
            ranges = self.cone.ra_ranges()
            cx, cy, cz = self.cone.centre()
            exact.append(
                "(c.cx - ?) * (c.cx - ?) + (c.cy - ?) * (c.cy - ?) + (c.cz - ?) * (c.cz - ?) <= ?"
            )
            exact_params += [cx, cx, cy, cy, cz, cz, self.cone.max_chord2()]
        if self.dec_gt is not None:
            exact.append("c.dec > ?")
            exact_params.append(self.dec_gt)
        if self.dec_lt is not None:
            exact.append("c.dec < ?")
            exact_params.append(self.dec_lt)
        zones = json.dumps(zones_between(lo, hi))
        part = (
            "SELECT c.voevent_id FROM coord AS c INDEXED BY coord_zone "
            "WHERE c.zone IN (SELECT value FROM json_each(?)) AND c.ra BETWEEN ? AND ? AND "
            + " AND ".join(exact)
        )
        params: list[Any] = []
        for ra_lo, ra_hi in ranges:
            params += [zones, ra_lo, ra_hi, *exact_params]
        return " UNION ".join([part] * len(ranges)), params


_ORDERS = {
    None: "v.id",
    "id": "v.id",
    "-id": "v.id DESC",
    "ivorn": "v.ivorn",
    "-ivorn": "v.ivorn DESC",
    "author_datetime": "v.author_datetime, v.id",
    "-author_datetime": "v.author_datetime DESC, v.id",
}
#: The values ``order`` accepts (as 4pisky's ``OrderValues``); None means by id.
ORDERS = tuple(k for k in _ORDERS if k is not None)


def _filters(filters: Filters | None, kwargs: Mapping[str, Any]) -> Filters:
    if filters is not None and kwargs:
        raise TypeError("pass either a Filters or keyword filters, not both")
    return filters if filters is not None else Filters(**kwargs)


def count(conn: sqlite3.Connection, filters: Filters | None = None, **kwargs: Any) -> int:
    """How many notices match (``count(conn, role="observation", cone=(ra, dec, r))``)."""
    where, params = _filters(filters, kwargs).where()
    return conn.execute(f"SELECT count(*) FROM voevent AS v WHERE {where}", params).fetchone()[0]


def _page(
    conn: sqlite3.Connection,
    columns: str,
    filters: Filters | None,
    order: str | None,
    limit: int | None,
    offset: int,
) -> list[tuple[Any, ...]]:
    """``SELECT columns FROM voevent AS v`` filtered, ordered as 4pisky, then paged."""
    if order not in _ORDERS:
        raise ValueError(f"invalid order {order!r}: use one of {', '.join(ORDERS)}")
    if limit is not None and int(limit) < 0:
        raise ValueError(f"limit must not be negative (got {limit!r})")
    if int(offset) < 0:
        raise ValueError(f"offset must not be negative (got {offset!r})")
    where, params = (filters or Filters()).where()
    sql = f"SELECT {columns} FROM voevent AS v WHERE {where} ORDER BY {_ORDERS[order]} LIMIT ? OFFSET ?"
    params += [-1 if limit is None else int(limit), int(offset)]
    return conn.execute(sql, params).fetchall()


def list_ivorns(
    conn: sqlite3.Connection,
    filters: Filters | None = None,
    order: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[str]:
    """IVORNs of matching notices, ordered as 4pisky's ``order`` (id, ivorn, author_datetime,
    each optionally ``-`` for descending; ties by id), then ``offset`` / ``limit``."""
    return [ivorn for (ivorn,) in _page(conn, "v.ivorn", filters, order, limit, offset)]


def list_ivorn_nrefs(
    conn: sqlite3.Connection,
    filters: Filters | None = None,
    order: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[IvornCount]:
    """Each matching notice with how many citations it makes, paged as :func:`list_ivorns`
    (4pisky's ``/list/ivorn_nrefs``)."""
    columns = "v.ivorn, (SELECT count(*) FROM cite AS k WHERE k.voevent_id = v.id)"
    return [IvornCount(ivorn, n) for ivorn, n in _page(conn, columns, filters, order, limit, offset)]


def list_ivorn_ncites(
    conn: sqlite3.Connection,
    filters: Filters | None = None,
    order: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[IvornCount]:
    """Each matching notice with how many citations of it the archive holds, paged as
    :func:`list_ivorns` (4pisky's ``/list/ivorn_ncites``)."""
    columns = "v.ivorn, (SELECT count(*) FROM cite AS k WHERE k.ref_ivorn = v.ivorn)"
    return [IvornCount(ivorn, n) for ivorn, n in _page(conn, columns, filters, order, limit, offset)]


def packet_seq(conn: sqlite3.Connection, ivorn: str) -> int | None:
    """The log seq of the ``voevent.accepted`` event holding this IVORN's exact bytes, or None.

    ``burstbus.payload.xml_bytes((await log.get(seq)).data)`` gives the bytes back."""
    row = conn.execute("SELECT id FROM voevent WHERE ivorn = ?", (ivorn,)).fetchone()
    return int(row[0]) if row else None


def synopsis(conn: sqlite3.Connection, ivorn: str) -> Synopsis | None:
    """One notice without its XML: its row, its citations, its position, who cites it."""
    row = conn.execute(
        f"SELECT {', '.join(VOEVENT_COLUMNS)} FROM voevent WHERE ivorn = ?", (ivorn,)
    ).fetchone()
    if row is None:
        return None
    voevent = VOEventRow.from_row(row)
    refs = conn.execute(
        f"SELECT {', '.join(CITE_COLUMNS)} FROM cite WHERE voevent_id = ? ORDER BY id", (voevent.id,)
    )
    coords = conn.execute(
        f"SELECT {', '.join(COORD_COLUMNS)} FROM coord WHERE voevent_id = ?", (voevent.id,)
    )
    cited_by = conn.execute(
        "SELECT v.ivorn FROM cite AS k JOIN voevent AS v ON v.id = k.voevent_id WHERE k.ref_ivorn = ? ORDER BY v.id",
        (ivorn,),
    )
    return Synopsis(
        voevent,
        tuple(CiteRow.from_row(r) for r in refs),
        tuple(CoordRow.from_row(r) for r in coords),
        tuple(str(r[0]) for r in cited_by),
    )


def stream_counts(conn: sqlite3.Connection, filters: Filters | None = None) -> dict[str, int]:
    """Matching notices per stream (4pisky's ``/map/stream_count``)."""
    where, params = (filters or Filters()).where()
    return dict(
        conn.execute(
            f"SELECT v.stream, count(*) FROM voevent AS v WHERE {where} GROUP BY v.stream", params
        )
    )


def role_counts(conn: sqlite3.Connection, filters: Filters | None = None) -> dict[str, int]:
    """Matching notices per role (4pisky's ``/map/role_count``)."""
    where, params = (filters or Filters()).where()
    return dict(
        conn.execute(
            f"SELECT v.role, count(*) FROM voevent AS v WHERE {where} GROUP BY v.role", params
        )
    )


def authored_month_counts(
    conn: sqlite3.Connection, filters: Filters | None = None
) -> dict[str | None, int]:
    """Matching notices per month of ``Who/Date`` as ``YYYY-MM`` (None: no date), as 4pisky's
    ``/map/authored_month_count``. Times are UTC, so the month is the text's first 7 chars."""
    where, params = (filters or Filters()).where()
    return dict(
        conn.execute(
            f"SELECT substr(v.author_datetime, 1, 7) AS month, count(*) FROM voevent AS v "
            f"WHERE {where} GROUP BY month",
            params,
        )
    )


def stream_role_counts(
    conn: sqlite3.Connection, filters: Filters | None = None
) -> dict[str, dict[str | None, int]]:
    """Matching notices per stream, then per role (4pisky's ``/map/stream_role_count``)."""
    where, params = (filters or Filters()).where()
    nested: dict[str, dict[str | None, int]] = {}
    for stream, role, n in conn.execute(
        f"SELECT v.stream, v.role, count(*) FROM voevent AS v WHERE {where} "
        "GROUP BY v.stream, v.role",
        params,
    ):
        nested.setdefault(stream, {})[role] = n
    return nested
