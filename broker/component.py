"""The VTP broker as components: its ``[vtp]`` section, the IVORN it speaks for, its parts."""

from __future__ import annotations

from burstbus.broker.config import VTPSection, check_vtp
from burstbus.broker.metrics import vtp_health, vtp_metrics
from burstbus.broker.node import VTPNode
from burstbus.component import Claims, Component, ComponentPackage, Host, SectionSpec, Task
from burstbus.config import Config


def _claims(config: Config) -> Claims:
    return Claims(own=(config.section(VTPSection).local_ivo,))


def _build(host: Host) -> list[Component]:
    section = host.config.section(VTPSection)
    node = VTPNode(host.log, host.ingest, section, host.state)
    return [
        Task(name, run, health=vtp_health(node, name), metrics=vtp_metrics(node, host.log, name), owner=node)
        for name, run in node.components()
    ]


PACKAGE = ComponentPackage(
    name="vtp", order=20, sections=(SectionSpec("vtp", VTPSection),),
    check=lambda config: check_vtp(config.section(VTPSection)), claims=_claims, build=_build,
)
