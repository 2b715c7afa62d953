"""The XMPP bridge as a component: ``[xmpp]``, the connection with its outbox, the ``chat`` port.

It offers the bot a :class:`~burstbus.chat.Messenger` (port ``chat.messenger``) and hands the
commands it receives to whoever offers ``chat.bot`` (looked up per command, so the bot may be
built after it)."""

from __future__ import annotations

from burstbus.bridges.xmpp.config import XmppSection, check_xmpp
from burstbus.bridges.xmpp.metrics import xmpp_metrics
from burstbus.bridges.xmpp.node import XmppNode
from burstbus.chat import CHAT, CHATBOT, ROOMS
from burstbus.component import Component, ComponentPackage, Host, SectionSpec, Task, link_base


def _build(host: Host) -> list[Component]:
    section = host.config.section(XmppSection)
    if not section.enabled:
        return []
    node = XmppNode(
        host.log, host.state, host.ingest, section, find_bot=lambda: host.ports.get(CHATBOT),
        link_base=link_base(host.ports, who="XMPP"), burst_roles=tuple(host.config.bursts.roles),
    )
    host.ports.offer(CHAT, node, by="xmpp")
    host.ports.offer(ROOMS, node.post_room, by="xmpp")
    return [Task("xmpp", node.run, health=node.health, metrics=xmpp_metrics(node, host.log), owner=node)]


PACKAGE = ComponentPackage(
    name="xmpp", order=30, sections=(SectionSpec("xmpp", XmppSection),),
    check=lambda config: check_xmpp(config.section(XmppSection)), build=_build,
)
