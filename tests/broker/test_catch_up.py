"""A VTP subscriber that reconnects gets what it missed (``[[vtp.catch_up]]``), real Comet
subscribers both: one listed, one not; across its own reconnect and across a broker restart."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from burstbus.broker.catchup import CatchUp
from burstbus.broker.config import CatchUpSubscriber
from burstbus.config import ConfigError, load_config
from burstbus.service import Core
from tests.broker.harness import (
    Node,
    Processes,
    comet_filename,
    comet_subscriber,
    free_port,
    unique_ivorn,
    wait_for,
)
from tests.packets import voevent

pytestmark = pytest.mark.asyncio(loop_scope="session")

LISTED = "ivo://test/listed"


def _catch_up(**vtp: object) -> dict[str, object]:
    return {"catch_up": [{"ivorn": LISTED, "network": "127.0.0.1/32"}], **vtp}


async def _submit(node: Node, names: list[str]) -> list[str]:
    ivorns = [unique_ivorn(name) for name in names]
    for ivorn in ivorns:
        assert (await node.core.ingest.submit(voevent(ivorn), via="import", peer="test")).outcome == "accepted"
    return ivorns


def _has(saved: Path, ivorns: list[str]) -> bool:
    return all((saved / comet_filename(i)).exists() for i in ivorns)


async def test_a_listed_subscriber_gets_what_was_accepted_while_it_was_away(tmp_path: Path, procs: Processes) -> None:
    node = await Node.start(tmp_path / "data", **_catch_up())
    try:
        listed = comet_subscriber(procs, tmp_path, node.broadcast_port, name="listed")
        listed_proc = procs.procs[-1]
        other = comet_subscriber(procs, tmp_path, node.broadcast_port, name="other")
        other_proc = procs.procs[-1]
        await node.wait_subscribers(2)
        before = await _submit(node, ["before-1", "before-2"])
        await wait_for(lambda: _has(listed, before) and _has(other, before), "both subscribers to get the first packets")

        for proc in (listed_proc, other_proc):  # both go away …
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait()
        assert node.vtp.broadcaster is not None
        await wait_for(lambda: not node.vtp.broadcaster.subscribers(), "the subscribers to be gone")  # type: ignore[union-attr]
        away = await _submit(node, [f"away-{i}" for i in range(25)])  # more than max_outstanding_acks

        # … and come back (same IVORN, same event db)
        comet_subscriber(procs, tmp_path, node.broadcast_port, name="listed")
        comet_subscriber(procs, tmp_path, node.broadcast_port, name="other")
        await node.wait_subscribers(2)
        after = await _submit(node, ["after"])
        await wait_for(lambda: _has(listed, away + after), "the listed subscriber to catch up, then get live packets")
        await wait_for(lambda: _has(other, after), "the other subscriber to get live packets")
        assert not any(_has(other, [i]) for i in away)  # not listed: no replay (VTP as Comet does it)
        health = node.vtp.catch_up.health()  # type: ignore[union-attr]
        assert health["replays"] == 1 and health["replayed"] == len(away)
    finally:
        await node.stop()


async def test_a_broker_restart_owes_the_replay_too(tmp_path: Path, procs: Processes) -> None:
    """Packets accepted while the broker was down (another node, an import) reach the listed
    subscriber once the broker is back; its position was kept in state.sqlite."""
    port = free_port()
    data = tmp_path / "data"
    node = await Node.start(data, **_catch_up(broadcast_port=port))
    try:
        listed = comet_subscriber(procs, tmp_path, port, name="listed")
        await node.wait_subscribers(1)
        before = await _submit(node, ["before"])
        await wait_for(lambda: _has(listed, before), "the subscriber to get the first packet")
    finally:
        await node.stop()

    # Down: the log still grows (another node, an import), without the VTP broadcaster.
    config = load_config(environ={}, overrides={"data": {"dir": str(data)}, "nats": {"enabled": False},
                                                "http": {"enabled": False}})
    core = await Core.open(config)
    try:
        missed = [unique_ivorn(f"missed-{i}") for i in range(5)]
        for ivorn in missed:
            assert (await core.ingest.submit(voevent(ivorn), via="import", peer="test")).outcome == "accepted"
    finally:
        await core.close()

    node = await Node.start(data, **_catch_up(broadcast_port=port))
    try:
        await node.wait_subscribers(1)  # Comet reconnects by itself
        after = await _submit(node, ["after-restart"])
        await wait_for(lambda: _has(listed, missed + after), "the subscriber to get what was accepted while the broker was down")
    finally:
        await node.stop()


async def test_positions_are_owed_only_to_listed_subscribers_from_their_network_within_the_window() -> None:
    now = [1000.0]
    catch_up = CatchUp([CatchUpSubscriber(LISTED, "10.0.0.0/8")], window=60.0, clock=lambda: now[0])
    assert catch_up.eligible(LISTED, "10.1.2.3")
    assert not catch_up.eligible(LISTED, "192.168.1.1")  # the IVORN is only a claim: the network decides
    assert not catch_up.eligible("ivo://test/other", "10.1.2.3")
    assert not catch_up.eligible(None, "10.1.2.3")
    assert catch_up.resume_from(LISTED) is None  # never seen: nothing owed
    catch_up.remember(LISTED, 41)
    now[0] += 59.0
    assert catch_up.resume_from(LISTED) == 41
    now[0] += 2.0
    assert catch_up.resume_from(LISTED) is None  # away longer than the window


async def test_catch_up_config_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"vtp.catch_up\[0\].network"):
        load_config(environ={}, overrides={"vtp": {"catch_up": [{"ivorn": LISTED, "network": "nowhere"}]}})
    with pytest.raises(ConfigError, match=r"vtp.catch_up\[0\].ivorn"):
        load_config(environ={}, overrides={"vtp": {"catch_up": [{"ivorn": "test/listed", "network": "127.0.0.1/32"}]}})
