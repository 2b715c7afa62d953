"""Fixtures for the Kafka tests: a real Tansu broker on loopback (``tansu.py``).

``tansu``: one broker per test, started on 127.0.0.1 at a free port, stopped by pid at the
end whatever the test did with it (paused, restarted). ``brokers``: start more (or start one
later). Without the binary the tests that need one are skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kafka.tansu import TansuBroker, TansuMissing, tansu_binary


@pytest.fixture(scope="session")
def tansu_bin() -> str:
    try:
        return tansu_binary()
    except TansuMissing as exc:
        pytest.skip(f"no Kafka broker for the tests: {exc}")


class Brokers:
    """The brokers a test started; every one stopped by pid at teardown."""

    def __init__(self, binary: str, root: Path):
        self.binary = binary
        self.root = root
        self.started: list[TansuBroker] = []

    def start(self, *, port: int | None = None) -> TansuBroker:
        broker = TansuBroker(self.binary, port=port, log_path=self.root / f"tansu-{len(self.started)}.log")
        self.started.append(broker)
        return broker.start()

    def stop_all(self) -> None:
        for broker in self.started:
            broker.stop()


@pytest.fixture
def brokers(tansu_bin: str, tmp_path: Path) -> Iterator[Brokers]:
    registry = Brokers(tansu_bin, tmp_path / "tansu")
    try:
        yield registry
    finally:
        registry.stop_all()


@pytest.fixture
def tansu(brokers: Brokers) -> TansuBroker:
    """A running broker: ``tansu.bootstrap`` is ``127.0.0.1:PORT``; ``create_topics``, ``produce``,
    ``pause``/``resume`` (outage, data kept), ``restart`` (data lost), ``stop``."""
    return brokers.start()
