"""The log follower on the JetStream backend (a real nats-server), against the shared contract."""

from __future__ import annotations

import pytest

from burstbus.bridges.nats.server import EmbeddedNatsServer
from burstbus.store.jetstream import JetStreamEventLog
from tests.store.consumer_contract import FollowerContract


@pytest.fixture
def make_log(server: EmbeddedNatsServer):
    async def make() -> JetStreamEventLog:
        return await JetStreamEventLog.open(server.url, poll_interval=0.05)

    return make


class TestJetStreamFollower(FollowerContract):
    pass
