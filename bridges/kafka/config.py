"""``[kafka]``: the clusters burstbus reads alerts from and publishes its notices to.

```toml
[[kafka.upstreams]]
name = "gcn"
client_id = "env:GCN_CLIENT_ID"
client_secret = "env:GCN_CLIENT_SECRET"
presets = ["svom", "swift", "fermi", "lvk"]
start = "2026-11-30T00:00:00Z"      # first start only: back-fill from then

[[kafka.outputs]]
topic = "gcn.notices.svom.voevent.eclairs"
upstream = "gcn"
ivorn_prefixes = ["ivo://org.svom/fsc#eclairs"]
```

One entry per cluster (:class:`~burstbus.bridges.kafka.connection.KafkaUpstream`: how to
connect, which topics, liveness) and per published topic
(:class:`~burstbus.bridges.kafka.outbound_config.KafkaOutput`). No ``enabled`` key: without
upstreams nothing connects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from burstbus.bridges.kafka.connection import (
    CONSUMER_FIXED,
    GCN_MAX_MESSAGE,
    PRODUCER_FIXED,
    KafkaUpstream,
)
from burstbus.bridges.kafka.outbound_config import KafkaOutput, check_output
from burstbus.bridges.kafka.presets import PRESETS, expand
from burstbus.config import ConfigError, resolve_secret

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
#: Kafka's own rule for topic names.
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_SERVER = re.compile(r"^[^\s,:]+:\d{1,5}$")


@dataclass(frozen=True)
class KafkaSection:
    """Kafka in (``[[kafka.upstreams]]``) and out (``[[kafka.outputs]]``)."""

    #: The clusters read from (and published to): GCN by credentials, any Kafka by servers.
    upstreams: tuple[KafkaUpstream, ...] = ()
    #: What the centre publishes, to which topic of which upstream (the outbox).
    outputs: tuple[KafkaOutput, ...] = ()
    #: Largest message taken (bytes); GCN allows 4 MiB. A larger one is refused with an event
    #: (``notice.rejected``, or ``voevent.rejected`` code ``too_large``) and skipped. VOEvents
    #: are also held to ``[ingest] max_bytes``.
    max_message_bytes: int = field(default=GCN_MAX_MESSAGE, metadata={"minimum": 1024})
    #: Messages handed to the ingest per batch (one durable append, one position write).
    batch_size: int = field(default=200, metadata={"minimum": 1})
    #: Seconds between retries when the broker or the log does not answer (doubling to 30 s).
    retry_delay: float = field(default=1.0, metadata={"minimum": 0.01})
    #: Bare JIDs paged by direct message when a feed goes silent, comes back or loses messages
    #: (``kafka.silent``, ``kafka.recovered``, ``kafka.gap``). Empty: ``[xmpp] on_duty``.
    on_duty: tuple[str, ...] = ()
    #: Slack channels (ids or ``#names``) that get the same feed alarms (through the Slack
    #: bridge's ``chat.channels`` port; it must be enabled and the bot a member).
    slack_channels: tuple[str, ...] = ()

    def upstream(self, name: str) -> KafkaUpstream:
        """The upstream called ``name`` (``KeyError`` if none: the check refuses that)."""
        for upstream in self.upstreams:
            if upstream.name == name:
                return upstream
        raise KeyError(name)

    def consumed(self) -> tuple[KafkaUpstream, ...]:
        """The upstreams read from (``consume`` and at least one topic or a heartbeat)."""
        return tuple(u for u in self.upstreams if u.consume and (topics_of(u) or u.heartbeat_topic))


def topics_of(upstream: KafkaUpstream) -> tuple[str, ...]:
    """The alert topics of an upstream: its presets' then its own (not the heartbeat)."""
    topics = expand(upstream.presets, upstream.topics)
    return tuple(t for t in topics if t != upstream.heartbeat_topic)


def parse_start(value: str, key: str = "kafka.upstreams.start") -> datetime | str:
    """``"now"``, ``"earliest"`` or an aware UTC datetime (refused: anything else, a naive time)."""
    lowered = value.strip().lower()
    if lowered in ("now", "earliest"):
        return lowered
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(key, f'must be "now", "earliest" or an ISO time like 2026-11-30T00:00:00Z, not {value!r}') from None
    if when.tzinfo is None:
        raise ConfigError(key, f"give the time zone (2026-11-30T00:00:00Z), not {value!r}")
    return when.astimezone(UTC)


