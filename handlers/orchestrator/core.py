"""The orchestrator's decisions: a burst's events and the time in, the next events out (pure).

Like the ingest's examination, this module does no I/O and reads no clock: :func:`decide`
takes the burst's events in log order, the configured pipelines and ``now``, and returns
the events the log does not hold yet, the attempts to hand to their workers, and when to
look at the burst again. The adapter (:mod:`.node`) appends, dispatches and keeps time.

What it decides, each under a derived id (:mod:`.ids`) so that any node, redoing any batch,
decides once:

* **start** — at the position of each ``data.available``, each pipeline that needs its kind
  whose run for that scope (the burst, or the observation) does not exist: all its kinds
  present (``mode = "all"``) or one (``"any"``) → ``process.requested`` attempt 1, with the
  exact inputs (every item of the needed kinds in scope, up to that position), the default
  parameters and the limits in force; some of them only → ``process.idling`` (what it has,
  what it lacks). Decided at the data's position, so batch boundaries change nothing. A
  request by hand (``process.asked``) is a run of its own, decided the same way at its
  position (and again at each later data item while it waits).
* **vanish** — an attempt with no sign of life within its timeout: ``process.status``
  ``vanished`` once ``now`` is past the deadline (its time: the deadline, from the log).
* **retry** — a failed or vanished attempt below the run's ``max_attempts``:
  ``process.retry_requested`` (why, and ``not_before`` = the end + backoff × 2ⁿ⁻¹), then at
  ``not_before`` the next ``process.requested`` (same inputs and parameters). At the limit:
  ``process.gave_up`` with the last reason. An operator's ``process.retry_requested`` for the
  next attempt is honoured the same way, past the limit too.
* **dispatch** — every attempt in the log with no ``process.dispatched`` and not ended.

Event times are the log's, never ``now``: a request's ``occurred_at`` is its data's
``recorded_at``, a vanishing's the deadline, a retry's its ``not_before``. So two nodes write
the same events byte for byte, and a replay shows when each thing became true.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from burstbus.catalogue import (
    DATA_AVAILABLE,
    PROCESS_ASKED,
    PROCESS_GAVE_UP,
    PROCESS_IDLING,
    PROCESS_REQUESTED,
    PROCESS_RETRY_REQUESTED,
    PROCESS_STATUS,
)
from burstbus.events import Event, RecordedEvent

from . import ids
from .config import Pipeline, PipelinesSection
from .runs import SYSTEM_ACTOR, Ask, Attempt, Burst, DataItem, Run, later


@dataclass
class Decision:
    """What :func:`decide` found: ``events`` to append (in order), the request ids of attempts
    to ``dispatch``, when the burst next needs a look (``due``), and the fold itself."""

    events: list[Event] = field(default_factory=list)
    dispatch: list[str] = field(default_factory=list)
    due: str | None = None
    burst: Burst | None = None

    def wake(self, moment: str) -> None:
        if self.due is None or moment < self.due:
            self.due = moment


class _Deciding:
    """One call of :func:`decide`: the fold so far and what it proposes."""

    def __init__(self, burst_id: str, pipelines: PipelinesSection, logged: set[str]):
        self.state = Burst(burst_id)
        self.pipelines = pipelines
        self.logged = logged
        self.decision = Decision(burst=self.state)

    def propose(self, event: Event, seq: int, at: str) -> None:
        """Add a decision the log does not hold, and fold it as if it were there."""
        if event.id in self.logged or event.id in self.state.ids:
            return
        self.decision.events.append(event)
        self.state.apply(_as_record(event, seq, at), proposed=True)

    # -- starts ------------------------------------------------------------------------

    def inputs(self, pipeline: Pipeline, obs_id: str | None) -> tuple[list[DataItem], list[str]]:
        """The items of the needed kinds in scope, and the needed kinds they cover (in order)."""
        items = [d for d in self.state.data if d.kind in pipeline.needs and (obs_id is None or d.obs_id == obs_id)]
        present = [k for k in pipeline.needs if any(d.kind == k for d in items)]
        return items, present

    def consider(self, pipeline: Pipeline, run: str, obs_id: str | None, seq: int, at: str,
                 ask: Ask | None = None) -> None:
        """Start ``run`` if its inputs are there, else say what it waits for."""
        if run in self.state.runs:
            return
        items, present = self.inputs(pipeline, obs_id)
        ready = len(present) == len(pipeline.needs) if pipeline.mode == "all" else bool(present)
        if ready:
            self.propose(_requested(pipeline, self.state.burst_id, run, obs_id, items, ask, at), seq, at)
        elif present or ask is not None:
            missing = [k for k in pipeline.needs if k not in present]
            self.propose(_idling(pipeline, self.state.burst_id, run, obs_id, items, present, missing, ask, at), seq, at)

    def on_data(self, record: RecordedEvent) -> None:
        kind = record.data.get("kind")
        obs = record.data.get("obs_id")
        obs_id = str(obs) if obs not in (None, "") else None
        for pipeline in self.pipelines.pipelines:
            if kind not in pipeline.needs:
                continue
            if pipeline.scope == "observation":
                if obs_id is None:
                    continue  # a per-observation pipeline cannot place data without an obs id
                self.consider(pipeline, ids.run_id(pipeline.name, self.state.burst_id, obs_id), obs_id,
                              record.seq, record.recorded_at)
            else:
                self.consider(pipeline, ids.run_id(pipeline.name, self.state.burst_id, None), None,
                              record.seq, record.recorded_at)
        for ask in self.state.asks:
            asked = self.pipelines.pipeline(ask.pipeline)
            if asked is not None and kind in asked.needs and (ask.obs_id is None or ask.obs_id == obs_id):
                self.consider(asked, ids.asked_run_id(ask.event_id), ask.obs_id, record.seq, record.recorded_at, ask)

    def on_ask(self, record: RecordedEvent) -> None:
        ask = next((a for a in self.state.asks if a.event_id == record.id), None)
        pipeline = self.pipelines.pipeline(ask.pipeline) if ask is not None else None
        if ask is None or pipeline is None:
            return  # a pipeline no longer configured: the asker was told it existed; nothing to run
        self.consider(pipeline, ids.asked_run_id(ask.event_id), ask.obs_id, record.seq, record.recorded_at, ask)

    # -- attempts ------------------------------------------------------------------------

    def watch(self, run: Run, now: str) -> None:
        """Vanish, retry, give up or dispatch the run's latest attempt."""
        attempt = run.latest
        if attempt.proposed:
            return  # its clock starts when it is in the log; the adapter dispatches it after the append
        if attempt.vanished_unrecorded:
            self.propose(_vanished(run, attempt, attempt.ended_at or run.deadline(attempt)), 0, attempt.ended_at or "")
        if not attempt.ended:
            deadline = run.deadline(attempt)
            if now < deadline:
                self.decision.wake(deadline)
                if attempt.dispatched is None:
                    self.decision.dispatch.append(attempt.request_id)
                return
            self.propose(_vanished(run, attempt, deadline), 0, deadline)
        if attempt.status == "complete" or attempt.ended_at is None:
            return
        following = attempt.number + 1
        retry = run.retries.get(following)
        if retry is None:
            if attempt.number < run.max_attempts:
                not_before = later(attempt.ended_at, run.backoff * 2 ** (attempt.number - 1))
                self.propose(_retry(run, attempt, following, not_before), 0, attempt.ended_at)
                retry = run.retries.get(following)
            elif run.gave_up is None:
                self.propose(_gave_up(run, attempt), 0, attempt.ended_at)
        if retry is None:
            return
        if now < retry.not_before:
            self.decision.wake(retry.not_before)
            return
        self.propose(_next_attempt(run, retry), 0, retry.not_before)


