"""The log follower on the SQLite backend, against the shared follower contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from burstbus.store.sqlite import SQLiteEventLog
from tests.store.consumer_contract import FollowerContract


@pytest.fixture
def make_log(tmp_path: Path):
    async def make() -> SQLiteEventLog:
        return await SQLiteEventLog.open(tmp_path / "log.sqlite", poll_interval=0.05)

    return make


class TestSQLiteFollower(FollowerContract):
    pass
