"""The NATS component as the service runs it: embedded server, config section, connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.aio.msg import Msg

from burstbus.bridges.nats.config import NatsSection, check_nats, connect_options, resolve_node_id
from burstbus.bridges.nats.confirm import confirm_sent
from burstbus.bridges.nats.node import NatsNode
from burstbus.bridges.nats.server import EmbeddedNatsServer, NatsServerError, find_binary, free_port
from burstbus.component import StartupError
from burstbus.config import ConfigError, _build
from tests.nats.conftest import Core, Servers
from tests.waiting import sleep_swallowing_one_cancel, wait_for


def section(**values: object) -> NatsSection:
    """A [nats] table through the same converter the config loader uses (TOML/env values)."""
    built = _build(NatsSection, values, "nats.")
    check_nats(built)
    return built


def test_the_binary_is_the_wheels_beside_the_interpreter() -> None:
    binary = find_binary()
    assert binary.name == "nats-server" and os.access(binary, os.X_OK)


async def test_embedded_server_binds_loopback_with_jetstream_and_stops(servers: Servers) -> None:
    server = await servers.start("solo")
    info = await server._read_info()
    assert info["host"] == "127.0.0.1" and info["jetstream"] is True and info["port"] == server.port
    assert (server.store_dir / "jetstream").is_dir()
    pid = server.pid
    server.stop()
    assert not server.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # type: ignore[arg-type]


async def test_a_busy_port_is_a_startup_error_naming_the_setting(servers: Servers, tmp_path: Path) -> None:
    """Found before the child starts (not after its start timeout), in the words of the setting."""
    first = await servers.start("first")
    second = servers.track(EmbeddedNatsServer(tmp_path / "second", port=first.port))
    with pytest.raises(StartupError, match="already in use") as refused:
        await second.start(timeout=20)
    assert refused.value.setting == "nats.embedded_port" and second.process is None


async def test_a_server_that_exits_at_start_is_reported_with_its_log(servers: Servers, tmp_path: Path) -> None:
    broken = servers.track(EmbeddedNatsServer(tmp_path / "broken", port=0, extra_args=("--no-such-option",)))
    with pytest.raises(NatsServerError, match="exited"):
        await broken.start(timeout=20)


def test_config_section_defaults_and_checks(tmp_path: Path) -> None:
    default = section()
    assert default.embedded and default.embedded_port == 4222 and default.enabled
    seeds = section(url="nats://a:4222, nats://b:4222", stream="BURSTBUS", reconnect_wait=1)
    assert seeds.servers() == ["nats://a:4222", "nats://b:4222"] and not seeds.embedded
    assert connect_options(seeds, servers=seeds.servers(), name="x")["max_reconnect_attempts"] == -1
    with pytest.raises(ConfigError, match="nats.url"):
        section(url="http://a:4222")
    with pytest.raises(ConfigError, match="nats.prefix"):
        section(prefix="a.b")
    with pytest.raises(ConfigError, match="nats.tls_cert"):
        section(tls_key=str(tmp_path))
    with pytest.raises(ConfigError, match="nats.credentials"):
        section(credentials=str(tmp_path / "missing.creds"))
    with pytest.raises(ConfigError, match="unknown key"):
        section(ulr="nats://a")
    os.environ["BURSTBUS_TEST_NATS_TOKEN"] = "t0ken"
    try:
        assert connect_options(section(token="env:BURSTBUS_TEST_NATS_TOKEN"), servers=[], name="x")["token"] == "t0ken"
    finally:
        del os.environ["BURSTBUS_TEST_NATS_TOKEN"]
    assert resolve_node_id(default, tmp_path) == resolve_node_id(default, tmp_path)
    assert resolve_node_id(section(node_id="fsc-1"), tmp_path) == "fsc-1"


async def test_the_component_with_no_url_runs_its_own_server_and_bridges_both_ways(
    servers: Servers, core: Core, tmp_path: Path
) -> None:
    config = section(embedded_port=free_port(), node_id="node-a", reconnect_wait=0.1)
    node = NatsNode(core.log, core.ingest, core.state, config, tmp_path / "data")
    task = asyncio.create_task(node.run())
    try:
        await wait_for(lambda: node.connected.is_set() or task.done(), "the component to connect")
        assert node.server is not None
        servers.track(node.server)  # stopped by pid at the end whatever happens here
        assert node.server.store_dir == tmp_path / "data" / "nats"
        client = await nats.connect(node.server.url)
        got: list[Msg] = []

        async def collect(msg: Msg) -> None:
            got.append(msg)

        await client.subscribe("burstbus.events.>", cb=collect)
        await confirm_sent(client, 30)  # nats-py's flush() may overtake the SUB
        reply = await client.request("burstbus.in.process", b'{"process": "mxt-loc", "status": "queued"}', timeout=30)
        assert reply.data == b"ACK"
        await wait_for(lambda: got, "the status back out on NATS")
        assert got[0].subject == "burstbus.events.process.status"
        assert json.loads(got[0].data)["data"] == {"process": "mxt-loc", "status": "queued"}
        assert got[0].headers and got[0].headers["Burstbus-Origin"] == "node-a"
        await client.close()
        server = node.server
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert not server.running  # stopping the component stopped its server


async def test_publish_delivers_to_any_subject_with_our_origin_and_refuses_when_down(
    servers: Servers, core: Core, tmp_path: Path
) -> None:
    """What the trigger workflow uses to hand a telescope its VOEvent over NATS."""
    from burstbus.bridges.nats.node import NatsNotConnected

    server = await servers.start("shared")
    mapping = {"subject": "svom.vhf.status", "type": "vhf.status"}
    node = NatsNode(core.log, core.ingest, core.state, section(url=server.url, node_id="node-a", mappings=[mapping]), tmp_path / "data")
    with pytest.raises(NatsNotConnected):
        await node.publish("telescope.colibri.voevent", b"<VOEvent/>")
    task = asyncio.create_task(node.run())
    client = await nats.connect(server.url)
    try:
        await wait_for(lambda: node.connected.is_set() or task.done(), "the component to connect")
        received: list[nats.aio.msg.Msg] = []

        async def collect(msg: nats.aio.msg.Msg) -> None:
            received.append(msg)

        await client.subscribe("telescope.colibri.voevent", cb=collect)
        await confirm_sent(client, 30)  # nats-py's flush() may overtake the SUB
        await node.publish("telescope.colibri.voevent", b"<VOEvent/>", {"Burstbus-Ivorn": "ivo://x/y#1"})
        try:
            [msg] = await wait_for(lambda: received, "the telescope's subscriber to get the VOEvent")
        except AssertionError:  # say what state both connections were in
            raise AssertionError(f"not received; node {node.nc and node.nc.stats} url={node.nc and node.nc.connected_url} "
                                 f"client {client.stats} url={client.connected_url} server={server.url} "
                                 f"running={server.running}") from None
        assert msg.data == b"<VOEvent/>"
        assert msg.headers == {"Burstbus-Ivorn": "ivo://x/y#1", "Burstbus-Origin": "node-a"}
        # the node's own mappings are live too
        reply = await client.request("svom.vhf.status", b'{"station": "kourou"}', timeout=30)
        assert reply.data == b"ACK"
    finally:
        await client.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    with pytest.raises(NatsNotConnected):
        await node.publish("telescope.colibri.voevent", b"<VOEvent/>")


async def test_the_node_stops_although_its_outbox_swallows_a_cancellation(
    servers: Servers, core: Core, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outbox waits in nats-py's flush, whose ``asyncio.wait_for`` on Python 3.11 can return
    instead of raising when a cancel lands as the PONG arrives: the outbox then carried on, and
    the node's stop waited for it for ever (a 600 s hang of the suite). The node asks again."""
    from burstbus.bridges.nats.outbound import Outbound

    swallowed: list[bool] = []

    async def run(self: Outbound) -> None:
        await sleep_swallowing_one_cancel(swallowed)  # as nats-py's flush may: carry on publishing

    monkeypatch.setattr(Outbound, "run", run)
    server = await servers.start("shared")
    node = NatsNode(core.log, core.ingest, core.state, section(url=server.url, node_id="node-a"), tmp_path / "data")
    task = asyncio.create_task(node.run())
    await wait_for(lambda: node.connected.is_set() or task.done(), "the component to connect")
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=60)
    assert task in done and task.cancelled(), "the node did not stop"
    assert swallowed
