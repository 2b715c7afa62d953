"""confluent-kafka's blocking consumer behind an asyncio face: every call on one thread of its own.

librdkafka's consumer blocks (``consume`` waits for messages, metadata and offset queries wait
for the broker) and wants to be driven from one thread at a time. :class:`KafkaReader` gives
each upstream a single worker thread: every call — create, assign, consume, watermarks,
close — runs there, one after the other, and the event loop only awaits it. So nothing blocks
the loop, and the consumer is never used from two threads at once.

What the broker says goes through unchanged as plain values (:class:`Fetched`): messages as
:class:`~burstbus.bridges.kafka.messages.KafkaMessage`, per-partition errors (an offset out of
range, an unknown topic) as :class:`PartitionError`, and the connection's state from
librdkafka's ``error_cb`` (``broker_down``, ``last_error``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from burstbus.bridges.kafka.messages import KafkaMessage
from burstbus.component import StartupError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: (topic, partition)
Partition = tuple[str, int]


class ConsumerSettingsRefused(StartupError):
    """librdkafka refuses the consumer's settings (a key it does not know, a value it does not
    take): ``burstbus run`` stops at start with this line instead of restarting for ever."""


def kafka_error_text(exc: BaseException) -> str:
    """librdkafka's own words for a KafkaException: ``Invalid value … (_INVALID_ARG)``."""
    arg = exc.args[0] if exc.args else exc
    name, text = getattr(arg, "name", None), getattr(arg, "str", None)
    if callable(name) and callable(text):
        return f"{text()} ({name()})"
    return str(arg)


#: What :meth:`KafkaReader.partitions` answers for a topic the broker does not have.
UNKNOWN_TOPIC = "unknown topic"


def not_reading_matters(topic: str, reason: str, named: Collection[str]) -> bool:
    """Whether not reading ``topic`` (for ``reason``, :meth:`KafkaReader.partitions`'s answer)
    leaves a feed incomplete: a topic the operator ``named`` (a misspelt name reads nothing,
    forever) or one the credentials may not read. Not a preset's topic the broker does not have
    (yet): GCN announces some, like SVOM's ``.vt``, before publishing them."""
    return reason != UNKNOWN_TOPIC or topic in named


@dataclass(frozen=True)
class PartitionError:
    """A per-partition answer that is not a message: ``code`` is librdkafka's error name."""

    topic: str
    partition: int
    code: str
    reason: str
    offset: int | None = None


@dataclass
class Fetched:
    messages: list[KafkaMessage] = field(default_factory=list)
    errors: list[PartitionError] = field(default_factory=list)
    #: Per assigned partition, the end the broker reported in its last fetch answer (-1: none yet).
    ends: dict[Partition, int] = field(default_factory=dict)


class KafkaUnavailable(RuntimeError):
    """The broker did not answer a query in time (retry later)."""


