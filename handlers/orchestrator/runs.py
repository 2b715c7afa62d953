"""A burst as the orchestrator knows it: its data and its runs, folded from its events (pure).

Why a fold of the log and nothing else: the decisions (:mod:`.core`) must come out the same
on every node and after every restart, so the state they read is a function of the burst's
events in log order. Times are the log's (``recorded_at``): an attempt's *last sign of life*
is when its request, its dispatch answer or its latest status was recorded.

**An attempt vanishes** when no sign of life is recorded within its run's ``timeout`` of the
previous one. A status recorded later than that is *late*: the attempt had already vanished
(the log says so even before the orchestrator's ``vanished`` event is in it), so every node,
looking at any moment, folds the same attempt the same way. A late status is kept in the
log and counted, never acted on.

Which attempt a status is about: its ``request_id`` (what the dispatch gave the worker);
without one, the newest run with the same (process, burst, obs, pass) — what pipelines that
predate the orchestrator send.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from burstbus.catalogue import (
    DATA_AVAILABLE,
    PROCESS_ASKED,
    PROCESS_DISPATCHED,
    PROCESS_GAVE_UP,
    PROCESS_IDLING,
    PROCESS_REQUESTED,
    PROCESS_RETRY_REQUESTED,
    PROCESS_STATUS,
)
from burstbus.events import RecordedEvent, format_time, parse_time
from burstbus.store.projections.processes import last_line

#: The actor of every decision the orchestrator records.
SYSTEM_ACTOR = "system:orchestrator"
#: Statuses that end an attempt.
FINAL = ("complete", "failed", "vanished")
#: Every type the orchestrator reads.
FOLLOWED = (DATA_AVAILABLE, PROCESS_ASKED, PROCESS_REQUESTED, PROCESS_DISPATCHED, PROCESS_STATUS,
            PROCESS_RETRY_REQUESTED, PROCESS_GAVE_UP, PROCESS_IDLING)


def later(moment: str, seconds: float) -> str:
    """``moment`` plus ``seconds``, in the log's time format."""
    return format_time(parse_time(moment) + timedelta(seconds=seconds))


def burst_of(record: RecordedEvent) -> str:
    """The burst a followed record is about ("" when none)."""
    return str(record.data.get("burst_id") or record.stream or "")


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


@dataclass(frozen=True, slots=True)
class DataItem:
    """One ``data.available``."""

    event_id: str
    seq: int
    kind: str
    obs_id: str | None
    pass_id: str | None
    location: str
    size: int | None
    checksum: str | None
    produced_by: str | None
    version: str | None
    recorded_at: str
    actor: str

    def describe(self) -> dict[str, Any]:
        """What a worker is told about an input."""
        return {"event_id": self.event_id, "kind": self.kind, "location": self.location, "size": self.size,
                "checksum": self.checksum, "obs_id": self.obs_id, "pass_id": self.pass_id,
                "produced_by": self.produced_by}


@dataclass(slots=True)
class Attempt:
    """One ``process.requested`` and what followed it."""

    number: int
    request_id: str
    requested_at: str
    last_seen: str
    #: Not in the log yet: decided in this call, its clock not started.
    proposed: bool = False
    #: ``accepted``, ``unconfirmed``, ``refused`` (``process.dispatched``), or None.
    dispatched: str | None = None
    status: str = "queued"
    ended_at: str | None = None
    reason: str | None = None
    version: str | None = None
    late: int = 0
    #: Vanished by the fold's rule (a late sign of life), not yet by an event in the log.
    vanished_unrecorded: bool = False

    @property
    def ended(self) -> bool:
        return self.ended_at is not None


@dataclass(slots=True)
class Retry:
    """A decision (the orchestrator's, or an operator's) to run ``attempt``."""

    attempt: int
    not_before: str
    reason: str


