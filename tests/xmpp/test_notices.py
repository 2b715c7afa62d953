"""Issue 14's acceptance for the centre's own notices, end to end with real servers: a pipeline
result for an ECLAIRs wake-up, a slewing update, an MXT refinement and a retraction — four
requests over NATS request/reply and HTTP POST — become four schema-valid SVOM packets with the
right IVORNs, Packet_Types and citations, received by a real Comet subscriber (``twistd comet``)
and a real pygcn listener, in the archive, on NATS, in the XMPP room (Prosody) and the Slack
thread (the fake Web API); the retraction shows on the burst page, in the API, in the room and
on the Slack thread's opening message."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
import pytest_asyncio
from lxml import etree

from burstbus.bridges.slack.outbox import SlackOutbox
from burstbus.catalogue import PUBLICATION_REFUSED, PUBLICATION_SENT
from burstbus.handlers.notices.publisher import NoticePublisher
from burstbus.store.base import ReadFilter
from burstbus.voevent.examine import examine
from tests.broker.harness import Processes, comet_subscriber, free_port
from tests.handlers.notices.requests import BURST, MXT, RETRACTION, SLEWING, WAKEUP
from tests.slack.fake import TOKEN, FakeSlack
from tests.waiting import wait_for
from tests.xmpp.conftest import Burstbus, Clients, Rooms, xmpp_options
from tests.xmpp.harness import Prosody

pytestmark = pytest.mark.asyncio(loop_scope="session")

STREAM = "fsc.example/notices"
IVORNS = [f"ivo://{STREAM}#{BURST}_eclairs-wakeup", f"ivo://{STREAM}#{BURST}_slewing",
          f"ivo://{STREAM}#{BURST}_mxt-initial_qf2", f"ivo://{STREAM}#{BURST}_retraction"]
HTTP_TOKEN = "notices-test-token-0123456789"
LISTENER = Path(__file__).with_name("pygcn_listener.py")


@pytest.fixture
def procs() -> Iterator[Processes]:
    processes = Processes()
    try:
        yield processes
    finally:
        processes.stop_all()


@pytest_asyncio.fixture(loop_scope="session")
async def slack(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeSlack]:
    monkeypatch.setenv("TEST_SLACK_TOKEN", TOKEN)
    fake = await FakeSlack().start()
    try:
        yield fake
    finally:
        await fake.stop()


def saved_ivorns(folder: Path) -> dict[str, bytes]:
    """IVORN → bytes of every whole packet a subscriber saved."""
    found = {}
    for path in folder.glob("*"):
        if path.suffix == ".part" or not path.is_file():
            continue
        raw = path.read_bytes()
        try:
            found[etree.fromstring(raw).get("ivorn")] = raw
        except etree.XMLSyntaxError:
            continue  # still being written
    return found


async def test_four_requests_become_four_notices_on_every_transport_and_the_retraction_shows_everywhere(
    prosody: Prosody, rooms: Rooms, clients: Clients, started: list[Burstbus], procs: Processes, slack: FakeSlack,
    tmp_path: Path,
) -> None:
    http_port = free_port()
    bus = await Burstbus.start(
        tmp_path / "data", xmpp_options(prosody, rooms, forward=[]),
        vtp={"receive_port": 0, "broadcast_port": 0, "authenticate_wait": 1.0, "test_interval": 0},
        nats={"enabled": True, "embedded_port": free_port()},
        http={"enabled": True, "port": http_port, "token": HTTP_TOKEN, "public_url": "https://fsc.example/burstbus"},
        slack={"enabled": True, "token": "env:TEST_SLACK_TOKEN", "base_url": slack.url, "min_interval": 0.01,
               "retry_delay": 0.05, "channels": [{"channel": "#grb-alerts"}]},
        notices={"enabled": True, "stream": STREAM, "title": "FSC test centre", "short_name": "FSC",
                 "contact_email": "duty@fsc.example"},
    )
    started.append(bus)
    await bus.ready()
    await asyncio.wait_for(bus.nats.connected.wait(), 60)
    await wait_for(lambda: (o := bus.service.part(SlackOutbox)) is not None and o.connected, "the Slack token checked")
    alice = await clients.login("alice")
    await alice.join(rooms.ba, "alice")
    assert bus.vtp.broadcaster is not None
    comet_saved = comet_subscriber(procs, tmp_path, bus.vtp.broadcaster.port)
    pygcn_saved = tmp_path / "pygcn"
    procs.start([sys.executable, str(LISTENER), "127.0.0.1", str(bus.vtp.broadcaster.port), str(pygcn_saved)], cwd=tmp_path,
                log=tmp_path / "pygcn.log")
    await wait_for(lambda: len(bus.vtp.broadcaster.subscribers()) >= 2 and any(s.authenticated for s in bus.vtp.broadcaster.subscribers()),
                   "the Comet and pygcn subscribers to connect")
    assert bus.nats.server is not None
    nc = await nats.connect(bus.nats.server.url)
    on_nats: dict[str, bytes] = {}

    async def heard(msg: Any) -> None:
        on_nats[etree.fromstring(msg.data).get("ivorn")] = msg.data

    await nc.subscribe("burstbus.voevent.>", cb=heard)
    try:
        # the wake-up and the slewing update over NATS request/reply; the re-send is one notice
        for value in (WAKEUP, SLEWING, WAKEUP):
            answer = await nc.request("burstbus.in.notice", json.dumps(value).encode(), timeout=30)
            assert answer.data.decode().startswith("ACK sha256:"), answer.data
        bad = await nc.request("burstbus.in.notice", json.dumps({**MXT, "type": "mxt-sneeze"}).encode(), timeout=30)
        assert bad.data.decode().startswith("NAK unknown notice type 'mxt-sneeze'")
        # the MXT refinement and the retraction over HTTP with the token
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {HTTP_TOKEN}"}) as http:
            for value in (MXT, RETRACTION):
                async with http.post(f"http://127.0.0.1:{http_port}/api/notices", json=value) as response:
                    body = await response.json()
                    assert response.status == 202, body
            status_url = f"http://127.0.0.1:{http_port}{body['status']}"
            await wait_for(lambda: _count(bus, PUBLICATION_SENT, 4), "four notices published")
            async with http.get(status_url) as response:
                status = await response.json()
            assert (status["state"], status["ivorn"]) == ("sent", IVORNS[3])

            async def burst_json() -> Any:
                async with http.get(f"http://127.0.0.1:{http_port}/api/bursts/{BURST}") as response:
                    found = await response.json() if response.status == 200 else None
                return found if found and len(found["notices"]) == 4 else None

            head = await wait_for(burst_json, "the burst with its four notices in the API")
            page = await (await http.get(f"http://127.0.0.1:{http_port}/bursts/{BURST}")).text()
        # … the burst is retracted everywhere: API, burst page
        assert head["retracted"] is True and [n["ivorn"] for n in head["notices"]] == IVORNS
        assert head["notices"][3]["retraction"] is True
        assert '<span class="badge warn">retracted</span>' in page
        # four schema-valid packets with the right identities, received by Comet and by pygcn
        comet = await wait_for(lambda: _at_least(saved_ivorns(comet_saved), 4), "Comet to save 4 packets")
        pygcn = await wait_for(lambda: _at_least(saved_ivorns(pygcn_saved), 4), "pygcn to save 4 packets")
        assert sorted(comet) == sorted(pygcn) == sorted(IVORNS) and comet == pygcn
        facts = {ivorn: examine(raw).summary for ivorn, raw in comet.items()}  # schema and all, as our ingest
        assert [facts[i]["params"]["Packet_Type"] for i in IVORNS] == ["202", "204", "209", "219"]
        assert facts[IVORNS[1]]["citations"] == [{"ivorn": IVORNS[0], "type": "supersedes"}]
        assert facts[IVORNS[2]]["citations"] == [{"ivorn": IVORNS[0], "type": "followup"}, {"ivorn": IVORNS[1], "type": "followup"}]
        assert facts[IVORNS[3]]["citations"] == [{"ivorn": i, "type": "retraction"} for i in IVORNS[:3]]
        # on NATS, byte for byte; in the archive
        await wait_for(lambda: len(on_nats) >= 4, "the four packets on NATS")
        assert on_nats == comet
        archive = await bus.core.log.read(0, ReadFilter.of(types=["voevent.accepted"]))
        assert [a.data["ivorn"] for a in archive] == IVORNS and {a.actor for a in archive} == {"local:notices"}
        # the refused request is an event with its reason
        [refused] = await bus.core.log.read(0, ReadFilter.of(types=[PUBLICATION_REFUSED]))
        assert refused.data["via"] == "nats" and "mxt-sneeze" in refused.data["reason"]
        # in the XMPP room, the retraction as such
        await alice.wait_room(rooms.ba, BURST, count=4)
        [retraction_line] = [m.body for m in alice.room_messages(rooms.ba) if "RETRACTION" in m.body]
        assert retraction_line.startswith(f"RETRACTION {BURST}")
        # in the Slack thread: one thread, the retraction shown in the channel, its opener edited
        await wait_for(lambda: len(slack.in_channel("#grb-alerts")) >= 4 and any(m.get("edits") for m in slack.messages),
                       "four Slack messages and the thread's opener marked retracted")
        opener, *replies = slack.in_channel("#grb-alerts")
        assert "thread_ts" not in opener and all(r["thread_ts"] == opener["ts"] for r in replies)
        assert "RETRACTION" in replies[-1]["text"] and replies[-1]["reply_broadcast"] is True
        assert opener["text"].startswith(":no_entry: *BURST RETRACTED*") and BURST in opener["text"]
        publisher = bus.service.part(NoticePublisher)
        assert publisher is not None and publisher.health()["sent"] == 4
    finally:
        await nc.close()


def _at_least(found: dict[str, bytes], n: int) -> dict[str, bytes] | None:
    return found if len(found) >= n else None


async def _count(bus: Burstbus, kind: str, n: int) -> bool:
    return len(await bus.core.log.read(0, ReadFilter.of(types=[kind]))) >= n
