"""The NATS bridge as a component: ``[nats]``, the JetStream log's check, the ``nats.publish`` port."""

from __future__ import annotations

from burstbus.bridges.nats.config import NatsSection, check_log_jetstream, check_nats
from burstbus.bridges.nats.log_backend import open_jetstream_log
from burstbus.bridges.nats.metrics import nats_health, nats_metrics
from burstbus.bridges.nats.node import NatsNode
from burstbus.component import (
    PUBLISH,
    REQUEST,
    Component,
    ComponentPackage,
    Host,
    SectionSpec,
    Task,
)
from burstbus.config import Config
from burstbus.handlers.notices.intake import NOTICE_INTAKE


def _check(config: Config) -> None:
    check_nats(config.section(NatsSection))
    check_log_jetstream(config.log)


def _build(host: Host) -> list[Component]:
    section = host.config.section(NatsSection)
    if not section.enabled:
        return []
    node = NatsNode(host.log, host.ingest, host.state, section, host.config.data_dir,
                    notices=lambda: host.ports.get(NOTICE_INTAKE))
    host.ports.offer(PUBLISH, node.publish, by="nats")
    host.ports.offer(REQUEST, node.request, by="nats")
    return [Task(name, run, health=nats_health(node), metrics=nats_metrics(node, host.log), owner=node)
            for name, run in node.components()]


PACKAGE = ComponentPackage(
    name="nats", order=10, sections=(SectionSpec("nats", NatsSection),), check=_check, build=_build,
    log_backends={"jetstream": open_jetstream_log},
)
