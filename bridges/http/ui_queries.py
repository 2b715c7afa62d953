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

import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from burstbus import angles
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
               "stream", "ra", "dec", "radius", "cone", "pattern", "sort")  # fmt: skip
#: The notices page's sort keys (a column, ``-`` for descending) and the default: the event
#: time, newest first (after a bulk import every row has the same *received* time).
NOTICE_SORTS = tuple(archive.NOTICE_ORDERS)
DEFAULT_NOTICE_SORT = archive.DEFAULT_NOTICE_ORDER
#: A cone typed without a radius (``12h30m +45d``) is this wide, as the bot's ``near``.
CONE_RADIUS = 1.0
#: The widest cone (degrees): half the sky.
MAX_CONE_RADIUS = 180.0


def _sort(value: str | None, known: Sequence[str], default: str) -> str:
    if value is None:
        return default
    if value not in known:
        raise FilterError(f"sort: {value!r} is not a column to sort by (one of {', '.join(known)})", "sort")
    return value


def _typed_cone(values: dict[str, str]) -> tuple[float, float, float]:
    """The cone from the form: one text (``cone``: ``RA DEC [RADIUS]``) or three fields, read
    as the bot reads ``near`` (:mod:`burstbus.angles`): degrees, sexagesimal, units."""
    if "cone" in values:
        try:
            typed = angles.parse_cone(values["cone"], default_radius=CONE_RADIUS, maximum=MAX_CONE_RADIUS)
        except angles.AngleError as exc:
            raise FilterError(f"cone: {exc}", "cone") from None
        return typed.ra, typed.dec, typed.radius
    missing = [k for k in ("ra", "dec", "radius") if k not in values]
    if missing:
        raise FilterError(f"a cone search needs ra, dec and radius (missing: {', '.join(missing)})", missing[0])
    readers = {"ra": angles.parse_ra, "dec": angles.parse_dec,
               "radius": lambda text: angles.parse_radius(text, maximum=MAX_CONE_RADIUS)}  # fmt: skip
    numbers = []
    for key in ("ra", "dec", "radius"):
        try:
            numbers.append(readers[key](angles.plain(values[key])))
        except angles.AngleError as exc:
            raise FilterError(f"{key}: {exc}", key) from None
    return numbers[0], numbers[1], numbers[2]


@dataclass(frozen=True, slots=True)
class NoticeQuery:
    """The notices page's filters: the voeventdb API's (same names, same checks; ``cone`` as
    ``[ra,dec,radius]`` in degrees as there), plus what a person types: the cone as one text
    or three fields in any notation the bot reads, a case-insensitive ``pattern`` (IVORN or
    instrument), and ``sort`` (a column of :data:`NOTICE_SORTS`)."""

    filters: vdb.Filters
    paging: Paging
    form: dict[str, str] = field(default_factory=dict)  # what to show back in the form
    sort: str = DEFAULT_NOTICE_SORT
    pattern: str | None = None

    @classmethod
    def from_items(cls, items: Items) -> NoticeQuery:
        given = _given(items, NOTICE_KEYS, PAGING)
        form = dict(reversed(given))  # the first value of a key, as below
        values: dict[str, Any] = {}
        typed = {k: v for k, v in reversed(given) if k in ("ra", "dec", "radius")}
        for key, value in given:
            if key in ("ra", "dec", "radius", "pattern", "sort"):
                continue
            if key == "cone" and not value.startswith("["):
                typed.setdefault("cone", value)  # typed text, not the API's JSON spelling
                continue
            if key in vdb.Filters.MULTI:
                values.setdefault(key, []).append(value)
            else:
                values.setdefault(key, value)
        if ("cone" in typed and len(typed) > 1) or (typed and "cone" in values):
            raise FilterError("give the cone either as one text or as ra/dec/radius, not both", "cone")
        if typed:
            values["cone"] = _typed_cone(typed)
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
                    raise FilterError(reason, key) from None
            raise FilterError(reason) from None
        sort = _sort(form.get("sort"), NOTICE_SORTS, DEFAULT_NOTICE_SORT)
        return cls(filters, Paging.from_items(items), form, sort, form.get("pattern"))


