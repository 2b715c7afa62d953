"""The Burst Advocate bot as a component: ``[acl]`` and ``[triggers]``, the trigger streams its
workflow (:mod:`burstbus.handlers.triggers`) alone speaks for, and the bot itself wherever a
chat transport offers ``chat.messenger``."""

from __future__ import annotations

from burstbus.acl import AclSection
from burstbus.bots.bot import BurstBot
from burstbus.chat import CHAT, CHATBOT
from burstbus.component import (
    LINK_BASE,
    PUBLISH,
    Claims,
    Component,
    ComponentPackage,
    Host,
    SectionSpec,
    Task,
)
from burstbus.config import Config
from burstbus.handlers.triggers.config import TriggersSection, check_triggers, trigger_streams


def _claims(config: Config) -> Claims:
    triggers = config.section(TriggersSection)
    return Claims(trigger_streams=trigger_streams(triggers), own=(f"ivo://{triggers.authority}/",))


def _build(host: Host) -> list[Component]:
    messenger = host.ports.get(CHAT)
    if messenger is None:  # no chat transport: nobody could ask the bot anything
        return []
    running = host.running
    bot = BurstBot.from_core(
        host, messenger=messenger, publish=host.ports.get(PUBLISH), link_base=host.ports.get(LINK_BASE) or "",
        health=lambda: {c.name: c.health() for c in running},
    )
    host.ports.offer(CHATBOT, bot, by="bot")
    host.closers.append(bot.close)
    return [Task("bot-expiry", bot.run_expiry, health=bot.probe, owner=bot)]


PACKAGE = ComponentPackage(
    name="bot", order=60, sections=(SectionSpec("acl", AclSection), SectionSpec("triggers", TriggersSection)),
    check=lambda config: check_triggers(config.section(AclSection), config.section(TriggersSection)),
    claims=_claims, build=_build,
)
