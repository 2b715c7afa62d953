"""A burstbus core with real notices in its log, and a BurstBot over it — no chat server.

The transport is replaced by what it hands the bot (an :class:`Asker` it established) and by
a recording :class:`Messenger`; NATS by a recording ``publish``. Everything else is real:
the SQLite log, the ingest, the burst identifier, the projections and their reader.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from burstbus.bots.bot import BurstBot
from burstbus.chat import Asker, Command, Reply
from burstbus.config import Config, load_config
from burstbus.events import Event, RecordedEvent
from burstbus.service import Core
from burstbus.store.base import ReadFilter
from tests.packets import voevent

BURST = "sb26112001"
NO_POSITION = "sb26112002"
FAR = "sb26112003"
N1 = f"ivo://svom.example/ECLAIRs#{BURST}_1"
N2 = f"ivo://svom.example/MXT#{BURST}_2"
N3 = f"ivo://svom.example/ECLAIRs#{NO_POSITION}_1"
N4 = f"ivo://svom.example/ECLAIRs#{FAR}_1"

ALICE = "alice@fsc.example"  # ba on TAROT and COLIBRI
BOB = "bob@fsc.example"  # approver on TAROT (so also ba there)
CAROL = "carol@fsc.example"  # approver on every telescope
DAVE = "dave@fsc.example"  # admin
VIC = "vic@fsc.example"  # viewer
MALLORY = "mallory@elsewhere.example"  # not listed

TAROT_JID = "tarot@robots.example"
TAROT_SUBJECT = "svom.trigger.tarot"
LINK = "https://fsc.example/burstbus"


def settings(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    overrides: dict[str, Any] = {
        "data": {"dir": str(tmp_path / "data")},
        "http": {"public_url": LINK},
        "nats": {"enabled": False},
        "vtp": {"enabled": False},
        "acl": {
            "default_role": "viewer",
            "users": [
                {"jid": ALICE, "roles": ["ba"], "telescopes": ["TAROT", "COLIBRI"]},
                {"jid": BOB, "roles": ["approver"], "telescopes": ["TAROT"]},
                {"jid": "Carol@FSC.example", "roles": ["viewer", "approver"], "telescopes": ["*"]},
                {"jid": DAVE, "roles": ["admin"]},
                {"jid": VIC, "roles": ["viewer"]},
            ],
        },
        "triggers": {
            "code_minutes": 10,
            "authority": "fsc.example",
            "telescopes": [
                {"name": "TAROT", "two_person": True, "jids": [TAROT_JID], "nats_subject": TAROT_SUBJECT},
                {"name": "COLIBRI", "two_person": False, "vtp_stream": "ivo://fsc.example/trigger/colibri"},
            ],
        },
    }
    for section, values in extra.items():
        overrides.setdefault(section, {}).update(values)
    return overrides


class FakeMessenger:
    """Records what the bot asks the transport to do; can be told a JID is unreachable."""

    def __init__(self) -> None:
        self.voevents: list[tuple[str, bytes, str]] = []
        self.direct: list[tuple[str, str]] = []
        self.unreachable: set[str] = set()
        self.up = True

    async def send_direct(self, jid: str, text: str) -> None:
        self.direct.append((jid, text))

    async def send_voevent(self, jid: str, xml: bytes, summary: str) -> None:
        if jid in self.unreachable:
            raise ConnectionError(f"{jid} is unreachable")
        self.voevents.append((jid, xml, summary))

    def health(self) -> dict[str, object]:
        return {"up": self.up, "last_activity": "2026-11-20T03:05:00.000000Z"}


class Publisher:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, dict[str, str]]] = []

    async def __call__(self, subject: str, payload: bytes, headers: dict[str, str]) -> None:
        self.messages.append((subject, payload, dict(headers)))


class Clock:
    """Real time plus an offset, so expiry can be tested without waiting."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, minutes: float) -> None:
        self.offset += timedelta(minutes=minutes)


