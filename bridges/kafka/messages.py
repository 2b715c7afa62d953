"""One Kafka message → what the log gets: a VOEvent for the ingest, a JSON notice, or a refusal. Pure.

* A message whose first non-blank byte is ``{`` or ``[`` is a JSON notice
  (:mod:`~burstbus.bridges.kafka.jsonnotice`): ``notice.accepted`` with its exact bytes, or
  ``notice.rejected`` with the reason.
* Anything else goes to the ordinary VOEvent ingest (``via = "kafka"``, ``peer`` = the topic,
  so the authority source is ``kafka:<topic>``), which accepts it or records why not (not XML,
  an entity bomb, schema …) as ``voevent.rejected``.
* Larger than ``[kafka] max_message_bytes``: refused before anything parses it.

Every event carries ``kafka`` = ``{upstream, topic, partition, offset, timestamp}`` for the
audit. Ids are derived, so reading a message again after a crash (the position is written
after the append) appends nothing: an accepted VOEvent's id is its IVORN's (the ingest's); a
JSON notice's is its topic's and digest's (the same notice from two clusters is one event); a
refusal's is the message's own (:meth:`KafkaMessage.key`: upstream, topic, partition, offset
and digest — a partition recreated with other messages at the same offsets never collides).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from burstbus.bridges.kafka.jsonnotice import NoticeRefused, examine_notice, looks_like_json
from burstbus.catalogue import NOTICE_ACCEPTED, NOTICE_REJECTED
from burstbus.events import Event, derived_event_id, format_time
from burstbus.ingest import REJECTED_EXCERPT_BYTES, Submission

VIA = "kafka"


@dataclass(frozen=True, slots=True)
class KafkaMessage:
    """One consumed message, as the pure side sees it (no confluent-kafka object)."""

    upstream: str
    topic: str
    partition: int
    offset: int
    value: bytes
    #: Kafka's timestamp (ms since the epoch), None when the broker gave none.
    timestamp_ms: int | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.value).hexdigest()

    def key(self) -> str:
        """This delivery's identity across re-reads: ``kafka:<upstream>/<topic>/<partition>/<offset>/<digest>``."""
        return f"kafka:{self.upstream}/{self.topic}/{self.partition}/{self.offset}/{self.sha256[:32]}"

    def audit(self) -> dict[str, Any]:
        """The ``kafka`` field of every event this message becomes."""
        info: dict[str, Any] = {"upstream": self.upstream, "topic": self.topic, "partition": self.partition, "offset": self.offset}
        if self.timestamp_ms is not None and self.timestamp_ms > 0:
            from datetime import UTC, datetime

            info["timestamp"] = format_time(datetime.fromtimestamp(self.timestamp_ms / 1000, UTC))
        return info

    @property
    def actor(self) -> str:
        return f"{VIA}:{self.topic}"


@dataclass(frozen=True, slots=True)
class ToIngest:
    """A VOEvent (or what claims to be one): the ingest decides."""

    submission: Submission


@dataclass(frozen=True, slots=True)
class TooLarge:
    """Refused for its size before parsing; ``json``: it looked like JSON (``notice.rejected``),
    else the ingest records it (``voevent.rejected``, code ``too_large``)."""

    reason: str
    json: bool


@dataclass(frozen=True, slots=True)
class NoticeEvent:
    """``notice.accepted`` or ``notice.rejected``, ready to append."""

    event: Event

    @property
    def accepted(self) -> bool:
        return self.event.type == NOTICE_ACCEPTED


Routed = ToIngest | TooLarge | NoticeEvent


def notice_event_id(topic: str, sha256: str) -> str:
    """The one id a JSON notice (these bytes, on this topic) can have in the log."""
    return derived_event_id(NOTICE_ACCEPTED, topic, sha256)


def notice_rejected_id(message: KafkaMessage) -> str:
    return derived_event_id(NOTICE_REJECTED, message.key())


def _bytes_fields(raw: bytes, name: str) -> dict[str, str]:
    try:
        return {name: raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{name}_base64": base64.b64encode(raw).decode("ascii")}


def notice_rejected(message: KafkaMessage, reason: str, code: str) -> Event:
    raw = message.value
    data: dict[str, Any] = {
        "reason": reason,
        "code": code,
        "via": VIA,
        "peer": message.topic,
        "sha256": message.sha256,
        "size": len(raw),
        "truncated": len(raw) > REJECTED_EXCERPT_BYTES,
        "kafka": message.audit(),
        **_bytes_fields(raw[:REJECTED_EXCERPT_BYTES], "excerpt"),
    }
    return Event(type=NOTICE_REJECTED, data=data, stream="", actor=message.actor, id=notice_rejected_id(message))


def notice_accepted(message: KafkaMessage) -> Event:
    """``notice.accepted`` for a JSON message, or ``notice.rejected`` (raises nothing)."""
    try:
        notice = examine_notice(message.value, message.topic)
    except NoticeRefused as exc:
        return notice_rejected(message, exc.reason, exc.code)
    sha = message.sha256
    facts = dict(notice.facts)
    stream = f"kafka/{message.topic}"
    data: dict[str, Any] = {
        "notice_id": notice.notice_id,
        "format": "json",
        "schema": notice.schema,
        "topic": message.topic,
        "role": facts.pop("role", "observation"),
        **facts,
        "json": message.value.decode("utf-8"),  # examine_notice refused anything not UTF-8
        "sha256": sha,
        "size": len(message.value),
        "via": VIA,
        "peer": message.topic,
        "kafka": message.audit(),
    }
    return Event(type=NOTICE_ACCEPTED, data=data, stream=stream, actor=message.actor, id=notice_event_id(message.topic, sha))


def route(message: KafkaMessage, *, max_bytes: int) -> Routed:
    """What to do with one alert message (heartbeats never come here)."""
    raw = message.value
    is_json = looks_like_json(raw)
    if len(raw) > max_bytes:
        return TooLarge(f"message of {len(raw)} bytes exceeds the limit of {max_bytes} ([kafka] max_message_bytes)", is_json)
    if is_json:
        return NoticeEvent(notice_accepted(message))
    return ToIngest(Submission(raw, VIA, message.topic, key=message.key(), extra={"kafka": message.audit()}))
