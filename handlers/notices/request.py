"""A notice request, as NATS, HTTP and the orchestrator hand it in: judged here, once (pure).

A JSON object::

    {"burst_id": "sb26021102", "instrument": "ECLAIRs", "type": "eclairs-wakeup",
     "time": "2026-02-11T19:24:23.604Z", "ra": 86.9755, "dec": -0.4379, "err": 0.1057,
     "params": {"SNR": 12.79, "Trigger_Type": "IMT"}, "request_id": "eclairs-pipeline:4711"}

``type`` is an FSC notice type (:mod:`.kinds`) the ``instrument`` issues; ``time`` the event
time (ISO-8601, UTC); ``ra``/``dec``/``err`` ICRS degrees (``err``: the error radius; all
optional for GRM and a retraction); ``params`` fills the instrument's declared parameters by
name (:mod:`.instruments`), values text, numbers or booleans; ``qualifier`` (``qf1``) goes
into the IVORN; ``authored`` sets ``Who/Date`` (default: when the request was recorded);
``role`` is ``observation`` or ``test``; ``reason`` is a retraction's explanation. Unknown
keys are refused, so a misspelt field is reported instead of silently lost.

**One request, one notice.** ``request_id`` (the pipeline's own key: a product id, a run id)
makes re-sending safe whatever the body; without one, the id is derived from the request's
content, so the same request sent twice (a retry after a lost reply) is one event, one notice.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from burstbus.catalogue import PUBLICATION_REQUESTED
from burstbus.events import canonical_json, derived_event_id, normalise_time
from burstbus.untrusted import UntrustedJson, parse_json_object

from .instruments import Instrument
from .kinds import NoticeKind, kind_named, kind_names

FIELDS = frozenset({"request_id", "burst_id", "instrument", "type", "qualifier", "time", "ra", "dec", "err",
                    "authored", "role", "params", "reason"})
ROLES = ("observation", "test")
MAX_ID_CHARS = 200
MAX_REASON_CHARS = 500
MAX_VALUE_CHARS = 200
_BURST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
_QUALIFIER = re.compile(r"^[a-z0-9]{1,16}$")


class InvalidNoticeRequest(ValueError):
    """A refused request; ``reason`` is one sentence for the sender (after ``NAK``)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class NoticeRequest:
    """A validated request. ``data`` is what ``publication.requested`` records."""

    request_id: str
    data: dict[str, Any]
    #: SHA-256 of the canonical request (without its id): tells a re-send from a different
    #: request that reuses an id.
    digest: str

    @property
    def burst_id(self) -> str:
        return str(self.data["burst_id"])

    @property
    def event_id(self) -> str:
        return requested_event_id(self.request_id)


def requested_event_id(request_id: str) -> str:
    """The one event id the request ``request_id`` can have in the log."""
    return derived_event_id(PUBLICATION_REQUESTED, request_id)


def parse_notice_json(raw: bytes, instruments: Mapping[str, Instrument], *, max_bytes: int = 65_536) -> NoticeRequest:
    """Validate one request's bytes (UTF-8 JSON object); raise :class:`InvalidNoticeRequest`."""
    try:
        value = parse_json_object(raw, max_bytes=max_bytes)
    except UntrustedJson as exc:
        raise InvalidNoticeRequest(str(exc)) from None
    return parse_notice_request(value, instruments)



def parse_notice_request(value: Mapping[str, Any], instruments: Mapping[str, Instrument]) -> NoticeRequest:
    """Validate a request already decoded (the orchestrator's data): see the module doc."""
    unknown = sorted(set(value) - FIELDS)
    if unknown:
        raise InvalidNoticeRequest(f"unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(FIELDS))})")
    burst_id = _text(value, "burst_id", required=True)
    assert burst_id is not None
    if not _BURST_ID.match(burst_id):
        raise InvalidNoticeRequest(f"'burst_id' must be letters, digits, _ . + - (up to 64), not {burst_id[:70]!r}")
    kind = _kind(value)
    instrument = _instrument(value, kind, instruments)
    data: dict[str, Any] = {"burst_id": burst_id, "type": kind.name}
    if instrument is not None:
        data["instrument"] = instrument.name
    qualifier = _text(value, "qualifier")
    if qualifier is not None:
        if not _QUALIFIER.match(qualifier):
            raise InvalidNoticeRequest(f"'qualifier' must be 1-16 lower-case letters and digits (qf1), not {qualifier!r}")
        data["qualifier"] = qualifier
    for name in ("time", "authored"):
        stamp = value.get(name)
        if stamp is None:
            continue
        if not isinstance(stamp, str):
            raise InvalidNoticeRequest(f"'{name}' must be an ISO-8601 time (text), not {type(stamp).__name__}")
        try:
            data[name] = normalise_time(stamp)
        except ValueError:
            raise InvalidNoticeRequest(f"'{name}' must be an ISO-8601 time, not {stamp[:60]!r}") from None
    if "time" not in data and not kind.retraction:
        raise InvalidNoticeRequest("'time' is required (the event time, ISO-8601 UTC)")
    data.update(_position(value, kind))
    role = _text(value, "role") or "observation"
    if role not in ROLES:
        raise InvalidNoticeRequest(f"'role' must be one of {', '.join(ROLES)}, not {role!r}")
    data["role"] = role
    reason = _text(value, "reason", limit=MAX_REASON_CHARS)
    if reason is not None:
        data["reason"] = reason
    params = _params(value.get("params"), instrument, kind)
    if params:
        data["params"] = params
    digest = hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()
    given = _text(value, "request_id", limit=MAX_ID_CHARS)
    request_id = given if given is not None else f"sha256:{digest[:32]}"
    data["request_id"] = request_id
    data["digest"] = digest
    return NoticeRequest(request_id, data, digest)


