"""What the web pages read: filters from the query string, and the pages' data from the store.

Kept apart from the handlers (``ui.py``) so the validation is plain functions, testable
without a server. The SQL is the store's read side (:mod:`burstbus.store.read`): a query class
here turns a form into the store's filter dataclasses, and the page functions (run on the
HTTP reader's read-only connection, one read transaction per page) turn its typed rows into
the plain dicts the templates show.

Filters are checked as strictly as the JSON API checks its own: an unknown key or a bad
value raises :class:`FilterError` naming the key, which the page shows above its form.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from burstbus.bridges.http.queries import custom_filter
from burstbus.store.projections.processes import TABLE_STATUSES
from burstbus.store.read import archive
from burstbus.store.read import bursts as read_burst
from burstbus.store.read import lists as read_lists
from burstbus.store.read import voeventdb as vdb
from burstbus.store.read.jsonnotices import json_notices
from burstbus.store.read.rows import BurstRow
from burstbus.store.read.where import BurstFilter, ProcessFilter

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


def _projected(conn: sqlite3.Connection) -> int:
    return read_lists.projected_seq(conn) or 0


def notices(conn: sqlite3.Connection, query: NoticeQuery) -> dict[str, Any]:
    """A page of notices, newest first, with position, burst and (for a cone) the distance."""
    page = archive.notices(conn, query.filters, query.paging.limit, query.paging.offset)
    rows = []
    for notice in page.rows:
        row = asdict(notice)
        if row["distance"] is None:
            del row["distance"]  # the template shows a distance only where there is one
        rows.append(row)
    # JSON notices from Kafka (LVK, Einstein Probe …: no IVORN, so not in the archive above):
    # the latest, on the first page.
    latest = json_notices(conn, 20) if query.paging.offset == 0 else None
    return {"rows": rows, "total": page.total, "projected": _projected(conn),
            "json": [asdict(r) for r in latest.rows] if latest else [], "json_total": latest.total if latest else 0}


# -- processes -----------------------------------------------------------------------------

PROCESS_KEYS = ("process", "burst_id", "obs_id", "pass_id", "status", "pipeline", "date", "q")


@dataclass(frozen=True, slots=True)
class ProcessQuery:
    """``process`` and ``pipeline`` match anywhere in the name; ``burst_id``, ``obs_id`` and
    ``pass_id`` exactly; ``status`` may repeat (any of them); ``date`` is the run's day (UTC,
    ``YYYY-MM-DD``); ``q`` is the custom filter (:func:`~.queries.custom_filter`)."""

    process: str | None = None
    burst_id: str | None = None
    status: tuple[str, ...] = ()
    pipeline: str | None = None
    date: str | None = None
    paging: Paging = Paging()
    form: dict[str, Any] = field(default_factory=dict)
    obs_id: str | None = None
    pass_id: str | None = None
    terms: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_items(cls, items: Items) -> ProcessQuery:
        given = _given(items, PROCESS_KEYS, PAGING)
        single = {k: v for k, v in reversed(given) if k != "status"}  # first value wins
        statuses = tuple(dict.fromkeys(v for k, v in given if k == "status"))
        bad = [s for s in statuses if s not in TABLE_STATUSES]
        if bad:
            raise FilterError(f"status must be one of {', '.join(TABLE_STATUSES)} (got {bad[0]!r})", "status")
        day = _day("date", single["date"]) if "date" in single else None
        try:
            terms = custom_filter(single.get("q"))
        except ValueError as exc:
            raise FilterError(str(exc), "q") from None
        form: dict[str, Any] = {**single, "status": statuses}
        return cls(single.get("process"), single.get("burst_id"), statuses, single.get("pipeline"), day,
                   Paging.from_items(items), form, single.get("obs_id"), single.get("pass_id"), terms)  # fmt: skip

    def filters(self) -> ProcessFilter:
        return ProcessFilter(process_contains=self.process, burst_id=(self.burst_id,) if self.burst_id else (),
                             obs_id=(self.obs_id,) if self.obs_id else (), pass_id=(self.pass_id,) if self.pass_id else (),
                             status=self.status, pipeline_contains=self.pipeline, date=self.date,
                             terms=self.terms)  # fmt: skip


def processes(conn: sqlite3.Connection, query: ProcessQuery) -> dict[str, Any]:
    """A page of process runs, most recently updated first, and counts per status."""
    filters = query.filters()
    page = read_lists.processes(conn, filters, "-updated_at", query.paging.limit, query.paging.offset)
    by_status = read_lists.process_counts(conn, filters)
    return {"rows": [asdict(r) for r in page.rows], "total": sum(by_status.values()), "by_status": by_status,
            "projected": _projected(conn)}  # fmt: skip


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


def _burst(row: BurstRow) -> dict[str, Any]:
    burst = asdict(row)
    burst["instruments"] = list(row.instruments)
    return burst


def bursts(conn: sqlite3.Connection, query: BurstQuery) -> dict[str, Any]:
    """A page of bursts, latest notice first, with their processes and triggers counted."""
    filters = BurstFilter(burst_id_contains=query.burst_id, since=query.since)
    page = read_lists.bursts(conn, filters, "-last_notice_at", query.paging.limit, query.paging.offset)
    rows = [_burst(r) for r in page.rows]
    statuses, triggers = read_lists.burst_counts(conn, [r.burst_id for r in page.rows])
    for row in rows:
        row["processes"] = statuses.get(row["burst_id"], {})
        row["triggers"] = triggers.get(row["burst_id"], 0)
    return {"rows": rows, "total": page.total, "projected": _projected(conn)}


def burst(conn: sqlite3.Connection, burst_id: str) -> dict[str, Any] | None:
    """One burst in the read side's one order (:mod:`burstbus.store.read.bursts`): its row, its
    notices, its processes and its triggers (none when this node has no triggers projection).
    None if unknown."""
    view = read_burst.burst_view(conn, burst_id)
    if view is None:
        return None
    timeline = []
    for notice in view.notices:
        row = asdict(notice)
        row["authored"] = row.pop("author_datetime")
        timeline.append(row)
    return {"burst": _burst(view.burst), "timeline": timeline, "processes": [asdict(p) for p in view.processes],
            "triggers": [asdict(t) for t in view.triggers], "projected": _projected(conn)}  # fmt: skip


def overview(conn: sqlite3.Connection) -> dict[str, Any]:
    """The front page: latest bursts, latest notices, process counts by status."""
    latest = bursts(conn, BurstQuery(paging=Paging(8, 0)))
    news = (notices(conn, NoticeQuery(vdb.Filters(), Paging(10, 0))) if read_burst.table_exists(conn, "voevent")
            else {"rows": [], "total": 0})  # fmt: skip
    return {"bursts": latest["rows"], "burst_total": latest["total"], "notices": news["rows"],
            "notice_total": news["total"], "by_status": read_lists.process_counts(conn),
            "projected": _projected(conn)}  # fmt: skip


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
