"""Kafka into the log: one upstream's consumer loop (the component's ``run``).

The loop, in order, for each poll:

1. **Poll** up to ``[kafka] batch_size`` messages off the event loop (:mod:`.client`).
2. **Take** the alert messages into the log (:mod:`.intake`): VOEvents through the ordinary
   ingest (``via = "kafka"``, authority source ``kafka:<topic>``), JSON notices as
   ``notice.accepted`` — durable when it returns. A log that does not answer is retried with
   the batch in hand (every id is derived: a retry adds nothing twice).
3. **Then** write the partitions' next offsets to ``state.sqlite`` (:mod:`.positions`, which
   says why positions live there): a position is never ahead of the log, a crash between the
   two re-reads the batch, and the re-read appends nothing.
4. **Heartbeats** move the silence clock (:mod:`.liveness`); a silence and its end are events.

At start, and when a wanted topic appears or grows a partition, each partition's offset is
decided by :mod:`.offsets` from the stored position and the broker's watermarks: a stored
position the broker no longer holds is a **gap** (``kafka.gap``, and in ``/healthz``); so is a
partition whose end falls behind our position for ``RESET_AFTER`` seconds (it was recreated).
The broker being down is not an error here: librdkafka reconnects by itself, the loop keeps
polling, ``/healthz`` shows ``broker_down`` and the silence clock runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from burstbus.bridges.kafka.client import (
    Fetched,
    KafkaReader,
    KafkaUnavailable,
    PartitionError,
    not_reading_matters,
)
from burstbus.bridges.kafka.config import KafkaSection, parse_start, topics_of
from burstbus.bridges.kafka.connection import KafkaUpstream, consumer_config
from burstbus.bridges.kafka.intake import Intake
from burstbus.bridges.kafka.liveness import Clock, Transition, heard_time, restore, step
from burstbus.bridges.kafka.messages import KafkaMessage
from burstbus.bridges.kafka.offsets import Gap, Resume, behind_end, lag, resume
from burstbus.bridges.kafka.positions import LivenessRow, Partition, Positions
from burstbus.catalogue import KAFKA_GAP
from burstbus.events import Event, derived_event_id, format_time
from burstbus.ingest import Ingest
from burstbus.state import StateStore
from burstbus.store.base import EventLog, LogClosed, ReadFilter

log = logging.getLogger(__name__)

#: Seconds a partition's reported end must stay below our position before it is a reset.
RESET_AFTER = 10.0
#: Seconds between metadata refreshes (new topics and partitions, broker contact).
REFRESH_INTERVAL = 5.0
#: Seconds to wait for a metadata or offsets answer.
QUERY_TIMEOUT = 10.0
#: Seconds one poll waits for a first message.
POLL_TIMEOUT = 0.5
#: Gaps kept for ``/healthz``.
RECENT_GAPS = 20
#: Out-of-range answers librdkafka gives for a position the broker does not hold.
OUT_OF_RANGE = frozenset({"_AUTO_OFFSET_RESET", "OFFSET_OUT_OF_RANGE"})

Now = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def stream_of(upstream: str) -> str:
    """The log stream of an upstream's own events (gaps, silences)."""
    return f"kafka/{upstream}"


def gap_event(upstream: str, topic: str, partition: int, gap: Gap) -> Event:
    """``kafka.gap``: one id per (partition, position, resume point), so a redo records it once."""
    if gap.kind == "retention":
        text = (f"the broker no longer holds offsets {gap.lost_from}–{(gap.lost_to or 0) - 1} "
                f"(retention passed while burstbus was not reading)")
    else:
        text = (f"the partition's end fell below our position {gap.expected} (the topic was recreated or truncated); "
                f"reading again from offset {gap.resumed_at}")
    data: dict[str, Any] = {
        "upstream": upstream, "topic": topic, "partition": partition, "kind": gap.kind,
        "expected": gap.expected, "resumed_at": gap.resumed_at, "lost_from": gap.lost_from,
        "lost_to": gap.lost_to, "lost": gap.lost, "reason_text": text,
    }
    event_id = derived_event_id(KAFKA_GAP, upstream, topic, str(partition), str(gap.expected), str(gap.resumed_at), gap.kind)
    return Event(type=KAFKA_GAP, data=data, stream=stream_of(upstream), actor=f"kafka:{topic}", id=event_id)


