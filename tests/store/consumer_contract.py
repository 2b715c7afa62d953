"""The log follower's contract: every backend's follower tests subclass :class:`FollowerContract`.

A backend's test module provides ``make_log`` (as for ``tests/store/contract.py``); the
consumer's own database (its rows and its checkpoint) is a ``state.sqlite`` under
``tmp_path``, as in the service. Each guarantee of ``burstbus.store.consumer`` is checked
here once: catch-up, live, restart from the checkpoint, the start policies, retry without
loss, the checkpoint in the consumer's own transaction, the "behind" checkpoint, filters,
health and lag.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from burstbus.events import RecordedEvent, StoredRecord
from burstbus.state import StateStore
from burstbus.store.base import EventLog
from burstbus.store.checkpoints import Checkpoint, ConsumerCheckpoint
from burstbus.store.consumer import Batch, Follower, Save, Start
from tests.store.contract import ev
from tests.waiting import wait_for

MakeLog = Callable[[], Awaitable[EventLog]]

ROWS = "CREATE TABLE IF NOT EXISTS applied (seq INTEGER NOT NULL, times INTEGER NOT NULL DEFAULT 1, PRIMARY KEY (seq))"


class Crash(BaseException):
    """The process dies here (not an error the follower could catch and retry)."""


@contextlib.asynccontextmanager
async def running(follower: Follower[Any]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(follower.run())
    try:
        yield task
    finally:
        # Cancel until it ends: nats-py waits with asyncio.wait_for, which on Python 3.11
        # swallows a cancel that lands as its result arrives (seen: a JetStream follower ran
        # on after one cancel and this teardown waited for ever). As the service does.
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
        with contextlib.suppress(asyncio.CancelledError, Crash):
            await task


class Recorder:
    """A consumer whose effects live outside any database: it remembers what it saw."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.batches: list[list[int]] = []

    async def __call__(self, batch: Batch[Any]) -> None:
        self.batches.append([r.seq for r in batch.records])
        self.seen += [r.seq for r in batch.records]


def applier(state: StateStore, *, transactional: bool) -> Callable[[Batch[RecordedEvent]], Awaitable[None]]:
    """A consumer with a database: one row per record, a counter per redo."""

    async def apply(batch: Batch[RecordedEvent]) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT INTO applied (seq) VALUES (?) ON CONFLICT(seq) DO UPDATE SET times = times + 1",
                             [(r.seq,) for r in batch.records])
            if transactional:
                batch.write_checkpoint(conn)

        await state.transaction(write)

    return apply


async def applied(state: StateStore) -> dict[int, int]:
    return dict(await state.run(lambda c: c.execute("SELECT seq, times FROM applied").fetchall()))


class CrashingCheckpoint:
    """The checkpoint of a process that dies just before it writes it (once)."""

    def __init__(self, real: Checkpoint):
        self.real = real
        self.crashed = False

    async def load(self) -> int | None:
        return await self.real.load()

    async def save(self, seq: int) -> None:
        if not self.crashed:
            self.crashed = True
            raise Crash
        await self.real.save(seq)

    def write(self, conn: sqlite3.Connection, seq: int) -> None:
        self.real.write(conn, seq)