def _text(value: Mapping[str, Any], name: str, *, required: bool = False, limit: int = MAX_ID_CHARS) -> str | None:
    item = value.get(name)
    if item is None or item == "":
        if required:
            raise InvalidNoticeRequest(f"'{name}' is required")
        return None
    if isinstance(item, bool) or not isinstance(item, str | int):
        raise InvalidNoticeRequest(f"'{name}' must be text, not {type(item).__name__}")
    text = str(item).strip()
    if not text:
        if required:
            raise InvalidNoticeRequest(f"'{name}' is required")
        return None
    if len(text) > limit:
        raise InvalidNoticeRequest(f"'{name}' is longer than {limit} characters")
    allowed = "\n" if name == "reason" else ""
    if any(ord(c) < 32 and c not in allowed for c in text):
        raise InvalidNoticeRequest(f"'{name}' must not contain control characters")
    return text


def _kind(value: Mapping[str, Any]) -> NoticeKind:
    name = _text(value, "type", required=True)
    assert name is not None
    kind = kind_named(name)
    if kind is None:
        raise InvalidNoticeRequest(f"unknown notice type {name!r} (known: {', '.join(kind_names())})")
    return kind


def _instrument(value: Mapping[str, Any], kind: NoticeKind, instruments: Mapping[str, Instrument]) -> Instrument | None:
    name = _text(value, "instrument", required=not kind.retraction)
    if name is None:
        return None  # a retraction: the instrument of the burst's first notice
    instrument = instruments.get(name.casefold())
    if instrument is None:
        known = ", ".join(sorted(i.name for i in instruments.values()))
        raise InvalidNoticeRequest(f"unknown instrument {name!r} (known: {known})")
    if kind.instruments and instrument.name not in kind.instruments:
        raise InvalidNoticeRequest(f"a {kind.name} notice comes from {', '.join(kind.instruments)}, not {instrument.name}")
    return instrument


def _number(value: Mapping[str, Any], name: str) -> float | None:
    item = value.get(name)
    if item is None:
        return None
    if isinstance(item, bool) or not isinstance(item, int | float):
        raise InvalidNoticeRequest(f"'{name}' must be a number (degrees), not {type(item).__name__}")
    return float(item)


def _position(value: Mapping[str, Any], kind: NoticeKind) -> dict[str, float]:
    ra, dec, err = _number(value, "ra"), _number(value, "dec"), _number(value, "err")
    if (ra is None) != (dec is None):
        raise InvalidNoticeRequest("'ra' and 'dec' come together (or neither, for a notice without a position)")
    if ra is None:
        if err is not None:
            raise InvalidNoticeRequest("'err' needs 'ra' and 'dec'")
        return {}
    assert dec is not None
    if not 0.0 <= ra < 360.0:
        raise InvalidNoticeRequest(f"'ra' = {ra} is outside [0, 360)")
    if not -90.0 <= dec <= 90.0:
        raise InvalidNoticeRequest(f"'dec' = {dec} is outside [-90, 90]")
    if err is not None and not 0.0 <= err <= 180.0:
        raise InvalidNoticeRequest(f"'err' = {err} is outside [0, 180] (the error radius in degrees)")
    found = {"ra": ra, "dec": dec}
    if err is not None:
        found["err"] = err
    return found


def param_text(item: Any) -> str:
    """A parameter value as the packet carries it: text as given, a number in its shortest
    form (``12.79``, ``5``), a boolean as SVOM writes it (``True``/``False``)."""
    if isinstance(item, bool):
        return "True" if item else "False"
    if isinstance(item, float):
        return repr(item)
    return str(item)


def _params(given: Any, instrument: Instrument | None, kind: NoticeKind) -> dict[str, str]:
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise InvalidNoticeRequest(f"'params' must be an object of name → value, not {type(given).__name__}")
    if given and instrument is None:
        raise InvalidNoticeRequest("'params' need the 'instrument' they belong to")
    out: dict[str, str] = {}
    for name, item in given.items():
        assert instrument is not None
        if instrument.param(name) is None:
            raise InvalidNoticeRequest(
                f"{instrument.name} notices have no parameter {name!r} (known: {', '.join(instrument.param_names())}; "
                "operators add parameters in the instrument's file)")
        if item is None:
            continue
        if not isinstance(item, str | int | float | bool):
            raise InvalidNoticeRequest(f"parameter {name!r} must be text, a number or a boolean, not {type(item).__name__}")
        text = param_text(item)
        if len(text) > MAX_VALUE_CHARS or any(ord(c) < 32 for c in text):
            raise InvalidNoticeRequest(f"parameter {name!r} must be one line of at most {MAX_VALUE_CHARS} characters")
        out[name] = text
    return out