def components() -> dict[str, dict[str, object]]:
    return {
        "projections": {"up": True, "failure": None},
        "vtp-receiver": {"up": False, "failure": "OSError: address in use", "failed_at": "2026-11-20T03:01:00.000000Z"},
    }


_CODE = re.compile(r"approve ([A-Z0-9]{4}-[A-Z0-9]{4})")


@dataclass
class World:
    config: Config
    core: Core
    bot: BurstBot
    messenger: FakeMessenger
    publisher: Publisher
    clock: Clock
    bots: list[BurstBot] = field(default_factory=list)

    async def say(self, jid: str | None, text: str, *, via: str = "dm", room: str | None = None,
                  nick: str | None = None, bot: BurstBot | None = None) -> Reply:
        asker = Asker(jid=jid, via=via, room=room, nick=nick)  # type: ignore[arg-type]
        return await (bot or self.bot).handle(Command(asker, text))

    async def sync(self) -> None:
        await self.core.catch_up()

    async def events(self, *types: str) -> list[RecordedEvent]:
        return await self.core.log.read(0, ReadFilter.of(types=types))

    def new_bot(self, **options: Any) -> BurstBot:
        bot = BurstBot.from_core(self.core, messenger=self.messenger, publish=self.publisher, clock=self.clock, link_base=LINK,
                                 health=components, **options)
        self.bots.append(bot)
        return bot

    async def request(self, jid: str, text: str) -> tuple[Reply, str]:
        """Run a ``trigger`` command; return the reply and the code paged to the approvers."""
        reply = await self.say(jid, text)
        codes = {m.group(1) for page in reply.pages for m in [_CODE.search(page.text)] if m}
        assert len(codes) == 1, (reply.text, reply.pages)
        return reply, codes.pop()


async def fill(core: Core, catch_up: bool = True) -> None:
    """Four notices in three bursts (one without position), and two pipeline processes.
    ``catch_up=False`` when a running service's components follow the log themselves."""
    packets = [
        voevent(N1, params={"Burst_Id": BURST}, ra=123.456, dec=-12.5, err=0.1, authored="2026-11-20T03:05:00"),
        voevent(N2, params={"Burst_Id": BURST}, ra=123.4601, dec=-12.5012, err=0.002, authored="2026-11-20T03:09:00",
                cites=[(N1, "followup")]),
        voevent(N3, params={"Burst_Id": NO_POSITION}, ra=None, dec=None, authored="2026-11-20T03:20:00"),
        voevent(N4, params={"Burst_Id": FAR}, ra=250.0, dec=45.0, err=0.5, authored="2026-11-20T02:00:00"),
    ]
    for raw in packets:
        result = await core.ingest.submit(raw, via="local", peer="tests")
        assert result.outcome == "accepted", result
    processes = [
        {"process": "obtloc", "burst_id": BURST, "obs_id": "01", "pass_id": "1", "pipeline": "ECL", "status": "complete", "log": "done"},
        {"process": "mxt-pipe", "burst_id": BURST, "obs_id": "01", "pass_id": "1", "pipeline": "MXT", "status": "failed",
         "log": "step 1\nERROR: no attitude file"},
    ]
    await core.log.append([Event("process.status", p, stream=BURST, actor="nats:orchestrator") for p in processes])
    if catch_up:
        await core.catch_up()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with make_world(tmp_path) as made:
        yield made


class make_world:
    """``async with make_world(tmp_path, **config sections)``: a filled core and a bot."""

    def __init__(self, tmp_path: Path, **extra: Any):
        self.config = load_config(None, environ={}, overrides=settings(tmp_path, **extra))
        self.world: World | None = None

    async def __aenter__(self) -> World:
        core = await Core.open(self.config)
        if (await core.log.head()).seq == 0:
            await fill(core)
        world = World(self.config, core, None, FakeMessenger(), Publisher(), Clock())  # type: ignore[arg-type]
        world.bot = world.new_bot()
        self.world = world
        return world

    async def __aexit__(self, *exc: object) -> None:
        assert self.world is not None
        for bot in self.world.bots:
            await bot.close()
        await self.world.core.close()
