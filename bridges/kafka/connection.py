"""How one ``[[kafka.upstreams]]`` entry becomes a confluent-kafka configuration dict.

Two kinds of cluster, one dataclass:

* **GCN** (``domain = "gcn.nasa.gov"`` or ``"test.gcn.nasa.gov"``, ``client_id``,
  ``client_secret``): the settings are built by ``gcn_kafka``'s own config builder (OIDC
  client credentials over SASL_SSL, ``kafka.<domain>``, certifi's CA bundle), so burstbus
  follows GCN's client when GCN changes what a client must send.
* **Any Kafka** (``bootstrap_servers`` plus librdkafka ``settings``: SCiMMA Hopskotch, a
  centre's own cluster, the test broker): exactly what the operator wrote, no GCN defaults.

``settings`` always win over what is derived (they are librdkafka's own keys), except the few
keys burstbus's guarantees depend on (:data:`CONSUMER_FIXED`, :data:`PRODUCER_FIXED`), which
the config check refuses to change. Values of ``client_secret`` and of every setting may be
``env:NAME`` / ``file:/path`` (read when the dict is built, at start, never logged).

The functions here are pure apart from reading those secrets: the consumer, the outbox and
``burstbus kafka check`` add their callbacks (``error_cb``, ``logger``) themselves.

**For the outbox**: ``producer_config(upstream)`` is its producer's dict — idempotent
(``enable.idempotence``, ``acks=all``, so a retried send is never stored twice by the
broker), GCN's zstd compression for GCN, and ``message.max.bytes`` large enough for the 4 MiB
messages GCN allows. Find the upstream an output names with ``KafkaSection.upstream(name)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from burstbus.config import resolve_secret

#: GCN Kafka's domains, as ``gcn_kafka`` knows them.
GCN_DOMAINS = ("gcn.nasa.gov", "test.gcn.nasa.gov", "dev.gcn.nasa.gov")
#: GCN allows messages up to 4 MiB.
GCN_MAX_MESSAGE = 4 * 1024 * 1024

Mode = Literal["consumer", "producer", "admin"]

#: Consumer keys burstbus sets and ``settings`` may not change: positions are burstbus's own
#: (stored in state.sqlite after the durable append, read back with ``assign``), never
#: committed or reset behind its back — a reset must surface as a gap, not happen silently.
CONSUMER_FIXED: Mapping[str, str] = {
    "enable.auto.commit": "false",
    "enable.auto.offset.store": "false",
    "auto.offset.reset": "error",
}
#: Producer keys the outbox's "nothing twice" depends on.
PRODUCER_FIXED: Mapping[str, str] = {"enable.idempotence": "true", "acks": "all"}


@dataclass(frozen=True)
class KafkaUpstream:
    """``[[kafka.upstreams]]``: one Kafka cluster, how to reach it, and what to read from it.

    ``name = "gcn"  client_id = "env:GCN_CLIENT_ID"  client_secret = "env:GCN_CLIENT_SECRET"
    presets = ["svom", "lvk"]`` — or ``bootstrap_servers = "kafka.example.org:9092"`` with
    ``settings = { "security.protocol" = "sasl_ssl", "sasl.mechanisms" = "SCRAM-SHA-512", … }``.
    """

    #: How outputs and logs name it; part of the consumer id (``burstbus.kafka.<name>``).
    name: str
    #: GCN: which GCN (ignored when ``bootstrap_servers`` is set).
    domain: str = field(default="gcn.nasa.gov", metadata={"choices": GCN_DOMAINS})
    #: GCN: OIDC client credentials from gcn.nasa.gov/quickstart (``env:``/``file:`` allowed).
    client_id: str = ""
    client_secret: str = ""
    #: Any other Kafka: ``host:port[,host:port…]``. Set: no GCN defaults at all.
    bootstrap_servers: str = ""
    #: librdkafka settings (``security.protocol``, ``sasl.*``, ``ssl.*``, ``group.id`` …);
    #: values may be ``env:``/``file:`` secrets; numbers and booleans are taken as their text.
    settings: dict[str, str] = field(default_factory=dict)
    #: Topic lists by name (``svom``, ``swift``, ``fermi``, ``lvk``, ``ep``, ``icecube``; see
    #: ``bridges/kafka/presets.py``), added to ``topics``.
    presets: tuple[str, ...] = ()
    #: Topics read from this cluster (VOEvent topics through the ingest, JSON notice topics as
    #: ``notice.accepted``; which is which is decided per message, by its first byte).
    topics: tuple[str, ...] = ()
    #: The liveness topic (about one small JSON message per second on GCN). ``"auto"``:
    #: ``gcn.heartbeat`` on GCN, none elsewhere; ``""``: none.
    heartbeat: str = "auto"
    #: First start (no stored position for a partition): ``"now"`` (only what comes after),
    #: ``"earliest"`` (all the broker keeps), or an ISO time (``"2026-11-30T00:00:00Z"``) to
    #: back-fill from, through the broker's offsets for times.
    start: str = "now"
    #: Seconds without a heartbeat (or, without a heartbeat topic, without an answer from the
    #: broker) after which the feed is declared silent: an event and a page to the on-duty BAs.
    silence_after: float = field(default=60.0, metadata={"minimum": 1.0})
    #: Read from this upstream at all (false: an upstream used only by ``[[kafka.outputs]]``).
    consume: bool = True

    @property
    def is_gcn(self) -> bool:
        return not self.bootstrap_servers

    @property
    def heartbeat_topic(self) -> str:
        if self.heartbeat == "auto":
            return "gcn.heartbeat" if self.is_gcn else ""
        return self.heartbeat

    @property
    def consumer_id(self) -> str:
        """The checkpoint key prefix and default ``group.id`` (``burstbus.kafka.<name>``)."""
        return f"burstbus.kafka.{self.name}"

    def where(self) -> str:
        """For messages: ``gcn (kafka.gcn.nasa.gov)`` / ``local (127.0.0.1:9092)``."""
        return f"{self.name} ({self.bootstrap_servers or 'kafka.' + self.domain})"


Secret = Callable[[str, str], str]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def resolved_settings(upstream: KafkaUpstream, key: str, secret: Secret = resolve_secret) -> dict[str, str]:
    """The operator's librdkafka settings with ``env:``/``file:`` values read."""
    return {name: secret(_text(value), f"{key}.settings.{name}") for name, value in upstream.settings.items()}


