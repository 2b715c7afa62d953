"""Slack as a component: ``[slack]`` and the outbox (one supervised component, ``slack``)."""

from __future__ import annotations

from burstbus.bridges.slack.config import SlackSection, check_slack
from burstbus.bridges.slack.metrics import slack_metrics
from burstbus.bridges.slack.outbox import SlackOutbox
from burstbus.chat import CHANNELS
from burstbus.component import Component, ComponentPackage, Host, SectionSpec, Task, link_base


def _build(host: Host) -> list[Component]:
    section = host.config.section(SlackSection)
    if not section.enabled:
        return []
    outbox = SlackOutbox(
        host.log, host.state, section, SlackOutbox.client_for(section),
        link_base=link_base(host.ports, who="Slack"), burst_roles=tuple(host.config.bursts.roles),
    )
    host.ports.offer(CHANNELS, outbox.post_text, by="slack")
    return [Task("slack", outbox.run, health=outbox.health, metrics=slack_metrics(outbox, host.log), owner=outbox)]


PACKAGE = ComponentPackage(
    name="slack", order=40, sections=(SectionSpec("slack", SlackSection),),
    check=lambda config: check_slack(config.section(SlackSection)), build=_build,
)
