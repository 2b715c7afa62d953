"""The JetStream log against real nats-servers: two nodes racing on one id, and a server that
stops answering.

Every nats-server here is an :class:`EmbeddedNatsServer` on 127.0.0.1 with a free ephemeral
client (and route) port and its store under ``tmp_path``; the ``servers`` fixture continues
(SIGCONT) and stops each one by pid at the end, whatever the test did to it. Nothing asserts
on timings: conditions are waited for (``tests.waiting.wait_for``).

"Two nodes" are two (or more) :class:`JetStreamEventLog` instances, each with its own
connection. On a single server JetStream answers a racing publish of one ``Nats-Msg-Id`` with
"wrong last sequence" (10071) or "duplicate"; only a clustered (R3) stream stages the id
before replication and answers the second publish ``409 err_code=10158 "duplicate message id
is in process"`` while the first is in flight: hence the 3-node cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import nats.errors
import pytest

from burstbus.bridges.nats.server import EmbeddedNatsServer, NatsServerError, free_port
from burstbus.events import Appended, Event
from burstbus.store.base import LogClosed, LogError, LogUnavailable
from burstbus.store.jetstream import JetStreamEventLog
from tests.waiting import wait_for

IDS = 200
CLUSTER = "burstbus-races"


class Servers:
    """The nats-servers a test started; each continued and stopped by pid at the end."""

    def __init__(self, root: Path):
        self.root = root
        self.started: list[EmbeddedNatsServer] = []

    def track(self, server: EmbeddedNatsServer) -> EmbeddedNatsServer:
        self.started.append(server)
        return server

    async def single(self) -> EmbeddedNatsServer:
        server = self.track(EmbeddedNatsServer(self.root / "single", port=free_port()))
        await server.start()
        return server

    async def cluster(self, attempts: int = 3) -> list[EmbeddedNatsServer]:
        """Three nodes, one cluster. A port picked free may be taken by another test's server
        before ours binds it (``free_port`` is advisory): then the cluster starts again on
        fresh ports, in fresh directories."""
        for attempt in range(attempts):
            client_ports = [free_port() for _ in range(3)]
            route_ports = [free_port() for _ in range(3)]
            nodes = []
            for i in range(3):
                routes = ",".join(f"nats://127.0.0.1:{p}" for j, p in enumerate(route_ports) if j != i)
                args = ("--cluster_name", CLUSTER, "--cluster", f"nats://127.0.0.1:{route_ports[i]}", "--routes", routes)
                root = self.root / f"cluster{attempt}" / f"node{i}"
                nodes.append(self.track(EmbeddedNatsServer(root, port=client_ports[i], extra_args=args)))
            started = await asyncio.gather(*(node.start() for node in nodes), return_exceptions=True)
            problems = [r for r in started if isinstance(r, BaseException)]
            if not problems:
                return nodes
            for node in nodes:
                node.stop()
            if attempt == attempts - 1 or not all(isinstance(r, NatsServerError) for r in problems):
                raise problems[0]
        raise AssertionError("not reached")

    def stop_all(self) -> None:
        for server in self.started:
            if server.pid is not None and server.running:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(server.pid, signal.SIGCONT)  # a paused server cannot handle SIGTERM
            server.stop()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    registry = Servers(tmp_path / "servers")
    try:
        yield registry
    finally:
        registry.stop_all()


def pause(server: EmbeddedNatsServer) -> None:
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)


def stopped(server: EmbeddedNatsServer) -> bool:
    """Every thread of the server is stopped (SIGSTOP takes effect per thread, when each is
    next scheduled: on a busy machine a thread may run on for a while after ``kill``)."""
    tasks = Path(f"/proc/{server.pid}/task")
    states = []
    for task in tasks.iterdir():
        with contextlib.suppress(OSError):
            states.append((task / "stat").read_text().rpartition(")")[2].split()[0])
    return bool(states) and all(state in ("T", "t") for state in states)


def resume(server: EmbeddedNatsServer) -> None:
    assert server.pid is not None
    os.kill(server.pid, signal.SIGCONT)


async def open_when_ready(urls: list[str], **options: Any) -> JetStreamEventLog:
    """The log, once the cluster has a JetStream meta leader (opening fails until then).
    Probed with a short request timeout, so that a probe sent before the election does not
    hold the test for the log's whole timeout."""

    async def ready() -> bool:
        try:
            probe = await JetStreamEventLog.open(urls, **{**options, "timeout": 0.5})
        except LogError:
            return False
        await probe.close()
        return True

    await wait_for(ready, "the cluster's JetStream to elect a meta leader")
    return await JetStreamEventLog.open(urls, **options)