@dataclass(slots=True)
class Run:
    """A pipeline's run for a burst (or an observation): its inputs, parameters and attempts."""

    run_id: str
    pipeline: str
    process: str
    burst_id: str
    obs_id: str | None
    pass_id: str | None
    inputs: tuple[str, ...]
    parameters: dict[str, Any]
    timeout: float
    max_attempts: int
    backoff: float
    target: dict[str, str]
    produces: tuple[str, ...]
    requested_by: str | None
    asked_id: str | None
    changed: dict[str, Any]
    #: Input event id → its kind (as ``process.requested`` lists them).
    input_kinds: dict[str, str] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    retries: dict[int, Retry] = field(default_factory=dict)
    gave_up: str | None = None

    @property
    def latest(self) -> Attempt:
        return self.attempts[-1]

    @property
    def key(self) -> tuple[str, str, str | None, str | None]:
        return (self.process, self.burst_id, self.obs_id, self.pass_id)

    def attempt(self, number: int) -> Attempt | None:
        return next((a for a in self.attempts if a.number == number), None)

    def deadline(self, attempt: Attempt) -> str:
        return later(attempt.last_seen, self.timeout)

    @staticmethod
    def of(data: Mapping[str, Any]) -> Run:
        listed = [i for i in data.get("inputs") or () if isinstance(i, Mapping)]
        inputs = tuple(str(i.get("event_id")) for i in listed)
        return Run(
            run_id=str(data["run_id"]), pipeline=str(data.get("pipeline") or ""), process=str(data.get("process") or ""),
            burst_id=str(data.get("burst_id") or ""), obs_id=_text(data.get("obs_id")), pass_id=_text(data.get("pass_id")),
            inputs=inputs, parameters=dict(data.get("parameters") or {}), timeout=float(data.get("timeout") or 600.0),
            max_attempts=int(data.get("max_attempts") or 1), backoff=float(data.get("backoff") or 0.0),
            target=dict(data.get("dispatch") or {}), produces=tuple(data.get("produces") or ()),
            requested_by=_text(data.get("requested_by")), asked_id=_text(data.get("asked_id")),
            changed=dict(data.get("changed") or {}),
            input_kinds={str(i.get("event_id")): str(i.get("kind") or "") for i in listed},
        )


@dataclass(frozen=True, slots=True)
class Ask:
    """One ``process.asked``: a person's request for a run by hand."""

    event_id: str
    seq: int
    recorded_at: str
    actor: str
    pipeline: str
    obs_id: str | None
    parameters: dict[str, str]
    requested_by: str


