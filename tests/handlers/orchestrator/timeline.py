"""A burst's events in memory with a hand-driven clock, for the pure decision core's tests.

``Timeline.add`` records an event at the current time (as the log would: the next seq,
``recorded_at`` = now, an id already present is a no-op); ``settle`` asks the core, records
what it decided, and repeats until it decides nothing more — what the adapter does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from burstbus.events import Event, RecordedEvent, format_time
from burstbus.handlers.orchestrator.config import Pipeline, PipelinesSection
from burstbus.handlers.orchestrator.core import Decision, decide

BURST = "sb26112001"
START = datetime(2026, 11, 20, 3, 0, 0, tzinfo=UTC)


def pipeline(name: str, needs: tuple[str, ...], **options: Any) -> Pipeline:
    return Pipeline(name=name, needs=needs, nats_subject=f"svom.pipelines.{name}", **options)


class Timeline:
    def __init__(self, *pipelines: Pipeline):
        self.pipelines = PipelinesSection(tuple(pipelines))
        self.records: list[RecordedEvent] = []
        self.clock = START
        self.dispatched: list[str] = []

    @property
    def now(self) -> str:
        return format_time(self.clock)

    def wait(self, seconds: float) -> None:
        self.clock += timedelta(seconds=seconds)

    def add(self, event: Event) -> RecordedEvent | None:
        if any(r.id == event.id for r in self.records):
            return None
        record = RecordedEvent(len(self.records) + 1, event.id, event.type, event.stream, event.actor,
                               event.occurred_at, self.now, dict(event.data), "", "")
        self.records.append(record)
        return record

    def data(self, kind: str, obs_id: str | None = None, produced_by: str | None = None, n: int = 1) -> RecordedEvent:
        body: dict[str, Any] = {"burst_id": BURST, "kind": kind, "location": f"file:///data/{kind}/{n}"}
        if obs_id:
            body["obs_id"] = obs_id
        if produced_by:
            body["produced_by"] = produced_by
        record = self.add(Event("data.available", body, stream=BURST, actor="nats:burstbus.in.data"))
        assert record is not None
        return record

    def status(self, request_id: str | None, status: str, log: str | None = None, **ids: Any) -> None:
        body: dict[str, Any] = {"process": ids.pop("process", "ecl-loc"), "burst_id": BURST, "status": status, **ids}
        if request_id:
            body["request_id"] = request_id
        if log:
            body["log"] = log
        self.add(Event("process.status", body, stream=BURST, actor="nats:burstbus.in.process"))

    def decide(self) -> Decision:
        return decide(BURST, self.records, self.pipelines, self.now)

    def settle(self) -> list[RecordedEvent]:
        """Decide and record until nothing more is decided; what was recorded, in order."""
        added: list[RecordedEvent] = []
        for _ in range(20):
            decision = self.decide()
            self.dispatched += decision.dispatch
            if not decision.events:
                return added
            for event in decision.events:
                record = self.add(event)
                if record is not None:
                    added.append(record)
                    if event.type == "process.requested":
                        self.dispatched.append(event.id)
        raise AssertionError("the core keeps deciding")

    def accept(self, request_id: str) -> None:
        """The worker answered the dispatch."""
        self.add(Event("process.dispatched", {"request_id": request_id, "outcome": "accepted", "detail": "ACK"},
                       stream=BURST, actor="system:orchestrator",
                       id=f"dispatched-{request_id}"))

    def types(self, records: list[RecordedEvent]) -> list[str]:
        return [r.type + (f":{r.data['status']}" if r.type == "process.status" else "") for r in records]