async def replicas_current(log: JetStreamEventLog) -> bool:
    try:
        info = await log.js.stream_info(log.stream)
    except nats.errors.Error:  # the stream's first election may still be running
        return False
    cluster = info.cluster
    return bool(cluster and cluster.leader and cluster.replicas and len(cluster.replicas) == 2
                and all(r.current for r in cluster.replicas))


async def stream_leader(log: JetStreamEventLog, nodes: list[EmbeddedNatsServer]) -> EmbeddedNatsServer:
    await wait_for(lambda: replicas_current(log), "three current replicas")
    info = await log.js.stream_info(log.stream)
    assert info.cluster is not None
    return next(node for node in nodes if node.server_name == info.cluster.leader)


def event(n: int, round: int = 0) -> Event:
    return Event("burst.identified", {"burst_id": f"sb2612{n:04d}", "round": round}, stream="sb", actor="test")


def check_one_winner(results: list[Appended]) -> Appended:
    """One id appended by several nodes: one new record, everyone told its seq and hash."""
    winners = [r for r in results if r.new]
    assert len(winners) == 1, results
    assert {(r.seq, r.hash, r.id) for r in results} == {(winners[0].seq, winners[0].hash, winners[0].id)}, results
    return winners[0]


async def close_all(logs: list[JetStreamEventLog]) -> None:
    for log in logs:
        await log.close()


# -- two nodes, one id, the same moment -------------------------------------------------------


@pytest.mark.parametrize("appenders", [2, 3])
async def test_nodes_appending_the_same_ids_at_once_on_a_cluster_store_each_once(servers: Servers, appenders: int) -> None:
    """200 ids × 2–3 nodes, all at once, on an R3 stream (each node connected to a different
    server): every id is stored once, one node hears new=True, the others new=False with its
    seq; the chain verifies. The 10158 answers this draws (some per run here) are waited out,
    never raised (``in_process_total`` counts them; the deterministic case is the next test)."""
    nodes = await servers.cluster()
    first = await open_when_ready([n.url for n in nodes], replicas=3)
    logs = [first] + [await JetStreamEventLog.open(nodes[i % 3].url, replicas=3) for i in range(1, appenders)]
    try:
        await wait_for(lambda: replicas_current(first), "three current replicas")
        for round in range(2):
            events = [event(n, round) for n in range(IDS)]
            results = await asyncio.gather(*(log.append([e]) for e in events for log in logs))
            for n in range(IDS):
                check_one_winner([r[0] for r in results[n * appenders:(n + 1) * appenders]])
        records = await first.read()
        assert len(records) == 2 * IDS and len({r.id for r in records}) == 2 * IDS
        verification = await logs[-1].verify()
        assert verification.ok and verification.count == 2 * IDS, verification
    finally:
        await close_all(logs)


async def test_nodes_appending_the_same_ids_at_once_on_one_server_store_each_once(servers: Servers) -> None:
    """The same race on a single server (R1), with multi-record appends sharing ids: there
    the loser hears "wrong last sequence" or "duplicate", and resolves it the same way."""
    server = await servers.single()
    logs = [await JetStreamEventLog.open(server.url) for _ in range(3)]
    try:
        events = [event(n) for n in range(IDS)]
        calls = [log.append(events[n:n + 2]) for n in range(0, IDS, 2) for log in logs]
        results = await asyncio.gather(*calls)
        for call in range(0, len(results), len(logs)):
            for k in range(2):
                check_one_winner([r[k] for r in results[call:call + len(logs)]])
        verification = await logs[0].verify()
        assert verification.ok and verification.count == IDS, verification
        assert len({r.id for r in await logs[1].read()}) == IDS
    finally:
        await close_all(logs)