class KafkaInbound:
    """One ``[[kafka.upstreams]]`` entry read into the log (see the module doc)."""

    def __init__(
        self,
        upstream: KafkaUpstream,
        section: KafkaSection,
        event_log: EventLog,
        ingest: Ingest,
        state: StateStore,
        *,
        now: Now = _utc_now,
        reader_factory: Callable[[str, Mapping[str, Any]], KafkaReader] | None = None,
    ):
        self.upstream = upstream
        self.section = section
        self.log = event_log
        self.ingest = ingest
        self.state = state
        self.now = now
        self._reader_factory = reader_factory or KafkaReader
        self.topics = topics_of(upstream)
        self.heartbeat = upstream.heartbeat_topic
        self.start = parse_start(upstream.start)
        self.positions = Positions(state, upstream.name)
        self.intake = Intake(event_log, ingest, max_bytes=section.max_message_bytes)
        self.reader: KafkaReader | None = None
        #: Next offset per assigned partition (alerts: what is durable; heartbeats: in memory).
        self.offsets: dict[Partition, int] = {}
        #: Topic → why it is not read yet (unknown topic, not authorised …).
        self.missing: dict[str, str] = {}
        self.ends: dict[Partition, int] = {}
        self.last_message: dict[str, str] = {}
        self.gaps: list[dict[str, Any]] = []
        self.gap_total = 0
        self.clock = Clock(upstream.silence_after)
        self.assigned = asyncio.Event()
        self.taken = 0
        self.retrying = False
        self.last_error: str | None = None
        self.last_contact: datetime | None = None
        self._behind_since: dict[Partition, float] = {}
        self._wanted: dict[str, str] = {}
        self._saved_heard: datetime | None = None

    @property
    def name(self) -> str:
        return self.upstream.name

    @property
    def watched(self) -> str:
        return self.heartbeat or "broker"

    # -- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        await self.positions.open()
        await self._restore()
        config = consumer_config(self.upstream, key=f"kafka.upstreams[{self.name}]", max_message_bytes=self.section.max_message_bytes)
        self.reader = self._reader_factory(self.name, config)
        try:
            await self.reader.open()
            await self._setup()
            next_refresh = time.monotonic() + REFRESH_INTERVAL
            while True:
                fetched = await self.reader.consume(self.section.batch_size, POLL_TIMEOUT)
                await self._handle(fetched)
                if time.monotonic() >= next_refresh:
                    next_refresh = time.monotonic() + REFRESH_INTERVAL
                    await self._refresh()
                await self._judge()
        finally:
            self.assigned.clear()
            await self._save_liveness(force=True)
            reader, self.reader = self.reader, None
            if reader is not None:
                await reader.close()

    async def _restore(self) -> None:
        row = await self.positions.liveness()
        self.clock = restore(self.upstream.silence_after, row.heard_at, row.silent_id, row.silent_since, self.now())
        self._saved_heard = self.clock.heard_at
        self._wanted = await self.positions.wanted()
        try:
            found = await self.log.read(0, ReadFilter.of(types=[KAFKA_GAP], stream=stream_of(self.name)))
            gaps = [r.data for r in found]
        except Exception as exc:  # health detail only: never stop the consumer for it
            log.debug("kafka %s: could not read earlier gaps: %s", self.name, exc)
            gaps = []
        self.gap_total = len(gaps)
        self.gaps = [dict(g) for g in gaps[-RECENT_GAPS:]]

    async def _setup(self) -> None:
        """Decide every partition's offset and assign; retried until the broker answers."""
        delay = self.section.retry_delay
        while True:
            try:
                await self._assign_all()
                return
            except KafkaUnavailable as exc:
                self.last_error = str(exc)
                log.warning("kafka %s: broker not answering (%s); retrying in %.1fs", self.upstream.where(), exc, delay)
                await self._judge()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _assign_all(self) -> None:
        assert self.reader is not None
        wanted = [*self.topics, *([self.heartbeat] if self.heartbeat else [])]
        found = await self.reader.partitions(wanted, QUERY_TIMEOUT)
        self._contact()
        partitions: list[Partition] = []
        before, self.missing = self.missing, {}
        for topic in wanted:
            answer = found[topic]
            if isinstance(answer, str):
                self.missing[topic] = answer
            else:
                partitions.extend((topic, p) for p in answer)
        self._say_missing(before)
        new = [p for p in partitions if p not in self.offsets]
        if not new and not self.offsets.keys() - set(partitions):
            fresh = self._first_look(wanted)
            if fresh:
                await self.positions.save({}, wanted=fresh)
            self.assigned.set()
            return
        stored = await self.positions.load()
        marks = await self.reader.watermarks(new, QUERY_TIMEOUT) if new else {}
        at_time: dict[Partition, int] = {}
        first_time = isinstance(self.start, datetime)
        needing_time = [p for p in new if p[0] != self.heartbeat and p not in stored and p[0] not in self._wanted]
        if first_time and needing_time:
            assert isinstance(self.start, datetime)
            at_time = await self.reader.offsets_for_time(needing_time, self.start, QUERY_TIMEOUT)
        firsts: dict[Partition, int] = {}
        for part in new:
            low, high = marks[part]
            if part[0] == self.heartbeat:
                # Liveness needs only the newest heartbeat: read from the last one on.
                self.offsets[part] = max(low, high - 1)
                continue
            # A stored position above the "latest" offset is not judged here: brokers answer
            # that query loosely (the test broker under-reports it), while a fetch past the end
            # is answered out of range (Kafka) or with the true end (_check_ends): judged there.
            known = stored.get(part)
            decided: Resume = resume(known, low, high if known is None else -1, start=self.start,
                                     at_time=at_time.get(part), appeared_later=part[0] in self._wanted)
            if decided.gap is not None:
                await self._record_gap(part, decided.gap)  # the log first, then the position moves
                firsts[part] = decided.offset
            elif decided.first:
                firsts[part] = decided.offset
            self.offsets[part] = decided.offset
        for gone in self.offsets.keys() - set(partitions):
            del self.offsets[gone]
        newly_wanted = self._first_look(wanted)
        # Store first offsets (and the topics now wanted) at once: a crash before the first
        # message must not let a later "now" skip what arrived meanwhile. (Past a gap, too.)
        await self.positions.save(firsts, wanted=newly_wanted)
        await self.reader.assign(self.offsets)
        self.assigned.set()
        log.info("kafka %s: reading %s", self.upstream.where(),
                 ", ".join(f"{t}[{p}]@{o}" for (t, p), o in sorted(self.offsets.items())) or "nothing yet")

    def blind_to(self, topic: str, reason: str) -> bool:
        """Whether ``topic`` not being read leaves this feed incomplete (:func:`not_reading_matters`;
        named here: the upstream's ``topics`` and its heartbeat)."""
        return not_reading_matters(topic, reason, (*self.upstream.topics, self.heartbeat))

    def _say_missing(self, before: Mapping[str, str]) -> None:
        """Log each change in what is not read (once, not every refresh): a warning for a topic
        the feed is blind to, a note for a preset's topic not published yet, and when it appears."""
        for topic, reason in self.missing.items():
            if before.get(topic) == reason:
                continue
            if self.blind_to(topic, reason):
                log.warning("kafka %s: %s is not read: %s (listed in topics: check the name, or the credentials' "
                            "access); /healthz shows this upstream degraded until it is", self.name, topic, reason)
            else:
                log.info("kafka %s: %s (a preset topic) is not on the broker yet: read as soon as it appears", self.name, topic)
        for topic in before.keys() - self.missing.keys():
            log.info("kafka %s: %s is on the broker now: reading it", self.name, topic)

    def _first_look(self, wanted: list[str]) -> list[str]:
        """Topics wanted for the first time (remembered from now on)."""
        stamp = format_time(self.now())
        fresh = [t for t in wanted if t != self.heartbeat and t not in self._wanted]
        for topic in fresh:
            self._wanted[topic] = stamp
        return fresh

    async def _refresh(self) -> None:
        """New topics or partitions (and broker contact); silently skipped while it is down."""
        try:
            await self._assign_all()
            self.last_error = None
        except KafkaUnavailable as exc:
            self.last_error = str(exc)
        await self._save_liveness()

    def _contact(self) -> None:
        """The broker answered: without a heartbeat topic, that is what liveness listens to."""
        self.last_contact = self.now()
        if not self.heartbeat:
            self.clock = replace(self.clock.heard(self.last_contact), ready=True)

    # -- one poll -----------------------------------------------------------------------------

    async def _handle(self, fetched: Fetched) -> None:
        alerts: list[KafkaMessage] = []
        now = self.now()
        for message in fetched.messages:
            part = (message.topic, message.partition)
            if part not in self.offsets or message.offset < self.offsets[part]:
                continue  # assigned away meanwhile, or a repeat below the position
            if message.topic == self.heartbeat:
                sent = datetime.fromtimestamp(message.timestamp_ms / 1000, UTC) if message.timestamp_ms else None
                self.clock = self.clock.heard(heard_time(now, sent, self.clock.threshold))
                self.offsets[part] = message.offset + 1
                self.last_message[message.topic] = format_time(now)
            else:
                alerts.append(message)
        if alerts:
            await self._take(alerts)
            for message in alerts:
                self.last_message[message.topic] = format_time(now)
        if fetched.messages:
            self._contact()
        self.ends.update(fetched.ends)
        for error in fetched.errors:
            await self._partition_error(error)
        await self._check_ends()
        if self.heartbeat and not self.clock.ready and self._heartbeat_caught_up():
            self.clock = replace(self.clock, ready=True)

    def _heartbeat_caught_up(self) -> bool:
        parts = [p for p in self.offsets if p[0] == self.heartbeat]
        return bool(parts) and all(self.ends.get(p, -1) >= 0 and self.offsets[p] >= self.ends[p] for p in parts)

    async def _take(self, alerts: list[KafkaMessage]) -> None:
        """Into the log, then the positions; the batch is retried in hand while the log fails."""
        delay = self.section.retry_delay
        while True:
            try:
                await self.intake.take(alerts)
                break
            except LogClosed:
                raise
            except Exception as exc:
                self.retrying = True
                self.last_error = f"log: {exc}"
                log.warning("kafka %s: %d messages not taken (%s); retrying in %.1fs", self.name, len(alerts), exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        self.retrying = False
        advanced: dict[Partition, int] = {}
        for message in alerts:
            part = (message.topic, message.partition)
            advanced[part] = max(advanced.get(part, 0), message.offset + 1)
        await self.positions.save(advanced)
        for part, offset in advanced.items():
            self.offsets[part] = max(self.offsets.get(part, 0), offset)
        self.taken += len(alerts)

    async def _partition_error(self, error: PartitionError) -> None:
        part = (error.topic, error.partition)
        if error.code in OUT_OF_RANGE and part in self.offsets and error.topic != self.heartbeat:
            assert self.reader is not None
            try:
                low, high = (await self.reader.watermarks([part], QUERY_TIMEOUT))[part]
            except KafkaUnavailable as exc:
                self.last_error = str(exc)
                return
            decided = resume(self.offsets[part], low, high)
            if decided.gap is None:  # in range after all: read on from the position
                decided = Resume(self.offsets[part])
            await self._move(part, decided)
            return
        if error.code in ("UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC", "_UNKNOWN_PARTITION", "TOPIC_AUTHORIZATION_FAILED"):
            self.missing[error.topic] = error.reason
        self.last_error = f"{error.topic}[{error.partition}]: {error.code}: {error.reason}"
        log.warning("kafka %s: %s", self.name, self.last_error)

    async def _check_ends(self) -> None:
        """A partition whose reported end stays below our position was recreated: a reset."""
        clock = time.monotonic()
        for part, end in list(self.ends.items()):  # _move changes self.ends
            position = self.offsets.get(part)
            if position is None or part[0] == self.heartbeat or not behind_end(position, end):
                self._behind_since.pop(part, None)
                continue
            since = self._behind_since.setdefault(part, clock)
            if clock - since >= RESET_AFTER:
                self._behind_since.pop(part, None)
                low = 0
                assert self.reader is not None
                try:
                    low = (await self.reader.watermarks([part], QUERY_TIMEOUT))[part][0]
                except KafkaUnavailable:
                    pass
                await self._move(part, resume(position, low, end))

    async def _move(self, part: Partition, decided: Resume) -> None:
        """Record a gap (log first), then move the stored position and re-assign."""
        if decided.gap is not None:
            await self._record_gap(part, decided.gap)
            await self.positions.reset(part, decided.offset)
        self.offsets[part] = decided.offset
        self.ends.pop(part, None)
        assert self.reader is not None
        await self.reader.assign(self.offsets)

    async def _record_gap(self, part: Partition, gap: Gap) -> None:
        event = gap_event(self.name, part[0], part[1], gap)
        [where] = await self.log.append([event])
        if where.new:
            self.gap_total += 1
            self.gaps = [*self.gaps, dict(event.data)][-RECENT_GAPS:]
        log.warning("kafka %s: GAP on %s[%d]: %s", self.name, part[0], part[1], event.data["reason_text"])

    # -- liveness -----------------------------------------------------------------------------

    async def _judge(self) -> None:
        clock, transition = step(self.clock, self.now(), upstream=self.name, watched=self.watched)
        if transition is None:
            self.clock = clock
            return
        if transition.type.endswith("silent"):
            # The heard time the silence's id is derived from is stored first, so a redo after
            # a crash derives the same id.
            await self._save_liveness(force=True)
        await self._record(transition)
        self.clock = clock
        await self._save_liveness(force=True)

    async def _record(self, transition: Transition) -> None:
        event = Event(type=transition.type, data=transition.data, stream=stream_of(self.name), actor=f"system:kafka.{self.name}",
                      id=transition.event_id)
        await self.log.append([event])
        log.warning("kafka %s: %s (%s)", self.name, transition.type, transition.data)

    async def _save_liveness(self, *, force: bool = False) -> None:
        clock = self.clock
        if not force and clock.heard_at == self._saved_heard:
            return
        row = LivenessRow(
            format_time(clock.heard_at) if clock.heard_at else None,
            clock.silence.event_id if clock.silence else None,
            format_time(clock.silence.since) if clock.silence else None,
        )
        try:
            await self.positions.save_liveness(row)
            self._saved_heard = clock.heard_at
        except Exception as exc:  # the clock is still right in memory; the next save catches up
            log.debug("kafka %s: liveness not saved: %s", self.name, exc)

    # -- health -------------------------------------------------------------------------------

    def partition_lag(self) -> dict[Partition, int | None]:
        return {p: lag(o, self.ends.get(p, -1)) for p, o in self.offsets.items()}

    def health(self) -> dict[str, Any]:
        now = self.now()
        reader = self.reader
        silent_for = self.clock.silent_for(now)
        lags = self.partition_lag()
        known = [v for p, v in lags.items() if v is not None and p[0] != self.heartbeat]
        return {
            "up": self.assigned.is_set() and not self.retrying and not (reader is not None and reader.broker_down)
                  and self.clock.silence is None and not any(self.blind_to(t, r) for t, r in self.missing.items()),
            "upstream": self.upstream.where(),
            "broker_down": bool(reader and reader.broker_down),
            "assigned": self.assigned.is_set(),
            "taken": self.taken,
            "outcomes": {f"{t}:{o}": n for (t, o), n in sorted(self.intake.counts.by_topic.items())},
            "topics": {
                topic: {
                    "last_message": self.last_message.get(topic),
                    "partitions": {str(p): {"position": self.offsets[(t, p)], "end": self.ends.get((t, p), -1),
                                            "lag": lags.get((t, p))} for (t, p) in sorted(self.offsets) if t == topic},
                    **({"missing": self.missing[topic]} if topic in self.missing else {}),
                }
                for topic in [*self.topics, *([self.heartbeat] if self.heartbeat else [])]
            },
            "lag": sum(known) if known else None,
            "liveness": {
                "watching": self.watched,
                "last_heard": format_time(self.clock.heard_at) if self.clock.heard_at else None,
                "silent_for": round(silent_for, 1) if silent_for is not None else None,
                "threshold": self.clock.threshold,
                "silent": self.clock.silence is not None,
                "silent_since": format_time(self.clock.silence.since) if self.clock.silence else None,
            },
            "gaps": {"total": self.gap_total, "recent": self.gaps[-5:]},
            "last_error": self.last_error or (reader.last_error if reader else None),
            "last_contact": format_time(self.last_contact) if self.last_contact else None,
        }
