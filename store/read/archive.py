"""The notices archive as the pages list it: sorted by any column, with position, burst and distance.

The voeventdb projection owns the archive's filters (:class:`~burstbus.store.projections.voeventdb.Filters`,
the same names as the 4pisky API, whose query endpoints stay in that module); this module
adds what the read side shows beside each notice (its burst, its distance from a cone's
centre) as one typed row, and the pages' own sort orders (:data:`NOTICE_ORDERS`) and
case-insensitive pattern.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from typing import Any

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
    #: The event's time (WhereWhen's ISOTime, UTC), when the notice has one.
    event_time: str | None = None
    #: Degrees from the cone's centre, when the filters have a cone and the notice a position.
    distance: float | None = None


#: The pages' sort keys (``-`` descending) → ``ORDER BY`` text: never built from request text.
#: Missing values sort last either way; ties go by authored time, then log seq. ``time`` is the
#: event time: after a bulk import every notice has the same received time, not the same
#: event time.
_SORT_COLUMNS = {
    "time": "v.event_time",
    "authored": "v.author_datetime",
    "ivorn": "v.ivorn",
    "role": "v.role",
    "ra": "c.ra",
    "dec": "c.dec",
    "err": "c.error",
    "instrument": "v.instrument",
    "burst": "burst_id",
}


def _orders() -> dict[str, str]:
    orders = {}
    for key, column in _SORT_COLUMNS.items():
        for sign, direction in (("", "ASC"), ("-", "DESC")):
            # Times tie in their own direction; other columns' ties go newest first.
            tie = direction if key in ("time", "authored") else "DESC"
            then = f"v.id {tie}" if key == "authored" else f"v.author_datetime {tie}, v.id {tie}"
            # DESC puts NULLs last by itself, and so can walk an index (voevent_author_datetime).
            nulls = "" if direction == "DESC" else f"({column} IS NULL), "
            orders[sign + key] = f"{nulls}{column} {direction}, {then}"
    # The received time is the log's recorded_at, in seq order: the primary key.
    orders["received"], orders["-received"] = "v.id ASC", "v.id DESC"
    return orders


NOTICE_ORDERS: dict[str, str] = _orders()
#: Orders by the event time: read in two parts (notices with a time, which the planner reads
#: through ``voevent_event_time`` or, under a small cone, through the zone index; then those
#: without),
#: since a LEFT JOIN cannot be driven from the joined table's index (one sort of every row:
#: 1 s at 300,000 notices; in two parts, 9 ms).
_TIME_ORDERS = {"time": "ASC", "-time": "DESC"}
DEFAULT_NOTICE_ORDER = "-time"


def pattern_clause(pattern: str | None) -> tuple[str, list[str]]:
    """A case-insensitive "contains" on the IVORN or the instrument (LIKE, wildcards escaped)."""
    if not pattern:
        return "1", []
    like = "%" + pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return "(v.ivorn LIKE ? ESCAPE '\\' OR v.instrument LIKE ? ESCAPE '\\')", [like, like]


def separation(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Angle between two positions, degrees."""
    a, b = vdb.unit_vector(ra1, dec1), vdb.unit_vector(ra2, dec2)
    return vdb.chord2_to_degrees(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


def notices(conn: sqlite3.Connection, filters: vdb.Filters, limit: int, offset: int, order: str | None = None,
            pattern: str | None = None) -> Page[ArchivedNotice]:  # fmt: skip
    """A page of archived notices matching ``filters`` (and ``pattern``, see :func:`pattern_clause`),
    in ``order`` (a key of :data:`NOTICE_ORDERS`; None: newest, highest seq, first). The archive
    must exist: a node without one answers :class:`~burstbus.store.reader.ReadModelError`."""
    where, params = filters.where()
    extra, extra_params = pattern_clause(pattern)
    if pattern:
        where, params = f"({where}) AND {extra}", [*params, *extra_params]
    bursts = table_exists(conn, "burst_notices")
    burst_col = "bn.burst_id" if bursts else "NULL"
    burst_join = "LEFT JOIN burst_notices AS bn ON bn.ivorn = v.ivorn" if bursts else ""
    columns = (
        "SELECT v.id, v.ivorn, v.stream, v.role, v.author_datetime, v.received, v.instrument, v.mission, "
        f"v.via, c.ra, c.dec, c.error, {burst_col} AS burst_id, v.event_time"
    )

    def page(joins: str, condition: str, order_sql: str, size: int, skip: int) -> list[Any]:
        sql = f"{columns} FROM {joins} {burst_join} WHERE ({where}){condition} ORDER BY {order_sql} LIMIT ? OFFSET ?"
        return conn.execute(sql, [*params, size, skip]).fetchall()

    if pattern:
        total = int(conn.execute(f"SELECT count(*) FROM voevent AS v WHERE {where}", params).fetchone()[0])
    else:
        total = vdb.count(conn, filters)
    direction = _TIME_ORDERS.get(order or "")
    if direction is None:
        order_sql = "v.id DESC" if order is None else NOTICE_ORDERS[order]
        found = page("voevent AS v LEFT JOIN coord AS c ON c.voevent_id = v.id", "", order_sql, limit, offset)
    else:
        joins = "voevent AS v LEFT JOIN coord AS c ON c.voevent_id = v.id"
        found = page(joins, " AND v.event_time IS NOT NULL",
                     f"v.event_time {direction}, v.author_datetime {direction}, v.id {direction}", limit, offset)  # fmt: skip
        if len(found) < limit:  # past the timed notices: how many there are (counted only here)
            timed = offset + len(found) if found else int(conn.execute(
                f"SELECT count(*) FROM {joins} WHERE ({where}) AND v.event_time IS NOT NULL", params).fetchone()[0])  # fmt: skip
            found += page(joins, " AND v.event_time IS NULL",
                          f"v.author_datetime {direction}, v.id {direction}", limit - len(found),
                          max(0, offset - timed))  # fmt: skip
    cone = filters.cone if isinstance(filters.cone, vdb.Cone) else None
    rows = []
    for row in found:
        notice = ArchivedNotice(*row)
        if cone is not None and notice.ra is not None and notice.dec is not None:
            notice = replace(notice, distance=separation(cone.ra, cone.dec, notice.ra, notice.dec))
        rows.append(notice)
    return Page(tuple(rows), total)
