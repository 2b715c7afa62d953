"""``burstbus kafka check``: can this node read its Kafka upstreams, and how far behind is it?

For each ``[[kafka.upstreams]]`` entry (or the one named): the credentials are read
(``env:``/``file:`` secrets), the broker is asked for its topics, every wanted topic is looked
up (partitions, oldest and next offset), and the node's stored positions (``state.sqlite``,
if the data directory has one) give the lag and any gap waiting at the next start. Each
``[[kafka.outputs]]`` entry on that upstream is checked too: its producer settings (librdkafka's
own judgement, nothing sent), its topic on the broker, and how far its outbox has published
(its checkpoint beside the log's head). Every problem is one line saying what to do; never a
traceback.

Exit status: 0 all reachable; 1 a broker unreachable, credentials refused, a topic not
authorised, a topic listed under ``topics`` missing (a missing *preset* topic is only a
warning: GCN announces some, like SVOM's ``.vt``, before publishing them), or an output's topic
missing; 2 nothing to check (no upstreams), a configuration problem, or settings librdkafka
refuses.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from burstbus.bridges.kafka.client import RdkafkaLog, kafka_error_text
from burstbus.bridges.kafka.config import KafkaSection, topics_of
from burstbus.bridges.kafka.connection import (
    KafkaUpstream,
    consumer_config,
    producer_config,
    redacted,
)
from burstbus.bridges.kafka.offsets import lag, resume
from burstbus.bridges.kafka.outbound_config import KafkaOutput
from burstbus.bridges.kafka.producer import (
    ProducerConfigError,
    check_producer_settings,
    producer_settings,
)
from burstbus.config import ConfigError

EXIT_OK, EXIT_NO, EXIT_USAGE = 0, 1, 2


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    status: int = EXIT_OK

    def say(self, line: str) -> None:
        self.lines.append(line)

    def fail(self, line: str, status: int = EXIT_NO) -> None:
        self.lines.append(line)
        self.status = max(self.status, status)


def stored_positions(state_path: Path) -> dict[tuple[str, str, int], int]:
    """(upstream, topic, partition) → next offset, read-only; empty when there is no state yet."""
    rows = _read_only(state_path, "SELECT upstream, topic, partition, next_offset FROM kafka_positions")
    return {(str(u), str(t), int(p)): int(o) for u, t, p, o in rows}


def _read_only(path: Path, query: str) -> list[tuple[Any, ...]]:
    """Rows of ``query`` on the SQLite file at ``path``, opened read-only; none when the file
    or its table is not there yet (never run, never consumed)."""
    if not path.is_file():
        return []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return []
    try:
        return conn.execute(query).fetchall()
    except sqlite3.Error:
        return []
    finally:
        conn.close()


@dataclass(frozen=True)
class Published:
    """How far the outboxes have gone: each one's checkpoint (log seq), and the log's head."""

    checkpoints: Mapping[str, int] = field(default_factory=dict)
    head: int | None = None

    @classmethod
    def read(cls, state_path: Path, log_path: Path | None) -> Published:
        checkpoints = {str(n): int(q) for n, q in _read_only(state_path, "SELECT name, seq FROM checkpoints")}
        head = _read_only(log_path, "SELECT MAX(seq) FROM events") if log_path is not None else []
        return cls(checkpoints, int(head[0][0]) if head and head[0][0] is not None else None)


def check_upstream(upstream: KafkaUpstream, index: int, positions: Mapping[tuple[str, str, int], int], report: Report,
                   *, timeout: float, factory: Callable[[dict[str, Any]], Any] | None = None,
                   outputs: Sequence[KafkaOutput] = (), published: Published | None = None) -> None:
    """One upstream's lines into ``report`` (and those of the ``outputs`` publishing through it)."""
    key = f"kafka.upstreams[{index}]"
    report.say(f"upstream {upstream.where()}:")
    try:
        config = consumer_config(upstream, key=key)
    except ConfigError as exc:
        report.fail(f"  configuration: {exc}", EXIT_USAGE)
        return
    errors: list[str] = []
    config["error_cb"] = lambda err: errors.append(f"{err.str()} ({err.name()})")
    config["logger"] = RdkafkaLog(upstream.name, quiet=True)  # not librdkafka's stderr: the report says it
    config["socket.timeout.ms"] = int(max(1.0, timeout) * 1000)
    from confluent_kafka import Consumer

    make: Callable[[dict[str, Any]], Any] = factory or Consumer
    try:
        consumer = make(config)
    except Exception as exc:  # librdkafka refuses a setting: its own words
        report.fail(f"  the settings are refused: {kafka_error_text(exc)} (settings: {redacted(upstream.settings)})", EXIT_USAGE)
        return
    try:
        metadata = _check_with(consumer, upstream, positions, report, timeout=timeout, errors=errors)
        for output in outputs:
            _check_output(output, upstream, metadata, published or Published(), report)
    finally:
        try:
            consumer.close()
        except Exception:
            pass


