"""The Burst Advocate bot as a component: ``[acl]`` and ``[triggers]``, the trigger streams its
workflow (:mod:`burstbus.handlers.triggers`) alone speaks for, the bot itself wherever a
chat transport offers ``chat.messenger``, and — with or without chat — what follows a sent
trigger: the follow-up linker (telescopes' packets citing it), the acknowledgement watch and
the pager that tells people about both."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from burstbus.acl import Acl, AclSection
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
from burstbus.handlers.notices.drafts import NOTICE_DRAFTS
from burstbus.handlers.orchestrator.component import ORCHESTRATOR
from burstbus.handlers.triggers.attention import AckWatch, FollowupPager
from burstbus.handlers.triggers.config import TriggersSection, check_triggers, trigger_streams
from burstbus.handlers.triggers.linker import FollowupLinker
from burstbus.handlers.witness.component import WITNESS
from burstbus.store.reader import ProjectionReader


def _claims(config: Config) -> Claims:
    triggers = config.section(TriggersSection)
    return Claims(trigger_streams=trigger_streams(triggers), own=(f"ivo://{triggers.authority}/",))


def _followup(host: Host) -> list[Component]:
    """The trigger's life after delivery: needs no chat (pages go out only if there is one)."""
    triggers = host.config.section(TriggersSection)
    acl = Acl(host.config.section(AclSection))
    reader = ProjectionReader(host.config.projections_path, threads=1, timeout=10.0)

    async def close_reader() -> None:
        await asyncio.get_running_loop().run_in_executor(None, reader.close)

    host.closers.append(close_reader)
    linker = FollowupLinker(host.log, host.state, triggers)
    pager = FollowupPager(host.log, host.state, triggers, messenger=lambda: host.ports.get(CHAT),
                          link_base=lambda: host.ports.get(LINK_BASE) or "")
    watch = AckWatch(host.log, triggers, reader.run, clock=lambda: datetime.now(UTC), approvers=acl.approvers)
    return [Task("trigger-followup", linker.run, health=linker.health, owner=linker),
            Task("trigger-pages", pager.run, health=pager.health, owner=pager),
            Task("trigger-ack-watch", watch.run, health=watch.health, owner=watch)]


def _build(host: Host) -> list[Component]:
    followup = _followup(host)
    messenger = host.ports.get(CHAT)
    if messenger is None:  # no chat transport: nobody could ask the bot anything
        return followup
    running = host.running
    bot = BurstBot.from_core(
        host, messenger=messenger, publish=host.ports.get(PUBLISH), link_base=host.ports.get(LINK_BASE) or "",
        health=lambda: {c.name: c.health() for c in running}, witness=lambda: host.ports.get(WITNESS),
        orchestrator=lambda: host.ports.get(ORCHESTRATOR), drafts=lambda: host.ports.get(NOTICE_DRAFTS),
    )
    host.ports.offer(CHATBOT, bot, by="bot")
    host.closers.append(bot.close)
    return [Task("bot-expiry", bot.run_expiry, health=bot.probe, owner=bot), *followup]


PACKAGE = ComponentPackage(
    name="bot", order=60, sections=(SectionSpec("acl", AclSection), SectionSpec("triggers", TriggersSection)),
    check=lambda config: check_triggers(config.section(AclSection), config.section(TriggersSection)),
    claims=_claims, build=_build,
)
