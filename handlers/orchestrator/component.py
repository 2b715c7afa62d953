"""The orchestrator as a component: ``[orchestrator]`` and ``[[pipelines]]`` (checked at start,
the graph included), and the ``orchestrator`` task wherever pipelines are configured.

It reaches NATS only through the ``nats.request`` port, looked up at each dispatch (NATS off:
a NATS-dispatched attempt is refused with that reason, and retried by the rules)."""

from __future__ import annotations

from burstbus.component import (
    REQUEST,
    Component,
    ComponentPackage,
    Host,
    PortKey,
    SectionSpec,
    Task,
)
from burstbus.config import Config
from burstbus.store.consumer import Start

from .config import OrchestratorSection, PipelinesSection, check_pipelines
from .node import Orchestrator

#: The running orchestrator, for requests by hand (the bot, the HTTP API): None when off.
ORCHESTRATOR: PortKey[Orchestrator] = PortKey("orchestrator", "the orchestrator: requests by hand")


def _check(config: Config) -> None:
    check_pipelines(config.section(OrchestratorSection), config.section(PipelinesSection))


def _build(host: Host) -> list[Component]:
    section = host.config.section(OrchestratorSection)
    pipelines = host.config.section(PipelinesSection)
    if not section.enabled or not pipelines.pipelines:
        return []
    ports = host.ports
    node = Orchestrator(host.log, host.state, section, pipelines, request=lambda: ports.get(REQUEST),
                        start=Start.BEGINNING if section.from_beginning else Start.HEAD)
    host.ports.offer(ORCHESTRATOR, node, by="orchestrator")
    return [Task("orchestrator", node.run, health=node.health, metrics=node.metrics, owner=node)]


PACKAGE = ComponentPackage(
    name="orchestrator", order=55,
    sections=(SectionSpec("orchestrator", OrchestratorSection), SectionSpec("pipelines", PipelinesSection, array=True)),
    check=_check, build=_build,
)
