"""JSON notices (LVK, Einstein Probe, IceCube, Swift GUANO …): bytes → facts, or a refusal. Pure.

GCN carries more and more alerts as JSON instead of VOEvent: LVK's ``igwn.gwalert`` (JSON only
since 2026-07), and GCN's "unified schema" notices (``$schema`` under
``https://gcn.nasa.gov/schema/``: ``ra``, ``dec``, ``ra_dec_error``, ``trigger_time``, ``id``…).
A JSON notice becomes a ``notice.accepted`` event holding the exact bytes (``json``: they are
UTF-8 by definition) and the facts extracted where the schema is known, in the same shape as
a VOEvent's summary (``role``, ``time``, ``position {ra, dec, err}``, ``params``, ``mission``,
``instrument``), so the burst identifier and the chat bridges read both alike. LVK's
``superevent_id`` goes into ``params.GraceID`` — the parameter LVK's VOEvents carry — so an
LVK JSON alert and its VOEvent (and IceCube's and Swift's follow-ups of it, through their
``ref_ID``/``follow_up_event``) join one burst.

Refused (:class:`NoticeRefused`, with a reason a person can act on): not UTF-8, not JSON
(NaN and Infinity included: the facts must be plain numbers), not an object, nested deeper
than :data:`MAX_DEPTH`, or a message of a known schema whose facts have the wrong type or
range (a ``dec`` of 95, a ``superevent_id`` that is a number). A JSON object of a schema this
module does not know is accepted with its bytes and no facts beyond its id: nothing received
is lost for want of a parser.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from burstbus.events import normalise_time

#: Deeper nesting is refused before it can exhaust the parser's recursion.
MAX_DEPTH = 64
#: Where GCN's unified notice schemas live.
GCN_SCHEMA_PREFIX = "https://gcn.nasa.gov/schema/"
LVK_TOPIC = "igwn.gwalert"
LVK_ALERT_TYPES = ("EARLYWARNING", "PRELIMINARY", "INITIAL", "UPDATE", "RETRACTION")
#: ``S241125n``, ``MS241125abc`` (mock), ``TS…`` (test): S, six digits of date, letters.
_SUPEREVENT = re.compile(r"^[MT]?S\d{6}[a-z]{1,4}$")
_SCHEMA_PATH = re.compile(r"/schema/(?:v[^/]+/)?(?:gcn/)?(.+?)(?:\.schema)?\.json$")


class NoticeRefused(ValueError):
    """A JSON message that is not taken in; ``reason`` for the event and the log line."""

    def __init__(self, reason: str, code: str = "json"):
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class JsonNotice:
    """What was understood of one JSON notice."""

    #: The notice's own identity (LVK: superevent, alert type and creation time; GCN unified:
    #: mission, instrument and id list; else the digest): with the topic, its event id.
    notice_id: str
    #: ``igwn.gwalert``, ``gcn:notices/einstein_probe/wxt/alert`` …, or None when unknown.
    schema: str | None
    facts: Mapping[str, Any] = field(default_factory=dict)


def looks_like_json(raw: bytes) -> bool:
    """True when the message is meant as JSON (first non-blank byte ``{`` or ``[``); anything
    else goes to the VOEvent ingest, which refuses what is not XML with its own reason."""
    head = raw[:64].lstrip(b" \t\r\n\xef\xbb\xbf")
    return head[:1] in (b"{", b"[")


def _reject_constant(name: str) -> Any:
    raise NoticeRefused(f"not JSON: {name} is not a JSON number")


def _depth(raw: str) -> int:
    """The deepest nesting of ``[``/``{`` outside strings (a scan, no recursion)."""
    deepest = level = 0
    in_string = escaped = False
    for ch in raw:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            level += 1
            deepest = max(deepest, level)
        elif ch in "]}":
            level -= 1
    return deepest


def parse_json(raw: bytes) -> dict[str, Any]:
    """The JSON object in ``raw``, or :class:`NoticeRefused` saying why not."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoticeRefused(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise NoticeRefused("empty message: expected a JSON object")
    if _depth(text) > MAX_DEPTH:
        raise NoticeRefused(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise NoticeRefused(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise NoticeRefused(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(value, dict):
        raise NoticeRefused(f"expected a JSON object, got {type(value).__name__}", "schema")
    return value


def schema_of(topic: str, value: Mapping[str, Any]) -> str | None:
    """Which schema a notice follows: by ``$schema`` (GCN unified), else by topic (LVK)."""
    declared = value.get("$schema")
    if isinstance(declared, str) and declared.startswith(GCN_SCHEMA_PREFIX):
        found = _SCHEMA_PATH.search(declared)
        return f"gcn:{found.group(1)}" if found else "gcn"
    if topic == LVK_TOPIC or (isinstance(value.get("superevent_id"), str) and "alert_type" in value):
        return LVK_TOPIC
    return None


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def examine_notice(raw: bytes, topic: str) -> JsonNotice:
    """Parse and understand one JSON notice from ``topic`` (pure; raises :class:`NoticeRefused`)."""
    value = parse_json(raw)
    schema = schema_of(topic, value)
    if schema == LVK_TOPIC:
        return _lvk(value)
    if schema is not None and schema.startswith("gcn"):
        return _gcn_unified(value, schema, raw)
    return JsonNotice(f"sha256:{digest(raw)[:32]}", None, {})


# -- field checks -------------------------------------------------------------------------------


def _string(value: Mapping[str, Any], name: str, *, required: bool = False, limit: int = 200) -> str | None:
    item = value.get(name)
    if item is None or item == "":
        if required:
            raise NoticeRefused(f"'{name}' is required", "schema")
        return None
    if not isinstance(item, str):
        raise NoticeRefused(f"'{name}' must be a string, not {type(item).__name__}", "schema")
    if len(item) > limit or any(ord(c) < 32 for c in item):
        raise NoticeRefused(f"'{name}' is longer than {limit} characters or holds control characters", "schema")
    return item


def _number(value: Mapping[str, Any], name: str, low: float | None = None, high: float | None = None) -> float | None:
    item = value.get(name)
    if item is None:
        return None
    if isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(item):
        raise NoticeRefused(f"'{name}' must be a number, not {item!r:.40}", "schema")
    number = float(item)
    if (low is not None and number < low) or (high is not None and number > high):
        raise NoticeRefused(f"'{name}' = {number} is outside [{low}, {high}]", "schema")
    return number


def _time(value: Mapping[str, Any], name: str) -> str | None:
    text = _string(value, name, limit=64)
    if text is None:
        return None
    try:
        return normalise_time(text)
    except ValueError:
        raise NoticeRefused(f"'{name}' is not an ISO time: {text!r}", "schema") from None


def _error_radius(value: Mapping[str, Any]) -> float | None:
    item = value.get("ra_dec_error")
    if isinstance(item, list):  # some schemas give [lower, upper] or per-axis errors: the largest
        numbers = [x for x in item if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)]
        if len(numbers) != len(item) or not numbers:
            raise NoticeRefused("'ra_dec_error' must be a number or a list of numbers", "schema")
        item = max(abs(x) for x in numbers)
        value = {"ra_dec_error": item}
    return _number(value, "ra_dec_error", 0.0, 180.0)


def _position(value: Mapping[str, Any]) -> dict[str, float] | None:
    ra, dec = _number(value, "ra", 0.0, 360.0), _number(value, "dec", -90.0, 90.0)
    if ra is None or dec is None:
        return None
    position = {"ra": ra % 360.0, "dec": dec}
    err = _error_radius(value)
    if err is not None:
        position["err"] = err
    return position


# -- LVK ------------------------------------------------------------------------------------------


def _lvk(value: Mapping[str, Any]) -> JsonNotice:
    """LVK's alert (igwn.gwalert, JSON since O4): superevent, alert type, significance."""
    superevent = _string(value, "superevent_id", required=True, limit=40)
    assert superevent is not None
    if not _SUPEREVENT.match(superevent):
        raise NoticeRefused(f"'superevent_id' does not look like an LVK superevent id: {superevent!r}", "schema")
    alert_type = (_string(value, "alert_type", required=True, limit=20) or "").upper()
    if alert_type not in LVK_ALERT_TYPES:
        raise NoticeRefused(f"'alert_type' must be one of {', '.join(LVK_ALERT_TYPES)}, not {alert_type!r}", "schema")
    created = _time(value, "time_created")
    event = value.get("event")
    if event is not None and not isinstance(event, dict):
        raise NoticeRefused(f"'event' must be an object or null, not {type(event).__name__}", "schema")
    lvk: dict[str, Any] = {"superevent_id": superevent, "alert_type": alert_type}
    time = None
    if isinstance(event, dict):
        time = _time(event, "time")
        far = _number(event, "far", 0.0)
        if far is not None:
            lvk["far"] = far
        significant = event.get("significant")
        if significant is not None:
            if not isinstance(significant, bool):
                raise NoticeRefused("'event.significant' must be true or false", "schema")
            lvk["significant"] = significant
        for name in ("group", "pipeline", "search"):
            text = _string(event, name, limit=40)
            if text:
                lvk[name] = text
        instruments = event.get("instruments")
        if isinstance(instruments, list) and all(isinstance(i, str) for i in instruments):
            lvk["instruments"] = [i[:8] for i in instruments[:10]]
        lvk["has_skymap"] = bool(event.get("skymap"))
    urls = value.get("urls")
    if isinstance(urls, dict) and isinstance(urls.get("gracedb"), str):
        lvk["gracedb"] = urls["gracedb"][:300]
    role = "test" if superevent[0] in "MT" else "observation"
    facts: dict[str, Any] = {
        "role": role,
        "mission": "LVK",
        "instrument": ",".join(lvk.get("instruments", ())) or None,
        "time": time,
        "authored": created,
        "params": {"GraceID": superevent, "AlertType": alert_type},
        "lvk": lvk,
        "retraction": alert_type == "RETRACTION",
    }
    notice_id = f"{superevent}-{alert_type}-{created or ''}"
    return JsonNotice(notice_id, LVK_TOPIC, _clean(facts))


# -- GCN unified schema -------------------------------------------------------------------------


def _gcn_unified(value: Mapping[str, Any], schema: str, raw: bytes) -> JsonNotice:
    """GCN's unified notices (Einstein Probe, Swift GUANO, IceCube, SVOM JSON …): the common fields."""
    mission = _string(value, "mission", limit=40)
    instrument = _string(value, "instrument", limit=40)
    parts = schema.removeprefix("gcn:").split("/")
    if parts and parts[0] == "notices":
        parts = parts[1:]
    if mission is None and parts:
        mission = parts[0].replace("_", " ").title().replace(" ", "") if parts[0] != "icecube" else "IceCube"
    if instrument is None and len(parts) >= 3:
        instrument = parts[1].upper()
    authored = _time(value, "alert_datetime")
    time = _time(value, "trigger_time") or authored
    ids = value.get("id")
    id_text = None
    if isinstance(ids, list) and ids and all(isinstance(i, str | int) and not isinstance(i, bool) for i in ids):
        id_text = ",".join(str(i) for i in ids)[:120]
    elif isinstance(ids, str | int) and not isinstance(ids, bool):
        id_text = str(ids)[:120]
    elif ids is not None:
        raise NoticeRefused("'id' must be a string, a number or a list of them", "schema")
    position = _position(value)
    params: dict[str, Any] = {}
    # Follow-ups of a GW superevent name it: IceCube's ref_ID, Swift GUANO's follow_up_event.
    for name in ("ref_ID", "follow_up_event"):
        ref = value.get(name)
        if isinstance(ref, str) and _SUPEREVENT.match(ref):
            params["GraceID"] = ref
    alert_type = _string(value, "alert_type", limit=40)
    if alert_type:
        params["AlertType"] = alert_type
    if id_text:
        params["TrigID"] = id_text.split(",")[0]
    record = value.get("record_number")
    facts: dict[str, Any] = {
        "role": "test" if str(value.get("alert_tense") or "").lower() == "test" else "observation",
        "mission": mission,
        "instrument": instrument,
        "time": time,
        "authored": authored,
        "position": position,
        "params": params,
        "retraction": str(alert_type or "").lower() == "retraction",
    }
    if id_text:
        identity = f"{mission or 'gcn'}-{instrument or ''}-{id_text}"
        if isinstance(record, int) and not isinstance(record, bool):
            identity += f"-{record}"
        identity += f"-{authored or digest(raw)[:16]}"
    else:
        identity = f"sha256:{digest(raw)[:32]}"
    return JsonNotice(identity, schema, _clean(facts))


def _clean(facts: Mapping[str, Any]) -> dict[str, Any]:
    """Without empty values (an absent fact is absent, never ``null``)."""
    return {k: v for k, v in facts.items() if v not in (None, "", {}, [])}
