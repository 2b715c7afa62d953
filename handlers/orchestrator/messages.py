"""What pipelines and services send in: process statuses and data announcements (pure).

Why here, below the transports: the same message arrives over NATS (request/reply) and over
HTTP (POST), and must be judged the same way on both — one validation, one event shape, one
set of reasons the sender reads after ``NAK``. The bridges only carry bytes to these functions
and their answers back, after the durable append.

* :func:`parse_process_status` — ``process.status`` (``<prefix>.in.process``,
  ``POST /api/processes/status``).
* :func:`parse_data_announcement` — ``data.available`` (``<prefix>.in.data``,
  ``POST /api/data``): a data set or a product is available, where, how large, its checksum,
  and for a product the run (request id) that made it.

Ids: a message with a ``Nats-Msg-Id`` (or HTTP ``Idempotency-Key``) gets an event id derived
from it; an announcement without one gets an id derived from what it announces, so the same
announcement sent twice (a worker retrying after a lost reply) is recorded once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from burstbus.catalogue import DATA_AVAILABLE, DATA_REJECTED, PROCESS_REJECTED, PROCESS_STATUS
from burstbus.events import Event, derived_event_id, new_event_id, normalise_time
from burstbus.store.projections.processes import STATUSES
from burstbus.untrusted import UntrustedJson, parse_json_object

from .config import KIND

#: How much of a refused message is kept in its rejection event.
EXCERPT_BYTES = 4096
#: Longest log excerpt kept in a ``process.status`` event (its tail: the end says what failed).
MAX_LOG_CHARS = 16_384
MAX_ID_CHARS = 200
MAX_LOCATION_CHARS = 2048

_ID_FIELDS = ("process", "burst_id", "obs_id", "pass_id", "pipeline")
#: Fields a status may carry. ``request_id``: the attempt it reports on (what the dispatch
#: gave the worker); ``version``: the software version that ran (provenance).
KNOWN_FIELDS = frozenset({*_ID_FIELDS, "status", "log", "occurred_at", "request_id", "version"})
DATA_FIELDS = frozenset({"burst_id", "obs_id", "pass_id", "kind", "location", "size", "checksum", "produced_by",
                         "occurred_at", "version"})
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
_CHECKSUM = re.compile(r"^[A-Za-z0-9-]{1,20}:[0-9A-Fa-f]{8,128}$")


class InvalidMessage(ValueError):
    """A message that is refused; ``reason`` is one sentence for the sender (after ``NAK``)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class InvalidProcessStatus(InvalidMessage):
    """A ``process.status`` message that is refused."""


class InvalidAnnouncement(InvalidMessage):
    """A data announcement that is refused."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """A validated message: ``data`` is the event's data, ``occurred_at`` when given."""

    data: dict[str, Any]
    occurred_at: str | None

    @property
    def burst_id(self) -> str:
        return str(self.data.get("burst_id") or "")


#: The name nats' inbound and its tests have always used.
ProcessStatus = Parsed


def _json_object(raw: bytes, max_bytes: int, error: type[InvalidMessage]) -> dict[str, Any]:
    try:
        return parse_json_object(raw, max_bytes=max_bytes)
    except UntrustedJson as exc:
        raise error(str(exc)) from None



def _unknown(value: Mapping[str, Any], known: frozenset[str], error: type[InvalidMessage]) -> None:
    unknown = sorted(set(value) - known)
    if unknown:
        raise error(f"unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")


def _identifier(value: Mapping[str, Any], name: str, error: type[InvalidMessage], *, slash: bool = False) -> str | None:
    """An id field: text (an integer is taken as its decimal text), bounded, no control
    characters, and no ``/`` unless allowed (ids are joined with ``/`` into row keys)."""
    item = value.get(name)
    if item is None or item == "":
        return None
    if isinstance(item, bool) or not isinstance(item, str | int):
        raise error(f"'{name}' must be a string, not {type(item).__name__}")
    text = str(item).strip()
    if not text:
        return None
    if len(text) > MAX_ID_CHARS:
        raise error(f"'{name}' is longer than {MAX_ID_CHARS} characters")
    if (not slash and "/" in text) or any(c in text for c in "\r\n\t\x00"):
        raise error(f"'{name}' must not contain '/' or control characters: {text[:60]!r}")
    return text