def decide(burst_id: str, records: Sequence[RecordedEvent], pipelines: PipelinesSection, now: str) -> Decision:
    """The decisions the burst's ``records`` (its followed events, in log order) call for at
    ``now`` that the log does not hold yet (see the module doc)."""
    ordered = sorted(records, key=lambda r: r.seq)
    deciding = _Deciding(burst_id, pipelines, {r.id for r in ordered})
    for record in ordered:
        deciding.state.apply(record)
        if record.type == DATA_AVAILABLE:
            deciding.on_data(record)
        elif record.type == PROCESS_ASKED:
            deciding.on_ask(record)
    for run in list(deciding.state.runs.values()):
        deciding.watch(run, now)
    return deciding.decision


def fold(burst_id: str, records: Iterable[RecordedEvent]) -> Burst:
    """The burst as its events say, with no decision added (provenance, tools)."""
    state = Burst(burst_id)
    for record in sorted(records, key=lambda r: r.seq):
        state.apply(record)
    return state


# -- the events --------------------------------------------------------------------------


def _as_record(event: Event, seq: int, at: str) -> RecordedEvent:
    return RecordedEvent(seq, event.id, event.type, event.stream, event.actor, event.occurred_at, at or event.occurred_at,
                         event.data, "", "")


def _scope(pipeline: Pipeline | Run, burst_id: str, run: str, obs_id: str | None) -> dict[str, Any]:
    name = pipeline.name if isinstance(pipeline, Pipeline) else pipeline.pipeline
    process = pipeline.process_name if isinstance(pipeline, Pipeline) else pipeline.process
    return {"run_id": run, "pipeline": name, "process": process, "burst_id": burst_id, "obs_id": obs_id, "pass_id": None}


