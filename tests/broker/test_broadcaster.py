"""Telescopes subscribing to burstbus: real Comet subscribers (``twistd comet --remote``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.broker.harness import (
    Node,
    Processes,
    comet_filename,
    comet_subscriber,
    exchange,
    frame,
    sendvo,
    unique_ivorn,
    wait_for,
)
from tests.packets import voevent
from tests.waiting import sleep_swallowing_one_cancel

pytestmark = pytest.mark.asyncio(loop_scope="session")

SVOM = "//Param[@name='Mission' and @value='SVOM']"
SWIFT = "//Param[@name='Mission' and @value='Swift']"


def saved(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file() and not p.name.endswith("-lock")}


async def test_comet_subscribers_get_every_accepted_packet_once_filtered(node: Node, procs: Processes, tmp_path: Path) -> None:
    everything = comet_subscriber(procs, tmp_path, node.broadcast_port, name="all")
    svom_only = comet_subscriber(procs, tmp_path, node.broadcast_port, name="svom", filters=(SVOM,))
    swift_only = comet_subscriber(procs, tmp_path, node.broadcast_port, name="swift", filters=(SWIFT,))
    await node.wait_subscribers(3)

    svom = [unique_ivorn(f"svom{i}") for i in range(3)]
    swift = [unique_ivorn(f"swift{i}") for i in range(2)]
    packets = {i: voevent(i, params={"Mission": "SVOM"}) for i in svom} | {i: voevent(i, params={"Mission": "Swift"}) for i in swift}
    for n, (ivorn, packet) in enumerate(packets.items()):
        path = tmp_path / f"p{n}.xml"
        path.write_bytes(packet)
        code, out = await sendvo(node.receive_port, path)
        assert code == 0, out
        if n == 0:  # a duplicate and refused packets in between: none of them go out
            assert (await sendvo(node.receive_port, path))[0] == 0
            assert (await exchange(node.receive_port, frame(voevent(ivorn, ra=3.0))))[0] == "nak"  # type: ignore[index]
            assert (await exchange(node.receive_port, frame(b"<not-xml")))[0] == "nak"  # type: ignore[index]
    # accepted by another transport: it goes out too, because the broadcaster follows the log
    other = unique_ivorn("svom-import")
    packets[other] = voevent(other, params={"Mission": "SVOM"})
    assert (await node.core.ingest.submit(packets[other], via="import", peer="test")).outcome == "accepted"
    svom.append(other)
    # a last packet every subscriber selects: once it is there, everything before it is too
    last = unique_ivorn("last")
    packets[last] = voevent(last, params={"Mission": "SVOM Swift"}, description="last")
    await node.core.ingest.submit(packets[last], via="import", peer="test")

    expected = {
        everything: [*svom, *swift, last],
        svom_only: svom,
        swift_only: swift,
    }
    await wait_for(lambda: comet_filename(last) in saved(everything), "the last packet at the unfiltered subscriber")
    await wait_for(lambda: len(saved(svom_only)) >= len(svom) and len(saved(swift_only)) >= len(swift), "filtered subscribers")
    for directory, ivorns in expected.items():
        files = saved(directory)
        assert sorted(files) == sorted(comet_filename(i) for i in ivorns), directory  # once each, nothing refused
        for ivorn in ivorns:
            assert files[comet_filename(ivorn)] == packets[ivorn]  # the exact bytes received

    assert node.vtp.broadcaster is not None
    stats = {s.ivo: s for s in node.vtp.broadcaster.subscribers()}
    assert set(stats) == {"ivo://test/all", "ivo://test/svom", "ivo://test/swift"}
    assert stats["ivo://test/svom"].filters == (SVOM,)
    await wait_for(lambda: all(s.acked == s.sent for s in stats.values()), "subscribers' ACKs")
    assert stats["ivo://test/all"].sent == len(expected[everything])
    assert stats["ivo://test/swift"].sent == len(swift)
    assert stats["ivo://test/all"].last_ack_at is not None


async def test_operator_filters_and_subscriber_allow_list(tmp_path: Path, procs: Processes) -> None:
    node = await Node.start(
        tmp_path / "data",
        subscriber_filters=[{"network": "127.0.0.0/8", "xpath": SWIFT}],
    )
    try:
        directory = comet_subscriber(procs, tmp_path, node.broadcast_port, name="partner")
        await node.wait_subscribers(1)
        svom, swift = unique_ivorn("svom"), unique_ivorn("swift")
        await node.core.ingest.submit(voevent(svom, params={"Mission": "SVOM"}), via="import", peer="t")
        await node.core.ingest.submit(voevent(swift, params={"Mission": "Swift"}), via="import", peer="t")
        await wait_for(lambda: comet_filename(swift) in saved(directory), "the Swift packet")
        assert list(saved(directory)) == [comet_filename(swift)]
    finally:
        await node.stop()

    node = await Node.start(tmp_path / "data2", subscriber_allow=["10.0.0.0/8"])
    try:
        comet_subscriber(procs, tmp_path, node.broadcast_port, name="outsider")
        assert node.vtp.broadcaster is not None
        broadcaster = node.vtp.broadcaster
        await wait_for(lambda: broadcaster.factory.refused_connections >= 1, "a refused subscriber")
        assert broadcaster.subscribers() == []
    finally:
        await node.stop()


async def test_silent_subscriber_is_dropped(tmp_path: Path) -> None:
    import asyncio

    node = await Node.start(tmp_path / "data", iamalive_interval=0.2)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", node.broadcast_port)
        assert node.vtp.broadcaster is not None
        broadcaster = node.vtp.broadcaster
        await wait_for(lambda: broadcaster.subscribers(), "the connection")
        # it never answers authenticate or iamalive: after one unanswered iamalive it is dropped
        while await reader.read(65536):
            pass
        await wait_for(lambda: not broadcaster.subscribers(), "the subscriber to be dropped")
        writer.close()
    finally:
        await node.stop()


async def test_cancel_and_wait_ends_a_follower_whose_cancellation_was_swallowed() -> None:
    """On Python 3.11 ``asyncio.wait_for`` (how the log's ``subscribe`` waits for commits) swallows
    a cancellation that lands just after a commit woke it: the follower carries on, and a stop
    waiting for it hung (the rare teardown hang). ``cancel_and_wait`` asks again until it ends."""
    import asyncio
    import contextlib
    import sys

    from burstbus.tasks import cancel_and_wait

    commits = [asyncio.Event()]
    rounds = 0

    async def follower() -> None:  # the shape of SQLiteEventLog.subscribe's wait
        nonlocal rounds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(commits[-1].wait(), 0.5)
            rounds += 1

    task = asyncio.create_task(follower())
    await asyncio.sleep(0.01)
    commits[-1].set()  # a commit wakes it ...
    commits.append(asyncio.Event())
    await asyncio.sleep(0)  # ... the wake-up completes ...
    task.cancel()  # ... and the stop lands right then
    await asyncio.wait({task}, timeout=0.2)
    if sys.version_info < (3, 12):
        assert not task.done() and rounds >= 1  # swallowed: it went on following
    await asyncio.wait_for(cancel_and_wait([task]), 5)
    assert task.cancelled()


async def test_node_stops_although_the_follower_swallows_a_cancellation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from burstbus.broker import reactor

    reactor.install()
    from burstbus.broker.broadcaster import Broadcaster

    swallowed: list[bool] = []

    async def follow(self: Broadcaster) -> None:
        await self.follower.begin()  # the start position, as the real follower finds it first
        await sleep_swallowing_one_cancel(swallowed)  # as Python 3.11's wait_for may: carry on following

    monkeypatch.setattr(Broadcaster, "follow", follow)
    node = await Node.start(tmp_path / "data")
    started = time.monotonic()
    await node.stop()
    assert swallowed and time.monotonic() - started < 10
