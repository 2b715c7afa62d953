"""The event-log contract: every backend's test module subclasses :class:`EventLogContract`.

A backend's test module provides one fixture, ``make_log``: an async factory that opens
(or re-opens) the backend at a stable location, so durability across reopen is testable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest

from burstbus.events import GENESIS_HASH, Event, StoredRecord, canonical_json
from burstbus.store.base import EventLog, ReadFilter, subscribe_stored

MakeLog = Callable[[], Awaitable[EventLog]]


def ev(n: int, type: str = "test.event", stream: str = "s") -> Event:
    return Event(type=type, data={"n": n, "text": f"événement {n}"}, stream=stream, actor="test")


class EventLogContract:
    """Guarantees stated in ``burstbus.store.base``, checked against a real backend."""

    async def test_empty_log_has_genesis_head(self, make_log: MakeLog) -> None:
        log = await make_log()
        head = await log.head()
        assert (head.seq, head.hash) == (0, GENESIS_HASH)
        assert await log.read() == []
        assert (await log.verify()).ok
        await log.close()

    async def test_append_assigns_gap_free_seq_and_chains_hashes(self, make_log: MakeLog) -> None:
        log = await make_log()
        results = await log.append([ev(i) for i in range(5)])
        assert [r.seq for r in results] == [1, 2, 3, 4, 5]
        assert all(r.new for r in results)
        records = await log.read()
        assert [r.seq for r in records] == [1, 2, 3, 4, 5]
        assert records[0].prev_hash == GENESIS_HASH
        for before, after in zip(records, records[1:], strict=False):
            assert after.prev_hash == before.hash
        assert records[2].data == {"n": 2, "text": "événement 2"}
        assert (await log.head()).hash == records[-1].hash
        await log.close()

    async def test_reappending_an_id_is_a_noop_returning_the_original_position(self, make_log: MakeLog) -> None:
        log = await make_log()
        first = ev(1)
        [original] = await log.append([first])
        await log.append([ev(2)])
        [again] = await log.append([first])
        assert (again.seq, again.hash, again.new) == (original.seq, original.hash, False)
        both = await log.append([ev(3), first])
        assert [b.new for b in both] == [True, False]
        assert (await log.head()).seq == 3
        await log.close()

    async def test_a_lingering_append_is_as_durable_as_any(self, make_log: MakeLog) -> None:
        log = await make_log()
        [first] = await log.append([ev(1)], linger=0.01)  # a handler's decision: may wait for company
        assert first.seq == 1 and first.new
        await log.close()
        log = await make_log()
        assert [r.data["n"] for r in await log.read()] == [1]
        await log.close()

    async def test_same_id_twice_in_one_call_is_written_once(self, make_log: MakeLog) -> None:
        log = await make_log()
        e = ev(1)
        results = await log.append([e, e])
        assert [r.new for r in results] == [True, False]
        assert results[0].seq == results[1].seq
        await log.close()

    async def test_concurrent_appenders_share_commits_without_gaps(self, make_log: MakeLog) -> None:
        log = await make_log()
        results = await asyncio.gather(*[log.append([ev(i), ev(i + 1000)]) for i in range(200)])
        seqs = sorted(r.seq for batch in results for r in batch)
        assert seqs == list(range(1, 401))
        for batch in results:  # one call's events stay consecutive and in order
            assert batch[1].seq == batch[0].seq + 1
        assert (await log.verify()).count == 400
        await log.close()

    async def test_appends_survive_reopen(self, make_log: MakeLog) -> None:
        log = await make_log()
        await log.append([ev(i) for i in range(3)])
        await log.close()
        log = await make_log()
        assert [r.data["n"] for r in await log.read()] == [0, 1, 2]
        [r] = await log.append([ev(9)])
        assert r.seq == 4
        assert (await log.verify()).ok
        await log.close()

    async def test_read_filters(self, make_log: MakeLog) -> None:
        log = await make_log()
        await log.append([ev(1, "a.x", "s1"), ev(2, "b.y", "s2"), ev(3, "a.x", "s2"), ev(4, "c.z", "s1")])
        assert [r.seq for r in await log.read(filter=ReadFilter.of(types=["a.x"]))] == [1, 3]
        assert [r.seq for r in await log.read(filter=ReadFilter.of(types=["a.x", "c.z"]))] == [1, 3, 4]
        assert [r.seq for r in await log.read(filter=ReadFilter.of(stream="s2"))] == [2, 3]
        assert [r.seq for r in await log.read(after=2)] == [3, 4]
        assert [r.seq for r in await log.read(after=1, limit=2)] == [2, 3]
        records = await log.read()
        t = records[0].recorded_at
        assert [r.seq for r in await log.read(filter=ReadFilter.of(since=t))] == [1, 2, 3, 4]
        assert await log.read(filter=ReadFilter.of(until="2000-01-01T00:00:00Z")) == []
        await log.close()

    async def test_get_and_find(self, make_log: MakeLog) -> None:
        log = await make_log()
        e = ev(7)
        [a] = await log.append([e])
        assert (await log.get(a.seq)).id == e.id
        assert (await log.find(e.id)).seq == a.seq
        assert await log.get(99) is None
        assert await log.find("nope") is None
        await log.close()

    async def test_subscribe_catches_up_then_follows_live_without_gap_or_repeat(self, make_log: MakeLog) -> None:
        log = await make_log()
        await log.append([ev(i) for i in range(50)])
        seen: list[int] = []

        async def consume() -> None:
            async for batch in log.subscribe(after=10, batch_size=7):
                seen.extend(r.seq for r in batch)
                if seen and seen[-1] >= 150:
                    return

        task = asyncio.create_task(consume())
        for i in range(50, 150):  # live appends racing the catch-up
            await log.append([ev(i)])
            if i % 10 == 0:
                await asyncio.sleep(0)
        await asyncio.wait_for(task, 30)
        assert seen == list(range(11, 151))
        await log.close()

    async def test_subscribe_stored_gives_the_stored_text_catching_up_then_live(self, make_log: MakeLog) -> None:
        """What the NATS outbox follows: the same records, data as the exact stored text."""
        log = await make_log()
        await log.append([ev(i) for i in range(30)])
        got: list[StoredRecord] = []

        async def consume() -> None:
            async with contextlib.aclosing(subscribe_stored(log, after=5, batch_size=4)) as batches:
                async for batch in batches:
                    got.extend(batch)
                    if got[-1].seq >= 60:
                        return

        task = asyncio.create_task(consume())
        for i in range(30, 60):
            await log.append([ev(i)])
        await asyncio.wait_for(task, 30)
        assert [r.seq for r in got] == list(range(6, 61))
        assert all(type(r) is StoredRecord for r in got)
        records = await log.read(after=5)
        assert [r.decoded() for r in got] == records
        assert [r.data_json for r in got] == [canonical_json(r.data) for r in records]
        assert (await log.verify()).ok
        await log.close()

    async def test_subscribe_with_type_filter_skips_others(self, make_log: MakeLog) -> None:
        log = await make_log()
        await log.append([ev(i, "noise") for i in range(20)])
        got: list[int] = []

        async def consume() -> None:
            async for batch in log.subscribe(filter=ReadFilter.of(types=["signal"])):
                got.extend(r.data["n"] for r in batch)
                if len(got) == 3:
                    return

        task = asyncio.create_task(consume())
        for i in range(3):
            await log.append([ev(100 + i, "noise"), ev(i, "signal")])
        await asyncio.wait_for(task, 30)
        assert got == [0, 1, 2]
        await log.close()

    async def test_non_json_data_fails_only_that_caller(self, make_log: MakeLog) -> None:
        log = await make_log()
        with pytest.raises((TypeError, ValueError)):
            await log.append([Event(type="bad", data={"x": object()})])
        with pytest.raises(ValueError):
            await log.append([Event(type="bad", data={"x": float("nan")})])
        [ok] = await log.append([ev(1)])
        assert ok.seq == 1
        await log.close()

    async def test_closed_log_refuses_appends(self, make_log: MakeLog) -> None:
        log = await make_log()
        await log.close()
        with contextlib.suppress(Exception):
            await log.append([ev(1)])
            pytest.fail("append on a closed log must raise")

    async def test_a_cancelled_subscriber_stops_even_right_after_a_commit(self, make_log: MakeLog) -> None:
        """Cancellation landing just after a commit woke the subscriber must still end it
        (Python 3.11's wait_for swallowed exactly that one: a service that never stopped)."""
        log = await make_log()
        for i in range(20):
            start = (await log.head()).seq

            async def consume(after: int = start) -> None:
                async for _batch in log.subscribe(after=after):
                    pass

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.01)  # let it reach its wait for the next commit
            await log.append([ev(i)])  # wakes it ...
            task.cancel()  # ... and the cancellation lands in the very next loop turn
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 30)  # a deadline for the suite, not a speed check
            assert task.done()
        await log.close()
