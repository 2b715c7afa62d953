"""The Kafka bridge as a component: ``[kafka]``, one consumer per upstream, the alarms, the outboxes.

* ``kafka.in.<upstream>`` (one per ``[[kafka.upstreams]]`` entry it reads): alerts into the log
  through the ingest, positions in ``state.sqlite``, heartbeat liveness, gaps
  (``bridges/kafka/inbound.py``).
* ``kafka.alarms``: feed silences, recoveries and gaps paged to the on-duty Burst Advocates
  through the chat port (``alarms.py``), when any consumer runs.
* ``kafka.out.<upstream>.<topic>`` (one per ``[[kafka.outputs]]``): the checkpointed outbox
  (``outbound.py``).
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from burstbus.bridges.kafka.alarms import Alarms
from burstbus.bridges.kafka.config import KafkaSection, check_kafka
from burstbus.bridges.kafka.connection import consumer_config, producer_config
from burstbus.bridges.kafka.inbound import KafkaInbound
from burstbus.bridges.kafka.inbound_metrics import inbound_families
from burstbus.bridges.kafka.outbound import KafkaOutbox
from burstbus.bridges.kafka.outbound_metrics import OutboxGroup
from burstbus.bridges.kafka.outbound_rule import own_prefixes
from burstbus.chat import CHANNELS, CHAT
from burstbus.component import LINK_BASE, Component, ComponentPackage, Host, SectionSpec, Task
from burstbus.config import Config


def _check(config: Config) -> None:
    check_kafka(config.section(KafkaSection), tuple(config.claims.trigger_streams))


def on_duty(config: Any, section: KafkaSection) -> tuple[str, ...]:
    """Who is paged: ``[kafka] on_duty``, else ``[xmpp] on_duty`` (read by name, untyped: the
    transports do not import one another)."""
    if section.on_duty:
        return section.on_duty
    xmpp = getattr(config, "sections", {}).get("xmpp")
    return tuple(getattr(xmpp, "on_duty", ()) or ())


def node_name(data_dir: Path) -> str:
    """This node's name in the outbox's origin header: host name and a data directory digest."""
    digest = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}-{digest}"


def _build(host: Host) -> list[Component]:
    section = host.config.section(KafkaSection)
    components: list[Component] = []
    consumers = [KafkaInbound(u, section, host.log, host.ingest, host.state) for u in section.consumed()]
    alarms: Alarms | None = None
    if consumers:
        alarms = Alarms(
            host.log, host.state, on_duty=lambda: on_duty(host.config, section),
            messenger=lambda: host.ports.get(CHAT), link_base=lambda: host.ports.get(LINK_BASE) or "",
            channels=section.slack_channels, post=lambda: host.ports.get(CHANNELS),
            retry_delay=section.retry_delay,
        )
    for consumer in consumers:
        # One provider for every consumer's series (the first one's): a family appears once in /metrics.
        metrics = _families(consumers, alarms) if consumer is consumers[0] else None
        components.append(Task(f"kafka.in.{consumer.name}", consumer.run, health=consumer.health, metrics=metrics, owner=consumer))
    if alarms is not None:
        components.append(Task("kafka.alarms", alarms.run, health=alarms.health, owner=alarms))
    group = OutboxGroup()
    config = host.config
    for output in section.outputs:
        upstream = section.upstream(output.upstream)
        outbox = KafkaOutbox(
            host.log, host.state, output, producer_config(upstream, max_message_bytes=section.max_message_bytes),
            own_prefixes(config.claims.own, config.authority.reserved), withheld_prefixes=config.claims.trigger_streams,
            reader_config=consumer_config(upstream), origin=node_name(config.data_dir), metrics_group=group,
            retry_delay=section.retry_delay,
        )
        components.append(outbox)
    return components


def _families(consumers: Sequence[KafkaInbound], alarms: Alarms | None) -> Any:
    return lambda: inbound_families(consumers, alarms)


PACKAGE = ComponentPackage(name="kafka", order=40, sections=(SectionSpec("kafka", KafkaSection),), check=_check, build=_build)