def _projected(conn: sqlite3.Connection) -> int:
    return read_lists.projected_seq(conn) or 0


def notices(conn: sqlite3.Connection, query: NoticeQuery) -> dict[str, Any]:
    """A page of notices in the query's order (event time, newest first, by default), with
    position, event time, burst and (for a cone) the distance."""
    page = archive.notices(conn, query.filters, query.paging.limit, query.paging.offset, query.sort, query.pattern)
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

BURST_KEYS = ("burst_id", "since", "sort")
#: The bursts page's sort keys → the read side's orders; by default the trigger time, newest
#: first (an older burst with a late refinement stays below a new trigger).
BURST_SORTS = {"-trigger": "-event_time", "trigger": "event_time", "-last_notice": "-last_notice_at",
               "last_notice": "last_notice_at", "burst": "burst_id", "-burst": "-burst_id"}  # fmt: skip
DEFAULT_BURST_SORT = "-trigger"


@dataclass(frozen=True, slots=True)
class BurstQuery:
    """``burst_id`` matches anywhere in the id; ``since`` keeps bursts with a notice on or
    after that day (UTC); ``sort`` is a key of :data:`BURST_SORTS`."""

    burst_id: str | None = None
    since: str | None = None
    paging: Paging = Paging()
    form: dict[str, str] = field(default_factory=dict)
    sort: str = DEFAULT_BURST_SORT

    @classmethod
    def from_items(cls, items: Items) -> BurstQuery:
        single = {k: v for k, v in reversed(_given(items, BURST_KEYS, PAGING))}
        since = _day("since", single["since"]) if "since" in single else None
        sort = _sort(single.get("sort"), tuple(BURST_SORTS), DEFAULT_BURST_SORT)
        return cls(single.get("burst_id"), since, Paging.from_items(items), single, sort)


def _burst(row: BurstRow) -> dict[str, Any]:
    burst = asdict(row)
    burst["instruments"] = list(row.instruments)
    return burst


def bursts(conn: sqlite3.Connection, query: BurstQuery) -> dict[str, Any]:
    """A page of bursts, newest trigger first unless sorted otherwise, with their processes
    and triggers counted."""
    filters = BurstFilter(burst_id_contains=query.burst_id, since=query.since)
    page = read_lists.bursts(conn, filters, BURST_SORTS[query.sort], query.paging.limit, query.paging.offset)
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
#: Events per audit page: 50 short rows, so a phone's page stays a few screens long.
LOG_ROWS = 50


@dataclass(frozen=True, slots=True)
class LogQuery:
    """The audit page's filters: ``type`` (repeat or comma-separate), ``stream``, and a seq
    window: ``after`` (read forwards from there) or ``before`` (the newest before it)."""

    types: tuple[str, ...] = ()
    stream: str | None = None
    after: int | None = None
    before: int | None = None
    limit: int = LOG_ROWS
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
        limit = _count("limit", values["limit"], 1000) if values.get("limit") else LOG_ROWS
        if limit == 0:
            raise FilterError("limit: at least 1", "limit")
        form = {**single, "type": ", ".join(dict.fromkeys(types))}
        return cls(tuple(dict.fromkeys(types)), single.get("stream"), after, before, limit, form)


# -- relative times ------------------------------------------------------------------------


def relative_time(value: Any, now: datetime | None = None) -> str:
    """``12 min ago`` (or ``in 3 min``) for a UTC time text; "" when it cannot be read. The
    same wording as ``static/live.js``, which keeps it current between refreshes."""
    if not value:
        return ""
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - when).total_seconds()
    ahead, seconds = seconds < 0, abs(seconds)
    if seconds < 60:
        return "just now"
    minutes = int(seconds // 60)
    if minutes < 90:
        text = f"{minutes} min"
    elif minutes < 48 * 60:
        text = f"{minutes // 60} h {minutes % 60:02d} min" if minutes < 6 * 60 else f"{minutes // 60} h"
    else:
        text = f"{minutes // 1440} d"
    return f"in {text}" if ahead else f"{text} ago"
