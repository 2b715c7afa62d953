"""Acceptance (e): a silent GCN heartbeat pages the on-duty Burst Advocate in a real Prosody, and
the recovery is announced; each is one event in the log, and a chat server that is down when
the feed falls silent delays the page, never loses it.

burstbus runs in this process (the Kafka and XMPP components of ``build_service``; VTP, NATS
and HTTP off), the broker is Tansu, the heartbeat a producer thread, the Burst Advocate an
ordinary slixmpp client (tests/xmpp/harness.py)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from burstbus.bridges.kafka.alarms import Alarms
from burstbus.bridges.kafka.inbound import KafkaInbound
from burstbus.bridges.xmpp.node import XmppNode
from burstbus.config import load_config
from burstbus.service import Core, Service, build_service
from tests.broker.harness import within
from tests.kafka.notices import lvk
from tests.kafka.tansu import TansuBroker
from tests.waiting import DEADLINE, wait_for
from tests.xmpp.harness import DOMAIN, PASSWORD, Prosody, User, prosody_available

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def prosody(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Prosody]:
    if not prosody_available():
        pytest.skip("prosody is not installed (tests/run.sh installs it)")
    server = Prosody(tmp_path_factory.mktemp("prosody"))
    server.prepare()
    for user in ("burstbus", "alice"):
        server.register(user)
    try:
        await server.start()
        yield server
    finally:
        server.stop()


class Heartbeat:
    """``gcn.heartbeat`` every 0.2 s from a thread, while ``beating`` is set."""

    def __init__(self, broker: TansuBroker):
        self.broker = broker
        self.beating = threading.Event()
        self.beating.set()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        producer = self.broker.producer()
        while not self.stopped.is_set():
            if self.beating.is_set():
                producer.produce("gcn.heartbeat", b'{"alert_datetime": "now"}')
                producer.flush(10)
            self.stopped.wait(0.2)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(10)


@pytest.fixture
def heartbeat(tansu: TansuBroker) -> Iterator[Heartbeat]:
    tansu.create_topics(["gcn.heartbeat", "gcn.notices.svom.voevent.eclairs", "igwn.gwalert"])
    beat = Heartbeat(tansu)
    beat.thread.start()
    try:
        yield beat
    finally:
        beat.stop()


async def start(data_dir: Path, tansu: TansuBroker, prosody: Prosody) -> tuple[Core, Service]:
    overrides: dict[str, Any] = {
        "data": {"dir": str(data_dir)}, "vtp": {"enabled": False}, "nats": {"enabled": False}, "http": {"enabled": False},
        "xmpp": {"enabled": True, "jid": f"burstbus@{DOMAIN}", "password": PASSWORD, "host": "127.0.0.1",
                 "port": prosody.port, "ca_file": str(prosody.ca_file), "on_duty": [f"alice@{DOMAIN}"],
                 "reconnect_delay": 0.1, "reconnect_max_delay": 1.0, "ping_interval": 5.0, "ping_timeout": 5.0},
        "kafka": {"retry_delay": 0.1, "upstreams": [{
            "name": "gcn-test", "bootstrap_servers": tansu.bootstrap, "topics": ["gcn.notices.svom.voevent.eclairs", "igwn.gwalert"],
            "heartbeat": "gcn.heartbeat", "silence_after": 2.0, "start": "earliest"}]},
    }
    core = await Core.open(load_config(environ={}, overrides=overrides))
    service = build_service(core)
    service.start()
    return core, service


async def stop(core: Core, service: Service) -> None:
    service.stop()
    try:
        await within(service.wait(), DEADLINE, "the service to stop")
    finally:
        await service.close()
        await within(core.close(), DEADLINE, "the core to close")


async def test_a_silent_heartbeat_pages_the_on_duty_ba_and_the_recovery_is_announced(
    prosody: Prosody, tansu: TansuBroker, heartbeat: Heartbeat, tmp_path: Path
) -> None:
    alice = await User(f"alice@{DOMAIN}/phone", prosody).login()
    core, service = await start(tmp_path / "data", tansu, prosody)
    try:
        consumer, xmpp, alarms = service.part(KafkaInbound), service.part(XmppNode), service.part(Alarms)
        assert consumer is not None and xmpp is not None and alarms is not None
        await wait_for(lambda: xmpp.health()["up"] and consumer.clock.ready and consumer.clock.heard_at is not None,
                       "XMPP up and the heartbeat heard")
        # a JSON notice reaches the chat bridge like a VOEvent: the on-duty BA is paged with its burst
        tansu.produce("igwn.gwalert", [lvk("S261204ef")])
        [notice] = await alice.wait_chat(f"burstbus@{DOMAIN}", "S261204ef")
        assert "New notice: S261204ef" in notice.body and "H1,L1,V1" in notice.body and "/bursts/S261204ef" in notice.body
        heartbeat.beating.clear()  # GCN's feed dies
        [page] = await alice.wait_chat(f"burstbus@{DOMAIN}", "SILENT")
        assert "gcn-test" in page.body and "gcn.heartbeat" in page.body and "Alerts may not be arriving" in page.body
        heartbeat.beating.set()
        [back] = await alice.wait_chat(f"burstbus@{DOMAIN}", "is back")
        assert "gcn-test" in back.body and "of silence" in back.body
        types = [r.type for r in await core.log.read(0) if r.type.startswith("kafka.")]
        assert types == ["kafka.silent", "kafka.recovered"]
        # counted once the server acknowledges the page (XEP-0198), which may come after alice has it
        await wait_for(lambda: alarms.health()["paged"] == 2, "both pages acknowledged")
        assert alarms.health()["up"]
    finally:
        await stop(core, service)
        await alice.logout()


async def test_a_page_waits_for_the_chat_server_and_is_not_lost(
    prosody: Prosody, tansu: TansuBroker, heartbeat: Heartbeat, tmp_path: Path
) -> None:
    core, service = await start(tmp_path / "data", tansu, prosody)
    alice: User | None = None
    try:
        consumer, xmpp, alarms = service.part(KafkaInbound), service.part(XmppNode), service.part(Alarms)
        assert consumer is not None and xmpp is not None and alarms is not None
        await wait_for(lambda: xmpp.health()["up"] and consumer.clock.ready, "XMPP up and the heartbeat heard")
        await prosody.stop_async()  # the chat server goes down first …
        heartbeat.beating.clear()  # … then the feed falls silent
        await wait_for(lambda: consumer.clock.silence is not None, "the silence recorded")
        await wait_for(lambda: alarms.follower.failures > 0, "the page failing while XMPP is down")
        assert not alarms.health()["up"]
        await prosody.start()
        alice = await User(f"alice@{DOMAIN}/phone", prosody).login()
        [page] = await alice.wait_chat(f"burstbus@{DOMAIN}", "SILENT")
        assert "gcn-test" in page.body
    finally:
        await stop(core, service)
        if alice is not None:
            await alice.logout()


async def test_the_alarms_also_go_to_the_configured_slack_channels(tmp_path: Path) -> None:
    """Through the Slack bridge's ``chat.channels`` port (here a recorder): each alarm once per
    channel, with its event id; the checkpoint moves past it."""
    from burstbus.catalogue import KAFKA_SILENT
    from burstbus.events import Event
    from burstbus.state import StateStore
    from burstbus.store.sqlite import SQLiteEventLog

    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    state = await StateStore.open(tmp_path / "state.sqlite")
    posted: list[tuple[str, str, str]] = []

    async def post(channel: str, text: str, event_id: str) -> None:
        posted.append((channel, text, event_id))

    alarms = Alarms(log, state, on_duty=lambda: (), messenger=lambda: None, channels=("#grb-ops", "C0OPS"), post=lambda: post)
    task = asyncio.create_task(alarms.run())
    try:
        await alarms.follower.positioned.wait()
        [silent] = await log.append([Event(KAFKA_SILENT, {"upstream": "gcn", "watched": "gcn.heartbeat", "silent_for": 120,
                                                          "last_heard": "2026-12-02T03:00:00.000000Z"})])
        await wait_for(lambda: len(posted) == 2, "both channels")
        assert {c for c, _, _ in posted} == {"#grb-ops", "C0OPS"} and all(i == silent.id for _, _, i in posted)
        assert "SILENT" in posted[0][1] and alarms.unsent == 0
        await wait_for(lambda: alarms.follower.position == silent.seq, "the checkpoint past it")
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        await state.close()
        await log.close()
