"""Kafka in, for ``/metrics``: messages by outcome, lag and last message per topic, liveness, gaps."""

from __future__ import annotations

from collections.abc import Sequence

from burstbus.bridges.kafka.alarms import Alarms
from burstbus.bridges.kafka.inbound import KafkaInbound
from burstbus.events import parse_time
from burstbus.metrics import Family, counter, gauge


def inbound_families(consumers: Sequence[KafkaInbound], alarms: Alarms | None = None) -> list[Family]:
    """Every consumer's series, labelled with its ``upstream`` (and ``topic``/``partition``)."""
    messages, lags, last, heard, silent, down, gaps, unread = [], [], [], [], [], [], [], []
    for c in consumers:
        up = {"upstream": c.name}
        messages += [({**up, "topic": t, "outcome": o}, n) for (t, o), n in sorted(c.intake.counts.by_topic.items())]
        lags += [({**up, "topic": t, "partition": str(p)}, v) for (t, p), v in sorted(c.partition_lag().items()) if v is not None]
        last += [({**up, "topic": t}, parse_time(at).timestamp()) for t, at in sorted(c.last_message.items())]
        quiet = c.clock.silent_for(c.now())
        if quiet is not None:
            heard.append((up, quiet))
        silent.append((up, int(c.clock.silence is not None)))
        down.append((up, int(bool(c.reader and c.reader.broker_down))))
        gaps.append((up, c.gap_total))
        unread += [({**up, "topic": t}, int(c.blind_to(t, why))) for t, why in sorted(c.missing.items())]
    families = [
        counter("burstbus_kafka_in_messages_total", "Kafka messages taken into the log, by topic and outcome "
                "(accepted, duplicate, rejected).", messages),
        gauge("burstbus_kafka_in_lag_messages", "Messages the broker holds beyond burstbus's position, per partition.", lags),
        gauge("burstbus_kafka_in_last_message_timestamp_seconds", "When the last message of a topic was read (Unix time).", last),
        gauge("burstbus_kafka_in_silent_seconds", "Seconds since the feed was last heard (heartbeat, or broker answer).", heard),
        gauge("burstbus_kafka_in_silent", "1 while the feed is declared silent (kafka.silent without kafka.recovered).", silent),
        gauge("burstbus_kafka_in_broker_down", "1 while librdkafka reports every broker of the upstream down.", down),
        counter("burstbus_kafka_in_gaps_total", "Gaps recorded (kafka.gap): messages that will never be read.", gaps),
        gauge("burstbus_kafka_in_topic_not_read", "Per wanted topic the broker does not give us: 1 when that leaves the feed "
              "incomplete (a topic named in topics, the heartbeat, not authorised), 0 for a preset's topic not published yet.", unread),
    ]
    if alarms is not None:
        families.append(counter("burstbus_kafka_alarms_paged_total", "Feed alarms sent to on-duty Burst Advocates.",
                                [({}, alarms.sent)]))
        families.append(counter("burstbus_kafka_alarms_unsent_total", "Feed alarms with no chat transport or nobody on duty.",
                                [({}, alarms.unsent)]))
    return families
