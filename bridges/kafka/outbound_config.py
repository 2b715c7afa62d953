"""One ``[[kafka.outputs]]`` entry: which log events go out to which Kafka topic.

The shape both sides of the bridge agree on: ``config`` (the ``[kafka]`` section) holds a
tuple of these and calls :func:`check_output` on each; the outbox
(``bridges/kafka/outbound.py``) publishes by them, through the pure rule of
``bridges/kafka/outbound_rule.py``.

Two kinds of output, one topic each (a Kafka topic carries one format):

* ``format = "voevent"`` (the default): the centre's own notices, ``voevent.accepted`` events
  whose IVORN lies under ``ivorn_prefixes`` (empty: the centre's own authorities, ``[authority]``),
  narrowed by ``roles`` and ``instruments``, as the exact bytes received —
  ``topic = "gcn.notices.svom.voevent.eclairs"  instruments = ["SVOM/ECLAIRs"]``.
* ``format = "json"``: every event of the listed ``types`` as its log record in JSON (seq, id,
  type, stream, actor, times, data, hashes; what the NATS bridge sends on ``events.<type>``) —
  ``topic = "fsc.pipeline.status"  format = "json"  types = ["process.status"]``.

Whatever the rule, nothing that came in over Kafka goes back out, and trigger VOEvents (orders
to telescopes) are never published.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from burstbus.authority import normal_prefix
from burstbus.catalogue import VOEVENT_ACCEPTED, VOEVENT_ROLES
from burstbus.config import ConfigError

FORMATS = ("voevent", "json")
STARTS = ("now", "beginning")


@dataclass(frozen=True)
class KafkaOutput:
    """``[[kafka.outputs]] topic = "gcn.notices.svom.voevent.eclairs" upstream = "gcn" ...``"""

    #: The Kafka topic written to (it must exist: burstbus does not create GCN's topics).
    topic: str
    #: The ``[[kafka.upstreams]]`` entry (by ``name``) whose cluster and credentials are used.
    upstream: str
    #: VOEvents (``voevent.accepted``) whose IVORN starts with one of these go out as their
    #: exact received bytes. Empty: the centre's own authorities (``[authority] own``).
    ivorn_prefixes: tuple[str, ...] = ()
    #: ``voevent``: notices as their exact bytes; ``json``: events of ``types`` as JSON records.
    format: str = field(default="voevent", metadata={"choices": FORMATS})
    #: ``json`` outputs: the log event types sent (``process.status``, ``burst.identified`` …).
    types: tuple[str, ...] = ()
    #: ``voevent`` outputs: the VOEvent roles sent. ``test`` is left out by default, so a test
    #: packet never reaches a public topic; list it for a test topic.
    roles: tuple[str, ...] = ("observation", "utility")
    #: ``voevent`` outputs: only notices of these instruments, as the ingest names them
    #: (``SVOM/ECLAIRs``, ``SVOM/GRM``, ``SVOM/MXT``; case-insensitive). Empty: any.
    instruments: tuple[str, ...] = ()
    #: First start (no stored position): ``now`` publishes only what is accepted from then on;
    #: ``beginning`` everything already in the log that the rule selects.
    start: str = field(default="now", metadata={"choices": STARTS})
    #: Seconds librdkafka may keep retrying one message before it reports it failed. 0 (the
    #: default): until it is delivered — within one producer session the idempotent producer
    #: makes those retries safe, so an outage is ridden out without a duplicate.
    delivery_timeout: float = field(default=0.0, metadata={"minimum": 0.0})
    #: Log records handled per batch (one round of delivery reports, one checkpoint write).
    batch_size: int = field(default=100, metadata={"minimum": 1})
    #: Read the topic back from the stored offsets before each producer session, so what the
    #: last session delivered after its last checkpoint is not sent again. ``false`` only for
    #: credentials that may write the topic but not read it: then a crash between a batch's
    #: delivery reports and its checkpoint write sends that batch again.
    read_back: bool = True

    @property
    def consumer(self) -> str:
        """The outbox's checkpoint name: one per cluster and topic (the same topic name can
        exist on two clusters, GCN and its test instance)."""
        return f"bridge.kafka.out.{self.upstream}.{self.topic}"

    @property
    def event_types(self) -> tuple[str, ...]:
        """The log event types this output reads."""
        return (VOEVENT_ACCEPTED,) if self.format == "voevent" else tuple(dict.fromkeys(self.types))


def check_output(output: KafkaOutput, key: str, *, trigger_streams: Iterable[str] = ()) -> None:
    """Refuse an output that could never publish what its operator means, naming the key
    (``kafka.outputs[0].types``). The topic name and the upstream are checked by the section."""
    if output.format == "json":
        if not output.types:
            raise ConfigError(f"{key}.types", 'a format = "json" output needs the event types it sends (types = ["process.status"])')
        for i, type_ in enumerate(output.types):
            if not type_ or type_ != type_.strip():
                raise ConfigError(f"{key}.types[{i}]", f"not an event type: {type_!r}")
            if type_ == VOEVENT_ACCEPTED:
                raise ConfigError(f"{key}.types[{i}]", 'VOEvents go out as their exact bytes: use a format = "voevent" output')
        for name in ("ivorn_prefixes", "instruments"):
            if getattr(output, name):
                raise ConfigError(f"{key}.{name}", 'applies to format = "voevent" outputs only')
        return
    if output.types:
        raise ConfigError(f"{key}.types", 'a format = "voevent" output sends voevent.accepted only; types are for format = "json"')
    if not output.roles:
        raise ConfigError(f"{key}.roles", f"must list at least one role ({', '.join(VOEVENT_ROLES)})")
    for i, role in enumerate(output.roles):
        if role not in VOEVENT_ROLES:
            raise ConfigError(f"{key}.roles[{i}]", f"must be one of {', '.join(VOEVENT_ROLES)}, not {role!r}")
    for i, instrument in enumerate(output.instruments):
        if not instrument.strip():
            raise ConfigError(f"{key}.instruments[{i}]", "must not be empty")
    streams = [normal_prefix(s) for s in trigger_streams]
    for i, prefix in enumerate(output.ivorn_prefixes):
        if not prefix.startswith("ivo://"):
            raise ConfigError(f"{key}.ivorn_prefixes[{i}]", f"must start with ivo://, not {prefix!r}")
        inside = next((s for s in streams if normal_prefix(prefix).startswith(s)), None)
        if inside is not None:
            raise ConfigError(f"{key}.ivorn_prefixes[{i}]", f"{prefix!r} is in the trigger stream {inside}: trigger VOEvents are orders to telescopes and are never published")
