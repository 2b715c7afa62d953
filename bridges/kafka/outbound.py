"""The Kafka outbox: the centre's own notices out to a Kafka topic, from a stored checkpoint.

One :class:`KafkaOutbox` per ``[[kafka.outputs]]`` entry, a component (``name``, ``run``,
``health``, ``metrics``). It follows the log (``store/consumer.py``'s Follower, consumer
``bridge.kafka.out.<upstream>.<topic>``, checkpoint in ``state.sqlite``), asks the output's
rule (``outbound_rule.py``) what each record becomes — our VOEvents as their exact received
bytes, mapped event types as JSON; nothing that came in over Kafka; never a trigger — and
produces it with an idempotent producer (``enable.idempotence``, ``acks=all``).

**Contract for ``component.py``** (one outbox per output)::

    KafkaOutbox(host.log, host.state, output, producer_config(upstream), own_prefixes(
                    config.claims.own, config.authority.reserved),
                withheld_prefixes=config.claims.trigger_streams, origin=<node name>,
                reader_config=consumer_config(upstream), metrics_group=<one OutboxGroup per service>)

``producer_config`` is the cluster's confluent-kafka dict (``connection.producer_config``);
``reader_config``, optional, the same cluster's consumer dict for reading the topic's tail (by
default derived from the producer's connection and security keys). The constructor has
librdkafka judge the settings; settings it (or the outbox) refuses make :meth:`run` raise
:class:`SettingsRefused` at once, a ``StartupError``: ``burstbus run`` stops and ends with one
line naming the upstream's settings, in librdkafka's own words — a bad config fails at start,
not at the first notice. (Raised from ``run``, not from the constructor: ``build_service``
runs inside ``run_service`` before its clean-up is armed.)

**Nothing lost, nothing twice** — how it holds:

* *Within a producer session* the idempotent producer makes librdkafka's retries safe: the
  broker drops a retried batch it already stored. With ``delivery_timeout = 0`` (the
  default) librdkafka retries until delivered, so a broker outage is waited out in one session
  and costs no duplicate (tested: the broker SIGSTOPped with messages in flight). A finite
  ``delivery_timeout`` instead fails the batch after it; a message that timed out in flight
  may still be written by the broker later, so the next session's scan (below) must see it.
* *The checkpoint moves only on the delivery reports*: a batch is produced, every report is
  awaited, and only when all succeeded are the checkpoint and the floors (next point) written,
  in one ``state.sqlite`` transaction. Any failure — a refused message, a fatal producer
  error, the state write — ends the producer session (closed, nothing left in flight) and the
  follower retries the batch from the last checkpoint.
* *Across sessions* (a restart; a session ended by a failure) idempotence no longer helps: a
  message delivered after the last checkpoint write would be produced again. So every
  session starts by reading the topic from the **floors** — per partition, an offset below
  which nothing of ours past the checkpoint lies, stored with the checkpoint
  (``outbound_state.py``) — to its end, collecting the ``burstbus-event-id`` headers
  (``tail.py``). Records found there are counted ``already_on_topic`` and not produced again.
  Reading from stored offsets, rather than searching the tail for "the last id we sent", needs
  no assumption about order across partitions and reads only what came after the checkpoint.
* The one case left: a broker that holds a request of the old session unanswered and writes
  it *after* the new session's scan (the process died, or the session was ended, while the
  broker hung). librdkafka reports such messages "possibly persisted"; the default
  ``delivery_timeout = 0`` keeps a live process out of that case. ``read_back = false`` (for
  credentials that may write the topic but not read it) gives up the scan, and with it the
  guarantee across sessions.
* *A message the broker refuses for good* (too large for the topic, not a valid record:
  ``producer.REFUSED_FOR_GOOD``), like one larger than ``message.max.bytes``, is logged,
  counted (``skipped``: ``refused``, ``too_large``) and passed, as the NATS outbox passes a
  packet too large for its server: one notice the cluster cannot take must not hold back
  every later one. Any other failure is retried, never skipped.

Delivery reports come through a poll thread (``producer.py``), so nothing blocks the loop;
the tail is read in a thread too.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from burstbus.bridges.kafka.outbound_config import KafkaOutput
from burstbus.bridges.kafka.outbound_metrics import OutboxGroup, outbox_families
from burstbus.bridges.kafka.outbound_rule import OutboundRule, OutMessage, Skipped
from burstbus.bridges.kafka.outbound_state import Ledger, create_tables, load_floors, write_floors
from burstbus.bridges.kafka.producer import (
    AsyncProducer,
    Delivered,
    DeliveryFailed,
    ProducerConfigError,
    check_producer_settings,
    producer_settings,
)
from burstbus.bridges.kafka.tail import TailError, end_offsets, scan_tail
from burstbus.component import StartupError
from burstbus.events import RecordedEvent, format_time
from burstbus.histogram import Histogram
from burstbus.metrics import Family
from burstbus.state import StateStore
from burstbus.store.base import EventLog
from burstbus.store.consumer import Batch, Follower, Save, Start

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Skip reasons the outbox adds to the rule's.
ALREADY_ON_TOPIC = "already_on_topic"
TOO_LARGE = "too_large"
#: The broker refused the message as such (``producer.REFUSED_FOR_GOOD``): no retry could help.
REFUSED = "refused"

#: Connection and security settings a reader of the same cluster needs (the rest of a producer
#: configuration — compression, linger, idempotence — is the producer's own).
_READER_KEYS = (
    "bootstrap.servers", "metadata.broker.list", "security.protocol", "sasl.", "ssl.", "ssl_", "https.", "oauth_cb",
    "client.id", "client.rack", "client.dns.lookup", "socket.", "broker.", "api.version.", "reconnect.", "retry.backoff.",
    "enable.ssl.", "enable.sasl.", "topic.metadata.", "metadata.", "connections.max.idle.ms", "debug", "log_level",
    "log.", "resolve_cb",
)


class SettingsRefused(StartupError):
    """The producer settings of an output's upstream are refused (by librdkafka, or because
    they contradict idempotence): the setting to change, and why, in one line."""

    def __init__(self, output: KafkaOutput, problem: str):
        super().__init__(f'kafka.upstreams "{output.upstream}" settings', f"refused for the producer of {output.topic}: {problem}")


def reader_settings(producer_config: Mapping[str, Any]) -> dict[str, Any]:
    """The consumer settings for reading the topic's tail, from the producer's (pure)."""
    return {k: v for k, v in producer_config.items() if any(k == p or (p.endswith((".", "_")) and k.startswith(p)) for p in _READER_KEYS)}


class KafkaOutbox:
    """Publishes one output's records to its topic (see the module doc for the guarantees)."""

    def __init__(
        self,
        event_log: EventLog,
        state: StateStore,
        output: KafkaOutput,
        producer_config: Mapping[str, Any],
        own_prefixes: Sequence[str],
        *,
        withheld_prefixes: Sequence[str] = (),
        reader_config: Mapping[str, Any] | None = None,
        origin: str = "",
        metrics_group: OutboxGroup | None = None,
        retry_delay: float = 1.0,
        max_retry_delay: float = 30.0,
        scan_timeout: float = 30.0,
        stall_after: float = 10.0,
    ):
        """``own_prefixes``: the IVORN prefixes published when the output lists none
        (``outbound_rule.own_prefixes``); ``withheld_prefixes``: never published (the trigger
        streams). ``stall_after``: seconds a message may wait for its delivery report before
        health shows the outbox retrying (librdkafka keeps trying meanwhile)."""
        self.log = event_log
        self.state = state
        self.output = output
        self.consumer_name = output.consumer
        self._name = f"kafka.out.{output.upstream}.{output.topic}"
        #: Why the producer settings cannot work (raised by :meth:`run`), else None.
        self.refused: SettingsRefused | None = None
        self.settings: dict[str, Any] = {}
        try:
            self.settings = producer_settings(producer_config, delivery_timeout=output.delivery_timeout)
            check_producer_settings(self.settings)
        except ProducerConfigError as exc:
            self.refused = SettingsRefused(output, str(exc))
        self.reader = dict(reader_config) if reader_config is not None else reader_settings(self.settings)
        self.rule = OutboundRule(output, own=own_prefixes, withheld=withheld_prefixes, origin=origin)
        self.max_bytes = int(self.settings.get("message.max.bytes", 1_000_000)) - 1024  # room for key and headers
        self.scan_timeout = scan_timeout
        self.stall_after = stall_after
        self.checkpoint = state.checkpoint(self.consumer_name)
        self.follower: Follower[RecordedEvent] = Follower(
            event_log, self._publish_batch, name=self.consumer_name, checkpoint=self.checkpoint,
            start=Start.HEAD if output.start == "now" else Start.BEGINNING, types=output.event_types,
            batch_size=output.batch_size, save=Save.AFTER, prepare=self._prepare,
            retryable=lambda exc: not isinstance(exc, SettingsRefused),
            retry_delay=retry_delay, max_retry_delay=max(retry_delay, max_retry_delay),
        )
        self.group = metrics_group
        if metrics_group is not None:
            metrics_group.add(self)
        self._producer: AsyncProducer | None = None
        self._ledger: Ledger | None = None
        #: Progress and trouble, for health, metrics and tests.
        self.published_total = 0
        self.skipped: Counter[str] = Counter()
        self.scans_total = 0
        self._ended_sessions_errors = 0
        self.last_delivery_at: float | None = None
        self.delivery_latency = Histogram()

    # -- the component -------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def labels(self) -> dict[str, str]:
        return {"topic": self.output.topic, "upstream": self.output.upstream}

    async def run(self) -> None:
        """Publish until cancelled; a failed batch is retried (a new producer session, the
        tail read first) from the last checkpoint, never skipped."""
        if self.refused is not None:
            raise self.refused
        await self.state.run(create_tables)
        try:
            await self.follower.run()
        finally:
            await self._end_session()

    # -- a producer session --------------------------------------------------------------

    async def _prepare(self) -> None:
        """Before following (again): unless a session is running, start one — floors, the
        topic's tail read from them, then a new producer."""
        if self._producer is not None and self._producer.fatal is None:
            return
        await self._end_session()
        position = self.follower.position or 0
        if not self.output.read_back:
            self._ledger = Ledger()
            self._producer = self._new_producer()
            return
        if self._ledger is None:
            self._ledger = Ledger(dict(await self._stored_floors()))
        tail = await self._in_thread(
            lambda stop: scan_tail(self.reader, self.output.topic, self._ledger.floors if self._ledger else {},
                                   group=f"{self.consumer_name}.tail", timeout=self.scan_timeout, stop=stop))
        self.scans_total += 1
        self._ledger.scanned(tail, position)
        if tail.reset:
            log.warning("%s: stored offsets lie outside partitions %s of %s (topic recreated or retention passed): read from their beginning",
                        self.name, sorted(tail.reset), self.output.topic)
        if self._ledger.pending:
            log.info("%s: %d messages past seq %d are on %s already (a previous session delivered them); not sent again",
                     self.name, len(self._ledger.pending), position, self.output.topic)
        self._producer = self._new_producer()

    def _new_producer(self) -> AsyncProducer:
        try:
            return AsyncProducer(self.settings, name=self.name)
        except ProducerConfigError as exc:  # checked at construction; librdkafka may still say no
            raise SettingsRefused(self.output, str(exc)) from None

    async def _stored_floors(self) -> Mapping[int, int]:
        """The floors stored with the checkpoint. None stored means this outbox never produced
        (they are stored before its first message): then nothing of ours lies below the
        partitions' current ends, which become the floors — stored at once, so a crash during
        the first batch still finds what it delivered."""
        stored = await self.state.run(lambda conn: load_floors(conn, self.consumer_name))
        if stored is not None:
            return stored
        ends = await self._in_thread(lambda stop: end_offsets(self.reader, self.output.topic, group=f"{self.consumer_name}.tail",
                                                              timeout=self.scan_timeout))
        await self.state.transaction(lambda conn: write_floors(conn, self.consumer_name, ends))
        return ends

    async def _end_session(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            self._ended_sessions_errors += producer.errors_total
            await producer.close()

    @staticmethod
    async def _in_thread(fn: Callable[[threading.Event], T]) -> T:
        """Run blocking Kafka client work in a thread; a cancel tells it to stop early."""
        stop = threading.Event()
        try:
            return await asyncio.to_thread(fn, stop)
        except asyncio.CancelledError:
            stop.set()
            raise

    # -- one batch -----------------------------------------------------------------------

    async def _publish_batch(self, batch: Batch[RecordedEvent]) -> None:
        """Produce the batch's messages, await every delivery report, then store checkpoint and
        floors together. Any failure ends the producer session before it propagates."""
        producer, ledger = self._producer, self._ledger
        assert producer is not None and ledger is not None, "prepare starts a session before any batch"
        skipped: Counter[str] = Counter()  # counted once the batch is stored (a retry counts again)
        try:
            sent: list[tuple[OutMessage, asyncio.Future[Delivered]]] = []
            for record in batch.records:
                message = self._message(record, ledger, skipped)
                if message is None:
                    continue
                try:
                    future = await producer.produce(self.output.topic, message.value, key=message.key, headers=message.headers)
                except DeliveryFailed as exc:
                    if not exc.refused_for_good:
                        raise
                    self._refused(message, exc, skipped)
                    continue
                sent.append((message, future))
            results = await asyncio.gather(*(f for _, f in sent), return_exceptions=True)
            failures = []
            for (message, _), result in zip(sent, results, strict=True):
                if isinstance(result, DeliveryFailed) and result.refused_for_good:
                    self._refused(message, result, skipped)
                elif isinstance(result, BaseException):
                    failures.append((message, result))
            delivered = [r for r in results if isinstance(r, Delivered)]
            self._count_delivered(delivered)
            if failures:
                message, error = failures[0]
                raise DeliveryFailed(f"{len(failures)} of {len(sent)} messages not delivered to {self.output.topic}; "
                                     f"first: seq {message.seq}: {error}")
            after = ledger.committed(batch.last, [(d.partition, d.offset) for d in delivered])

            def write(conn: Any) -> None:
                write_floors(conn, self.consumer_name, after.floors)
                batch.write_checkpoint(conn)

            await self.state.transaction(write)
            self._ledger = after
            self.skipped.update(skipped)
        except BaseException:
            await self._end_session()
            raise

    def _message(self, record: RecordedEvent, ledger: Ledger, skipped: Counter[str]) -> OutMessage | None:
        choice = self.rule.select(record)
        if isinstance(choice, Skipped):
            skipped[choice.reason] += 1
            return None
        if ledger.delivered_already(choice.event_id):
            skipped[ALREADY_ON_TOPIC] += 1
            return None
        if len(choice.value) > self.max_bytes:
            # As the NATS outbox does: one notice the cluster cannot take must not stop the rest.
            log.error("%s: seq %d (%d bytes) exceeds the producer's message.max.bytes; not sent", self.name, record.seq, len(choice.value))
            skipped[TOO_LARGE] += 1
            return None
        return choice

    def _refused(self, message: OutMessage, error: DeliveryFailed, skipped: Counter[str]) -> None:
        log.error("%s: the broker refuses seq %d (%d bytes) for good (%s); not sent", self.name, message.seq, len(message.value), error)
        skipped[REFUSED] += 1

    def _count_delivered(self, delivered: Sequence[Delivered]) -> None:
        if not delivered:
            return
        self.published_total += len(delivered)
        self.last_delivery_at = time.time()
        for d in delivered:
            self.delivery_latency.observe(d.latency)

    # -- health and metrics --------------------------------------------------------------

    @property
    def position(self) -> int:
        """The last seq handled (its messages confirmed by the broker)."""
        return self.follower.position or 0

    @property
    def failures(self) -> int:
        return self.follower.failures

    @property
    def broker_errors_total(self) -> int:
        """Errors librdkafka reported outside deliveries, over every producer session."""
        return self._ended_sessions_errors + (self._producer.errors_total if self._producer is not None else 0)

    @property
    def waiting(self) -> int:
        return self._producer.waiting if self._producer is not None else 0

    @property
    def stalled(self) -> bool:
        """Messages have waited longer than ``stall_after`` for their delivery report."""
        return self._producer is not None and self._producer.oldest_wait() > self.stall_after

    @property
    def up(self) -> bool:
        return self.follower.up and not self.stalled

    def health(self) -> dict[str, Any]:
        """Position, last delivery, errors; down and ``retrying`` while a batch is retried or
        waits on the broker beyond ``stall_after``."""
        state = self.follower.health()
        if self.refused is not None:
            state.update(up=False, last_error=str(self.refused))
        producer = self._producer
        broker_error = producer.last_error if producer is not None else None
        state.update(
            topic=self.output.topic,
            upstream=self.output.upstream,
            published=self.published_total,
            last_delivery=_iso(self.last_delivery_at),
            waiting=self.waiting,
            skipped=dict(sorted(self.skipped.items())),
            broker_error=broker_error,
            broker_error_at=_iso(producer.last_error_at) if producer is not None else None,
            broker_errors=self.broker_errors_total,
        )
        if self.stalled and producer is not None:
            state["up"] = False
            state["retrying"] = True
            wait = f"{producer.waiting} messages wait for the broker's delivery report since {producer.oldest_wait():.0f} s"
            state["last_error"] = f"{wait} ({broker_error})" if broker_error else wait
        return state

    async def lag(self) -> int:
        return await self.follower.lag()

    async def metrics(self) -> list[Family]:
        """Prometheus families; in a group only its first member reports (everyone's series)."""
        if self.group is None:
            return await outbox_families([self])
        if not self.group.reports(self):
            return []
        return await outbox_families(self.group.members)


def _iso(moment: float | None) -> str | None:
    return None if moment is None else format_time(datetime.fromtimestamp(moment, UTC))


__all__ = ["KafkaOutbox", "SettingsRefused", "TailError", "reader_settings"]
