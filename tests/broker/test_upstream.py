"""burstbus subscribing to real Comet brokers (``twistd comet --receive --broadcast``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.broker.harness import (
    Node,
    Processes,
    comet_broker,
    free_port,
    sendvo,
    unique_ivorn,
    wait_for,
    wait_port,
)
from tests.packets import voevent

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_two_comet_upstreams_one_log_entry_each(tmp_path: Path, procs: Processes) -> None:
    ports_a = (free_port(), free_port())
    ports_b = (free_port(), free_port())
    # burstbus starts first: it keeps retrying (with backoff) until the brokers come up
    node = await Node.start(
        tmp_path / "data", receive=False, broadcast=False, upstream_max_delay=0.5,
        upstreams=[{"host": "127.0.0.1", "port": ports_a[1]}, {"host": "127.0.0.1", "port": ports_b[1]}],
    )
    try:
        assert node.vtp.upstreams is None or not any(s.connected for s in node.vtp.upstreams.stats())
        receive_a, broadcast_a = comet_broker(procs, tmp_path, "comet-a", ports_a)
        receive_b, _ = comet_broker(procs, tmp_path, "comet-b", ports_b)
        await wait_port(receive_a)
        await wait_port(receive_b)
        await wait_for(lambda: node.vtp.upstreams is not None and all(s.messages for s in node.vtp.upstreams.stats()),
                       "both upstreams to greet burstbus")
        assert node.vtp.upstreams is not None
        upstreams = node.vtp.upstreams

        ivorns = [unique_ivorn(f"up{i}") for i in range(3)]
        for n, ivorn in enumerate(ivorns):
            path = tmp_path / f"p{n}.xml"
            path.write_bytes(voevent(ivorn))
            for port in (receive_a, receive_b):  # both brokers carry every packet
                code, out = await sendvo(port, path)
                assert code == 0, out
        # same IVORN, changed bytes: Comet (SHA-1 dedupe) forwards it; burstbus ACKs it upstream but refuses it
        changed = tmp_path / "changed.xml"
        changed.write_bytes(voevent(ivorns[0], ra=10.0))
        assert (await sendvo(receive_a, changed))[0] == 0

        def settled() -> bool:
            return sum(s.received for s in upstreams.stats()) >= 7 and not any(f.tasks for f in upstreams.factories)

        await wait_for(settled, "seven packets from the upstreams")
        accepted = await node.events("voevent.accepted")
        assert sorted(e.data["ivorn"] for e in accepted) == sorted(ivorns)  # one log entry each
        assert {e.data["via"] for e in accepted} == {"vtp-upstream"}
        [conflict] = await node.events("voevent.rejected")
        assert conflict.data["code"] == "conflict" and conflict.data["peer"] == f"127.0.0.1:{broadcast_a}"
        stats = {s.peer: s for s in upstreams.stats()}
        assert stats[f"127.0.0.1:{broadcast_a}"].outcomes["rejected"] == 1
        assert sum(s.outcomes["duplicate"] for s in stats.values()) == 3
        assert sum(s.outcomes["accepted"] for s in stats.values()) == 3
    finally:
        await node.stop()