def _occurred_at(value: Mapping[str, Any], error: type[InvalidMessage]) -> str | None:
    stamp = value.get("occurred_at")
    if stamp is None:
        return None
    try:
        if not isinstance(stamp, str):
            raise ValueError
        return normalise_time(stamp)
    except ValueError:
        raise error(f"'occurred_at' must be an ISO-8601 time, not {stamp!r}") from None


def parse_process_status(raw: bytes, *, max_bytes: int = 1_048_576) -> Parsed:
    """Validate one status message (pure); raise :class:`InvalidProcessStatus`.

    A JSON object with ``process`` (required), ``status`` (required, one of queued, running,
    complete, failed, vanished), optional ``burst_id``, ``obs_id``, ``pass_id``, ``pipeline``
    (strings; integer ids are taken as their decimal text), ``request_id`` (the attempt the
    orchestrator dispatched), ``version`` (of the software), ``log`` (text; its last 16 KiB
    kept) and ``occurred_at`` (ISO-8601; default: when recorded). Unknown keys are refused, so
    a misspelt field is reported rather than silently lost.
    """
    error = InvalidProcessStatus
    value = _json_object(raw, max_bytes, error)
    _unknown(value, KNOWN_FIELDS, error)
    data: dict[str, Any] = {}
    for name in (*_ID_FIELDS, "request_id", "version"):
        text = _identifier(value, name, error, slash=name in ("pipeline", "version"))
        if text is not None:
            data[name] = text
    if "process" not in data:
        raise error("'process' is required (the process name)")
    status = value.get("status")
    if status is None:
        raise error(f"'status' is required (one of {', '.join(STATUSES)})")
    if not isinstance(status, str) or status.strip().lower() not in STATUSES:
        raise error(f"'status' must be one of {', '.join(STATUSES)}, not {status!r}")
    data["status"] = status.strip().lower()
    text_log = value.get("log")
    if text_log is not None:
        if not isinstance(text_log, str):
            raise error(f"'log' must be text, not {type(text_log).__name__}")
        if len(text_log) > MAX_LOG_CHARS:
            data["log"] = text_log[-MAX_LOG_CHARS:]
            data["log_truncated"] = len(text_log)
        elif text_log:
            data["log"] = text_log
    return Parsed(data, _occurred_at(value, error))


