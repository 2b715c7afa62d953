"""Typed rows of the read side, and the one tolerant decoding of stored JSON columns.

Every front end (the HTTP API, the web pages, the bot) gets these frozen dataclasses from
:mod:`burstbus.store.read`, never a raw ``sqlite3`` tuple: a column added to a projection is
added here once, and a bad value in a JSON column reads the same way for every caller.

Bad stored JSON (a hand-edited database, a projection bug) must never turn one burst into a
500 or a crashed bot command, nor read differently on two screens. :func:`json_list` and
:func:`json_object` define the fallback: text that is not JSON, or JSON of the wrong shape,
reads as empty (``()`` / ``{}``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def json_list(text: str | None) -> tuple[str, ...]:
    """A stored JSON array of strings; anything else (not JSON, not an array, NULL) is ``()``."""
    try:
        value = json.loads(text) if text else []
    except (ValueError, TypeError):
        return ()
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def json_object(text: str | None) -> dict[str, Any]:
    """A stored JSON object; anything else (not JSON, not an object, NULL) is ``{}``."""
    try:
        value = json.loads(text) if text else {}
    except (ValueError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


def _columns(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


@dataclass(frozen=True, slots=True)
class BurstRow:
    """A ``bursts`` row: the burst's time span, its best position (smallest error), flags."""

    burst_id: str
    first_notice_at: str
    last_notice_at: str
    event_time: str | None
    ra: float | None
    dec: float | None
    err: float | None
    best_ivorn: str | None
    notice_count: int
    instruments: tuple[str, ...]
    retracted: bool
    first_seq: int = 0
    last_seq: int = 0

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> BurstRow:
        values = dict(zip(BURST_COLUMNS, row, strict=True))
        values["instruments"] = json_list(values["instruments"])
        values["retracted"] = bool(values["retracted"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class NoticeRow:
    """A notice of a burst (``burst_notices``), with what the archive (``voevent``) adds."""

    ivorn: str
    seq: int
    rule: str
    notice_at: str
    instrument: str | None
    ra: float | None
    dec: float | None
    err: float | None
    retraction: bool
    role: str | None = None
    stream: str | None = None
    author_datetime: str | None = None
    mission: str | None = None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> NoticeRow:
        values = dict(zip(NOTICE_COLUMNS, row, strict=True))
        values["retraction"] = bool(values["retraction"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class ProcessRow:
    """A ``processes`` row: one run and its latest status. ``run_id`` (its id), ``request_id``
    (the current attempt), ``reason`` (why it idles, failed, is retried or was given up),
    ``requested_by`` (a request by hand) and ``deadline`` (when the current attempt vanishes
    without a sign of life) are set for runs the orchestrator started."""

    id: str
    date: str
    process: str
    burst_id: str | None
    obs_id: str | None
    pass_id: str | None
    pipeline: str | None
    status: str
    attempts: int
    last_log: str | None
    first_seen: str
    updated_at: str
    retry_requested: int | None
    last_seq: int
    run_id: str | None = None
    request_id: str | None = None
    reason: str | None = None
    requested_by: str | None = None
    deadline: str | None = None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ProcessRow:
        return cls(*row)


@dataclass(frozen=True, slots=True)
class TriggerRow:
    """A ``triggers`` row: one follow-up request and how far it went."""

    request_id: str
    telescope: str
    burst_id: str
    state: str
    requested_by: str
    requested_at: str
    note: str | None
    params: dict[str, Any]
    two_person: bool
    expires_at: str | None
    approved_by: str | None
    approved_at: str | None
    denied_by: str | None
    denied_at: str | None
    reason: str | None
    sent_at: str | None
    voevent_ivorn: str | None
    first_seq: int = 0
    last_seq: int = 0
    #: After delivery: the telescope's steps (packets citing the trigger), or its silence.
    unacknowledged_at: str | None = None
    acknowledged_at: str | None = None
    observing_at: str | None = None
    observed_at: str | None = None
    data_uploaded_at: str | None = None
    data_location: str | None = None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> TriggerRow:
        values = dict(zip(TRIGGER_COLUMNS, row, strict=True))
        values["params"] = json_object(values["params"])
        values["two_person"] = bool(values["two_person"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class BurstView:
    """One burst with its notices, processes and triggers, read in one transaction, in the
    read side's one order (see :mod:`burstbus.store.read.bursts`)."""

    burst: BurstRow
    notices: tuple[NoticeRow, ...] = ()
    processes: tuple[ProcessRow, ...] = ()
    #: ``()`` also when this node has no triggers projection (yet).
    triggers: tuple[TriggerRow, ...] = ()


@dataclass(frozen=True, slots=True)
class ConeHit:
    """A notice near a position (the bot's ``near``), nearest first."""

    ivorn: str
    ra: float
    dec: float
    error: float | None
    distance: float
    role: str | None
    authored: str | None
    burst_id: str | None


@dataclass(frozen=True, slots=True)
class ConeMatch:
    """A positioned notice of the archive within a cone (:func:`~burstbus.store.read.voeventdb.cone_search`)."""

    ivorn: str
    ra: float
    dec: float
    error: float | None
    #: Degrees from the cone's centre.
    distance: float


@dataclass(frozen=True, slots=True)
class IvornCount:
    """An archived IVORN and a count: the citations it makes (4pisky's ``/list/ivorn_nrefs``)
    or the citations of it the archive holds (``/list/ivorn_ncites``)."""

    ivorn: str
    count: int


@dataclass(frozen=True, slots=True)
class VOEventRow:
    """A ``voevent`` row of the archive (``id`` is the log seq of its ``voevent.accepted``)."""

    id: int
    ivorn: str
    stream: str
    role: str | None
    version: str | None
    author_ivorn: str | None
    author_datetime: str | None
    received: str
    instrument: str | None
    mission: str | None
    via: str | None
    sha256: str | None
    size: int | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> VOEventRow:
        return cls(*row)


@dataclass(frozen=True, slots=True)
class CiteRow:
    """A citation a notice makes (``cite``)."""

    ref_ivorn: str
    cite_type: str | None
    description: str | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> CiteRow:
        return cls(*row)


@dataclass(frozen=True, slots=True)
class CoordRow:
    """A notice's position (``coord``): degrees ICRS, the error-circle radius, fixed-width UTC."""

    ra: float
    dec: float
    error: float | None
    time: str | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> CoordRow:
        return cls(*row)


@dataclass(frozen=True, slots=True)
class Synopsis:
    """One archived notice without its XML: its row, its citations (in their order), its
    position (if any) and the IVORNs citing it (by seq)."""

    voevent: VOEventRow
    refs: tuple[CiteRow, ...] = ()
    coords: tuple[CoordRow, ...] = ()
    cited_by: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a filtered list and how many rows match in all (every page)."""

    rows: tuple[T, ...]
    total: int


BURST_COLUMNS = _columns(BurstRow)
NOTICE_COLUMNS = _columns(NoticeRow)
PROCESS_COLUMNS = _columns(ProcessRow)
TRIGGER_COLUMNS = _columns(TriggerRow)
VOEVENT_COLUMNS = _columns(VOEventRow)
CITE_COLUMNS = _columns(CiteRow)
COORD_COLUMNS = _columns(CoordRow)
