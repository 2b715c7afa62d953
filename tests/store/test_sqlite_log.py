"""The SQLite backend against the shared contract, plus what only SQLite can show."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from burstbus.store.sqlite import SQLiteEventLog
from tests.store.contract import EventLogContract, ev
from tests.waiting import wait_for


@pytest.fixture
def make_log(tmp_path: Path):
    async def make() -> SQLiteEventLog:
        return await SQLiteEventLog.open(tmp_path / "log.sqlite", poll_interval=0.05)

    return make


class TestSQLiteEventLog(EventLogContract):
    pass


async def test_update_and_delete_are_refused_by_the_database(tmp_path: Path) -> None:
    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    await log.append([ev(1)])
    await log.close()
    conn = sqlite3.connect(tmp_path / "log.sqlite")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE events SET data = '{}' WHERE seq = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM events")
    conn.close()


async def test_verify_names_the_first_damaged_seq(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    log = await SQLiteEventLog.open(path)
    await log.append([ev(i) for i in range(10)])
    await log.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER events_append_only_update")
    conn.execute("""UPDATE events SET data = '{"n":99,"text":"forged"}' WHERE seq = 6""")
    conn.commit()
    conn.close()
    log = await SQLiteEventLog.open(path)
    result = await log.verify()
    assert not result.ok
    assert result.first_bad_seq == 6
    assert result.count == 5
    await log.close()


async def test_wal_and_synchronous_full_by_default(tmp_path: Path) -> None:
    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    assert (await (await log._writer_conn.execute("PRAGMA journal_mode")).fetchone())[0] == "wal"
    assert (await (await log._writer_conn.execute("PRAGMA synchronous")).fetchone())[0] == 2  # FULL
    await log.close()


async def test_the_wal_is_copied_into_the_database_in_the_background_not_in_a_commit(tmp_path: Path) -> None:
    """The writer checkpoints only as a backstop far above what a second of commits writes; the
    background checkpoints run after commits (and only then), on their own connection, and
    leave the log whole for a reader that opens the database file alone."""
    from burstbus.store.sqlite import WAL_CHECKPOINT_PAGES

    log = await SQLiteEventLog.open(tmp_path / "log.sqlite", checkpoint_interval=0.05)
    assert (await (await log._writer_conn.execute("PRAGMA wal_autocheckpoint")).fetchone())[0] == WAL_CHECKPOINT_PAGES
    await log.append([ev(i) for i in range(200)])
    await wait_for(lambda: log.checkpoints_total >= 1, "a background checkpoint after the commit")
    frames, copied = await log.checkpoint()
    assert frames > 0 and copied == frames  # everything committed is in the database file now
    idle = log.checkpoints_total
    await log.append([ev(1000)])
    await wait_for(lambda: log.checkpoints_total > idle, "a checkpoint after the next commit")
    counted = log.checkpoints_total
    await asyncio.sleep(0.25)  # several intervals with no commit (a slow machine only sees fewer)
    assert log.checkpoints_total == counted
    await log.close()
    assert not (tmp_path / "log.sqlite-wal").exists() or (tmp_path / "log.sqlite-wal").stat().st_size == 0
    with sqlite3.connect(tmp_path / "log.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 201


async def test_two_handles_on_one_file_keep_one_chain(tmp_path: Path) -> None:
    """A CLI import and a running service may append to the same file."""
    a = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    b = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    for i in range(20):
        await (a if i % 2 else b).append([ev(i)])
    verification = await a.verify()
    assert verification.ok and verification.count == 20
    await a.close()
    await b.close()


async def test_live_followers_miss_nothing_another_process_appends_between_ours(tmp_path: Path) -> None:
    """Followers read this process's fresh commits from memory; records another process (a CLI
    import beside the service) commits in between must still reach them, in order, once."""
    import asyncio
    import contextlib

    from burstbus.events import Event
    from burstbus.store.base import ReadFilter

    ours = await SQLiteEventLog.open(tmp_path / "log.sqlite", poll_interval=0.05)
    theirs = await SQLiteEventLog.open(tmp_path / "log.sqlite", poll_interval=0.05)
    wanted = ReadFilter.of(types=["b"])
    seen: dict[str, list[int]] = {"all": [], "b": [], "stored": []}

    async def follow(name: str, filter: ReadFilter | None) -> None:
        async for batch in ours.subscribe(0, filter, batch_size=7):
            seen[name] += [r.seq for r in batch]

    async def follow_stored() -> None:
        async for batch in ours.subscribe_stored(0, batch_size=7):
            seen["stored"] += [r.seq for r in batch]

    followers = [asyncio.create_task(follow("all", None)), asyncio.create_task(follow("b", wanted)),
                 asyncio.create_task(follow_stored())]
    for round_ in range(30):
        writer = theirs if round_ % 3 == 1 else ours
        await writer.append([Event("a" if i % 2 else "b", {"round": round_, "i": i}) for i in range(5)])
        if round_ % 5 == 0:
            await asyncio.sleep(0.06)  # let the followers catch up now and then, mid-stream
    head = (await ours.head()).seq
    expected_b = [r.seq for r in await ours.read(0, wanted)]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while (seen["all"][-1:] != [head] or seen["b"][-1:] != expected_b[-1:] or seen["stored"][-1:] != [head]) \
            and loop.time() < deadline:
        await asyncio.sleep(0.02)
    for task in followers:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert seen["all"] == list(range(1, head + 1)) and head == 150
    assert seen["stored"] == seen["all"]
    assert seen["b"] == expected_b
    # what the last own commit left in memory is exactly what the database holds
    from_memory = ours._tail_read(145, None, 100)
    assert [r.seq for r in from_memory] == list(range(146, 151)) and from_memory == await ours.read(145)
    assert ours._tail_read(140, None, 100) == []  # 141-145 came from the other process: not in memory
    await theirs.close()
    await ours.close()


async def test_a_filtered_follower_passes_our_own_commits_that_hold_nothing_for_it_without_a_query(tmp_path: Path) -> None:
    """Woken by a commit of this process with nothing of its types, a follower moves past it
    from memory: no read, no head query on the reader connection (which the ingest's lookups
    and every other follower share). Its position still moves, and the next match arrives."""
    import asyncio
    import contextlib

    from burstbus.events import Event
    from burstbus.store.base import ReadFilter

    log = await SQLiteEventLog.open(tmp_path / "log.sqlite", poll_interval=30)  # no poll during the test
    await log.append([Event("b", {"i": 0})])
    queries: list[str] = []
    read, head = log.read, log.head

    async def counted_read(*args, **kwargs):  # type: ignore[no-untyped-def]
        queries.append("read")
        return await read(*args, **kwargs)

    async def counted_head():  # type: ignore[no-untyped-def]
        queries.append("head")
        return await head()

    seen: list[int] = []
    log.read, log.head = counted_read, counted_head  # type: ignore[method-assign]

    async def follow() -> None:
        async for batch in log.subscribe(0, ReadFilter.of(types=["b"])):
            seen.extend(r.seq for r in batch)

    task = asyncio.create_task(follow())
    while seen != [1]:
        await asyncio.sleep(0.01)
    for i in range(20):
        await log.append([Event("a", {"i": i})])
        await asyncio.sleep(0)
    await log.append([Event("b", {"i": 1})])
    while seen != [1, 22]:
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    # After each batch (seq 1, seq 22) it reads on past the end of what this process wrote:
    # that asks the database (another process may have appended): read, head, read again, or
    # fewer when a commit lands meanwhile. Nothing for the 20 commits in between (before:
    # those three for each wake-up).
    assert 1 <= len(queries) <= 6, queries
    await log.close()


def test_the_writers_chained_hash_is_the_canonical_record_hash() -> None:
    """The writer hashes from parts built beforehand; it must be byte for byte record_hash."""
    import random

    from burstbus.events import canonical_json
    from burstbus.store.chain import chained_hash, record_hash, record_parts

    rng = random.Random(7)
    alphabet = [chr(i) for i in range(32)] + list('ab"\\\u00e9\u2028\U0001f600 /:#')
    for n in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 10)))
        fields = {"id": f"id-{n}{text}", "type": f"t.{text}", "stream": text, "actor": f"xmpp:{text}",
                  "occurred_at": "2026-11-21T03:04:05.000000Z", "data_json": canonical_json({"k": text, "n": n})}
        prev = f"{rng.getrandbits(256):064x}"
        recorded = f"2026-11-21T03:04:{n % 60:02d}.{n:06d}Z"
        assert chained_hash(record_parts(**fields), prev, recorded, n + 1) == record_hash(prev_hash=prev, seq=n + 1, recorded_at=recorded, **fields)



async def test_subscribe_stored_works_on_a_backend_without_it(tmp_path: Path) -> None:
    """A log offering only ``subscribe`` still gives stored records: the data encoded again."""
    import contextlib
    from collections.abc import AsyncIterator
    from typing import Any

    from burstbus.events import RecordedEvent, StoredRecord
    from burstbus.store.base import subscribe_stored

    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")

    class OnlySubscribe:
        def subscribe(self, **kwargs: Any) -> AsyncIterator[list[RecordedEvent]]:
            return log.subscribe(**kwargs)

    await log.append([ev(i) for i in range(12)])
    got: list[StoredRecord] = []
    async with contextlib.aclosing(subscribe_stored(OnlySubscribe(), after=2, batch_size=5)) as batches:  # type: ignore[arg-type]
        async for batch in batches:
            got.extend(batch)
            if got[-1].seq == 12:
                break
    stored = {r.seq: r for batch in [await log._follow_read_stored(2, None, 100)] for r in batch}
    assert got == [stored[seq] for seq in range(3, 13)]  # the same text the log keeps
    await log.close()


async def test_a_lingering_append_shares_the_next_commit_and_never_waits_longer_than_its_linger(tmp_path: Path) -> None:
    """A handler's decisions (``linger``) ride on the next sender's commit: one fsync, not two;
    alone, they commit when the linger is up; followers are not held back meanwhile."""
    import asyncio
    import time

    log = await SQLiteEventLog.open(tmp_path / "log.sqlite", poll_interval=0.05)
    await log.append([ev(0)])
    before = log.batches_total
    decision = asyncio.create_task(log.append([ev(1)], linger=5.0))
    await asyncio.sleep(0.05)
    assert not decision.done()  # held for a companion
    [notice] = await log.append([ev(2)])
    [decided] = await decision
    assert log.batches_total == before + 1 and (decided.seq, notice.seq) == (2, 3)  # one commit for both

    started = time.monotonic()
    [alone] = await log.append([ev(3)], linger=0.05)
    assert alone.seq == 4 and 0.04 <= time.monotonic() - started < 5
    assert [r.seq for r in await log.read(after=3)] == [4]
    await log.close()
