"""Fixtures for the XMPP tests: one real Prosody per session, fresh rooms per test, and
burstbus (log, VTP, the XMPP bridge) running in this process on the session loop.

Every test here runs on pytest-asyncio's session loop: the VTP side needs Twisted's reactor,
which is bound to one loop for the life of the process (see tests/broker/harness.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from burstbus.bots.bot import BurstBot
from burstbus.bridges.nats.node import NatsNode
from burstbus.bridges.xmpp.node import XmppNode
from burstbus.broker.node import VTPNode
from burstbus.chat import ChatBot, Command, Reply
from burstbus.config import load_config
from burstbus.service import Core, Service, build_service
from tests.broker.harness import within
from tests.waiting import DEADLINE, wait_for
from tests.xmpp.harness import (
    DOMAIN,
    MUC,
    PASSWORD,
    Prosody,
    User,
    configure_room,
    prosody_available,
)

USERS = ("burstbus", "alice", "bob", "carol", "mallory", "owner", "telescope", "colibri", "forwarder")

pytestmark = pytest.mark.asyncio(loop_scope="session")


def jid(user: str) -> str:
    return f"{user}@{DOMAIN}"


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def prosody(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Prosody]:
    if not prosody_available():
        pytest.skip("prosody is not installed (tests/run.sh installs it)")
    server = Prosody(tmp_path_factory.mktemp("prosody"))
    server.prepare()
    for user in USERS:
        server.register(user)
    try:
        await server.start()
        yield server
    finally:
        server.stop()


@dataclass
class Rooms:
    ba: str  # members-only, non-anonymous
    anon: str  # semi-anonymous (real JIDs hidden)


@pytest_asyncio.fixture(loop_scope="session")
async def rooms(prosody: Prosody) -> Rooms:
    """Two fresh rooms configured by their owner; everyone registered is a member of both."""
    tag = uuid.uuid4().hex[:8]
    made = Rooms(f"ba-{tag}@{MUC}", f"anon-{tag}@{MUC}")
    owner = await User(f"{jid('owner')}/setup", prosody).login()
    try:
        members = [jid(u) for u in USERS if u != "owner"]
        await configure_room(owner, made.ba, members_only=True, whois_anyone=True, members=members)
        await configure_room(owner, made.anon, members_only=True, whois_anyone=False, members=members)
    finally:
        await owner.logout()
    return made


class Clients:
    """Ordinary clients a test logs in; all logged out at the end."""

    def __init__(self, server: Prosody):
        self.server = server
        self.users: list[User] = []

    async def login(self, user: str, resource: str = "phone") -> User:
        client = User(f"{jid(user)}/{resource}", self.server)
        self.users.append(client)
        return await client.login()

    async def close(self) -> None:
        for client in self.users:
            await client.logout()


@pytest_asyncio.fixture(loop_scope="session")
async def clients(prosody: Prosody) -> AsyncIterator[Clients]:
    made = Clients(prosody)
    try:
        yield made
    finally:
        await made.close()


@dataclass
class RecordingBot:
    """A stand-in ChatBot that records what the transport established and echoes it."""

    commands: list[Command] = field(default_factory=list)
    pages: Callable[[Command], list[Any]] | None = None

    async def handle(self, command: Command) -> Reply:
        self.commands.append(command)
        who = command.asker.jid or "unidentified"
        return Reply(f"heard {command.text!r} from {who}", pages=self.pages(command) if self.pages else [])

    def texts(self) -> list[str]:
        return [c.text for c in self.commands]


def xmpp_options(prosody: Prosody, made: Rooms, **extra: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "enabled": True,
        "jid": jid("burstbus"),
        "password": PASSWORD,
        "host": "127.0.0.1",
        "port": prosody.port,
        "ca_file": str(prosody.ca_file),
        "rooms": [{"jid": made.ba}, {"jid": made.anon}],
        "on_duty": [jid("alice")],
        "forward": [{"jid": jid("telescope")}],
        "voevent_senders": [jid("forwarder")],
        "reconnect_delay": 0.1,
        "reconnect_max_delay": 1.0,
        "ping_interval": 5.0,
        "ping_timeout": 5.0,
        "ack_timeout": 10.0,
        "burst_wait": 10.0,
    }
    options.update(extra)
    return options


class Burstbus:
    """burstbus in this process: core, service (VTP on free ports, XMPP), the XMPP node."""

    def __init__(self, core: Core, service: Service, node: XmppNode | None):
        self.core = core
        self.service = service
        self.node = node
        self.stopped = False

    @classmethod
    async def start(
        cls,
        data_dir: Path,
        xmpp: dict[str, Any],
        bot: ChatBot | None = None,
        *,
        real_bot: bool = False,
        clock: Callable[[], datetime] | None = None,
        **sections: Any,
    ) -> Burstbus:
        """Start burstbus; ``real_bot``: the Burst Advocate bot (``bots/bot.py``) answers, with
        ``clock`` as its clock (for expiry)."""
        overrides: dict[str, Any] = {
            "data": {"dir": str(data_dir)},
            "vtp": {"receive_port": 0, "broadcast_port": 0, "authenticate_wait": 30.0, "test_interval": 0},
            "nats": {"enabled": False},
            "http": {"enabled": False, "public_url": "https://fsc.example/burstbus"},
            "xmpp": xmpp,
        }
        overrides.update(sections)
        config = load_config(environ={}, overrides=overrides)
        core = await Core.open(config)
        service = build_service(core)
        node = service.part(XmppNode)
        if real_bot:
            found = service.part(BurstBot)
            assert found is not None, "the bot is built wherever XMPP is"
            if clock is not None:
                found.clock = clock
        elif bot is not None and node is not None:
            node.bot = bot  # a recording bot answers instead of the real one
        service.start()
        made = cls(core, service, node)
        await asyncio.wait_for(made.vtp.receiver_ready.wait(), DEADLINE)
        return made

    @property
    def vtp(self) -> VTPNode:
        found = self.service.part(VTPNode)
        assert found is not None, "VTP is disabled in this burstbus"
        return found

    @property
    def nats(self) -> NatsNode:
        found = self.service.part(NatsNode)
        assert found is not None, "NATS is disabled in this burstbus"
        return found

    @property
    def bot(self) -> BurstBot:
        found = self.service.part(BurstBot)
        assert found is not None, "no bot in this burstbus"
        return found

    @property
    def receive_port(self) -> int:
        assert self.vtp.receiver is not None
        return self.vtp.receiver.port

    @property
    def xmpp(self) -> XmppNode:
        assert self.node is not None, "XMPP is disabled in this burstbus"
        return self.node

    async def ready(self) -> None:
        await within(self.xmpp.connection.wait_ready(), DEADLINE, "the bot to be online in its rooms")
        await wait_for(lambda: all(r.joined for r in self.xmpp.connection.rooms.by_jid.values()), "the bot to join every room")

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.service.stop()
        try:
            await within(self.service.wait(), DEADLINE, "the service to stop")
        finally:
            await self.service.close()
            await within(self.core.close(), DEADLINE, "the core to close")


@pytest_asyncio.fixture(loop_scope="session")
async def started() -> AsyncIterator[list[Burstbus]]:
    """Register every Burstbus a test starts here; all are stopped at the end."""
    running: list[Burstbus] = []
    try:
        yield running
    finally:
        for node in running:
            await node.stop()
