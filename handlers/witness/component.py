"""The witness as a component: ``[witness]``, and one supervised ``witness`` component that
signs the head every interval and publishes each checkpoint through the ports others offer —
NATS (``nats.publish``), XMPP rooms (``chat.rooms``), Slack channels (``chat.channels``) — and
to a file. A destination whose transport is off is left out, with a warning at start."""

from __future__ import annotations

import logging

from burstbus.chat import CHANNELS, ROOMS
from burstbus.component import (
    PUBLISH,
    Component,
    ComponentPackage,
    Host,
    PortKey,
    SectionSpec,
    Task,
)
from burstbus.store.consumer import Start

from .config import WitnessSection, check_witness
from .witness import FileOutlet, Outlet, Witness, chat_outlet, nats_outlet

log = logging.getLogger(__name__)

#: The running witness (``sign_now``: a checkpoint of the head now, for the bot's ``checkpoint``).
WITNESS: PortKey[Witness] = PortKey("witness", "sign the log's head now")


def outlets_for(host: Host, section: WitnessSection) -> list[Outlet]:
    outlets: list[Outlet] = []
    if section.file is not None:
        outlets.append(Outlet("witness.file", Start.BEGINNING, FileOutlet(section.file)))
    publish = host.ports.get(PUBLISH)
    if section.nats_subject and publish is not None:
        outlets.append(nats_outlet(publish, section.nats_subject))
    elif section.nats_subject:
        log.info("witness: NATS is off: checkpoints are not published on %s", section.nats_subject)
    rooms = host.ports.get(ROOMS)
    for room in section.xmpp_rooms:
        if rooms is None:
            log.warning("witness: XMPP is off: checkpoints do not go to the room %s ([witness] xmpp_rooms)", room)
            continue
        outlets.append(chat_outlet("xmpp", rooms, room, code_block=False))
    channels = host.ports.get(CHANNELS)
    for channel in section.slack_channels:
        if channels is None:
            log.warning("witness: Slack is off: checkpoints do not go to the channel %s ([witness] slack_channels)", channel)
            continue
        outlets.append(chat_outlet("slack", channels, channel, code_block=True))
    return outlets


def _build(host: Host) -> list[Component]:
    section = host.config.section(WitnessSection)
    if not section.enabled:
        return []
    witness = Witness(host.log, host.state, section, outlets_for(host, section))
    host.ports.offer(WITNESS, witness, by="witness")
    return [Task("witness", witness.run, health=witness.health, owner=witness)]


PACKAGE = ComponentPackage(
    name="witness", order=50, sections=(SectionSpec("witness", WitnessSection),),
    check=lambda config: check_witness(config.section(WitnessSection)), build=_build,
)