class KafkaReader:
    """One upstream's consumer on its own thread (see the module doc)."""

    def __init__(self, upstream: str, config: Mapping[str, Any], *, factory: Callable[[dict[str, Any]], Any] | None = None):
        self.upstream = upstream
        self.config = dict(config)
        self._factory = factory
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"burstbus-kafka-{upstream}")
        self._consumer: Any = None
        self._assigned: list[Partition] = []
        self._lock = threading.Lock()
        #: From librdkafka's error callback: all brokers down, and the last error text.
        self.broker_down = False
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        await self._call(self._open)

    def _open(self) -> None:
        from confluent_kafka import Consumer, KafkaException

        config = {**self.config, "error_cb": self._on_error, "logger": RdkafkaLog(self.upstream)}
        try:
            self._consumer = (self._factory or Consumer)(config)
        except KafkaException as exc:  # a key or value librdkafka does not take: never better on a retry
            raise ConsumerSettingsRefused(f'kafka.upstreams "{self.upstream}" settings',
                                          f"refused by librdkafka for the consumer: {kafka_error_text(exc)}") from None

    def _on_error(self, error: Any) -> None:
        """librdkafka's error callback (on its own thread, inside a poll)."""
        from confluent_kafka import KafkaError

        code = error.code()
        with self._lock:
            self.last_error = f"{error.name()}: {error.str()}"
            self.last_error_at = datetime.now().astimezone()
            if code == KafkaError._ALL_BROKERS_DOWN:
                self.broker_down = True
        if code in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE):
            log.debug("kafka %s: %s", self.upstream, self.last_error)
        else:
            log.warning("kafka %s: %s", self.upstream, self.last_error)

    async def close(self) -> None:
        """Close the consumer (nothing to commit: positions are ours) and end the thread."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                await self._call(consumer.close)
            except Exception as exc:  # closing a consumer whose broker is gone may complain
                log.debug("kafka %s: close: %s", self.upstream, exc)
        await asyncio.get_running_loop().run_in_executor(None, lambda: self._pool.shutdown(wait=True))

    # -- metadata and offsets -----------------------------------------------------------------

    async def partitions(self, topics: Iterable[str], timeout: float) -> dict[str, list[int] | str]:
        """Topic → its partitions, or the broker's error text for it (missing, not authorised).

        Raises :class:`KafkaUnavailable` when the broker does not answer."""
        wanted = list(topics)
        return await self._call(self._partitions, wanted, timeout)

    def _partitions(self, topics: list[str], timeout: float) -> dict[str, list[int] | str]:
        from confluent_kafka import KafkaException

        try:
            metadata = self._consumer.list_topics(timeout=timeout)
        except KafkaException as exc:
            # No metadata answer: down, for /healthz. librdkafka's _ALL_BROKERS_DOWN comes
            # through error_cb only inside a poll, and a consumer that never reached its broker
            # has not polled yet (seen: "broker_down": false beside a transport failure).
            with self._lock:
                self.broker_down = True
            raise KafkaUnavailable(kafka_error_text(exc)) from None
        self.broker_down = False
        out: dict[str, list[int] | str] = {}
        for topic in topics:
            found = metadata.topics.get(topic)
            if found is None:
                out[topic] = UNKNOWN_TOPIC
            elif found.error is not None:
                out[topic] = found.error.str()
            elif not found.partitions:
                out[topic] = "no partitions"
            else:
                out[topic] = sorted(found.partitions)
        return out

    async def watermarks(self, partitions: Sequence[Partition], timeout: float) -> dict[Partition, tuple[int, int]]:
        """(low, high) per partition, asked of the broker (ListOffsets)."""
        return await self._call(self._watermarks, list(partitions), timeout)

    def _watermarks(self, partitions: list[Partition], timeout: float) -> dict[Partition, tuple[int, int]]:
        from confluent_kafka import KafkaException, TopicPartition

        out: dict[Partition, tuple[int, int]] = {}
        for topic, number in partitions:
            try:
                low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, number), timeout=timeout, cached=False)
            except KafkaException as exc:
                raise KafkaUnavailable(f"watermarks of {topic}[{number}]: {kafka_error_text(exc)}") from None
            out[(topic, number)] = (int(low), int(high))
        return out

    def _reported_ends(self) -> dict[Partition, int]:
        """The partition ends the broker reported in its fetch answers (librdkafka's cache, no
        request; -1: none yet), for the assigned partitions."""
        from confluent_kafka import TopicPartition

        out: dict[Partition, int] = {}
        for topic, number in self._assigned:
            try:
                _, high = self._consumer.get_watermark_offsets(TopicPartition(topic, number), cached=True)
            except Exception:
                high = -1
            out[(topic, number)] = int(high) if high is not None and high >= 0 else -1
        return out

    async def offsets_for_time(self, partitions: Sequence[Partition], when: datetime, timeout: float) -> dict[Partition, int]:
        """The first offset at or after ``when`` per partition (-1: none)."""
        return await self._call(self._offsets_for_time, list(partitions), when, timeout)

    def _offsets_for_time(self, partitions: list[Partition], when: datetime, timeout: float) -> dict[Partition, int]:
        from confluent_kafka import KafkaException, TopicPartition

        stamp = int(when.timestamp() * 1000)
        try:
            answer = self._consumer.offsets_for_times([TopicPartition(t, p, stamp) for t, p in partitions], timeout=timeout)
        except KafkaException as exc:
            raise KafkaUnavailable(f"offsets for {when.isoformat()}: {kafka_error_text(exc)}") from None
        return {(tp.topic, tp.partition): int(tp.offset) for tp in answer}

    # -- reading ------------------------------------------------------------------------------

    async def assign(self, offsets: Mapping[Partition, int]) -> None:
        """Read exactly these partitions from these offsets (replaces any earlier assignment)."""
        await self._call(self._assign, dict(offsets))

    def _assign(self, offsets: dict[Partition, int]) -> None:
        from confluent_kafka import TopicPartition

        self._consumer.assign([TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())])
        self._assigned = sorted(offsets)

    async def consume(self, max_messages: int, timeout: float) -> Fetched:
        """Up to ``max_messages``, waiting at most ``timeout`` seconds for the first."""
        return await self._call(self._consume, max_messages, timeout)

    def _consume(self, max_messages: int, timeout: float) -> Fetched:
        # ``Consumer.consume(n, timeout)`` waits for all n messages or the whole timeout, not
        # for the first one (measured: up to ``timeout`` added to every alert at low rates),
        # so the first is polled for, and only what is already fetched is taken after it.
        fetched = Fetched()
        first = self._consumer.poll(timeout)
        batch = [] if first is None else [first]
        if first is not None and max_messages > 1:
            batch += self._consumer.consume(num_messages=max_messages - 1, timeout=0)
        for message in batch:
            error = message.error()
            if error is not None:
                if error.code() == _partition_eof():
                    continue
                fetched.errors.append(
                    PartitionError(str(message.topic() or ""), int(message.partition() if message.partition() is not None else -1),
                                   error.name(), error.str(), message.offset())
                )
                continue
            _, stamp = message.timestamp()
            value = message.value()
            fetched.messages.append(
                KafkaMessage(self.upstream, str(message.topic()), int(message.partition()), int(message.offset()),
                             bytes(value) if value is not None else b"", int(stamp) if stamp and stamp > 0 else None)
            )
        if fetched.messages:
            self.broker_down = False
        fetched.ends = self._reported_ends()
        return fetched


def _partition_eof() -> int:
    from confluent_kafka import KafkaError

    return int(KafkaError._PARTITION_EOF)


class RdkafkaLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """librdkafka's own log lines (``logger`` config) into Python logging, named for the upstream.

    Its FAIL/connection lines are routine while a broker is down (every reconnect attempt), and
    the ``error_cb`` reports the state: they go to DEBUG; ``quiet`` puts everything there (a
    command that reports the errors itself)."""

    def __init__(self, upstream: str, *, quiet: bool = False):
        super().__init__(logging.getLogger("burstbus.bridges.kafka.librdkafka"), {"upstream": upstream})
        self.upstream = upstream
        self.quiet = quiet

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = " ".join(str(a) for a in (msg, *args))
        routine = self.quiet or level < logging.ERROR or any(w in text for w in _ROUTINE)
        super().log(logging.DEBUG if routine else logging.WARNING, "%s: %s", self.upstream, text, **kwargs)


#: librdkafka lines that only say a broker is (still) unreachable: the error callback has the state.
_ROUTINE = ("Connect to", "Disconnected", "Connection refused", "Receive failed", "timed out")
