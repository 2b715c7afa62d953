"""Reading what a topic already holds from burstbus: the outbox's memory across producer sessions.

The idempotent producer stops duplicates only within one producer session (its producer id
and sequence numbers). A new session — the process restarted, or the producer was replaced
after an error — cannot tell which messages of the last one reached the topic. So before the
outbox (re)publishes from its checkpoint it reads the topic from its stored offsets (the
*floors*: below them, nothing of ours past the checkpoint can lie) to the end, and collects
the event ids it finds in the ``burstbus-event-id`` header: those are delivered already.

Blocking (confluent-kafka's consumer): the outbox runs these functions in a thread.
Partitions are read with ``assign`` at explicit offsets (no consumer group, nothing
committed). The end of a partition is where a fetch reports end-of-partition
(``enable.partition.eof``), not the ``ListOffsets`` watermark, which Tansu reports behind the
real end for a while after producing (FIELD-NOTES); a watermark is only used where a lower
value is safe (it makes a scan read more, never less). A stored floor outside a partition
(the topic was recreated, or retention passed it) reads that partition from its beginning:
Apache Kafka answers such a fetch with "offset out of range", Tansu with nothing at all, so
the floor is compared with the watermarks first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from burstbus.bridges.kafka.outbound_rule import EVENT_ID, SEQ, header


class TailError(RuntimeError):
    """The topic's tail could not be read (broker unreachable, topic missing): retry later."""


class TopicMissing(TailError):
    """The topic does not exist on the cluster (the outbox does not create GCN's topics)."""


def _not_readable(topic: str, error: KafkaError) -> TailError:
    return TailError(
        f"the credentials may not read {topic} ({error.str()}): grant them read access, or set read_back = false "
        "on the output (a crash between a batch's delivery reports and its checkpoint may then send it twice)"
    )


@dataclass(frozen=True, slots=True)
class Found:
    """One message of ours on the topic: the log seq it carries and where it lies."""

    seq: int
    partition: int
    offset: int


@dataclass(frozen=True)
class Tail:
    """What a scan found beyond the floors."""

    #: Event id → where its first copy lies.
    found: Mapping[str, Found]
    #: Partition → the offset after the last message read (the end the scan reached).
    ends: Mapping[int, int]
    #: Partitions read from their beginning because the stored floor lay outside them.
    reset: frozenset[int]
    #: Messages read, ours or not.
    read: int


def reader_config(config: Mapping[str, Any], group: str) -> dict[str, Any]:
    """A consumer configuration that reads by explicit offsets and never commits."""
    return {
        **config,
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
    }


def _consumer(config: Mapping[str, Any]) -> Consumer:
    try:
        return Consumer(dict(config))
    except KafkaException as exc:
        raise TailError(f"the consumer settings are refused: {exc.args[0].str() if exc.args else exc}") from exc


def partitions(consumer: Consumer, topic: str, timeout: float) -> list[int]:
    """The topic's partitions from the cluster's metadata."""
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
    except KafkaException as exc:
        raise TailError(f"no metadata for {topic}: {exc.args[0].str() if exc.args else exc}") from exc
    info = metadata.topics.get(topic)
    if info is None or (info.error is not None and info.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
        raise TopicMissing(f"topic {topic} does not exist on the cluster (create it, or fix [[kafka.outputs]] topic)")
    if info.error is not None:
        if info.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            raise _not_readable(topic, info.error)
        raise TailError(f"metadata for {topic}: {info.error.str()}")
    if not info.partitions:
        raise TailError(f"topic {topic} has no partitions in the cluster's metadata")
    return sorted(info.partitions)


def _watermarks(consumer: Consumer, topic: str, partition: int, timeout: float) -> tuple[int, int]:
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout, cached=False)
    except KafkaException as exc:
        raise TailError(f"no offsets for {topic} [{partition}]: {exc.args[0].str() if exc.args else exc}") from exc
    return int(low), int(high)


def end_offsets(config: Mapping[str, Any], topic: str, *, group: str, timeout: float = 30.0) -> dict[int, int]:
    """Partition → its end offset as the broker reports it now (``ListOffsets``): the floors of
    an outbox that has never produced. A watermark behind the real end (Tansu) only makes the
    next scan read a little more."""
    consumer = _consumer(reader_config(config, group))
    try:
        return {p: _watermarks(consumer, topic, p, timeout)[1] for p in partitions(consumer, topic, timeout)}
    finally:
        consumer.close()


def scan_tail(
    config: Mapping[str, Any], topic: str, floors: Mapping[int, int], *, group: str, timeout: float = 30.0,
    stop: threading.Event | None = None,
) -> Tail:
    """Read every partition of ``topic`` from its floor to its end (a partition without a floor,
    from its beginning) and collect the burstbus event ids found (see the module doc).
    ``stop`` ends the scan early (with :class:`TailError`): the caller was cancelled."""
    consumer = _consumer(reader_config(config, group))
    try:
        return _scan(consumer, topic, floors, timeout, stop or threading.Event())
    finally:
        consumer.close()


def _scan(consumer: Consumer, topic: str, floors: Mapping[int, int], timeout: float, stop: threading.Event) -> Tail:
    deadline = time.monotonic() + timeout
    starts: dict[int, int] = {}
    reset: set[int] = set()
    for p in partitions(consumer, topic, timeout):
        floor = floors.get(p)
        if floor is None:
            starts[p] = OFFSET_BEGINNING
            continue
        low, high = _watermarks(consumer, topic, p, timeout)
        if floor > high or floor < low:
            starts[p] = OFFSET_BEGINNING
            reset.add(p)
        else:
            starts[p] = floor
    consumer.assign([TopicPartition(topic, p, o) for p, o in starts.items()])
    open_ = set(starts)
    ends = {p: max(o, 0) for p, o in starts.items()}
    found: dict[str, Found] = {}
    read = 0
    while open_:
        if stop.is_set():
            raise TailError(f"reading the tail of {topic} was stopped")
        if time.monotonic() > deadline:
            raise TailError(f"reading the tail of {topic} did not reach the end of partitions {sorted(open_)} within {timeout:g} s")
        message = consumer.poll(0.2)
        if message is None:
            continue
        error = message.error()
        p = int(message.partition() or 0)
        if error is not None:
            code = error.code()
            if code == KafkaError._PARTITION_EOF:
                ends[p] = max(ends.get(p, 0), int(message.offset() or 0))
                open_.discard(p)
            elif code == KafkaError._AUTO_OFFSET_RESET or code == KafkaError.OFFSET_OUT_OF_RANGE:
                # The floor left the partition meanwhile (retention): from its beginning
                # (Apache Kafka; Tansu never answers so, see the module doc).
                reset.add(p)
                ends[p] = 0
                consumer.seek(TopicPartition(topic, p, OFFSET_BEGINNING))
            elif code in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED):
                raise _not_readable(topic, error)
            elif error.fatal() or code in (KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART):
                raise TailError(f"reading {topic}: {error.str()}")
            # anything else (a transport error) is retried by librdkafka until the deadline
            continue
        read += 1
        offset = int(message.offset() or 0)
        ends[p] = max(ends.get(p, 0), offset + 1)
        headers = message.headers()
        event_id = header(headers, EVENT_ID)
        if event_id is None or event_id in found:
            continue
        try:
            seq = int(header(headers, SEQ) or "")
        except ValueError:
            continue
        found[event_id] = Found(seq, p, offset)
    return Tail(found, ends, frozenset(reset), read)
