"""The orchestrator's thin adapter: follow the log, ask the core, append, dispatch, keep time.

Three loops share one lock (so one burst is never decided by two of them at once):

* the **follower** (``store/consumer.py``, consumer ``handler.orchestrator``) hands batches of
  the followed types; for each burst in the batch the core (:func:`.core.decide`) gets the
  burst's stored events plus the new ones; its events are appended (the log first: a request
  is in the log before any worker hears of it), then the new events and the burst's next
  look are stored with the checkpoint in one ``state.sqlite`` transaction;
* the **watchdog** sleeps until the earliest stored look (a deadline, a retry's
  ``not_before``) and asks the core again for the bursts due. Those times come from the log,
  so after a stop, however long, the first round at start finds every attempt whose deadline
  passed meanwhile and every request never dispatched (a crash between the append and the
  dispatch) — nothing is lost, and nothing decided twice (derived ids);
* **dispatches** run as tasks (at most ``max_dispatches`` at once): NATS request or HTTP
  POST (:mod:`.dispatch`), then ``process.dispatched`` with the answer. A request dispatched
  but whose answer is not yet folded is remembered, so it is not sent again meanwhile.

A first start begins at the log's head: a pipeline configured today does not start on
every burst in the archive (``[orchestrator] from_beginning`` to do that). A request by
hand for an older burst reads that burst's data from the log at once (:meth:`adopt`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp

from burstbus.component import Request
from burstbus.events import RecordedEvent, parse_time, utc_now
from burstbus.histogram import Histogram
from burstbus.metrics import Family, counter, gauge, histogram
from burstbus.state import StateStore
from burstbus.store.base import EventLog, ReadFilter
from burstbus.store.consumer import Batch, Follower, Start
from burstbus.tasks import cancel_and_wait

from . import dispatch, store
from .config import OrchestratorSection, PipelinesSection
from .core import Decision, decide, request_payload
from .runs import FOLLOWED, Burst, burst_of, later

log = logging.getLogger(__name__)

CONSUMER = "handler.orchestrator"
#: The longest the watchdog sleeps between looks (a clock jump, a missed wake-up).
MAX_SLEEP = 5.0
#: Seconds before a dispatch that failed unexpectedly (its answer not recorded) is tried again.
DISPATCH_RETRY = 1.0
#: Bursts decided under the lock at a time by a watchdog round.
ROUND_CHUNK = 500


class Orchestrator:
    """Starts, watches, retries and dispatches pipeline runs (see the module doc)."""

    def __init__(
        self,
        log_: EventLog,
        state: StateStore,
        section: OrchestratorSection,
        pipelines: PipelinesSection,
        *,
        request: Callable[[], Request | None] = lambda: None,
        clock: Callable[[], str] = utc_now,
        start: Start = Start.HEAD,
    ):
        self.log = log_
        self.state = state
        self.section = section
        self.pipelines = pipelines
        self.request = request
        self.clock = clock
        self.follower: Follower[RecordedEvent] = Follower(
            log_, self._batch, name=CONSUMER, checkpoint=state.checkpoint(CONSUMER), types=FOLLOWED,
            start=start, batch_size=500,
        )
        self._lock = asyncio.Lock()
        self._due: dict[str, str] = {}
        self._heap: list[tuple[str, str]] = []
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(section.max_dispatches)
        self._inflight: set[str] = set()
        #: Dispatched requests whose ``process.dispatched`` (at that seq) is not folded yet.
        self._answered: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._started = False
        self.decided: Counter[str] = Counter()
        self.dispatches: Counter[str] = Counter()
        #: Seconds from a data announcement's ``recorded_at`` to its request's dispatch answer.
        self.dispatch_seconds = Histogram()
        self.last_error: str | None = None
        #: Watchdog rounds done, and the last round that decided anything: (bursts, seconds).
        self.rounds = 0
        self.last_round: tuple[int, float] | None = None

    # -- running -------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the tables and take the stored looks (again at each supervised restart:
        a look taken out of memory by a failed round is still in the table)."""
        if not self._started:
            await self.state.run(store.create)
        due = await self.state.run(store.all_due)
        for burst, when in due.items():
            self._schedule(burst, when)
        await self.follower.begin()
        self._started = True

    async def run(self) -> None:
        await self.start()
        self._session = aiohttp.ClientSession()
        loops = [asyncio.create_task(self.follower.run(), name="burstbus-orchestrator-follow"),
                 asyncio.create_task(self._watch(), name="burstbus-orchestrator-watch")]
        try:
            done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            await cancel_and_wait(loops)
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._session.close()
            self._session = None

    # -- deciding ------------------------------------------------------------------------

    async def _batch(self, batch: Batch[RecordedEvent]) -> None:
        by_burst: dict[str, list[RecordedEvent]] = defaultdict(list)
        for record in batch.records:
            burst = burst_of(record)
            if burst:
                by_burst[burst].append(record)
        async with self._lock:
            decisions, new = await self._decide(list(by_burst), by_burst)

            def save(conn: Any) -> None:
                store.save(conn, new, {b: d.due for b, d in decisions.items()})
                batch.write_checkpoint(conn)

            await self.state.transaction(save)
            self._settled(decisions)
        for seq_request in [r for r, seq in self._answered.items() if seq <= batch.last]:
            del self._answered[seq_request]

    async def _decide(
        self, bursts: Sequence[str], fresh: dict[str, list[RecordedEvent]] | None = None,
    ) -> tuple[dict[str, Decision], dict[str, list[RecordedEvent]]]:
        """Decide these bursts on their stored events (plus ``fresh`` ones) and append what was decided."""
        stored = await self.state.run(lambda conn: store.load(conn, list(bursts)))
        now = self.clock()
        decisions: dict[str, Decision] = {}
        new: dict[str, list[RecordedEvent]] = {}
        for burst in bursts:
            known = stored.get(burst, [])
            seen = {r.seq for r in known}
            added = [r for r in (fresh or {}).get(burst, ()) if r.seq not in seen]
            if not known and added:
                # A burst met for the first time may have begun before this orchestrator's first
                # start (its follower starts at the head): its earlier data are in the log, not
                # here. Without them a run whose other input arrived before the start would
                # wait for ever (the served demo's ECLAIRs data one event before the start).
                added = [*await self._earlier(burst, added[0].seq), *added]
            new[burst] = added
            decisions[burst] = decide(burst, [*known, *added], self.pipelines, now)
        events = [e for d in decisions.values() for e in d.events]
        if events:
            appended = await self.log.append(events)
            fresh_requests = set()
            for event, where in zip(events, appended, strict=True):
                if where.new:
                    self.decided[event.type] += 1
                    if event.type == "process.requested":
                        fresh_requests.add(event.id)
            # requests appended now are dispatched at once; one another node appended first is
            # dispatched once the follower folds it (its content is the log's, not ours)
            for decision in decisions.values():
                decision.dispatch = [*decision.dispatch, *(e.id for e in decision.events
                                                           if e.id in fresh_requests)]
        return decisions, new

    def _settled(self, decisions: dict[str, Decision]) -> None:
        for burst, decision in decisions.items():
            if decision.due is None:
                self._due.pop(burst, None)
            else:
                self._schedule(burst, decision.due)
            assert decision.burst is not None
            for request in decision.dispatch:
                self._dispatch(decision.burst, request)

    # -- the watchdog --------------------------------------------------------------------

    def _schedule(self, burst: str, when: str) -> None:
        if self._due.get(burst) == when:
            return
        self._due[burst] = when
        heapq.heappush(self._heap, (when, burst))
        self._wake.set()

    def _pop_due(self, now: str) -> list[str]:
        """The bursts due at ``now``, out of memory (the round schedules their next look)."""
        due: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            when, burst = heapq.heappop(self._heap)
            if self._due.get(burst) == when:
                del self._due[burst]
                due.append(burst)
        return due

    async def _watch(self) -> None:
        first = True
        while True:
            await self.follower.caught_up.wait()  # never judge a deadline on a stale view
            started = time.perf_counter()
            async with self._lock:
                bursts = list(self._due) if first else self._pop_due(self.clock())
            # In chunks, the lock let go between them: the first round after a start looks at
            # every open burst, and the follower must not wait for all of them.
            for at in range(0, len(bursts), ROUND_CHUNK):
                async with self._lock:
                    decisions, _ = await self._decide(bursts[at:at + ROUND_CHUNK])
                    due = {b: d.due for b, d in decisions.items()}
                    await self.state.transaction(functools.partial(store.save, records={}, due=due))
                    self._settled(decisions)
            if bursts:
                self.last_round = (len(bursts), time.perf_counter() - started)
            self.rounds += 1
            if first:
                self._heap = [(when, burst) for burst, when in self._due.items()]
                heapq.heapify(self._heap)
                first = False
            self._wake.clear()
            delay = MAX_SLEEP
            if self._heap:
                delay = min(MAX_SLEEP, max(0.0, _seconds_until(self._heap[0][0], self.clock())))
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancel that
                # lands as the wake-up arrives (a decision at the moment of a stop); the loop
                # then waited for ever on the stopped follower's caught_up, and so did run().
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    # -- dispatching ---------------------------------------------------------------------

    def _dispatch(self, burst: Burst, request: str) -> None:
        if request in self._inflight or request in self._answered:
            return
        payload = request_payload(burst, request)
        found = burst.attempt_of(request)
        if payload is None or found is None:
            return
        self._inflight.add(request)
        task = asyncio.create_task(self._send(payload, dict(found[0].target), burst), name=f"burstbus-dispatch-{request[:8]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, payload: dict[str, Any], target: dict[str, str], burst: Burst) -> None:
        request = str(payload["request_id"])
        try:
            async with self._slots:
                timeout = self.section.dispatch_timeout
                if "nats" in target:
                    outcome = await dispatch.by_nats(self.request(), target["nats"], payload, timeout)
                else:
                    assert self._session is not None
                    outcome = await dispatch.by_http(self._session, target.get("url", ""), payload, timeout)
            self.dispatches[outcome.outcome] += 1
            self._observe(payload, burst)
            [where] = await self.log.append([dispatch.dispatched_event(payload, target, outcome)])
            self._answered[request] = where.seq
            if outcome.outcome != "accepted":
                log.info("dispatch of %s (%s on %s) %s: %s", request[:8], payload.get("pipeline"), payload.get("burst_id"),
                         outcome.outcome, outcome.detail)
        except Exception as exc:  # not recorded: looked at again soon, and dispatched again (at least once)
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("dispatch of %s not recorded (%s); trying again in %g s", request[:8], self.last_error,
                        DISPATCH_RETRY)
            self._schedule(burst.burst_id, later(self.clock(), DISPATCH_RETRY))
        finally:
            self._inflight.discard(request)

    def _observe(self, payload: dict[str, Any], burst: Burst) -> None:
        """Data recorded → dispatch answered, for the bench and ``/metrics`` (first attempts only)."""
        if payload.get("attempt") != 1:
            return
        latest = max((burst.item(str(i["event_id"])) for i in payload.get("inputs") or ()
                      if burst.item(str(i["event_id"])) is not None), key=lambda d: d.seq if d else 0, default=None)
        if latest is not None:
            self.dispatch_seconds.observe(max(0.0, _seconds_until(self.clock(), latest.recorded_at)))

    async def _earlier(self, burst_id: str, before: int) -> list[RecordedEvent]:
        """The burst's followed events before seq ``before`` (none when it began while followed)."""
        records = await self.log.read(filter=ReadFilter.of(types=FOLLOWED, stream=burst_id))
        return [r for r in records if r.seq < before]

    # -- requests by hand ------------------------------------------------------------------

    async def adopt(self, burst_id: str) -> None:
        """Read a burst the orchestrator has not followed (older than its first start) from the
        log, so that a request by hand sees its data: its events are stored as if followed."""
        records = await self.log.read(filter=ReadFilter.of(types=FOLLOWED, stream=burst_id))
        position = self.follower.position or 0
        older = [r for r in records if r.seq <= position]
        if older:
            await self.state.transaction(lambda conn: store.save(conn, {burst_id: older}, {}))

    # -- health and metrics ----------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {**self.follower.health(), "up": not self.follower.retrying, "open_bursts": len(self._due),
                "dispatches_in_flight": len(self._inflight), "decided": dict(self.decided),
                "dispatches": dict(self.dispatches), "last_dispatch_error": self.last_error,
                "last_watch_round": {"bursts": self.last_round[0], "seconds": round(self.last_round[1], 4)}
                if self.last_round else None}

    def metrics(self) -> list[Family]:
        return [
            counter("burstbus_orchestrator_decisions_total", "Events the orchestrator decided and appended, by type",
                    [({"type": t}, n) for t, n in sorted(self.decided.items())]),
            counter("burstbus_orchestrator_dispatches_total", "Dispatches by outcome (accepted, unconfirmed, refused)",
                    [({"outcome": o}, n) for o, n in sorted(self.dispatches.items())]),
            gauge("burstbus_orchestrator_open_bursts", "Bursts with an attempt or a retry still open",
                  [({}, len(self._due))]),
            histogram("burstbus_orchestrator_dispatch_seconds",
                      "From the last input's recorded_at to the first attempt's dispatch answer", [({}, self.dispatch_seconds)]),
        ]


def _seconds_until(moment: str, now: str) -> float:
    return (parse_time(moment) - parse_time(now)).total_seconds()

