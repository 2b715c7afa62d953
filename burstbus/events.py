"""The event model: what every input becomes before anything acts on it.

An :class:`Event` is what a producer hands to the log; a :class:`RecordedEvent` is what the
log hands back once the event has a place in the total order (``seq``) and in the hash chain.
Both are frozen: an event, once written, never changes — corrections are new events.

The canonical JSON encoding defined here is the one the hash chain is computed over, so it
must stay byte-stable across versions: sorted keys, no whitespace, UTF-8, no NaN/Infinity.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

#: Namespace for deterministic event ids (uuid5), e.g. one id per VOEvent IVORN so that the
#: log's ``UNIQUE(id)`` is also the IVORN dedupe.
EVENT_ID_NAMESPACE = uuid.UUID("6f1d0c3e-4b1a-5c8e-9a57-0b5b2b3e5a11")
_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_now() -> str:
    """The current time as the fixed-width ISO-8601 UTC string used throughout the log."""
    return format_time(datetime.now(UTC))


def format_time(moment: datetime) -> str:
    """Fixed-width ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` so that string order is time order."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    m = moment.astimezone(UTC)
    if m.year < 1000:  # strftime's %Y does not pad those years here; keep its text
        return m.strftime(_TIME_FORMAT)
    # What strftime writes, twice as fast (every event is stamped: this is on the hot path).
    return f"{m.year}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}.{m.microsecond:06d}Z"


def parse_time(text: str) -> datetime:
    """Parse an ISO-8601 time (``Z`` or offset; naive means UTC) into an aware datetime."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def normalise_time(text: str) -> str:
    """Any ISO-8601 time → the log's fixed-width UTC form (raises ValueError if unparseable)."""
    return format_time(parse_time(text))


#: The definition: one encoder for every call (``json.dumps`` with options builds a new one).
_canonical_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode

#: orjson, with every type it would encode differently from the definition sent back to it
#: (subclasses of str/int/dict/list, dates, dataclasses raise and take the definition's path).
_FAST_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
#: A float orjson writes differently below 1e-4 (``1e-7`` where Python writes ``1e-07``).
_SMALL_EXPONENT = re.compile(rb"\de-")


def canonical_json(value: Any) -> str:
    """The canonical text of a JSON value: sorted keys, compact, UTF-8, finite numbers only.

    Defined as ``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    allow_nan=False)``. orjson writes the same text 4-5x faster for the values it can write
    identically (tested on random values), so it goes first; anything it refuses, or whose
    text may differ, is encoded by the definition. Exception: orjson also accepts ``UUID``
    and ``Enum`` members (as strings/values), which the definition refuses.
    """
    try:
        fast = orjson.dumps(value, option=_FAST_OPTIONS)
    except TypeError:  # non-str keys, integers beyond 64 bits, lone surrogates, subclasses …
        return _canonical_encode(value)
    # Texts orjson may have written differently: small floats (``1e-7``, ``0.00001``: Python
    # writes ``1e-07``, ``1e-05``) and ``null``, which is also how it writes NaN. Plain
    # substring tests first: they are memchr-fast, a regex alternation here is not. They also
    # match text inside strings (a VOEvent's XML, a None), so a hit looks at the floats
    # themselves before paying for the definition (5x slower on an accepted VOEvent).
    if (b"null" in fast or b"0.0000" in fast or (b"e-" in fast and _SMALL_EXPONENT.search(fast))) and not _floats_written_alike(value):
        return _canonical_encode(value)
    return fast.decode()


def _floats_written_alike(value: Any) -> bool:
    """Does orjson write every float in ``value`` as the definition does? Not NaN or infinity
    (it writes ``null``; the definition refuses) nor a magnitude below 1e-4 (it writes
    ``0.00001``; Python ``1e-05``). Only the types orjson just wrote are here (dict, list,
    tuple, scalars: subclasses were sent back to the definition)."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is float:
            if not math.isfinite(item) or (item != 0.0 and abs(item) < 1e-4):
                return False
        elif kind is dict:
            pending.extend(item.values())
        elif kind is list or kind is tuple:
            pending.extend(item)
    return True


def decode_json(text: str | bytes) -> Any:
    """Stored JSON text → value. orjson is ~3x faster than json, which stays the fallback for
    what orjson refuses (integers beyond 64 bits, which :func:`canonical_json` can write)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def new_event_id() -> str:
    """A fresh id, time-ordered (UUIDv7: 48 bits of Unix milliseconds, then 74 random bits).

    Why not uuid4: ids are the log's ``UNIQUE`` index, and random ones scatter each batch over
    the whole index, so every commit writes (and fsyncs) more pages as the log grows; ids that
    follow time land at the index's end (measured: 200,000 appends, uuid4 18k ev/s, ordered
    29k). Derived ids (:func:`derived_event_id`) stay what they are: they exist to collide."""
    value = (time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # the RFC 9562 variant
    return str(uuid.UUID(int=value))


def derived_event_id(*parts: str) -> str:
    """A deterministic event id: the same parts always give the same id (idempotent appends)."""
    # uuid.uuid5 (RFC 4122 §4.3: SHA-1 of namespace + name, version and variant bits set)
    # without building a UUID object, which costs half the time of every accepted packet's id.
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join(parts).encode()).digest()[:16])  # noqa: S324 (an id, not security)
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@dataclass(frozen=True, slots=True)
class Event:
    """An event as produced, before the log orders it.

    ``id`` is the idempotency key: appending an event whose id is already in the log is a
    no-op that returns the original position. ``stream`` groups events (the burst id when
    known, else the IVORN's stream). ``actor`` says who caused it: ``vtp:1.2.3.4``,
    ``xmpp:alice@fsc.example``, ``nats:pipeline.obtloc``, ``cli:import``, ``system``.
    """

    type: str
    data: Mapping[str, Any]
    stream: str = ""
    actor: str = "system"
    id: str = field(default_factory=new_event_id)
    occurred_at: str = field(default_factory=utc_now)

    def data_json(self) -> str:
        return canonical_json(self.data)


class RecordedEvent(NamedTuple):
    """An event with its place in the log: gap-free ``seq`` and its link in the hash chain.

    A NamedTuple rather than a frozen dataclass: a rebuild creates a million of these, and a
    tuple is built several times faster while being just as immutable.
    """

    seq: int
    id: str
    type: str
    stream: str
    actor: str
    occurred_at: str
    recorded_at: str
    data: Mapping[str, Any]
    prev_hash: str
    hash: str

    def to_json_dict(self) -> dict[str, Any]:
        """The event as one JSON object (what ``burstbus log`` prints, one per line)."""
        return {
            "seq": self.seq,
            "id": self.id,
            "type": self.type,
            "stream": self.stream,
            "actor": self.actor,
            "occurred_at": self.occurred_at,
            "recorded_at": self.recorded_at,
            "data": dict(self.data),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


class StoredRecord(NamedTuple):
    """A record as the log stores it: ``data`` still the exact canonical JSON text.

    What a relay that only re-sends records needs (the NATS outbox splices ``data_json``
    into its message instead of decoding it and encoding it again). Same fields, in the
    same order, as :class:`RecordedEvent`, which :meth:`decoded` gives.
    """

    seq: int
    id: str
    type: str
    stream: str
    actor: str
    occurred_at: str
    recorded_at: str
    data_json: str
    prev_hash: str
    hash: str

    def decoded(self) -> RecordedEvent:
        return RecordedEvent(
            self.seq, self.id, self.type, self.stream, self.actor, self.occurred_at,
            self.recorded_at, decode_json(self.data_json), self.prev_hash, self.hash,
        )

    @staticmethod
    def of(record: RecordedEvent) -> StoredRecord:
        """A decoded record's stored form (its data encoded canonically again)."""
        return StoredRecord(
            record.seq, record.id, record.type, record.stream, record.actor, record.occurred_at,
            record.recorded_at, canonical_json(record.data), record.prev_hash, record.hash,
        )


@dataclass(frozen=True, slots=True)
class Appended:
    """Where an appended event stands. ``new`` is False when its id was already in the log."""

    seq: int
    id: str
    hash: str
    new: bool


#: The hash of "nothing before": the first event's ``prev_hash``.
GENESIS_HASH = "0" * 64
