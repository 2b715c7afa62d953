"""The notices archive as the pages list it: newest first, with position, burst and distance.

The voeventdb projection owns the archive's filters (:class:`~burstbus.store.projections.voeventdb.Filters`,
the same names as the 4pisky API, whose query endpoints stay in that module); this module
adds what the read side shows beside each notice (its burst, its distance from a cone's
centre) as one typed row.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace

from burstbus.store.read import voeventdb as vdb
from burstbus.store.read.bursts import table_exists
from burstbus.store.read.rows import Page


@dataclass(frozen=True, slots=True)
class ArchivedNotice:
    """One archived notice (``voevent`` with its ``coord`` and burst, if any)."""

    seq: int
    ivorn: str
    stream: str | None
    role: str | None
    authored: str | None
    received: str | None
    instrument: str | None
    mission: str | None
    via: str | None
    ra: float | None
    dec: float | None
    err: float | None
    burst_id: str | None
    #: Degrees from the cone's centre, when the filters have a cone and the notice a position.
    distance: float | None = None


def separation(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Angle between two positions, degrees."""
    a, b = vdb.unit_vector(ra1, dec1), vdb.unit_vector(ra2, dec2)
    return vdb.chord2_to_degrees(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


def notices(conn: sqlite3.Connection, filters: vdb.Filters, limit: int, offset: int) -> Page[ArchivedNotice]:
    """A page of archived notices matching ``filters``, newest (highest seq) first (the archive
    must exist: a node without one answers :class:`~burstbus.store.reader.ReadModelError`)."""
    where, params = filters.where()
    bursts = table_exists(conn, "burst_notices")
    burst_col = "bn.burst_id" if bursts else "NULL"
    burst_join = "LEFT JOIN burst_notices AS bn ON bn.ivorn = v.ivorn" if bursts else ""
    sql = (
        "SELECT v.id, v.ivorn, v.stream, v.role, v.author_datetime, v.received, v.instrument, v.mission, "
        f"v.via, c.ra, c.dec, c.error, {burst_col} FROM voevent AS v "
        f"LEFT JOIN coord AS c ON c.voevent_id = v.id {burst_join} "
        f"WHERE {where} ORDER BY v.id DESC LIMIT ? OFFSET ?"
    )
    cone = filters.cone if isinstance(filters.cone, vdb.Cone) else None
    rows = []
    for row in conn.execute(sql, [*params, limit, offset]):
        notice = ArchivedNotice(*row)
        if cone is not None and notice.ra is not None and notice.dec is not None:
            notice = replace(notice, distance=separation(cone.ra, cone.dec, notice.ra, notice.dec))
        rows.append(notice)
    return Page(tuple(rows), vdb.count(conn, filters))