def _inputs(items: Iterable[DataItem]) -> list[dict[str, str]]:
    return [{"event_id": d.event_id, "kind": d.kind} for d in items]


def _requested(pipeline: Pipeline, burst_id: str, run: str, obs_id: str | None, items: Sequence[DataItem],
               ask: Ask | None, at: str) -> Event:
    parameters: dict[str, Any] = dict(pipeline.parameters)
    changed: dict[str, Any] = {}
    if ask is not None:
        changed = {k: v for k, v in ask.parameters.items() if parameters.get(k) != v}
        parameters.update(ask.parameters)
    request = ids.request_id(run, 1)
    data = {
        **_scope(pipeline, burst_id, run, obs_id), "request_id": request, "attempt": 1,
        "max_attempts": pipeline.max_attempts, "timeout": pipeline.timeout, "backoff": pipeline.backoff,
        "inputs": _inputs(items), "parameters": parameters, "dispatch": pipeline.target,
        "produces": list(pipeline.produces),
        "reason": f"asked by {ask.requested_by}" if ask is not None else "inputs ready",
        "requested_by": ask.requested_by if ask is not None else None,
        "asked_id": ask.event_id if ask is not None else None, "changed": changed,
    }
    return Event(PROCESS_REQUESTED, data, stream=burst_id, actor=SYSTEM_ACTOR, id=request, occurred_at=at)


def _idling(pipeline: Pipeline, burst_id: str, run: str, obs_id: str | None, items: Sequence[DataItem],
            present: Sequence[str], missing: Sequence[str], ask: Ask | None, at: str) -> Event:
    data = {
        **_scope(pipeline, burst_id, run, obs_id), "has": list(present), "missing": list(missing),
        "inputs": _inputs(items), "reason": f"waiting for {', '.join(missing)}",
        "requested_by": ask.requested_by if ask is not None else None,
        "asked_id": ask.event_id if ask is not None else None,
    }
    return Event(PROCESS_IDLING, data, stream=burst_id, actor=SYSTEM_ACTOR, id=ids.idling_id(run, present), occurred_at=at)


def _about(run: Run, attempt: Attempt) -> dict[str, Any]:
    return {**_scope(run, run.burst_id, run.run_id, run.obs_id), "pass_id": run.pass_id,
            "request_id": attempt.request_id, "attempt": attempt.number}


