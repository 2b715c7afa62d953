"""The authority rule over VTP, with real Comet peers: an upstream Comet broker relaying a
packet in a trigger stream (or under our reserved authority) is refused with a
``voevent.rejected`` (code ``authority``) and never reaches our subscribers, while ordinary
notices pass; an operator's grant opens a reserved prefix to one upstream and restricts a VTP
author to its own prefix."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from burstbus.broker.client import publish
from tests.broker.harness import (
    Node,
    Processes,
    comet_broker,
    comet_filename,
    comet_subscriber,
    sendvo,
    wait_for,
    wait_port,
)
from tests.packets import voevent

pytestmark = pytest.mark.asyncio(loop_scope="session")

STREAM = "ivo://fsc.example/trigger/tarot"


def sections(**authority: object) -> dict[str, object]:
    return {
        "triggers": {"authority": "fsc.example", "telescopes": [{"name": "TAROT", "vtp_stream": STREAM}]},
        "authority": authority,
    }


def packet(tmp_path: Path, ivorn: str, **options: object) -> Path:
    path = tmp_path / f"{uuid.uuid4().hex}.xml"
    path.write_bytes(voevent(ivorn, **options))  # type: ignore[arg-type]
    return path


async def test_an_upstream_broker_cannot_relay_a_trigger_or_our_own_notices(tmp_path: Path, procs: Processes) -> None:
    receive, broadcast = comet_broker(procs, tmp_path)
    await wait_port(receive)
    node = await Node.start(tmp_path / "data", sections(), receive=False, upstream_max_delay=0.5,
                            upstreams=[{"host": "127.0.0.1", "port": broadcast}])
    try:
        saved = comet_subscriber(procs, tmp_path, node.broadcast_port, name="telescope")
        await node.wait_subscribers(1)
        await wait_for(lambda: node.vtp.upstreams is not None and all(s.messages for s in node.vtp.upstreams.stats()),
                       "the upstream to greet burstbus")
        forged = f"{STREAM}#upstream-{uuid.uuid4().hex[:6]}"
        ours = f"ivo://fsc.example/notices#sb-{uuid.uuid4().hex[:6]}"
        ordinary = f"ivo://nasa.gsfc.gcn/SWIFT#BAT_GRB_Pos_{uuid.uuid4().hex[:6]}"
        for ivorn in (forged, ours, ordinary):
            code, out = await sendvo(receive, packet(tmp_path, ivorn, role="utility" if ivorn == forged else "observation"))
            assert code == 0, out  # Comet itself accepts anything schema-valid
        await wait_for(lambda: (saved / comet_filename(ordinary)).exists(), "the ordinary notice at our subscriber")
        rejected = await wait_for(lambda: _by_ivorn(node, "voevent.rejected", {forged, ours}), "both refusals in the log")
        assert rejected[forged]["code"] == rejected[ours]["code"] == "authority"
        assert rejected[forged]["via"] == "vtp-upstream" and rejected[forged]["peer"] == f"127.0.0.1:{broadcast}"
        assert "trigger stream" in rejected[forged]["reason"] and "reserved" in rejected[ours]["reason"]
        accepted = {e.data["ivorn"] for e in await node.events("voevent.accepted")}
        assert ordinary in accepted and not accepted & {forged, ours}
        assert not (saved / comet_filename(forged)).exists() and not (saved / comet_filename(ours)).exists()
    finally:
        await node.stop()


async def test_grants_open_a_reserved_prefix_to_one_source_and_restrict_another(tmp_path: Path, procs: Processes) -> None:
    receive, broadcast = comet_broker(procs, tmp_path)
    await wait_port(receive)
    grants = [
        {"source": f"vtp-upstream:127.0.0.1:{broadcast}", "prefixes": ["ivo://fsc.example/notices"]},
        {"source": "vtp:127.0.0.1", "prefixes": ["ivo://author.example/"]},
    ]
    node = await Node.start(tmp_path / "data", sections(grants=grants), upstream_max_delay=0.5,
                            upstreams=[{"host": "127.0.0.1", "port": broadcast}])
    try:
        await wait_for(lambda: node.vtp.upstreams is not None and all(s.messages for s in node.vtp.upstreams.stats()),
                       "the upstream to greet burstbus")
        twin = f"ivo://fsc.example/notices#sb-{uuid.uuid4().hex[:6]}"
        trigger = f"{STREAM}#granted-{uuid.uuid4().hex[:6]}"
        for ivorn in (twin, trigger):
            assert (await sendvo(receive, packet(tmp_path, ivorn)))[0] == 0
        await wait_for(lambda: _by_ivorn(node, "voevent.accepted", {twin}), "the twin centre's notice accepted")
        rejected = await wait_for(lambda: _by_ivorn(node, "voevent.rejected", {trigger}), "the trigger refused")
        assert rejected[trigger]["code"] == "authority"  # a grant never opens a trigger stream

        # a local author (127.0.0.1) is restricted to its own prefix
        own = await publish("127.0.0.1", node.receive_port, voevent(f"ivo://author.example/a#{uuid.uuid4().hex[:6]}"))
        assert own.acknowledged, own.reason
        other = await publish("127.0.0.1", node.receive_port, voevent(f"ivo://nasa.gsfc.gcn/SWIFT#{uuid.uuid4().hex[:6]}"))
        assert not other.acknowledged and "vtp:127.0.0.1 may publish only under ivo://author.example/" in (other.reason or "")
    finally:
        await node.stop()


async def _by_ivorn(node: Node, type_: str, wanted: set[str]) -> dict[str, dict[str, object]] | None:
    found = {str(e.data.get("ivorn")): dict(e.data) for e in await node.events(type_)}
    return found if wanted <= set(found) else None