def _check_output(output: KafkaOutput, upstream: KafkaUpstream, metadata: Any, published: Published, report: Report) -> None:
    """One output's lines: its producer settings, its topic on the broker (``metadata``: None
    when the broker did not answer), how far its outbox has published."""
    report.say(f"  output → {output.topic}:")
    try:
        check_producer_settings(producer_settings(producer_config(upstream), delivery_timeout=output.delivery_timeout))
    except ProducerConfigError as exc:
        report.fail(f"    the producer settings are refused: {exc} (settings: {redacted(upstream.settings)})", EXIT_USAGE)
        return
    if metadata is not None:
        found = metadata.topics.get(output.topic)
        if found is None or (found.error is not None and found.error.name() in ("UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC")):
            report.fail("    not on the broker: the outbox waits, publishing nothing, until it exists "
                        "(check the name; on GCN, ask for the topic and producer access)")
        elif found.error is not None:
            report.fail(f"    {found.error.str()} ({found.error.name()})")
        else:
            report.say(f"    on the broker ({len(found.partitions)} partition(s))")
    stored = published.checkpoints.get(output.consumer)
    head = "" if published.head is None else f"; the log's head: seq {published.head}"
    if stored is None:
        report.say(f"    not started yet (first start: {output.start}{head})")
    else:
        report.say(f"    published through log seq {stored}{head}")


def _check_with(consumer: Any, upstream: KafkaUpstream, positions: Mapping[tuple[str, str, int], int], report: Report,
                *, timeout: float, errors: list[str]) -> Any:
    """The upstream's topics and positions; returns the broker's metadata (None: no answer)."""
    from confluent_kafka import KafkaException, TopicPartition

    try:
        metadata = consumer.list_topics(timeout=timeout)
    except KafkaException as exc:
        detail = errors[-1] if errors else kafka_error_text(exc)
        hint = ""
        if any(w in detail.lower() for w in ("sasl", "auth", "oauth", "token")):
            hint = " — check client_id/client_secret (https://gcn.nasa.gov/quickstart) and domain"
        else:
            hint = " — check bootstrap_servers / domain, the network, and security.protocol"
        report.fail(f"  cannot reach the broker within {timeout:g} s: {detail}{hint}")
        return None
    report.say(f"  broker answers: {len(metadata.brokers)} broker(s), {len(metadata.topics)} topic(s) visible")
    explicit = set(upstream.topics)
    wanted = [*topics_of(upstream), *([upstream.heartbeat_topic] if upstream.heartbeat_topic else [])]
    if not wanted:
        report.say("  no topics to read (used by outputs only)")
    for topic in wanted:
        found = metadata.topics.get(topic)
        if found is None or (found.error is not None and found.error.name() in ("UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC")):
            line = f"  {topic}: not on the broker"
            if topic in explicit:
                report.fail(line + " (listed in topics: check the name)")
            else:
                report.say(line + " (a preset topic: read as soon as it appears)")
            continue
        if found.error is not None:
            report.fail(f"  {topic}: {found.error.str()} ({found.error.name()})"
                        + (" — ask the cluster's operator for read access" if "AUTHORIZATION" in found.error.name() else ""))
            continue
        for number in sorted(found.partitions):
            try:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, number), timeout=timeout, cached=False)
            except KafkaException as exc:
                report.fail(f"  {topic}[{number}]: offsets not answered: {kafka_error_text(exc)}")
                continue
            stored = positions.get((upstream.name, topic, number))
            if topic == upstream.heartbeat_topic:
                report.say(f"  {topic}[{number}]: offsets {low}..{high} (heartbeat: liveness only)")
                continue
            if stored is None:
                report.say(f"  {topic}[{number}]: offsets {low}..{high}; no stored position (first start: {upstream.start})")
                continue
            decided = resume(stored, low, high)
            if decided.gap is not None and decided.gap.kind == "retention":
                report.fail(f"  {topic}[{number}]: position {stored} is older than the broker's oldest offset {low}: "
                            f"a GAP of {decided.gap.lost} message(s) will be recorded at the next start")
            elif decided.gap is not None:
                report.say(f"  {topic}[{number}]: position {stored} is past the broker's end {high} "
                           "(a recreated topic; brokers that under-report their end show this too)")
            else:
                report.say(f"  {topic}[{number}]: position {stored} of {low}..{high}, lag {lag(stored, high)}")
    return metadata


def check(section: KafkaSection, state_path: Path, *, only: str | None = None, timeout: float = 10.0,
          factory: Callable[[dict[str, Any]], Any] | None = None, log_path: Path | None = None) -> Report:
    report = Report()
    upstreams = [u for u in section.upstreams if only is None or u.name == only]
    if not section.upstreams:
        report.fail("no [[kafka.upstreams]] configured: nothing to check (see docs/gcn-kafka.md)", EXIT_USAGE)
        return report
    if not upstreams:
        report.fail(f"no upstream is named {only!r} (configured: {', '.join(u.name for u in section.upstreams)})", EXIT_USAGE)
        return report
    positions = stored_positions(state_path)
    published = Published.read(state_path, log_path)
    for upstream in upstreams:
        index = section.upstreams.index(upstream)
        outputs = [o for o in section.outputs if o.upstream == upstream.name]
        check_upstream(upstream, index, positions, report, timeout=timeout, factory=factory, outputs=outputs, published=published)
    return report