def _vanished(run: Run, attempt: Attempt, deadline: str) -> Event:
    data = {**_about(run, attempt), "status": "vanished", "deadline": deadline,
            "log": f"no sign of life for {run.timeout:g} s after {attempt.last_seen}"}
    return Event(PROCESS_STATUS, data, stream=run.burst_id, actor=SYSTEM_ACTOR, id=ids.vanished_id(attempt.request_id),
                 occurred_at=deadline)


def _retry(run: Run, attempt: Attempt, following: int, not_before: str) -> Event:
    data = {**_about(run, attempt), "attempt": following, "previous_request_id": attempt.request_id,
            "max_attempts": run.max_attempts, "not_before": not_before,
            "reason": f"attempt {attempt.number} {attempt.status}: {attempt.reason or attempt.status}"}
    return Event(PROCESS_RETRY_REQUESTED, data, stream=run.burst_id, actor=SYSTEM_ACTOR,
                 id=ids.retry_id(run.run_id, following), occurred_at=attempt.ended_at or not_before)


def _gave_up(run: Run, attempt: Attempt) -> Event:
    data = {**_about(run, attempt), "attempts": attempt.number, "max_attempts": run.max_attempts,
            "status": attempt.status,
            "reason": f"attempt {attempt.number} of {run.max_attempts} {attempt.status}: {attempt.reason or attempt.status}"}
    return Event(PROCESS_GAVE_UP, data, stream=run.burst_id, actor=SYSTEM_ACTOR, id=ids.gave_up_id(run.run_id),
                 occurred_at=attempt.ended_at or "")


def _next_attempt(run: Run, retry: Any) -> Event:
    request = ids.request_id(run.run_id, retry.attempt)
    data = {
        **_scope(run, run.burst_id, run.run_id, run.obs_id), "pass_id": run.pass_id, "request_id": request,
        "attempt": retry.attempt, "max_attempts": run.max_attempts, "timeout": run.timeout, "backoff": run.backoff,
        "inputs": [{"event_id": i, "kind": run.input_kinds.get(i, "")} for i in run.inputs], "parameters": run.parameters,
        "dispatch": run.target, "produces": list(run.produces), "reason": f"retry: {retry.reason}",
        "requested_by": run.requested_by, "asked_id": run.asked_id, "changed": run.changed,
    }
    return Event(PROCESS_REQUESTED, data, stream=run.burst_id, actor=SYSTEM_ACTOR, id=request, occurred_at=retry.not_before)


def request_payload(burst: Burst, request: str) -> dict[str, Any] | None:
    """What the worker is sent for an attempt (NATS request body, HTTP POST body), or None
    when the burst has no such attempt. ``request_id`` is the idempotency key: a worker
    that gets it twice (dispatch is at least once) does the work once."""
    found = burst.attempt_of(request)
    if found is None:
        return None
    run, attempt = found
    inputs = []
    for event_id in run.inputs:
        item = burst.item(event_id)
        inputs.append(item.describe() if item is not None else {"event_id": event_id})
    return {
        "request_id": attempt.request_id, "run_id": run.run_id, "attempt": attempt.number,
        "max_attempts": run.max_attempts, "pipeline": run.pipeline, "process": run.process,
        "burst_id": run.burst_id, "obs_id": run.obs_id, "pass_id": run.pass_id, "parameters": run.parameters,
        "inputs": inputs, "produces": list(run.produces), "timeout": run.timeout,
        "requested_by": run.requested_by,
    }


def targets(events: Iterable[Event]) -> list[str]:
    """The request ids of the ``process.requested`` among ``events`` (to dispatch once appended)."""
    return [e.id for e in events if e.type == PROCESS_REQUESTED]


def summary(data: Mapping[str, Any]) -> str:
    """A short description of a run for log lines."""
    return f"{data.get('pipeline')} on {data.get('burst_id')}" + (f" obs {data['obs_id']}" if data.get("obs_id") else "")