class FollowerContract:
    """Guarantees stated in ``burstbus.store.consumer``, checked against a real backend."""

    @pytest.fixture
    async def state(self, tmp_path: Path) -> AsyncIterator[StateStore]:
        store = await StateStore.open(tmp_path / "state.sqlite")
        await store.run(lambda c: c.execute(ROWS))
        yield store
        await store.close()

    async def test_catches_up_then_follows_live_without_gap_or_repeat(self, make_log: MakeLog, state: StateStore) -> None:
        log = await make_log()
        await log.append([ev(i) for i in range(25)])
        seen = Recorder()
        follower = Follower(log, seen, name="t", checkpoint=state.checkpoint("t"), batch_size=10)
        async with running(follower):
            await wait_for(lambda: follower.position == 25, "the catch-up")
            assert [len(b) for b in seen.batches[:3]] == [10, 10, 5]  # in batches
            for i in range(5):  # live, one append at a time
                await log.append([ev(100 + i)])
            await wait_for(lambda: follower.position == 30, "the live records")
            assert follower.caught_up.is_set()
        assert seen.seen == list(range(1, 31))
        assert await state.checkpoint("t").load() == 30
        await log.close()

    async def test_a_paced_follower_catches_up_at_once_and_handles_a_lone_live_record_at_once(
        self, make_log: MakeLog, state: StateStore,
    ) -> None:
        """``batch_interval`` waits only after a short (live) batch: full catch-up batches
        follow one another, and the first live record after a quiet spell is not held."""
        log = await make_log()
        await log.append([ev(i) for i in range(20)])
        seen = Recorder()
        follower = Follower(log, seen, name="t", checkpoint=state.checkpoint("t"), batch_size=10, batch_interval=3600)
        async with running(follower):
            await wait_for(lambda: follower.position == 20, "the catch-up, not paced")
            await log.append([ev(100)])
            await wait_for(lambda: follower.position == 21, "the lone live record")
        assert seen.batches == [list(range(1, 11)), list(range(11, 21)), [21]]
        await log.close()

    async def test_a_restart_resumes_from_the_checkpoint(self, make_log: MakeLog, state: StateStore) -> None:
        log = await make_log()
        await log.append([ev(i) for i in range(5)])
        first = Recorder()
        follower = Follower(log, first, name="t", checkpoint=state.checkpoint("t"))
        async with running(follower):
            await wait_for(lambda: follower.position == 5, "the first five")
        await log.append([ev(i) for i in range(5, 8)])
        second = Recorder()
        again = Follower(log, second, name="t", checkpoint=state.checkpoint("t"))
        async with running(again):
            await wait_for(lambda: again.position == 8, "the rest")
        assert first.seen == [1, 2, 3, 4, 5] and second.seen == [6, 7, 8]
        await log.close()

    async def test_start_policies_when_there_is_no_checkpoint(self, make_log: MakeLog, state: StateStore) -> None:
        log = await make_log()
        await log.append([ev(i) for i in range(3)])
        beginning = Recorder()
        follower = Follower(log, beginning, name="b", checkpoint=state.checkpoint("b"), start=Start.BEGINNING)
        async with running(follower):
            await wait_for(lambda: follower.position == 3, "everything")
        assert beginning.seen == [1, 2, 3]
        # From the head: nothing old; the head is stored at once, so a restart after more
        # appends resumes there, not at a newer head (a chat outbox must not skip notices).
        head = Follower(log, Recorder(), name="h", checkpoint=state.checkpoint("h"), start=Start.HEAD)
        assert await head.begin() == 3 and await state.checkpoint("h").load() == 3
        await log.append([ev(3)])
        later = Recorder()
        restarted = Follower(log, later, name="h", checkpoint=state.checkpoint("h"), start=Start.HEAD)
        async with running(restarted):
            await wait_for(lambda: restarted.position == 4, "the record after the first run's head")
        assert later.seen == [4]
        # No checkpoint at all (VTP, SSE): the head, then the position in memory across runs.
        memory = Recorder()
        transient = Follower(log, memory, name="m", start=Start.HEAD)
        async with running(transient):
            await wait_for(lambda: transient.position == 4 and transient.caught_up.is_set(), "the head")
        await log.append([ev(4)])
        async with running(transient):
            await wait_for(lambda: transient.position == 5, "the next one")
        assert memory.seen == [5]
        await log.close()

    async def test_a_failing_handler_is_retried_from_the_last_good_position_and_health_shows_it(
        self, make_log: MakeLog, state: StateStore
    ) -> None:
        log = await make_log()
        await log.append([ev(i) for i in range(10)])
        seen: list[int] = []
        failing = {"left": 3}
        release = asyncio.Event()

        async def handle(batch: Batch[RecordedEvent]) -> None:
            if batch.records[0].seq > 4 and failing["left"]:
                failing["left"] -= 1
                if not failing["left"]:
                    await release.wait()  # hold the last failure's retry until health was looked at
                raise OSError(f"downstream refused seq {batch.records[0].seq}")
            seen.extend(r.seq for r in batch.records)

        follower = Follower(log, handle, name="t", checkpoint=state.checkpoint("t"), batch_size=4,
                            retry_delay=0.01, max_retry_delay=0.02)
        async with running(follower):
            await wait_for(lambda: follower.failures == 2, "two failures")
            health = follower.health()
            assert health["up"] is False and health["retrying"] is True
            assert health["position"] == 4 and health["failures"] == 2
            assert "OSError: downstream refused seq 5" in str(health["last_error"])
            assert await follower.lag() == 6
            assert await state.checkpoint("t").load() == 4  # never past the failing batch
            release.set()
            await wait_for(lambda: follower.position == 10, "the rest after the retries")
            health = follower.health()
            assert health["up"] is True and health["retrying"] is False and health["failures"] == 3
            assert health["last_activity"]
        assert seen == list(range(1, 11))  # nothing lost, nothing skipped, nothing twice
        assert await follower.lag() == 0
        await log.close()

    async def test_a_failure_that_is_not_retryable_ends_the_run(self, make_log: MakeLog, state: StateStore) -> None:
        log = await make_log()
        await log.append([ev(1)])

        async def refuse(batch: Batch[RecordedEvent]) -> None:
            raise PermissionError("token refused")

        follower = Follower(log, refuse, name="t", checkpoint=state.checkpoint("t"),
                            retryable=lambda exc: not isinstance(exc, PermissionError))
        with pytest.raises(PermissionError):
            await asyncio.wait_for(follower.run(), 30)
        assert follower.failures == 1 and follower.health()["up"] is False
        assert await state.checkpoint("t").load() is None  # nothing was handled
        await log.close()

    async def test_prepare_runs_before_each_start_and_its_failures_are_retried(self, make_log: MakeLog, state: StateStore) -> None:
        log = await make_log()
        await log.append([ev(1), ev(2)])
        calls: list[int] = []

        async def prepare() -> None:
            calls.append(1)
            if len(calls) < 3:
                raise ConnectionError("not yet")

        seen = Recorder()
        follower = Follower(log, seen, name="t", checkpoint=state.checkpoint("t"), prepare=prepare, retry_delay=0.01)
        async with running(follower):
            await wait_for(lambda: follower.position == 2, "both records once prepared")
        assert len(calls) == 3 and seen.seen == [1, 2] and follower.failures == 2
        await log.close()

    async def test_a_crash_between_handler_and_checkpoint_redoes_the_batch(self, make_log: MakeLog, state: StateStore) -> None:
        log = await make_log()
        await log.append([ev(i) for i in range(3)])
        crashing = CrashingCheckpoint(state.checkpoint("t"))
        follower = Follower(log, applier(state, transactional=False), name="t", checkpoint=crashing)
        with pytest.raises(Crash):
            await asyncio.wait_for(follower.run(), 30)
        assert await applied(state) == {1: 1, 2: 1, 3: 1} and await state.checkpoint("t").load() is None
        restarted = Follower(log, applier(state, transactional=False), name="t", checkpoint=state.checkpoint("t"))
        async with running(restarted):
            await wait_for(lambda: restarted.position == 3, "the redo")
        assert await applied(state) == {1: 2, 2: 2, 3: 2}  # redone: at least once, never lost
        await log.close()

    async def test_the_checkpoint_in_the_consumers_transaction_applies_each_record_once(
        self, make_log: MakeLog, state: StateStore
    ) -> None:
        log = await make_log()
        await log.append([ev(i) for i in range(3)])
        crashing = CrashingCheckpoint(state.checkpoint("t"))
        follower = Follower(log, applier(state, transactional=True), name="t", checkpoint=crashing)
        async with running(follower):
            await wait_for(lambda: follower.position == 3, "the batch")
        assert not crashing.crashed  # the follower stored nothing itself: the handler's transaction did
        # A crash after that transaction: the restart starts after the batch.
        restarted = Follower(log, applier(state, transactional=True), name="t", checkpoint=state.checkpoint("t"))
        await log.append([ev(3)])
        async with running(restarted):
            await wait_for(lambda: restarted.position == 4, "the next record")
        assert await applied(state) == {1: 1, 2: 1, 3: 1, 4: 1}

        # A failure inside the transaction rolls back rows and checkpoint together; the retry
        # applies the batch once.
        fail = {"once": True}
        inner = applier(state, transactional=True)

        async def flaky(batch: Batch[RecordedEvent]) -> None:
            def write(conn: sqlite3.Connection) -> None:
                conn.executemany("INSERT INTO applied (seq) VALUES (?) ON CONFLICT(seq) DO UPDATE SET times = times + 1",
                                 [(r.seq,) for r in batch.records])
                batch.write_checkpoint(conn)
                if fail.pop("once", False):
                    raise sqlite3.OperationalError("disk I/O error")

            if fail:
                await state.transaction(write)
            else:
                await inner(batch)

        await log.append([ev(4), ev(5)])
        third = Follower(log, flaky, name="t", checkpoint=state.checkpoint("t"), retry_delay=0.01)
        async with running(third):
            await wait_for(lambda: third.position == 6, "the retried batch")
        assert third.failures == 1
        assert await applied(state) == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1}
        assert await state.checkpoint("t").load() == 6
        await log.close()

    async def test_behind_mode_never_stores_more_than_was_confirmed(self, make_log: MakeLog, state: StateStore) -> None:
        log = await make_log()
        await log.append([ev(i) for i in range(40)])
        confirmed = {"seq": 0}
        writes: list[tuple[int, int]] = []
        in_flight = {"now": 0, "most": 0}

        class SlowCheckpoint(ConsumerCheckpoint):
            async def save(self, seq: int) -> None:
                in_flight["now"] += 1
                in_flight["most"] = max(in_flight["most"], in_flight["now"])
                writes.append((seq, confirmed["seq"]))
                await asyncio.sleep(0.02)  # an fsync: batches go on meanwhile
                await super().save(seq)
                in_flight["now"] -= 1

        async def confirm(batch: Batch[StoredRecord]) -> None:
            await asyncio.sleep(0.002)
            confirmed["seq"] = batch.last  # "the server acknowledged this batch"

        follower: Follower[StoredRecord] = Follower(log, confirm, name="t", checkpoint=SlowCheckpoint(state.db, "t"),
                                                    stored=True, batch_size=3, save=Save.BEHIND)
        async with running(follower):
            await wait_for(lambda: follower.position == 40, "every batch confirmed")
            assert follower.saved is not None and follower.saved <= 40
        assert all(seq <= done for seq, done in writes), writes  # never ahead of a confirmation
        assert in_flight["most"] == 1  # one write at a time
        assert len(writes) < 14  # fewer writes than batches: the checkpoint trails
        assert await state.checkpoint("t").load() == 40  # the last position is stored on the way out
        await log.close()

    async def test_a_stored_follower_hands_over_the_stored_text(self, make_log: MakeLog, state: StateStore) -> None:
        log = await make_log()
        await log.append([ev(1), ev(2, type="other.kind")])
        got: list[StoredRecord] = []

        async def keep(batch: Batch[StoredRecord]) -> None:
            got.extend(batch.records)

        follower: Follower[StoredRecord] = Follower(log, keep, name="t", checkpoint=state.checkpoint("t"), stored=True)
        async with running(follower):
            await wait_for(lambda: follower.position == 2, "both")
        assert [type(r) for r in got] == [StoredRecord, StoredRecord]
        assert [r.decoded() for r in got] == await log.read()
        with pytest.raises(ValueError):
            Follower(log, keep, name="t", stored=True, types=["x.y"])
        await log.close()

    async def test_filters_position_and_lag_count_only_the_followed_types(self, make_log: MakeLog, state: StateStore) -> None:
        log = await make_log()
        await log.append([ev(1, type="a.x"), ev(2, type="b.x"), ev(3, type="a.x")])
        seen = Recorder()
        follower = Follower(log, seen, name="t", checkpoint=state.checkpoint("t"), types=["a.x"])
        async with running(follower):
            await wait_for(lambda: follower.position == 3, "both a.x")
            await log.append([ev(4, type="b.x"), ev(5, type="b.x")])
            assert await follower.lag() == 0  # only other types after the position
            await log.append([ev(6, type="a.x")])
            await wait_for(lambda: follower.position == 6, "the next a.x")
        assert seen.seen == [1, 3, 6]
        await log.close()

    async def test_catch_up_returns_at_the_head_and_stores_it(self, make_log: MakeLog, state: StateStore) -> None:
        log = await make_log()
        await log.append([ev(1, type="a.x"), ev(2, type="a.x"), ev(3, type="b.x"), ev(4, type="b.x")])
        seen = Recorder()
        positions: list[int] = []
        follower = Follower(log, seen, name="t", checkpoint=state.checkpoint("t"), types=["a.x"], batch_size=1)
        assert await follower.catch_up(progress=positions.append) == 4
        assert seen.seen == [1, 2] and positions == [1, 2]
        assert await state.checkpoint("t").load() == 4  # past the records nobody reads
        await log.append([ev(5, type="a.x"), ev(6, type="a.x")])
        assert await follower.catch_up(stop_at=5) == 5 and seen.seen == [1, 2, 5]
        await log.close()