def parse_data_announcement(raw: bytes, *, max_bytes: int = 1_048_576) -> Parsed:
    """Validate one data announcement (pure); raise :class:`InvalidAnnouncement`.

    A JSON object with ``burst_id``, ``kind`` (``vhf.eclairs``, ``Q1.TT_ECL``: letters,
    digits, ``_ . : + -``) and ``location`` (a URI: ``file:///…``, ``https://…``, ``s3://…``)
    required; optional ``obs_id``, ``pass_id``, ``size`` (bytes, a non-negative integer),
    ``checksum`` (``algorithm:hex``, e.g. ``sha256:…``), ``produced_by`` (for a product: the
    request id of the run that made it), ``version`` (of the software that made it) and
    ``occurred_at``. Unknown keys are refused.
    """
    error = InvalidAnnouncement
    value = _json_object(raw, max_bytes, error)
    _unknown(value, DATA_FIELDS, error)
    data: dict[str, Any] = {}
    for name in ("burst_id", "obs_id", "pass_id", "produced_by"):
        text = _identifier(value, name, error)
        if text is not None:
            data[name] = text
    if "burst_id" not in data:
        raise error("'burst_id' is required (the burst the data belongs to)")
    kind = value.get("kind")
    if not isinstance(kind, str) or not kind.strip():
        raise error("'kind' is required (the data kind, e.g. vhf.eclairs)")
    if not KIND.match(kind.strip()):
        raise error(f"'kind' must be letters, digits, _ . : + - (up to 100), not {kind[:60]!r}")
    data["kind"] = kind.strip()
    location = value.get("location")
    if not isinstance(location, str) or not location.strip():
        raise error("'location' is required (a URI: file:///…, https://…)")
    location = location.strip()
    if len(location) > MAX_LOCATION_CHARS or not _SCHEME.match(location) or any(c < " " for c in location):
        raise error(f"'location' must be a URI with a scheme (file:///…, https://…), at most {MAX_LOCATION_CHARS} "
                    f"characters, not {location[:60]!r}")
    data["location"] = location
    size = value.get("size")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise error(f"'size' must be a number of bytes (an integer, 0 or more), not {size!r}")
        data["size"] = size
    checksum = value.get("checksum")
    if checksum is not None:
        if not isinstance(checksum, str) or not _CHECKSUM.match(checksum.strip()):
            raise error(f"'checksum' must be algorithm:hex (sha256:9f86…), not {str(checksum)[:60]!r}")
        algorithm, _, digest = checksum.strip().partition(":")
        data["checksum"] = f"{algorithm.lower()}:{digest.lower()}"
    version = _identifier(value, "version", error, slash=True)
    if version is not None:
        data["version"] = version
    return Parsed(data, _occurred_at(value, error))


def data_event_id(data: Mapping[str, Any]) -> str:
    """The id of an announcement without a message id: what it announces (a repeat is one event)."""
    parts = [str(data.get(k) or "") for k in ("burst_id", "obs_id", "pass_id", "kind", "location", "checksum", "produced_by")]
    return derived_event_id(DATA_AVAILABLE, *parts)


def message_event_id(via: str, peer: str, msg_id: str | None) -> str | None:
    """The id of a message that carried its own (``Nats-Msg-Id``, ``Idempotency-Key``)."""
    return derived_event_id(via, peer, msg_id) if msg_id else None


def status_event(parsed: Parsed, *, actor: str, event_id: str | None) -> Event:
    return Event(PROCESS_STATUS, parsed.data, stream=parsed.burst_id, actor=actor,
                 id=event_id or new_event_id(), **_when(parsed))


def data_event(parsed: Parsed, *, actor: str, event_id: str | None) -> Event:
    return Event(DATA_AVAILABLE, parsed.data, stream=parsed.burst_id, actor=actor,
                 id=event_id or data_event_id(parsed.data), **_when(parsed))


def _when(parsed: Parsed) -> dict[str, str]:
    return {"occurred_at": parsed.occurred_at} if parsed.occurred_at else {}


def refused_event(event_type: str, raw: bytes, reason: str, *, actor: str, msg_id: str | None,
                  extra: Mapping[str, Any] | None = None) -> Event:
    """The record of a refused message: why, and what was received (first 4 KiB). Random id:
    each refusal is its own fact."""
    excerpt = raw[:EXCERPT_BYTES]
    data: dict[str, Any] = {
        "reason": reason,
        **(extra or {}),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "size": len(raw),
        "truncated": len(raw) > EXCERPT_BYTES,
        "excerpt": excerpt.decode("utf-8", errors="replace"),
    }
    if msg_id:
        data["msg_id"] = msg_id
    return Event(event_type, data, stream="", actor=actor)


def status_refused(raw: bytes, reason: str, *, actor: str, msg_id: str | None, extra: Mapping[str, Any]) -> Event:
    return refused_event(PROCESS_REJECTED, raw, reason, actor=actor, msg_id=msg_id, extra=extra)


def data_refused(raw: bytes, reason: str, *, actor: str, msg_id: str | None, extra: Mapping[str, Any]) -> Event:
    return refused_event(DATA_REJECTED, raw, reason, actor=actor, msg_id=msg_id, extra=extra)
