"""The JetStream backend against the shared contract, plus what only a shared stream can show."""

from __future__ import annotations

import asyncio

import pytest

from burstbus.bridges.nats.server import EmbeddedNatsServer
from burstbus.store.base import ReadFilter
from burstbus.store.jetstream import JetStreamEventLog
from tests.store.contract import EventLogContract, ev


@pytest.fixture
def make_log(server: EmbeddedNatsServer):
    async def make() -> JetStreamEventLog:
        return await JetStreamEventLog.open(server.url, poll_interval=0.05)

    return make


class TestJetStreamEventLog(EventLogContract):
    pass


async def test_two_writers_on_one_stream_keep_one_chain(server: EmbeddedNatsServer) -> None:
    """Two nodes appending at once: the optimistic check makes them take turns, never fork."""
    a = await JetStreamEventLog.open(server.url)
    b = await JetStreamEventLog.open(server.url)
    shared = ev(999)
    results = await asyncio.gather(*[(a if i % 2 else b).append([ev(i), shared]) for i in range(40)])
    assert sorted(r[0].seq for r in results) == sorted({r[0].seq for r in results})
    assert len({r[1].seq for r in results}) == 1  # the shared id was written once, whoever won
    verification = await a.verify()
    assert verification.ok and verification.count == 41
    assert a.conflicts_total + b.conflicts_total > 0
    await a.close()
    await b.close()


async def test_a_record_another_writer_stored_under_the_same_id_does_not_fork_the_chain(server: EmbeddedNatsServer) -> None:
    """Two nodes deciding the same thing append the same (derived) id with different content.

    Here node b checks its ids just before node a stores one of them (the race, made certain
    by hiding a's record from b's first lookup), then appends [that id, a new one]. The
    second record must not be stored after a's record while hashed against b's own version
    of it (which was never stored): found in the two-node test, 1 run in 15."""
    from burstbus.events import Event

    a = await JetStreamEventLog.open(server.url)
    b = await JetStreamEventLog.open(server.url)
    await b.append([ev(0)])
    decision = "6c1f9a3e-0000-5000-8000-000000000001"
    await a.append([Event("burst.identified", {"by": "a"}, id=decision)])
    real_find = b.find
    hidden = {decision}

    async def find_racing(event_id: str):  # type: ignore[no-untyped-def]
        if event_id in hidden:
            hidden.discard(event_id)
            return None
        return await real_find(event_id)

    b.find = find_racing  # type: ignore[method-assign]
    [mine, fresh] = await b.append([Event("burst.identified", {"by": "b"}, id=decision), ev(1)])
    assert (mine.seq, mine.new) == (2, False) and (fresh.seq, fresh.new) == (3, True)
    verification = await b.verify()
    assert verification.ok and verification.count == 3, verification
    assert [r.data for r in await b.read()][1] == {"by": "a"}
    await a.close()
    await b.close()


async def test_the_stream_refuses_deletes(server: EmbeddedNatsServer) -> None:
    log = await JetStreamEventLog.open(server.url)
    await log.append([ev(1), ev(2)])
    with pytest.raises(Exception, match="delete"):
        await log.js.delete_msg(log.stream, 1)
    assert (await log.verify()).count == 2
    await log.close()


async def test_seq_at_is_what_the_log_knew_then(server: EmbeddedNatsServer) -> None:
    log = await JetStreamEventLog.open(server.url)
    await log.append([ev(i) for i in range(5)])
    records = await log.read()
    assert await log.seq_at(records[2].recorded_at) >= 3
    assert await log.seq_at("2000-01-01T00:00:00Z") == 0
    assert await log.seq_at("2999-01-01T00:00:00Z") == 5
    await log.close()