def client_config(
    upstream: KafkaUpstream,
    mode: Mode,
    *,
    key: str = "kafka.upstreams",
    max_message_bytes: int = GCN_MAX_MESSAGE,
    secret: Secret = resolve_secret,
) -> dict[str, Any]:
    """The confluent-kafka configuration for ``mode`` (``consumer``, ``producer``, ``admin``).

    ``key`` names the entry in errors (``kafka.upstreams[0]``); ``secret`` reads ``env:``/
    ``file:`` values (a test passes its own)."""
    settings = resolved_settings(upstream, key, secret)
    derived: dict[str, Any] = {"client.id": f"burstbus-{upstream.name}"}
    if mode == "consumer":
        derived.update({"group.id": upstream.consumer_id, "enable.partition.eof": False})
    elif mode == "producer":
        # Room for GCN's 4 MiB messages plus the record overhead.
        derived.update({"message.max.bytes": max(1_000_000, max_message_bytes + 65536), "linger.ms": 5})
    if upstream.is_gcn:
        from gcn_kafka.core import get_config

        config = get_config(
            mode,
            {**derived, **settings},
            client_id=secret(upstream.client_id, f"{key}.client_id") or None,
            client_secret=secret(upstream.client_secret, f"{key}.client_secret") or None,
            domain=upstream.domain,
        )
    else:
        config = {**derived, "bootstrap.servers": upstream.bootstrap_servers, **settings}
    if mode == "consumer":
        config.update(CONSUMER_FIXED)
    elif mode == "producer":
        config.update(PRODUCER_FIXED)
    return dict(config)


def consumer_config(upstream: KafkaUpstream, **kwargs: Any) -> dict[str, Any]:
    """For the inbound consumer (``assign`` with burstbus's own positions; nothing committed)."""
    return client_config(upstream, "consumer", **kwargs)


def producer_config(upstream: KafkaUpstream, **kwargs: Any) -> dict[str, Any]:
    """For the outbox: idempotent, ``acks=all``; GCN's zstd compression on GCN."""
    return client_config(upstream, "producer", **kwargs)


def admin_config(upstream: KafkaUpstream, **kwargs: Any) -> dict[str, Any]:
    """For ``burstbus kafka check`` and topic metadata."""
    return client_config(upstream, "admin", **kwargs)


def redacted(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config dict fit for a log line or ``kafka check``: secrets shown as ``***``."""
    hidden = ("secret", "password", "sasl.oauthbearer.config", "ssl.key.pem", "ssl.keystore")
    return {k: ("***" if any(h in k for h in hidden) else v) for k, v in config.items()}
