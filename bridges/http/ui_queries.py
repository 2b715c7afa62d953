"""What the web pages read: filters from the query string and queries over the projections.

Kept apart from the handlers (``ui.py``) so the SQL and the validation are plain functions,
testable without a server. The query functions take a ``sqlite3.Connection`` (the HTTP
reader's read-only connection, one read transaction per page) and return plain dicts for the
templates. Every value a user gives is a bound parameter.

Filters are checked as strictly as the JSON API checks its own: an unknown key or a bad
value raises :class:`FilterError` naming the key, which the page shows above its form.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from burstbus.bridges.http.queries import projected_seq, table_exists
from burstbus.store.projections import voeventdb as vdb
from burstbus.store.projections.processes import STATUSES

#: Rows per page unless ``limit`` says otherwise, and the most one page may show.
PAGE_ROWS = 50
MAX_ROWS = 500
#: Longest text a filter field may hold (anything longer is a mistake or an attack).
MAX_TEXT = 400

_DAY = re.compile(r"\d{4}-\d\d-\d\d")
_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*")
_DIGITS = re.compile(r"\s*\+?[0-9]{1,18}\s*")


class FilterError(ValueError):
    """A filter the page cannot use; ``key`` names the field (None: the combination)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


Items = Sequence[tuple[str, str]]


