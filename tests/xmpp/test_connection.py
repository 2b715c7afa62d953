"""The bot's connection: certificate checking, unique resources, XEP-0198 resumption, pings."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from burstbus.bridges.xmpp.client import XmppConnection
from burstbus.component import StartupError
from burstbus.config import load_config
from tests.waiting import wait_for
from tests.xmpp.conftest import Clients, Rooms, jid, xmpp_options
from tests.xmpp.harness import Prosody, make_certificates

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Running:
    """Connections a test runs; each stopped (task cancelled, session closed) at the end."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, prosody: Prosody, made: Rooms, **options: Any) -> XmppConnection:
        section = load_config(environ={}, overrides={"xmpp": xmpp_options(prosody, made, **options)}).xmpp
        connection = XmppConnection(section)
        self.tasks.append(asyncio.create_task(connection.run()))
        return connection

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, StartupError):
                await task


@pytest_asyncio.fixture(loop_scope="session")
async def running() -> AsyncIterator[Running]:
    made = Running()
    try:
        yield made
    finally:
        await made.stop()


async def test_an_untrusted_certificate_is_refused(prosody: Prosody, rooms: Rooms, running: Running, tmp_path: Path) -> None:
    other_ca = make_certificates(tmp_path / "other", ["localhost"])
    connection = running.start(prosody, rooms, ca_file=str(other_ca))
    await wait_for(lambda: connection.last_error and "certificate" in connection.last_error, "the certificate to be refused")
    assert not connection.up.is_set() and connection.connects == 0
    assert connection.health()["up"] is False
    # Never had a session: the configuration cannot work, so the run ends naming the setting
    # (at the service's start, ``burstbus run`` exits with that line).
    with pytest.raises(StartupError) as refused:
        await running.tasks[-1]
    assert refused.value.setting == "xmpp.ca_file"


async def test_a_server_that_never_answers_at_start_is_a_startup_error(
    prosody: Prosody, rooms: Rooms, running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    import burstbus.bridges.xmpp.client as client

    monkeypatch.setattr(client, "START_WINDOW", 0.5)
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    connection = running.start(prosody, rooms, port=port)
    with pytest.raises(StartupError) as refused:
        await asyncio.wait_for(running.tasks[-1], 60)
    assert refused.value.setting == "xmpp.host" and f":{port}" in refused.value.problem
    assert connection.connects == 0


async def test_two_instances_never_clash_and_a_cut_connection_resumes_its_session(
    prosody: Prosody, rooms: Rooms, clients: Clients, running: Running
) -> None:
    first = running.start(prosody, rooms)
    second = running.start(prosody, rooms, rooms=[{"jid": rooms.ba, "nick": "burstbus-2"}])
    await first.wait_ready()
    await second.wait_ready()
    assert first.client.boundjid.resource != second.client.boundjid.resource
    assert first.client.boundjid.resource.startswith("burstbus-")
    # The server's <enabled/> answer to XEP-0198's enable comes after the session starts (seen
    # late under load): cutting before it is a plain reconnect, not what this test is about.
    await wait_for(lambda: first.health()["stream_management"] is True, "stream management enabled")
    alice = await clients.login("alice")
    # the TCP connection dies under the bot; it reconnects and resumes the same session
    first.client.abort()
    await wait_for(lambda: first.resumes == 1 and first.up.is_set(), "the session to be resumed")
    assert first.connects == 1  # no new session: still in every room, nothing to rejoin
    assert all(room.joined for room in first.rooms.by_jid.values())
    await first.send_direct(jid("alice"), "after the cut")
    await alice.wait_chat(jid("burstbus"), "after the cut")


async def test_a_silent_server_is_noticed_by_pings_and_the_bot_comes_back(
    prosody: Prosody, rooms: Rooms, running: Running
) -> None:
    connection = running.start(prosody, rooms, ping_interval=1.0, ping_timeout=1.0)
    await connection.wait_ready()
    assert prosody.proc is not None
    os.kill(prosody.proc.pid, signal.SIGSTOP)
    try:
        await wait_for(lambda: not connection.up.is_set(), "the bot to notice a server that stopped answering")
        assert connection.last_error is not None
    finally:
        os.kill(prosody.proc.pid, signal.SIGCONT)
    await wait_for(lambda: connection.up.is_set(), "the bot to come back")
    await connection.wait_ready()
