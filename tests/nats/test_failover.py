"""Issue 19's acceptance: a JetStream failover, twice, under load, with real VTP subscribers.

What runs, every part a separate process on loopback, each stopped by its pid at the end:

* a 3-node nats-server cluster (:func:`start_restartable_cluster`; a node restarts as the
  same Raft peer) holding the log, an R3 stream created here before the services start;
* two burstbus services (``burstbus run``, one config file and data directory each) on that
  one log: VTP receiver, broadcaster and HTTP on ports given explicitly; the NATS bridge, XMPP
  and Slack off; ``[[vtp.catch_up]]`` lists the subscriber ``ivo://test/late``;
* subscribers: a ``twistd comet`` subscriber on service A, a plain VTP client
  (``burstbus subscribe``, burstbus's asyncio client) on service B, both connected for the
  whole run, and a second ``twistd comet`` subscriber on B, the listed one, stopped after the
  first failover and started again the moment the leader is killed the second time (its
  catch-up replay meets the election);
* authors in this process (``burstbus.broker.client.publish``: connect, send, await the
  ACK/NAK, close), alternating between A's and B's receiver, each packet a new IVORN.

While the authors keep sending, the stream leader (``stream info`` → ``cluster.leader``) is
SIGKILLed; once another node leads and appends resume, the killed node is started again with
its store and the test waits for every replica to be current; then the same again with the
new leader. Observation packets: both services' burst identifiers decide each notice, so the
two nodes append the same decision ids at nearly the same moments throughout (where JetStream
answers the second 409 "duplicate message id is in process").

Asserted at the end: every ACKed IVORN is in the log and every ``voevent.accepted`` in the
log was ACKed (no author was NAKed for a stored packet); each continuously connected
subscriber received every accepted packet exactly once (counted by IVORN from what it
logged/printed, not from saved files: Comet's event db would hide a repeat) and never lost
its connection; the reconnecting one received every one at least once; no component of
either service restarted (``/healthz``, and no "failed; restarting" in their logs); the log
holds one burst decision per notice and never did both nodes count one as new; the hash
chain verifies. Nothing is timed: the failover figures (election time, ACK pause, deliveries
missed) are printed and attached to the test report (``record_property``), not asserted.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from burstbus.broker.client import Answer, publish
from burstbus.ingest import ACCEPTED
from burstbus.store.base import ReadFilter
from burstbus.store.jetstream import JetStreamEventLog
from tests.broker.harness import BIN, Processes, comet_subscriber, free_port, wait_port
from tests.nats.conftest import ClusterNode, Servers, start_restartable_cluster
from tests.nats.test_cluster import open_log, replicas_current
from tests.packets import voevent
from tests.waiting import DEADLINE, wait_for

STREAM = "BURSTBUS_LOG"
LATE = "late"  # the catch-up subscriber's name: ivo://test/late (harness.comet_subscriber)
AUTHORS = 4
#: Pause between two packets of one author (seconds): ~15-20 packets/s in all, well within
#: what a Comet subscriber (dbm.dumb event db) keeps up with on two shared cores.
PAUSE = 0.1
#: ACKs to see after a recovery before the next step (appends have resumed).
RESUMED = 25
WARMUP = "ivo://test.example/failover#warmup-"


@pytest.fixture
def procs() -> Iterator[Processes]:
    processes = Processes()
    try:
        yield processes
    finally:
        processes.stop_all()


@dataclass
class Outcome:
    ivorn: str
    service: str
    acknowledged: bool
    reason: str
    answered_at: float


class BurstbusService:
    """One ``burstbus run`` process with its own config file, data directory and ports."""

    def __init__(self, name: str, root: Path, urls: list[str]):
        self.name = name
        self.home = root / name
        self.home.mkdir(parents=True)
        self.receive_port, self.broadcast_port, self.http_port = free_port(), free_port(), free_port()
        self.log_path = self.home / "service.log"
        self.config = self.home / "burstbus.toml"
        self.config.write_text(f"""