async def test_the_server_refuses_an_id_already_stored_under_another_type_beyond_the_duplicate_window(servers: Servers) -> None:
    """An append's first round does not look its ids up: the server's own check (no record
    on the id's subjects, any type) refuses a second record of an id after the duplicate
    window, and the next round finds the first record (new=False, its seq)."""
    server = await servers.single()
    log = await JetStreamEventLog.open(server.url, stream="SHORT_WINDOW", duplicate_window=1.0)
    try:
        first = event(1)
        [original] = await log.append([first])
        await asyncio.sleep(1.5)  # past the stream's duplicate window (setup, not an assertion on time)
        retyped = Event("burst.none", {"burst_id": "other"}, stream="sb", actor="test", id=first.id)
        before = log.conflicts_total
        [again] = await log.append([retyped])
        assert (again.seq, again.hash, again.new) == (original.seq, original.hash, False)
        assert log.conflicts_total == before + 1  # refused by the server, not by a lookup
        verification = await log.verify()
        assert verification.ok and verification.count == 1, verification
    finally:
        await log.close()


async def cluster_with_paused_followers_race(
    servers: Servers, loser_timeout: float, after_10158: Callable[[list[asyncio.Task[list[Appended]]]], Awaitable[None]],
) -> tuple[list[JetStreamEventLog], list[asyncio.Task[list[Appended]]], Event]:
    """Two nodes on the stream leader append one id while both followers are paused: the
    first publish can be proposed but not replicated (no quorum), so the second is answered
    10158 for as long as the pause lasts. ``after_10158`` runs once a node has heard it."""
    nodes = await servers.cluster()
    probe = await open_when_ready([n.url for n in nodes], replicas=3)
    leader = await stream_leader(probe, nodes)
    await probe.close()
    a = await JetStreamEventLog.open(leader.url, replicas=3, timeout=loser_timeout)
    b = await JetStreamEventLog.open(leader.url, replicas=3, timeout=loser_timeout)
    await a.append([event(9999)])
    followers = [node for node in nodes if node is not leader]
    shared = event(1)
    for node in followers:
        pause(node)
    try:
        await wait_for(lambda: all(stopped(node) for node in followers), "both followers to be stopped")
        tasks = [asyncio.create_task(log.append([shared])) for log in (a, b)]
        await wait_for(lambda: a.in_process_total + b.in_process_total > 0, 'a "duplicate message id is in process" answer')
        await after_10158(tasks)
    finally:
        for node in followers:
            resume(node)
    return [a, b], tasks, shared


async def test_the_node_that_loses_the_race_waits_for_the_winner_and_gets_its_seq(servers: Servers) -> None:
    """Made certain with paused followers: the loser is answered 10158, waits (does not fail,
    does not store a second record), and once the winner's record is replicated it gets
    new=False with the winner's seq and hash."""

    async def nothing_done_yet(tasks: list[asyncio.Task[list[Appended]]]) -> None:
        # Nobody gave up: both wait for the quorum.
        assert not any(task.done() for task in tasks), [task.exception() or task.result() for task in tasks if task.done()]

    logs, tasks, shared = await cluster_with_paused_followers_race(servers, 10.0, nothing_done_yet)
    try:
        results = [(await task)[0] for task in tasks]
        winner = check_one_winner(results)
        assert winner.seq == 2
        [record] = [r for r in await logs[0].read() if r.id == shared.id]
        assert (record.seq, record.hash) == (winner.seq, winner.hash)
        verification = await logs[1].verify()
        assert verification.ok and verification.count == 2, verification
    finally:
        await close_all(logs)


async def test_a_winner_that_stays_in_process_past_the_timeout_is_log_unavailable_and_a_retry_resolves(servers: Servers) -> None:
    """If the other node's publish is still in process after ``timeout`` (no quorum for that
    long), the loser raises LogUnavailable (the 10158 as its cause), not the server's error;
    its retry once the stream answers gets the record that was stored, whoever stored it."""

    async def until_both_gave_up(tasks: list[asyncio.Task[list[Appended]]]) -> None:
        await wait_for(lambda: all(task.done() for task in tasks), "both appends to give up")

    logs, tasks, shared = await cluster_with_paused_followers_race(servers, 1.0, until_both_gave_up)
    try:
        errors = [task.exception() for task in tasks]
        assert all(isinstance(e, LogUnavailable) for e in errors), errors
        assert any(getattr(e.__cause__, "err_code", None) == 10158 for e in errors), [e.__cause__ for e in errors]
        assert not any(isinstance(e, nats.errors.Error) for e in errors)

        async def retried() -> list[Appended] | None:
            try:
                return [(await log.append([shared]))[0] for log in logs]
            except LogUnavailable:
                return None

        again = await wait_for(retried, "the stream to answer again")
        assert len({(r.seq, r.hash) for r in again}) == 1
        assert sum(1 for r in await logs[0].read() if r.id == shared.id) == 1
        verification = await logs[0].verify()
        assert verification.ok and verification.count == 2, verification
    finally:
        await close_all(logs)