def _text(key: str, value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise FilterError(f"{key}: the text is not valid UTF-8", key) from None
    if len(value) > MAX_TEXT:
        raise FilterError(f"{key}: at most {MAX_TEXT} characters", key)
    return value


def _given(items: Items, known: Iterable[str], ignore: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The non-empty pairs (HTML forms send empty fields); an unknown key is refused."""
    known_set, skip = set(known), set(ignore) | {"fragment"}
    out = []
    for key, value in items:
        if key in skip:
            continue
        if key not in known_set:
            raise FilterError(f"unknown filter {key!r} (known: {', '.join(sorted(known_set))})", key)
        value = _text(key, value.strip())
        if value:
            out.append((key, value))
    return out


def _count(key: str, value: str, maximum: int) -> int:
    if not _DIGITS.fullmatch(value):
        raise FilterError(f"{key}: a whole number of 0 or more (got {value!r})", key)
    number = int(value)
    if number > maximum:
        raise FilterError(f"{key}: at most {maximum}", key)
    return number


def _day(key: str, value: str) -> str:
    if not _DAY.fullmatch(value):
        raise FilterError(f"{key}: a date as YYYY-MM-DD (got {value!r})", key)
    try:
        date.fromisoformat(value)
    except ValueError:
        raise FilterError(f"{key}: {value!r} is not a calendar date", key) from None
    return value


@dataclass(frozen=True, slots=True)
class Paging:
    limit: int = PAGE_ROWS
    offset: int = 0

    @classmethod
    def from_items(cls, items: Items) -> Paging:
        values = dict(items)
        limit = _count("limit", values["limit"], MAX_ROWS) if values.get("limit") else PAGE_ROWS
        if limit == 0:
            raise FilterError("limit: at least 1", "limit")
        offset = _count("offset", values["offset"], 2**62) if values.get("offset") else 0
        return cls(limit, offset)


PAGING = ("limit", "offset")


# -- notices -------------------------------------------------------------------------------

NOTICE_KEYS = ("authored_since", "authored_until", "ivorn_contains", "ivorn_prefix", "role",
               "stream", "ra", "dec", "radius", "cone")  # fmt: skip


@dataclass(frozen=True, slots=True)
class NoticeQuery:
    """The notices page's filters: the voeventdb API's (same names, same checks) plus the cone
    as three form fields (``ra``, ``dec``, ``radius`` in degrees) for a form on a phone."""

    filters: vdb.Filters
    paging: Paging
    form: dict[str, str] = field(default_factory=dict)  # what to show back in the form

    @classmethod
    def from_items(cls, items: Items) -> NoticeQuery:
        given = _given(items, NOTICE_KEYS, PAGING)
        form = dict(given)
        values: dict[str, Any] = {}
        cone_parts = {k: v for k, v in given if k in ("ra", "dec", "radius")}
        for key, value in given:
            if key in ("ra", "dec", "radius"):
                continue
            if key in vdb.Filters.MULTI:
                values.setdefault(key, []).append(value)
            else:
                values.setdefault(key, value)
        if cone_parts:
            missing = [k for k in ("ra", "dec", "radius") if k not in cone_parts]
            if missing:
                raise FilterError(f"a cone search needs ra, dec and radius (missing: {', '.join(missing)})", missing[0])
            if "cone" in values:
                raise FilterError("give the cone either as ra/dec/radius or as cone=[ra,dec,radius], not both", "cone")
            numbers = []
            for key in ("ra", "dec", "radius"):
                try:
                    number = float(cone_parts[key])
                except ValueError:
                    raise FilterError(f"{key}: a number of degrees (got {cone_parts[key]!r})", key) from None
                if not math.isfinite(number):
                    raise FilterError(f"{key}: a finite number of degrees", key)
                numbers.append(number)
            values["cone"] = tuple(numbers)
        until = values.get("authored_until")
        if isinstance(until, str) and _DAY.fullmatch(until):
            values["authored_until"] = until + "T23:59:59.999999"  # a day given: the whole day
        try:
            filters = vdb.Filters(**values)
        except (ValueError, TypeError, OverflowError) as exc:
            reason = str(exc)
            for key, value in values.items():  # find which field to blame
                try:
                    vdb.Filters(**{key: value})
                except (ValueError, TypeError, OverflowError):
                    blamed = "radius" if key == "cone" and cone_parts and "radius" in reason else key
                    if key == "cone" and cone_parts and "declination" in reason:
                        blamed = "dec"
                    raise FilterError(reason, blamed) from None
            raise FilterError(reason) from None
        return cls(filters, Paging.from_items(items), form)


_NOTICE_COLUMNS = ("seq", "ivorn", "stream", "role", "authored", "received", "instrument",
                   "mission", "via", "ra", "dec", "err", "burst_id")  # fmt: skip


def notices(conn: sqlite3.Connection, query: NoticeQuery) -> dict[str, Any]:
    """A page of notices, newest first, with position, burst and (for a cone) the distance."""
    where, params = query.filters.where()
    bursts = table_exists(conn, "burst_notices")
    burst_col = "bn.burst_id" if bursts else "NULL"
    burst_join = "LEFT JOIN burst_notices AS bn ON bn.ivorn = v.ivorn" if bursts else ""
    sql = (
        "SELECT v.id, v.ivorn, v.stream, v.role, v.author_datetime, v.received, v.instrument, v.mission, "
        f"v.via, c.ra, c.dec, c.error, {burst_col} FROM voevent AS v "
        f"LEFT JOIN coord AS c ON c.voevent_id = v.id {burst_join} "
        f"WHERE {where} ORDER BY v.id DESC LIMIT ? OFFSET ?"
    )
    rows = [dict(zip(_NOTICE_COLUMNS, row, strict=True))
            for row in conn.execute(sql, [*params, query.paging.limit, query.paging.offset])]  # fmt: skip
    cone = query.filters.cone
    if isinstance(cone, vdb.Cone):
        for row in rows:
            if row["ra"] is not None:
                row["distance"] = _separation(cone.ra, cone.dec, row["ra"], row["dec"])
    total = vdb.count(conn, query.filters)
    return {"rows": rows, "total": total, "projected": projected_seq(conn) or 0}


def _separation(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    a, b = vdb.unit_vector(ra1, dec1), vdb.unit_vector(ra2, dec2)
    return vdb.chord2_to_degrees(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


# -- processes -----------------------------------------------------------------------------

PROCESS_KEYS = ("process", "burst_id", "status", "pipeline", "date")


@dataclass(frozen=True, slots=True)
class ProcessQuery:
    """``process`` and ``pipeline`` match anywhere in the name; ``burst_id`` exactly;
    ``status`` may repeat (any of them); ``date`` is the run's day (UTC, ``YYYY-MM-DD``)."""

    process: str | None = None
    burst_id: str | None = None
    status: tuple[str, ...] = ()
    pipeline: str | None = None
    date: str | None = None
    paging: Paging = Paging()
    form: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_items(cls, items: Items) -> ProcessQuery:
        given = _given(items, PROCESS_KEYS, PAGING)
        single = {k: v for k, v in reversed(given) if k != "status"}  # first value wins
        statuses = tuple(dict.fromkeys(v for k, v in given if k == "status"))
        bad = [s for s in statuses if s not in STATUSES]
        if bad:
            raise FilterError(f"status must be one of {', '.join(STATUSES)} (got {bad[0]!r})", "status")
        day = _day("date", single["date"]) if "date" in single else None
        form: dict[str, Any] = {**single, "status": statuses}
        return cls(single.get("process"), single.get("burst_id"), statuses, single.get("pipeline"), day,
                   Paging.from_items(items), form)  # fmt: skip

    def where(self) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if self.process:
            clauses.append("instr(process, ?) > 0")
            params.append(self.process)
        if self.burst_id:
            clauses.append("burst_id = ?")
            params.append(self.burst_id)
        if self.status:
            clauses.append(f"status IN ({','.join('?' * len(self.status))})")
            params += self.status
        if self.pipeline:
            clauses.append("instr(pipeline, ?) > 0")
            params.append(self.pipeline)
        if self.date:
            clauses.append("date = ?")
            params.append(self.date)
        return (" AND ".join(clauses) or "1"), params


_PROCESS_COLUMNS = ("id", "date", "process", "burst_id", "obs_id", "pass_id", "pipeline", "status",
                    "attempts", "last_log", "first_seen", "updated_at", "retry_requested", "last_seq")  # fmt: skip


def _process_rows(conn: sqlite3.Connection, where: str, params: list[Any], limit: int, offset: int) -> list[dict[str, Any]]:
    sql = (f"SELECT {', '.join(_PROCESS_COLUMNS)} FROM processes WHERE {where} "
           "ORDER BY updated_at DESC, id LIMIT ? OFFSET ?")  # fmt: skip
    return [dict(zip(_PROCESS_COLUMNS, row, strict=True)) for row in conn.execute(sql, [*params, limit, offset])]


def processes(conn: sqlite3.Connection, query: ProcessQuery) -> dict[str, Any]:
    """A page of process runs, most recently updated first, and counts per status."""
    if not table_exists(conn, "processes"):
        return {"rows": [], "total": 0, "by_status": {}, "projected": projected_seq(conn) or 0}
    where, params = query.where()
    rows = _process_rows(conn, where, params, query.paging.limit, query.paging.offset)
    by_status = dict(conn.execute(f"SELECT status, count(*) FROM processes WHERE {where} GROUP BY status", params))
    return {"rows": rows, "total": sum(by_status.values()), "by_status": by_status,
            "projected": projected_seq(conn) or 0}  # fmt: skip


# -- bursts --------------------------------------------------------------------------------

BURST_KEYS = ("burst_id", "since")


@dataclass(frozen=True, slots=True)
class BurstQuery:
    """``burst_id`` matches anywhere in the id; ``since`` keeps bursts with a notice on or
    after that day (UTC)."""

    burst_id: str | None = None
    since: str | None = None
    paging: Paging = Paging()
    form: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_items(cls, items: Items) -> BurstQuery:
        single = {k: v for k, v in reversed(_given(items, BURST_KEYS, PAGING))}
        since = _day("since", single["since"]) if "since" in single else None
        return cls(single.get("burst_id"), since, Paging.from_items(items), single)


_BURST_COLUMNS = ("burst_id", "first_notice_at", "last_notice_at", "event_time", "ra", "dec", "err",
                  "best_ivorn", "notice_count", "instruments", "retracted", "first_seq", "last_seq")  # fmt: skip


def _burst_row(row: Sequence[Any]) -> dict[str, Any]:
    burst = dict(zip(_BURST_COLUMNS, row, strict=True))
    try:
        burst["instruments"] = json.loads(burst["instruments"] or "[]")
    except ValueError:
        burst["instruments"] = []
    return burst


def bursts(conn: sqlite3.Connection, query: BurstQuery) -> dict[str, Any]:
    """A page of bursts, latest notice first, with their processes and triggers counted."""
    if not table_exists(conn, "bursts"):
        return {"rows": [], "total": 0, "projected": projected_seq(conn) or 0}
    clauses, params = [], []
    if query.burst_id:
        clauses.append("instr(burst_id, ?) > 0")
        params.append(query.burst_id)
    if query.since:
        clauses.append("last_notice_at >= ?")
        params.append(query.since)
    where = " AND ".join(clauses) or "1"
    rows = [_burst_row(row) for row in conn.execute(
        f"SELECT {', '.join(_BURST_COLUMNS)} FROM bursts WHERE {where} "
        "ORDER BY last_notice_at DESC, burst_id LIMIT ? OFFSET ?",
        [*params, query.paging.limit, query.paging.offset])]  # fmt: skip
    total = conn.execute(f"SELECT count(*) FROM bursts WHERE {where}", params).fetchone()[0]
    ids = json.dumps([row["burst_id"] for row in rows])
    statuses: dict[str, dict[str, int]] = {}
    if rows and table_exists(conn, "processes"):
        for burst_id, status, n in conn.execute(
            "SELECT burst_id, status, count(*) FROM processes WHERE burst_id IN (SELECT value FROM json_each(?)) "
            "GROUP BY burst_id, status", (ids,)):  # fmt: skip
            statuses.setdefault(burst_id, {})[status] = n
    triggers: dict[str, int] = {}
    if rows and table_exists(conn, "triggers"):
        triggers = dict(conn.execute(
            "SELECT burst_id, count(*) FROM triggers WHERE burst_id IN (SELECT value FROM json_each(?)) "
            "GROUP BY burst_id", (ids,)))  # fmt: skip
    for row in rows:
        row["processes"] = statuses.get(row["burst_id"], {})
        row["triggers"] = triggers.get(row["burst_id"], 0)
    return {"rows": rows, "total": total, "projected": projected_seq(conn) or 0}


_TIMELINE_COLUMNS = ("ivorn", "seq", "rule", "notice_at", "instrument", "ra", "dec", "err", "retraction",
                     "role", "stream", "authored")  # fmt: skip
_TRIGGER_COLUMNS = ("request_id", "telescope", "burst_id", "state", "requested_by", "requested_at", "note",
                    "params", "two_person", "expires_at", "approved_by", "approved_at", "denied_by",
                    "denied_at", "reason", "sent_at", "voevent_ivorn", "first_seq", "last_seq")  # fmt: skip


def burst(conn: sqlite3.Connection, burst_id: str) -> dict[str, Any] | None:
    """One burst: its row, its notices in time order, its processes and its triggers (an
    empty list when the triggers projection does not exist here). None if unknown."""
    if not table_exists(conn, "bursts"):
        return None
    row = conn.execute(f"SELECT {', '.join(_BURST_COLUMNS)} FROM bursts WHERE burst_id = ?", (burst_id,)).fetchone()
    if row is None:
        return None
    found = _burst_row(row)
    has_voevent = table_exists(conn, "voevent")
    sql = ("SELECT n.ivorn, n.seq, n.rule, n.notice_at, n.instrument, n.ra, n.dec, n.err, n.retraction, "
           + ("v.role, v.stream, v.author_datetime FROM burst_notices AS n LEFT JOIN voevent AS v ON v.ivorn = n.ivorn "
              if has_voevent else "NULL, NULL, NULL FROM burst_notices AS n ")
           + "WHERE n.burst_id = ? ORDER BY n.notice_at, n.seq")  # fmt: skip
    timeline = [dict(zip(_TIMELINE_COLUMNS, r, strict=True)) for r in conn.execute(sql, (burst_id,))]
    procs: list[dict[str, Any]] = []
    if table_exists(conn, "processes"):
        procs = _process_rows(conn, "burst_id = ?", [burst_id], MAX_ROWS, 0)
    triggers: list[dict[str, Any]] = []
    if table_exists(conn, "triggers"):
        for r in conn.execute(f"SELECT {', '.join(_TRIGGER_COLUMNS)} FROM triggers WHERE burst_id = ? "
                              "ORDER BY requested_at DESC, request_id", (burst_id,)):  # fmt: skip
            trigger = dict(zip(_TRIGGER_COLUMNS, r, strict=True))
            try:
                trigger["params"] = json.loads(trigger["params"] or "{}")
            except ValueError:
                pass
            triggers.append(trigger)
    return {"burst": found, "timeline": timeline, "processes": procs, "triggers": triggers,
            "projected": projected_seq(conn) or 0}  # fmt: skip


def overview(conn: sqlite3.Connection) -> dict[str, Any]:
    """The front page: latest bursts, latest notices, process counts by status."""
    latest = bursts(conn, BurstQuery(paging=Paging(8, 0)))
    news = notices(conn, NoticeQuery(vdb.Filters(), Paging(10, 0))) if table_exists(conn, "voevent") else {"rows": [], "total": 0}
    by_status: dict[str, int] = {}
    if table_exists(conn, "processes"):
        by_status = dict(conn.execute("SELECT status, count(*) FROM processes GROUP BY status"))
    return {"bursts": latest["rows"], "burst_total": latest["total"], "notices": news["rows"],
            "notice_total": news["total"], "by_status": by_status, "projected": projected_seq(conn) or 0}  # fmt: skip


# -- the log -------------------------------------------------------------------------------

LOG_KEYS = ("type", "stream", "after", "before")


@dataclass(frozen=True, slots=True)
class LogQuery:
    """The audit page's filters: ``type`` (repeat or comma-separate), ``stream``, and a seq
    window: ``after`` (read forwards from there) or ``before`` (the newest before it)."""

    types: tuple[str, ...] = ()
    stream: str | None = None
    after: int | None = None
    before: int | None = None
    limit: int = 100
    form: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_items(cls, items: Items) -> LogQuery:
        given = _given(items, LOG_KEYS, ("limit",))
        types: list[str] = []
        for key, value in given:
            if key == "type":
                for name in value.split(","):
                    name = name.strip()
                    if name and not _EVENT_TYPE.fullmatch(name):
                        raise FilterError(f"type: {name!r} is not an event type name (like voevent.accepted)", "type")
                    if name:
                        types.append(name)
        single = {k: v for k, v in reversed(given) if k != "type"}
        after = _count("after", single["after"], 2**62) if "after" in single else None
        before = _count("before", single["before"], 2**62) if "before" in single else None
        if after is not None and before is not None:
            raise FilterError("give after or before, not both", "before")
        values = dict(items)
        limit = _count("limit", values["limit"], 1000) if values.get("limit") else 100
        if limit == 0:
            raise FilterError("limit: at least 1", "limit")
        form = {**single, "type": ", ".join(dict.fromkeys(types))}
        return cls(tuple(dict.fromkeys(types)), single.get("stream"), after, before, limit, form)
