"""Slack in the service: one supervised component (``slack``) running the outbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

from burstbus.bridges.slack.outbox import SlackOutbox

if TYPE_CHECKING:
    from burstbus.service import Core, Service


def add_slack(service: Service, core: Core) -> SlackOutbox | None:
    """Wire the Slack outbox into a service (``build_service`` calls this); None when disabled."""
    section = core.config.slack
    if not section.enabled:
        return None
    outbox = SlackOutbox(
        core.log, core.state, section, SlackOutbox.client_for(section),
        link_base=core.config.http.link_base(), burst_roles=core.config.bursts.roles,
    )
    service.add("slack", outbox.run, probe=outbox.health)
    return outbox
