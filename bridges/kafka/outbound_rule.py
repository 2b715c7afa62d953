"""Which log records go out to one Kafka output, and as what message (pure: no I/O, no clock).

The outbox asks :meth:`OutboundRule.select` for every record it follows and gets either the
message to produce or the reason it is not sent (counted per reason in the metrics). The rule,
in order:

1. **Nothing that came in over Kafka goes back out** (``data.via == "kafka"`` or an actor
   ``kafka:…``): a notice GCN sent us is GCN's, and sending it back would make a loop between
   two centres that both publish and subscribe.
2. **Trigger VOEvents are withheld** (``withheld`` prefixes: the trigger streams): they are
   orders to a telescope, not notices.
3. ``format = "voevent"``: a ``voevent.accepted`` whose IVORN lies under the output's prefixes
   (default: the centre's own authorities), of a listed role and instrument, as the exact
   received bytes; ``format = "json"``: a record of a listed type as its JSON log record.

Every message carries headers naming the log event (:data:`EVENT_ID` above all: the outbox
finds what a previous producer session already delivered by it) and is keyed by the event's
stream, so a burst's notices stay in order on a topic with several partitions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from burstbus.authority import authority_of, canonical, normal_prefix
from burstbus.bridges.kafka.outbound_config import KafkaOutput
from burstbus.events import RecordedEvent
from burstbus.payload import xml_bytes

#: Header names (Kafka headers are bytes; these are UTF-8).
EVENT_ID = "burstbus-event-id"
SEQ = "burstbus-seq"
TYPE = "burstbus-type"
IVORN = "burstbus-ivorn"
ORIGIN = "burstbus-origin"
CONTENT_TYPE = "content-type"

#: The ``via`` (and actor prefix) of what the Kafka consumer took in.
KAFKA_VIA = "kafka"

#: Why a record is not sent (the ``reason`` label of ``burstbus_kafka_out_skipped_total``).
FROM_KAFKA = "from_kafka"
WITHHELD = "trigger"
NOT_OURS = "not_ours"
ROLE = "role"
INSTRUMENT = "instrument"
TYPE_NOT_MAPPED = "type"
NO_PAYLOAD = "no_payload"


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One Kafka message for one log record."""

    seq: int
    event_id: str
    value: bytes
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class Skipped:
    """A record the rule does not send, and why (one of the reason constants above)."""

    reason: str


def own_prefixes(own: Iterable[str], reserved: Iterable[str] = ()) -> tuple[str, ...]:
    """The centre's own IVORN prefixes: the authorities of ``Claims.own`` (``ivo://<triggers.
    authority>/``, ``vtp.local_ivo``'s) and ``[authority] reserved`` — what the authority rule
    reserves to burstbus, so only burstbus's components (or explicit grants) put notices there."""
    prefixes = [normal_prefix(authority_of(canonical(o))) for o in own] + [normal_prefix(p) for p in reserved]
    return tuple(dict.fromkeys(prefixes))


def _under(prefixes: Sequence[str], ivorn: str) -> bool:
    """``ivorn`` lies under one of the normalised ``prefixes`` (as the authority rule compares)."""
    text, folded = canonical(ivorn), ivorn.casefold()
    return any(text.startswith(p) or folded.startswith(p) for p in prefixes)


def json_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # integers beyond 64 bits, which the log's canonical encoder allows
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def came_from_kafka(record: RecordedEvent) -> bool:
    """True for anything the Kafka consumer took in (whatever the event type)."""
    return record.data.get("via") == KAFKA_VIA or record.actor.startswith(KAFKA_VIA + ":")


class OutboundRule:
    """One output's selection and encoding (see the module doc)."""

    def __init__(self, output: KafkaOutput, *, own: Sequence[str], withheld: Sequence[str] = (), origin: str = ""):
        """``own``: the default IVORN prefixes (:func:`own_prefixes`), used when the output
        lists none; ``withheld``: prefixes never published (the trigger streams)."""
        self.output = output
        self.prefixes = tuple(normal_prefix(p) for p in (output.ivorn_prefixes or own))
        self.withheld = tuple(normal_prefix(p) for p in withheld)
        self.roles = frozenset(output.roles)
        self.instruments = frozenset(i.strip().casefold() for i in output.instruments)
        self.types = frozenset(output.event_types)
        self.origin = origin.encode("utf-8") if origin else b""

    def select(self, record: RecordedEvent) -> OutMessage | Skipped:
        """The message for ``record``, or why it is not sent."""
        if record.type not in self.types:
            return Skipped(TYPE_NOT_MAPPED)
        if came_from_kafka(record):
            return Skipped(FROM_KAFKA)
        ivorn = str(record.data.get("ivorn") or "")
        if ivorn and _under(self.withheld, ivorn):
            return Skipped(WITHHELD)
        if self.output.format == "json":
            return self._message(record, json_bytes(record.to_json_dict()), b"application/json")
        if not ivorn or not self.prefixes or not _under(self.prefixes, ivorn):
            return Skipped(NOT_OURS)
        if str(record.data.get("role") or "observation") not in self.roles:
            return Skipped(ROLE)
        if self.instruments and str(record.data.get("instrument") or "").casefold() not in self.instruments:
            return Skipped(INSTRUMENT)
        try:
            raw = xml_bytes(record.data)
        except (KeyError, ValueError):
            return Skipped(NO_PAYLOAD)
        return self._message(record, raw, b"application/xml", ivorn=ivorn)

    def _message(self, record: RecordedEvent, value: bytes, content_type: bytes, *, ivorn: str = "") -> OutMessage:
        headers = [(EVENT_ID, record.id.encode()), (SEQ, str(record.seq).encode()), (TYPE, record.type.encode())]
        if ivorn:
            headers.append((IVORN, ivorn.encode("utf-8")))
        if self.origin:
            headers.append((ORIGIN, self.origin))
        headers.append((CONTENT_TYPE, content_type))
        key = record.stream.encode("utf-8") if record.stream else None
        return OutMessage(record.seq, record.id, value, key, tuple(headers))


def header(headers: Sequence[tuple[str, bytes | None]] | None, name: str) -> str | None:
    """The text of header ``name`` in a consumed message's headers (None if absent or not UTF-8)."""
    for key, value in headers or ():
        if key == name and value is not None:
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                return None
    return None