[data]
dir = "{self.home / 'data'}"
[log]
backend = "jetstream"
jetstream_url = "{','.join(urls)}"
stream = "{STREAM}"
replicas = 3
poll_interval = 0.05
[nats]
enabled = false
node_id = "{name}"
[vtp]
receive_port = {self.receive_port}
broadcast_port = {self.broadcast_port}
test_interval = 0
catch_up_window = 600
[[vtp.catch_up]]
ivorn = "ivo://test/{LATE}"
network = "127.0.0.1/32"
[http]
port = {self.http_port}
""")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, procs: Processes) -> None:
        self.process = procs.start([str(BIN / "burstbus"), "--config", str(self.config), "run"], cwd=self.home, log=self.log_path)

    async def ready(self) -> None:
        await wait_port(self.receive_port)
        await wait_port(self.broadcast_port)
        await wait_port(self.http_port)

    async def healthz(self) -> dict[str, object]:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{self.http_port}/healthz") as answer:
            return dict(await answer.json())

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


_COMET_RECEIVED = re.compile(r"VOEvent (\S+) received from")


def comet_received(log: Path) -> Counter[str]:
    """IVORN → times a Comet subscriber received it (its INFO log line, written before its
    event db drops a repeat)."""
    try:
        return Counter(_COMET_RECEIVED.findall(log.read_text(errors="replace")))
    except FileNotFoundError:
        return Counter()


def plain_received(out: Path) -> Counter[str]:
    """IVORN → times ``burstbus subscribe`` printed it (``<ivorn>  <n> bytes``)."""
    try:
        lines = out.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return Counter()
    return Counter(line.split()[0] for line in lines if line.endswith(" bytes"))


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=20)


async def test_two_stream_leader_kills_under_vtp_load_lose_and_double_nothing(
    servers: Servers, procs: Processes, tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    loop = asyncio.get_running_loop()
    nodes = await start_restartable_cluster(servers, tmp_path / "cluster", name="burstbus-failover")
    urls = [node.url for node in nodes]
    # The stream exists before the services start (two creating it at once would race).
    observer: JetStreamEventLog = await wait_for(lambda: open_log(urls), "the cluster's JetStream to elect a meta leader")
    quick = observer.nc.jetstream(timeout=0.5)  # leader polls: a short answer or none
    try:
        await wait_for(lambda: replicas_current(observer), "three current replicas")

        async def stream_leader() -> str | None:
            try:
                info = await quick.stream_info(STREAM)
            except Exception:  # no leader to answer yet (the election), or the connection moving
                return None
            return info.cluster.leader if info.cluster else None

        async def all_current() -> bool:
            try:
                return await replicas_current(observer)
            except Exception:
                return False

        # -- the services and the subscribers --------------------------------------------
        a, b = (BurstbusService(name, tmp_path / "services", urls) for name in ("a", "b"))
        for service in (a, b):
            service.start(procs)
        await asyncio.gather(a.ready(), b.ready())

        subscribers = tmp_path / "subscribers"
        comet_subscriber(procs, subscribers, a.broadcast_port, name="steady")
        steady_log = subscribers / "steady" / "twistd.log"
        plain_home = subscribers / "plain"
        plain_home.mkdir(parents=True)
        plain_out = plain_home / "received.txt"
        plain_err = plain_home / "client.log"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("BURSTBUS_")}
        with open(plain_out, "ab") as out, open(plain_err, "ab") as err:
            plain = subprocess.Popen(
                [str(BIN / "burstbus"), "subscribe", f"127.0.0.1:{b.broadcast_port}", "--local-ivo", "ivo://test/plain"],
                cwd=plain_home, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=environ,
            )
        procs.procs.append(plain)
        comet_subscriber(procs, subscribers, b.broadcast_port, name=LATE)
        late_proc = procs.procs[-1]
        late_log = subscribers / LATE / "twistd.log"

        def received() -> dict[str, Counter[str]]:
            return {"steady": comet_received(steady_log), "plain": plain_received(plain_out), LATE: comet_received(late_log)}

        # Warm-up packets until every subscriber has one: all are connected and both
        # broadcasters follow the log (warm-ups are left out of the counts below).
        warmups = 0

        async def everyone_warm() -> bool:
            nonlocal warmups
            if all(any(i.startswith(WARMUP) for i in got) for got in received().values()):
                return True
            warmups += 1
            for service in (a, b):
                await publish("127.0.0.1", service.receive_port, voevent(f"{WARMUP}{service.name}-{warmups}"), timeout=DEADLINE)
            await asyncio.sleep(0.5)
            return False

        await wait_for(everyone_warm, "every subscriber to receive a warm-up packet")

        # -- the authors -------------------------------------------------------------------
        outcomes: list[Outcome] = []
        stopping = asyncio.Event()

        async def author(i: int) -> None:
            n = 0
            while not stopping.is_set():
                service = (a, b)[(i + n) % 2]
                ivorn = f"ivo://test.example/failover#author{i}-{n}"
                n += 1
                try:
                    answer = await publish("127.0.0.1", service.receive_port, voevent(ivorn, params={"TrigID": f"{i}{n:05d}"}),
                                           timeout=DEADLINE)
                except (OSError, TimeoutError) as exc:
                    answer = Answer(False, f"{type(exc).__name__}: {exc}")
                outcomes.append(Outcome(ivorn, service.name, answer.acknowledged, answer.reason, loop.time()))
                await asyncio.sleep(PAUSE)

        def acks_since(moment: float) -> int:
            return sum(1 for o in outcomes if o.acknowledged and o.answered_at > moment)

        authors = [asyncio.create_task(author(i), name=f"author-{i}") for i in range(AUTHORS)]
        figures: list[dict[str, float | str]] = []

        async def kill_the_leader(round_: int, then: Callable[[], None] | None = None) -> None:
            """SIGKILL the stream leader (and do ``then`` at once); wait for a new leader and
            for appends to resume; start the killed node again; wait for current replicas."""
            name = await wait_for(stream_leader, "the stream's leader")
            leader: ClusterNode = next(node for node in nodes if node.server_name == name)
            killed_at = loop.time()
            leader.kill()  # SIGKILL
            if then is not None:
                then()

            async def another_leader() -> str | None:
                found = await stream_leader()
                return found if found and found != name else None

            successor = await wait_for(another_leader, f"a new stream leader (kill {round_})")
            elected_at = loop.time()
            await wait_for(lambda: acks_since(elected_at) >= RESUMED, f"appends to resume (kill {round_})")
            times = sorted(o.answered_at for o in outcomes if o.acknowledged)
            before = [t for t in times if t <= killed_at]
            after = [t for t in times if t > killed_at]
            window = [before[-1]] + after if before else after  # from the last ACK before the kill
            pause = max(later - earlier for earlier, later in zip(window, window[1:], strict=False))
            figures.append({"kill": round_, "killed": name, "new_leader": successor,
                            "election_s": round(elected_at - killed_at, 2), "ack_pause_s": round(pause, 2)})
            await leader.start()  # same name, port and store: the same peer rejoins
            await wait_for(all_current, f"every replica current again (kill {round_})")

        try:
            started = loop.time()
            await wait_for(lambda: acks_since(started) >= RESUMED, "steady appends before the first kill")
            await kill_the_leader(1)
            # The listed subscriber goes away while packets keep being accepted, and comes back
            # just as the leader is killed again: its catch-up meets the election.
            await loop.run_in_executor(None, stop, late_proc)
            away_from = loop.time()
            await wait_for(lambda: acks_since(away_from) >= RESUMED, "packets accepted while the late subscriber is away")
            await kill_the_leader(2, then=lambda: comet_subscriber(procs, subscribers, b.broadcast_port, name=LATE))
            settled = loop.time()
            await wait_for(lambda: acks_since(settled) >= RESUMED, "a last stretch of appends on the healed cluster")
        finally:
            stopping.set()
            await asyncio.wait_for(asyncio.gather(*authors), DEADLINE)

        # -- what the log holds, what the authors were told ----------------------------------
        records = await observer.read(filter=ReadFilter.of(types=[ACCEPTED]))
        accepted = Counter(str(r.data["ivorn"]) for r in records if not str(r.data["ivorn"]).startswith(WARMUP))
        acked = {o.ivorn for o in outcomes if o.acknowledged}
        naked = [o for o in outcomes if not o.acknowledged]
        assert set(accepted.values()) == {1}, "each packet once in the log"
        assert acked <= set(accepted), f"ACKed but not in the log: {sorted(acked - set(accepted))[:5]}"
        stored_naks = [o for o in naked if o.ivorn in accepted]
        assert not stored_naks, f"authors NAKed for packets that are stored: {stored_naks[:5]}"
        assert set(accepted) == acked, "every accepted packet came from an author who got its ACK"

        # -- what the subscribers received --------------------------------------------------
        def complete() -> bool:
            got = received()
            return all(set(accepted) <= set(got[name]) for name in got)

        try:
            await wait_for(complete, "every subscriber to receive every accepted packet")
        except AssertionError:
            got = received()
            missing = {name: len(set(accepted) - set(got[name])) for name in got}
            raise AssertionError(f"deliveries missed per subscriber: {missing} of {len(accepted)}") from None
        await asyncio.sleep(2.0)  # let a repeat, if one were on its way, arrive
        got = received()
        for name in ("steady", "plain"):
            counts = Counter({i: n for i, n in got[name].items() if not i.startswith(WARMUP)})
            doubled = {i: n for i, n in counts.items() if n > 1}
            assert not doubled, f"{name} received {len(doubled)} packets more than once, e.g. {list(doubled.items())[:3]}"
            assert set(counts) == set(accepted), f"{name} received packets that are not in the log"
        assert not re.search(r"Connection to .* lost", steady_log.read_text()), "the steady Comet subscriber kept its connection"
        assert not re.search(r"lost|disconnected", plain_err.read_text()), "the plain VTP client kept its connection"

        # -- the services: no restart, no duplicate-id error; the chain holds ---------------
        replayed = 0
        for service in (a, b):
            health = await service.healthz()
            components = health["components"]
            assert isinstance(components, dict)
            restarted = {n: c.get("last_error") for n, c in components.items() if c.get("restarts")}
            assert not restarted, f"service {service.name}: components restarted: {restarted}"
            text = service.log_text()
            assert "failed; restarting" not in text, f"service {service.name} restarted a component"
            assert "duplicate message id" not in text, f"service {service.name} logged a duplicate-id error"
            broadcaster = components["vtp-broadcaster"]
            assert broadcaster["subscribers"] == (1 if service is a else 2), f"service {service.name}: subscribers connected"
            if service is b:  # the late subscriber was owed a replay, and got it
                catch_up = broadcaster["catch_up"]
                assert catch_up["replays"] >= 1 and catch_up["replayed"] >= 1, catch_up
                replayed = catch_up["replayed"]
        # One burst decision per notice (warm-ups included), though both nodes decided each:
        # whichever appended second got new=False, never an error (10158 or otherwise).
        notices = {r.seq for r in records}

        async def decisions() -> Counter[int]:
            found = await observer.read(filter=ReadFilter.of(types=["burst.identified", "burst.none"]))
            return Counter(int(r.data["accepted_seq"]) for r in found)

        await wait_for(lambda: _covers(decisions(), notices), "a burst decision for every notice")
        assert set((await decisions()).values()) == {1}, "one decision per notice in the log"

        # Never both nodes told new=True for one decision. (Fewer is possible: an append whose
        # confirmation died with the leader, stored all the same, is found on the retry.)
        new_decisions = 0
        for service in (a, b):
            components = (await service.healthz())["components"]
            assert isinstance(components, dict)
            new_decisions += components["bursts"]["identified"] + components["bursts"]["no_burst"]
        assert new_decisions <= len(notices), f"{new_decisions} decisions reported new for {len(notices)} notices"
        verification = await observer.verify()
        assert verification.ok, verification

        summary = {
            "kills": figures,
            "packets_sent": len(outcomes), "acked": len(acked), "naked_not_stored": len(naked),
            "nak_reasons": sorted(Counter(o.reason.split(";")[0][:60] for o in naked).items()),
            "deliveries_missed": {name: len(set(accepted) - set(got[name])) for name in got},
            "repeats": {name: sum(n - 1 for i, n in got[name].items() if not i.startswith(WARMUP)) for name in got},
            "replayed_to_the_late_subscriber": replayed,
            "decisions_stored_unconfirmed": len(notices) - new_decisions,
        }
        record_property("failover", json.dumps(summary))
        print("\nfailover figures:", json.dumps(summary, indent=1), file=sys.stderr)
    finally:
        await observer.close()


async def _covers(counts: Awaitable[Counter[int]], seqs: set[int]) -> bool:
    return seqs <= set(await counts)