async def test_an_id_stays_unique_beyond_the_duplicate_window(server: EmbeddedNatsServer) -> None:
    """Nats-Msg-Id dedupe forgets after its window; the id lookup does not."""
    log = await JetStreamEventLog.open(server.url, stream="SHORT_WINDOW", duplicate_window=1.0)
    first = ev(1)
    [original] = await log.append([first])
    await asyncio.sleep(1.5)  # past the stream's duplicate window (setup, not an assertion on time)
    [_, again] = await log.append([ev(2), first])
    assert (again.seq, again.new) == (original.seq, False)
    assert (await log.verify()).count == 2
    await log.close()


async def test_reads_come_in_batches(server: EmbeddedNatsServer) -> None:
    log = await JetStreamEventLog.open(server.url)
    await log.append([ev(i, type="a.b" if i % 3 else "c.d") for i in range(2500)])
    everything = await log.read()
    assert [r.seq for r in everything] == list(range(1, 2501))
    assert log.direct and log.direct_batches_total <= 4
    typed = await log.read(filter=ReadFilter.of(types=["c.d"]), limit=500)
    assert [r.data["n"] for r in typed] == list(range(0, 1500, 3))
    several = await log.read(100, ReadFilter.of(types=["c.d", "a.b"], stream="s"), 10)
    assert [r.seq for r in several] == list(range(101, 111))
    assert (await log.verify()).count == 2500
    log.direct = False  # a server without batched direct gets: one leader request per record
    assert await log.read(100, ReadFilter.of(types=["c.d", "a.b"], stream="s"), 10) == several
    assert await log.read(2400, ReadFilter.of(types=["c.d"])) == [r for r in everything[2400:] if r.type == "c.d"]
    await log.close()


async def test_an_append_whose_ack_is_lost_is_found_on_the_retry_stored_once_and_reported_new(server: EmbeddedNatsServer) -> None:
    """The stream stored the record but its ack never came (the leader died after storing,
    as in an election): the append tries again inside the log, finds the record it planned
    and reports it stored by this call (new=True, once), instead of "maybe stored"."""
    log = await JetStreamEventLog.open(server.url, timeout=1.0)
    real_on_reply = log._on_reply
    dropped: list[str] = []

    async def lose_the_first_ack(msg):  # type: ignore[no-untyped-def]
        if not dropped:
            dropped.append(msg.subject)
            return
        await real_on_reply(msg)

    log._on_reply = lose_the_first_ack  # type: ignore[method-assign]  # before the reply subscription
    events = [ev(1), ev(2)]
    [first, second] = await log.append(events)
    assert dropped and log.append_retries_total >= 1
    assert (first.seq, first.new, second.seq, second.new) == (1, True, 2, True)
    [again] = await log.append(events[:1])
    assert (again.seq, again.new) == (1, False)
    verification = await log.verify()
    assert verification.ok and verification.count == 2
    families = {f.name for f in log.metrics()}
    assert {"burstbus_log_append_retries_total", "burstbus_log_append_in_process_total"} <= families
    await log.close()


async def test_no_direct_get_responders_pause_batched_reads_and_they_come_back(
    server: EmbeddedNatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A direct get with no responders (direct gets switched off, or none answering during an
    election) makes reads go to the leader one record at a time for a while, not for good."""
    import burstbus.store.jetstream as jetstream

    monkeypatch.setattr(jetstream, "DIRECT_PAUSE", 0.2)
    log = await JetStreamEventLog.open(server.url)
    await log.append([ev(i) for i in range(5)])
    info = await log.js.stream_info(log.stream)
    info.config.allow_direct = False
    await log.js.update_stream(info.config)
    assert [r.seq for r in await log.read()] == [1, 2, 3, 4, 5]  # from the leader
    assert log.direct and log._direct_paused_until > 0  # paused, not given up
    info.config.allow_direct = True
    await log.js.update_stream(info.config)
    await asyncio.sleep(0.3)  # the pause is over (no timing asserted: only that it ended)
    before = log.direct_batches_total
    assert [r.seq for r in await log.read()] == [1, 2, 3, 4, 5]
    assert log.direct_batches_total > before
    await log.close()
