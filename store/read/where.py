"""One WHERE builder for the filters the HTTP API and the web pages share.

The API and the pages filter processes, bursts and triggers by the same columns; they parse
their query strings differently (that stays in the HTTP bridge), but both hand the result
to these filter dataclasses, so the SQL for "updated since", "any of these statuses" or
"name contains" is written once. Every value is a bound parameter; ``ORDER BY`` text comes
only from the fixed ``*_ORDERS`` tables, never from request text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PROCESS_ORDERS: dict[str, str] = {
    "-updated_at": "updated_at DESC, id",
    "updated_at": "updated_at, id",
    "-first_seen": "first_seen DESC, id",
    "first_seen": "first_seen, id",
    "-date": "date DESC, updated_at DESC, id",
    "date": "date, updated_at, id",
    "process": "process, updated_at DESC, id",
    "burst_id": "burst_id, updated_at DESC, id",
    "status": "status, updated_at DESC, id",
}
BURST_ORDERS: dict[str, str] = {
    # The trigger time: the event time its notices give, else its first notice (a burst of
    # positionless notices has no event time).
    "-event_time": "coalesce(event_time, first_notice_at) DESC, burst_id",
    "event_time": "coalesce(event_time, first_notice_at), burst_id",
    "-last_notice_at": "last_notice_at DESC, burst_id",
    "last_notice_at": "last_notice_at, burst_id",
    "-first_notice_at": "first_notice_at DESC, burst_id",
    "first_notice_at": "first_notice_at, burst_id",
    "burst_id": "burst_id",
    "-burst_id": "burst_id DESC",
}
TRIGGER_ORDERS: dict[str, str] = {
    "-requested_at": "requested_at DESC, request_id",
    "requested_at": "requested_at, request_id",
}


#: Where a word of a process search is looked for.
PROCESS_TEXT_COLUMNS = ("process", "pipeline", "burst_id", "obs_id", "pass_id", "status", "reason", "last_log",
                        "requested_by")
#: Columns a ``key:value`` term of a process search names, and how it matches.
PROCESS_TERMS: dict[str, str] = {"process": "contains", "pipeline": "contains", "burst_id": "exact", "obs_id": "exact",
                                 "pass_id": "exact", "status": "exact", "reason": "contains", "requested_by": "contains"}


@dataclass
class Where:
    """A conjunction of SQL conditions and their parameters."""

    clauses: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, clause: str, *params: Any) -> None:
        self.clauses.append(clause)
        self.params.extend(params)

    def at_least(self, column: str, value: Any) -> None:
        if value not in (None, ""):
            self.add(f"{column} >= ?", value)

    def at_most(self, column: str, value: Any) -> None:
        if value not in (None, ""):
            self.add(f"{column} <= ?", value)

    def equals(self, column: str, value: Any) -> None:
        if value not in (None, ""):
            self.add(f"{column} = ?", value)

    def contains(self, column: str, value: str | None) -> None:
        """``value`` anywhere in the column, literally (no LIKE wildcards)."""
        if value:
            self.add(f"instr({column}, ?) > 0", value)

    def any_of(self, column: str, values: Sequence[Any]) -> None:
        if values:
            self.add(f"{column} IN ({','.join('?' * len(values))})", *values)

    def sql(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "1"


@dataclass(frozen=True, slots=True)
class ProcessFilter:
    """Process runs: ``date_*`` on the run's first day, ``since``/``until`` on its last update;
    the ``*_contains`` fields match anywhere in the name (the page), the others exactly."""

    date_from: str | None = None
    date_to: str | None = None
    date: str | None = None
    since: str | None = None
    until: str | None = None
    process: Sequence[str] = ()
    process_contains: str | None = None
    burst_id: Sequence[str] = ()
    obs_id: Sequence[str] = ()
    pass_id: Sequence[str] = ()
    status: Sequence[str] = ()
    pipeline: Sequence[str] = ()
    pipeline_contains: str | None = None
    #: The custom filter's terms, each one more AND: ``("", word)`` = the word anywhere (any of
    #: :data:`PROCESS_TEXT_COLUMNS`, case-insensitive); ``(column, value)`` = exactly that value
    #: (ids, status) or containing it (names, reason, who asked) — :data:`PROCESS_TERMS`.
    terms: Sequence[tuple[str, str]] = ()

    def where(self) -> Where:
        w = Where()
        for column, value in self.terms:
            if not column:
                w.add("(" + " OR ".join(f"instr(lower(coalesce({c}, '')), ?) > 0" for c in PROCESS_TEXT_COLUMNS) + ")",
                      *[value.lower()] * len(PROCESS_TEXT_COLUMNS))
            elif PROCESS_TERMS[column] == "exact":
                w.add(f"{column} = ?", value)
            else:
                w.add(f"instr(lower(coalesce({column}, '')), ?) > 0", value.lower())
        w.at_least("date", self.date_from)
        w.at_most("date", self.date_to)
        w.equals("date", self.date)
        w.at_least("updated_at", self.since)
        w.at_most("updated_at", self.until)
        w.contains("process", self.process_contains)
        w.contains("pipeline", self.pipeline_contains)
        for column in ("process", "burst_id", "obs_id", "pass_id", "status", "pipeline"):
            w.any_of(column, getattr(self, column))
        return w


@dataclass(frozen=True, slots=True)
class BurstFilter:
    """Bursts with notices in [since, until] (overlap), by id, instrument and flags."""

    since: str | None = None
    until: str | None = None
    burst_id: Sequence[str] = ()
    burst_id_contains: str | None = None
    instrument: Sequence[str] = ()
    retracted: bool | None = None
    has_position: bool | None = None

    def where(self) -> Where:
        w = Where()
        w.at_least("last_notice_at", self.since)
        w.at_most("first_notice_at", self.until)
        w.any_of("burst_id", self.burst_id)
        w.contains("burst_id", self.burst_id_contains)
        if self.instrument:
            marks = ",".join("?" * len(self.instrument))
            # json_valid: a bad stored instruments column matches no instrument (and no error).
            w.add(f"CASE WHEN json_valid(bursts.instruments) THEN EXISTS (SELECT 1 FROM "
                  f"json_each(bursts.instruments) WHERE value IN ({marks})) ELSE 0 END", *self.instrument)  # fmt: skip
        if self.retracted is not None:
            w.add("retracted = ?", int(self.retracted))
        if self.has_position is not None:
            w.add("ra IS NOT NULL" if self.has_position else "ra IS NULL")
        return w


@dataclass(frozen=True, slots=True)
class TriggerFilter:
    """Trigger requests made in [since, until], by burst, telescope, state, requester."""

    since: str | None = None
    until: str | None = None
    burst_id: Sequence[str] = ()
    telescope: Sequence[str] = ()
    state: Sequence[str] = ()
    requested_by: Sequence[str] = ()

    def where(self) -> Where:
        w = Where()
        w.at_least("requested_at", self.since)
        w.at_most("requested_at", self.until)
        for column in ("burst_id", "telescope", "state", "requested_by"):
            w.any_of(column, getattr(self, column))
        return w