def check_kafka(section: KafkaSection, trigger_streams: tuple[str, ...] = ()) -> None:
    """Cross-field checks, raising :class:`ConfigError` with the key."""
    names: set[str] = set()
    for i, upstream in enumerate(section.upstreams):
        key = f"kafka.upstreams[{i}]"
        if not _NAME.match(upstream.name):
            raise ConfigError(f"{key}.name", f"must be letters, digits, _ or - (it names checkpoints), not {upstream.name!r}")
        if upstream.name in names:
            raise ConfigError(f"{key}.name", f"upstream {upstream.name!r} is defined twice")
        names.add(upstream.name)
        _check_connection(upstream, key)
        for j, preset in enumerate(upstream.presets):
            if preset.lower() not in PRESETS:
                raise ConfigError(f"{key}.presets[{j}]", f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        for j, topic in enumerate(upstream.topics):
            preset = topic.lower().removeprefix("preset:")
            if preset in PRESETS and (topic.lower() != preset or not _TOPIC.match(topic)):
                raise ConfigError(f"{key}.topics[{j}]", f'{topic!r} is a preset: write presets = ["{preset}"] (topics are Kafka topic names)')
            if not _TOPIC.match(topic):
                raise ConfigError(f"{key}.topics[{j}]", f"not a Kafka topic name (letters, digits, . _ -): {topic!r}")
        if upstream.heartbeat not in ("auto", "") and not _TOPIC.match(upstream.heartbeat):
            raise ConfigError(f"{key}.heartbeat", f"not a Kafka topic name: {upstream.heartbeat!r}")
        parse_start(upstream.start, f"{key}.start")
        if upstream.consume and not topics_of(upstream) and not upstream.heartbeat_topic and not _used_by_outputs(section, upstream.name):
            raise ConfigError(f"{key}.topics", "no topics, presets or heartbeat to read (set consume = false for an upstream used only by outputs)")
    for i, output in enumerate(section.outputs):
        key = f"kafka.outputs[{i}]"
        if output.upstream not in names:
            raise ConfigError(f"{key}.upstream", f"no [[kafka.upstreams]] entry is named {output.upstream!r} (known: {', '.join(sorted(names)) or 'none'})")
        if not _TOPIC.match(output.topic):
            raise ConfigError(f"{key}.topic", f"not a Kafka topic name (letters, digits, . _ -): {output.topic!r}")
        check_output(output, key, trigger_streams=trigger_streams)
    for i, jid in enumerate(section.on_duty):
        if "@" not in jid or "/" in jid or jid != jid.strip():
            raise ConfigError(f"kafka.on_duty[{i}]", f"must be a bare JID like alice@fsc.example, not {jid!r}")


def _used_by_outputs(section: KafkaSection, name: str) -> bool:
    return any(o.upstream == name for o in section.outputs)


def _check_connection(upstream: KafkaUpstream, key: str) -> None:
    if upstream.bootstrap_servers:
        for server in upstream.bootstrap_servers.split(","):
            if not _SERVER.match(server.strip()):
                raise ConfigError(f"{key}.bootstrap_servers", f"not host:port[,host:port…]: {upstream.bootstrap_servers!r}")
        if upstream.client_id or upstream.client_secret:
            raise ConfigError(f"{key}.client_id", "client_id/client_secret are GCN's; for another Kafka give sasl.* keys in settings")
    else:
        explicit_sasl = any(k.startswith("sasl.") for k in upstream.settings)
        if not explicit_sasl and not (upstream.client_id and upstream.client_secret):
            raise ConfigError(f"{key}.client_id", "GCN needs client_id and client_secret (from https://gcn.nasa.gov/quickstart), or give bootstrap_servers for another Kafka")
        if upstream.client_id:
            resolve_secret(upstream.client_id, f"{key}.client_id")
        if upstream.client_secret:
            resolve_secret(upstream.client_secret, f"{key}.client_secret")
    for name, value in upstream.settings.items():
        if name in CONSUMER_FIXED or name in PRODUCER_FIXED:
            raise ConfigError(f"{key}.settings.{name}", "is set by burstbus (positions are kept after the durable append; the producer is idempotent) and may not be changed")
        if name in ("bootstrap.servers", "metadata.broker.list"):
            raise ConfigError(f"{key}.settings.{name}", "give bootstrap_servers instead")
        if isinstance(value, str):
            resolve_secret(value, f"{key}.settings.{name}")