@dataclass
class Burst:
    """One burst's data, runs and requests by hand, folded in log order (:meth:`apply`)."""

    burst_id: str
    data: list[DataItem] = field(default_factory=list)
    runs: dict[str, Run] = field(default_factory=dict)
    asks: list[Ask] = field(default_factory=list)
    #: Runs waiting for part of their inputs (``process.idling``, the latest per run), until requested.
    idling: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Every event id folded: the decisions the log already holds.
    ids: set[str] = field(default_factory=set)
    _requests: dict[str, tuple[str, int]] = field(default_factory=dict)
    _by_key: dict[tuple[str, str, str | None, str | None], str] = field(default_factory=dict)

    def item(self, event_id: str) -> DataItem | None:
        return next((d for d in self.data if d.event_id == event_id), None)

    def attempt_of(self, request: str) -> tuple[Run, Attempt] | None:
        found = self._requests.get(request)
        if found is None:
            return None
        run = self.runs[found[0]]
        attempt = run.attempt(found[1])
        return None if attempt is None else (run, attempt)

    def run_of(self, data: Mapping[str, Any]) -> Run | None:
        """The run an event is about: its ``run_id``, else the newest run with its key."""
        run = self.runs.get(str(data.get("run_id") or ""))
        if run is not None:
            return run
        key = (str(data.get("process") or ""), self.burst_id, _text(data.get("obs_id")), _text(data.get("pass_id")))
        found = self._by_key.get(key)
        return None if found is None else self.runs[found]

    def apply(self, record: RecordedEvent, *, proposed: bool = False) -> None:
        """Fold one event (in log order); what it cannot use changes nothing."""
        self.ids.add(record.id)
        data = record.data
        try:
            if record.type == DATA_AVAILABLE:
                self._data(record)
            elif record.type == PROCESS_ASKED:
                self.asks.append(Ask(record.id, record.seq, record.recorded_at, record.actor, str(data["pipeline"]),
                                     _text(data.get("obs_id")), dict(data.get("parameters") or {}),
                                     str(data.get("requested_by") or record.actor)))
            elif record.type == PROCESS_REQUESTED:
                self._requested(record, proposed)
            elif record.type == PROCESS_DISPATCHED:
                self._dispatched(record)
            elif record.type == PROCESS_STATUS:
                self._status(record)
            elif record.type == PROCESS_RETRY_REQUESTED:
                self._retry(record)
            elif record.type == PROCESS_IDLING:
                if str(data["run_id"]) not in self.runs:
                    self.idling[str(data["run_id"])] = data
            elif record.type == PROCESS_GAVE_UP:
                run = self.runs.get(str(data.get("run_id") or ""))
                if run is not None and run.gave_up is None:
                    run.gave_up = str(data.get("reason") or "gave up")
        except (KeyError, TypeError, ValueError):
            return  # an event of odd shape (written by hand, an older version): nothing to fold

    def _data(self, record: RecordedEvent) -> None:
        d = record.data
        kind, location = d.get("kind"), d.get("location")
        if not isinstance(kind, str) or not isinstance(location, str):
            return
        size = d.get("size")
        self.data.append(DataItem(
            record.id, record.seq, kind, _text(d.get("obs_id")), _text(d.get("pass_id")), location,
            size if isinstance(size, int) and not isinstance(size, bool) else None, _text(d.get("checksum")),
            _text(d.get("produced_by")), _text(d.get("version")), record.recorded_at, record.actor,
        ))

    def _requested(self, record: RecordedEvent, proposed: bool) -> None:
        d = record.data
        run = self.runs.get(str(d["run_id"]))
        if run is None:
            run = Run.of(d)
            self.runs[run.run_id] = run
            self._by_key[run.key] = run.run_id
            self.idling.pop(run.run_id, None)
        number = int(d["attempt"])
        if run.attempt(number) is not None:
            return
        run.attempts.append(Attempt(number, record.id, record.recorded_at, record.recorded_at, proposed=proposed))
        run.attempts.sort(key=lambda a: a.number)
        self._requests[record.id] = (run.run_id, number)

    def _alive(self, run: Run, attempt: Attempt, at: str) -> bool:
        """A sign of life recorded ``at``: on time (the attempt goes on), or late (it had vanished)."""
        if attempt.ended:
            attempt.late += 1
            return False
        deadline = run.deadline(attempt)
        if at > deadline:
            attempt.status, attempt.ended_at = "vanished", deadline
            attempt.reason = f"no sign of life for {run.timeout:g} s after {attempt.last_seen}"
            attempt.vanished_unrecorded = True
            attempt.late += 1
            return False
        attempt.last_seen = max(attempt.last_seen, at)
        return True

    def _dispatched(self, record: RecordedEvent) -> None:
        d = record.data
        found = self.attempt_of(str(d["request_id"]))
        if found is None or found[1].dispatched is not None:
            return
        run, attempt = found
        if not self._alive(run, attempt, record.recorded_at):
            return
        attempt.dispatched = str(d.get("outcome") or "accepted")
        if attempt.dispatched == "refused":
            attempt.status, attempt.ended_at = "failed", record.recorded_at
            attempt.reason = f"dispatch refused: {d.get('detail') or 'no reason given'}"

    def _status(self, record: RecordedEvent) -> None:
        d = record.data
        request = _text(d.get("request_id"))
        if request is not None:
            found = self.attempt_of(request)
        else:
            run = self.run_of(d)
            found = (run, run.latest) if run is not None and run.attempts else None
        if found is None:
            return  # a run the orchestrator did not start
        run, attempt = found
        status = str(d.get("status") or "")
        if record.actor == SYSTEM_ACTOR and status == "vanished":
            if attempt.vanished_unrecorded:
                attempt.vanished_unrecorded = False
            elif not attempt.ended:
                attempt.status, attempt.ended_at = "vanished", str(d.get("deadline") or record.recorded_at)
                attempt.reason = last_line(d.get("log")) or "vanished"
            return
        if not self._alive(run, attempt, record.recorded_at):
            return
        if d.get("version"):
            attempt.version = str(d["version"])
        attempt.status = status if status in (*FINAL, "running") else attempt.status
        if status in FINAL:
            attempt.ended_at = record.recorded_at
            attempt.reason = last_line(d.get("log")) or status

    def _retry(self, record: RecordedEvent) -> None:
        d = record.data
        run = self.run_of(d)
        if run is None or not run.attempts:
            return
        number = int(d.get("attempt") or run.latest.number + 1)
        if number in run.retries or run.attempt(number) is not None:
            return
        run.retries[number] = Retry(number, str(d.get("not_before") or record.recorded_at),
                                    str(d.get("reason") or f"asked by {record.actor}"))
