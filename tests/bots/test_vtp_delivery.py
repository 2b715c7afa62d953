"""An approved trigger reaches the telescope's real Comet subscriber over VTP, by its filter.

The bot submits the trigger VOEvent through the ingest; the running service's broadcaster
(following the log) sends it to VTP subscribers whose filters select it: a telescope filters
on its stream or on the Telescope param, and never sees another telescope's triggers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from burstbus.bots.bot import BurstBot
from burstbus.broker.node import VTPNode
from burstbus.chat import Asker, Command
from burstbus.config import load_config
from burstbus.service import Core, build_service
from tests.bots.conftest import (
    ALICE,
    BURST,
    CAROL,
    DAVE,
    LINK,
    FakeMessenger,
    Publisher,
    fill,
    settings,
)
from tests.broker.harness import Processes, comet_filename, comet_subscriber, wait_for, within
from tests.waiting import DEADLINE

pytestmark = pytest.mark.asyncio(loop_scope="session")

BY_PARAM = "//Param[@name='Telescope' and @value='TAROT']"
BY_STREAM = "starts-with(/*/@ivorn, 'ivo://fsc.example/trigger/colibri#')"


def saved(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file() and not p.name.endswith("-lock")}


async def test_triggers_reach_only_their_telescopes_vtp_subscriber(tmp_path: Path) -> None:
    overrides = settings(tmp_path, vtp={"enabled": True, "receive": False, "broadcast_port": 0, "authenticate_wait": 30.0},
                         http={"enabled": False})
    config = load_config(None, environ={}, overrides=overrides)
    core = await Core.open(config)
    service = build_service(core)
    service.start()
    procs = Processes()
    bot = BurstBot.from_core(core, messenger=FakeMessenger(), publish=Publisher(), link_base=LINK)
    try:
        vtp = service.part(VTPNode)
        assert vtp is not None
        await within(vtp.broadcaster_ready.wait(), DEADLINE, "the broadcaster")
        broadcaster = vtp.broadcaster
        assert broadcaster is not None
        port = broadcaster.port
        tarot = comet_subscriber(procs, tmp_path, port, name="tarot", filters=(BY_PARAM,))
        colibri = comet_subscriber(procs, tmp_path, port, name="colibri", filters=(BY_STREAM,))
        await wait_for(lambda: sum(s.authenticated for s in broadcaster.subscribers()) >= 2, "two telescopes subscribed")
        await fill(core, catch_up=False)  # notices arrive while the service runs
        await wait_for(lambda: _has_burst(core), "the burst in the read model")

        async def say(jid: str, text: str) -> str:
            reply = await bot.handle(Command(Asker(jid=jid, via="dm"), text))
            return reply.text + "".join(f"\n>{p.to}: {p.text}" for p in reply.pages)

        codes = []
        for scope in ("TAROT", "COLIBRI"):
            text = await say(ALICE, f"trigger {scope} {BURST}")
            codes.append(text.split("approve ")[1].split(" ")[0])
        assert "Sent to TAROT via VTP" in await say(CAROL, f"approve {codes[0]} TAROT")
        assert "Sent to COLIBRI via VTP" in await say(DAVE, f"approve {codes[1]} COLIBRI")
        sent = {e.data["telescope"]: e.data["voevent_ivorn"] for e in await core.log.read(0) if e.type == "trigger.sent"}
        await wait_for(lambda: comet_filename(sent["TAROT"]) in saved(tarot), "TAROT's trigger at TAROT")
        await wait_for(lambda: comet_filename(sent["COLIBRI"]) in saved(colibri), "COLIBRI's trigger at COLIBRI")
        assert list(saved(tarot)) == [comet_filename(sent["TAROT"])]
        assert list(saved(colibri)) == [comet_filename(sent["COLIBRI"])]
        assert b"<Param name=\"Telescope\"" in saved(tarot)[comet_filename(sent["TAROT"])]
    finally:
        procs.stop_all()
        await bot.close()
        service.stop()
        try:
            await within(service.wait(), DEADLINE, "the service to stop")
        finally:
            await within(core.close(), DEADLINE, "the core to close")


async def _has_burst(core: Core) -> bool:
    rows = await core.projections.db.execute_fetchall("SELECT 1 FROM bursts WHERE burst_id = ?", (BURST,))
    return bool(list(rows))