# -- a server that stops answering --------------------------------------------------------


def operations(log: JetStreamEventLog, fresh: Event) -> dict[str, Callable[[], Awaitable[object]]]:
    return {
        "head": log.head,
        "read": log.read,
        "append": lambda: log.append([fresh]),
        "get": lambda: log.get(1),
        "find": lambda: log.find(fresh.id),
        "seq_at": lambda: log.seq_at("2100-01-01T00:00:00Z"),
        "verify": log.verify,
    }


async def raised_by_each(log: JetStreamEventLog, fresh: Event) -> dict[str, BaseException | None]:
    found: dict[str, BaseException | None] = {}
    for name, operation in operations(log, fresh).items():
        try:
            await operation()
            found[name] = None
        except Exception as exc:
            found[name] = exc
    return found


def assert_all_unavailable(found: dict[str, BaseException | None]) -> None:
    for name, exc in found.items():
        assert isinstance(exc, LogUnavailable), (name, exc)
        assert not isinstance(exc, nats.errors.Error), (name, exc)
        assert exc.__cause__ is not None, name


async def test_a_paused_server_raises_the_logs_own_error_and_a_retried_append_is_stored_once(servers: Servers) -> None:
    server = await servers.single()
    log = await JetStreamEventLog.open(server.url, timeout=0.5)
    try:
        first = event(0)
        await log.append([first])
        fresh = event(1)
        pause(server)
        try:
            await wait_for(lambda: stopped(server), "the server to be stopped")
            found = await raised_by_each(log, fresh)
        finally:
            resume(server)
        assert_all_unavailable(found)

        async def appended() -> list[Appended] | None:
            try:
                return await log.append([fresh])
            except LogUnavailable:
                return None

        # The paused server had the first publish in its socket: once it runs again it may
        # store it; the retry is then told new=False. Either way: one record.
        [again] = await wait_for(appended, "the server to answer again")
        assert again.seq == 2
        assert [r.id for r in await log.read()] == [first.id, fresh.id]
        verification = await log.verify()
        assert verification.ok and verification.count == 2
    finally:
        await log.close()


async def test_a_stopped_server_raises_the_logs_own_error_and_the_log_resumes_when_it_is_back(servers: Servers) -> None:
    server = await servers.single()
    log = await JetStreamEventLog.open(server.url, timeout=0.5, connect_options={"reconnect_time_wait": 0.05})
    followed: list[int] = []
    follower_error: list[BaseException] = []

    async def follow() -> None:
        try:
            async for batch in log.subscribe():
                followed.extend(r.seq for r in batch)
        except Exception as exc:
            follower_error.append(exc)

    try:
        await log.append([event(0)])
        following = asyncio.create_task(follow())
        await wait_for(lambda: followed == [1], "the follower to read seq 1")
        server.stop()
        fresh = event(1)
        assert_all_unavailable(await raised_by_each(log, fresh))
        await wait_for(lambda: follower_error, "the follower to meet the outage")
        assert isinstance(follower_error[0], LogUnavailable), follower_error
        await following

        await server.start()  # same port, same store

        async def appended() -> list[Appended] | None:
            try:
                return await log.append([fresh])
            except LogUnavailable:
                return None

        [result] = await wait_for(appended, "the log to answer again")
        assert result.seq == 2
        verification = await log.verify()
        assert verification.ok and verification.count == 2
    finally:
        await log.close()


async def test_a_closed_log_raises_log_closed_from_every_method(servers: Servers) -> None:
    server = await servers.single()
    log = await JetStreamEventLog.open(server.url)
    await log.append([event(0)])
    await log.close()
    for name, exc in (await raised_by_each(log, event(1))).items():
        assert isinstance(exc, LogClosed), (name, exc)
