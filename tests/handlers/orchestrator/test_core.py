"""The orchestrator's decisions, without servers: a burst's events and the time in, events out."""

from __future__ import annotations

from burstbus.events import Event
from burstbus.handlers.orchestrator import ids
from burstbus.handlers.orchestrator.core import fold, request_payload
from tests.handlers.orchestrator.timeline import BURST, Timeline, pipeline

ECL = pipeline("ecl-loc", ("vhf.eclairs", "vhf.attitude"), produces=("Q1.TT_ECL",), timeout=60, max_attempts=3,
               backoff=10, parameters={"threshold": "6.5"})
SUMMARY = pipeline("summary", ("Q1.TT_ECL",), timeout=60)


def test_a_pipeline_starts_once_all_its_inputs_are_there_and_idles_before() -> None:
    t = Timeline(ECL)
    eclairs = t.data("vhf.eclairs")
    [idling] = t.settle()
    assert idling.type == "process.idling"
    assert idling.data["has"] == ["vhf.eclairs"] and idling.data["missing"] == ["vhf.attitude"]
    assert idling.data["run_id"] == ids.run_id("ecl-loc", BURST, None)
    assert t.settle() == []  # decided once
    t.wait(5)
    attitude = t.data("vhf.attitude")
    [requested] = t.settle()
    assert requested.type == "process.requested"
    assert requested.id == requested.data["request_id"] == ids.request_id(ids.run_id("ecl-loc", BURST, None), 1)
    assert [i["event_id"] for i in requested.data["inputs"]] == [eclairs.id, attitude.id]
    assert requested.data["attempt"] == 1 and requested.data["parameters"] == {"threshold": "6.5"}
    assert requested.data["dispatch"] == {"nats": "svom.pipelines.ecl-loc"}
    assert requested.occurred_at == attitude.recorded_at  # when it became true, not when decided
    assert requested.actor == "system:orchestrator"
    # in the log, not yet dispatched: the core asks for the dispatch (again after a restart)
    assert t.decide().dispatch == [requested.id]
    t.data("vhf.eclairs", n=2)  # later data of the same kind: the run is decided, nothing new
    assert t.settle() == []


def test_any_starts_on_the_first_kind_and_observation_scope_runs_per_observation() -> None:
    mxt = pipeline("mxt-loc", ("vhf.mxt", "xband.mxt"), mode="any", scope="observation")
    t = Timeline(mxt)
    t.data("vhf.mxt")  # no obs id: a per-observation pipeline cannot place it
    assert t.settle() == []
    t.data("vhf.mxt", obs_id="01")
    t.data("xband.mxt", obs_id="02")
    t.data("xband.mxt", obs_id="01", n=2)
    requested = t.settle()
    assert [(r.type, r.data["obs_id"]) for r in requested] == [("process.requested", "01"), ("process.requested", "02")]
    assert requested[0].data["run_id"] == ids.run_id("mxt-loc", BURST, "01")


def test_a_product_starts_the_next_stage() -> None:
    t = Timeline(ECL, SUMMARY)
    t.data("vhf.eclairs")
    t.data("vhf.attitude")
    [_, requested] = t.settle()
    t.accept(requested.id)
    t.status(requested.id, "running")
    product = t.data("Q1.TT_ECL", produced_by=requested.id)
    t.status(requested.id, "complete")
    [downstream] = t.settle()
    assert downstream.data["pipeline"] == "summary"
    assert downstream.data["inputs"] == [{"event_id": product.id, "kind": "Q1.TT_ECL"}]
    payload = request_payload(fold(BURST, t.records), downstream.id)
    assert payload is not None and payload["inputs"][0]["produced_by"] == requested.id
    assert payload["request_id"] == downstream.id and payload["burst_id"] == BURST


def test_the_same_decisions_whatever_the_batches() -> None:
    """Deciding after every event, or once at the end, records the same events."""
    step = Timeline(ECL, SUMMARY)
    at_once = Timeline(ECL, SUMMARY)
    events = [Event("data.available", {"burst_id": BURST, "kind": kind, "location": f"file:///{n}"}, stream=BURST)
              for n, kind in enumerate(["vhf.eclairs", "vhf.eclairs", "vhf.attitude"])]
    for event in events:
        at_once.add(event)
        step.add(event)
        step.settle()
    decided = at_once.decide().events
    logged = [r for r in step.records if r.actor == "system:orchestrator"]
    assert [(e.id, e.type, dict(e.data), e.occurred_at) for e in decided] == \
           [(r.id, r.type, dict(r.data), r.occurred_at) for r in logged]
    assert [e.type for e in decided] == ["process.idling", "process.requested"]
    assert len(decided[1].data["inputs"]) == 3


def test_a_silent_attempt_vanishes_at_its_deadline_is_retried_with_backoff_then_given_up() -> None:
    t = Timeline(ECL)
    t.data("vhf.eclairs")
    t.data("vhf.attitude")
    [_, first] = t.settle()
    t.accept(first.id)
    t.wait(30)
    t.status(first.id, "running")  # a sign of life: the deadline moves
    running_at = t.now
    t.wait(59)
    decision = t.decide()
    assert decision.events == [] and decision.due is not None and decision.due > t.now
    t.wait(2)
    vanished, retry = t.settle()
    assert (vanished.type, vanished.data["status"], vanished.id) == ("process.status", "vanished", ids.vanished_id(first.id))
    assert vanished.data["deadline"] == vanished.occurred_at > running_at
    assert retry.type == "process.retry_requested" and retry.data["attempt"] == 2
    assert "attempt 1 vanished" in retry.data["reason"]
    assert t.decide().due == retry.data["not_before"]  # backoff 10 s: not yet
    t.wait(10)
    [second] = t.settle()
    assert second.type == "process.requested" and second.data["attempt"] == 2
    assert second.data["inputs"] == first.data["inputs"] and second.data["reason"].startswith("retry: attempt 1 vanished")
    t.accept(second.id)
    t.status(second.id, "failed", log="reading\nIOError: no attitude file\n")
    [retry2] = t.settle()
    assert retry2.data["attempt"] == 3 and "IOError: no attitude file" in retry2.data["reason"]
    t.wait(19)
    assert t.settle() == []  # the second backoff is 20 s
    t.wait(1)
    [third] = t.settle()
    t.accept(third.id)
    t.status(third.id, "failed", log="IOError again")
    [gave_up] = t.settle()
    assert gave_up.type == "process.gave_up" and gave_up.data["attempts"] == 3
    assert gave_up.data["reason"] == "attempt 3 of 3 failed: IOError again"
    t.wait(3600)
    assert t.settle() == [] and t.decide().due is None


def test_a_status_later_than_the_timeout_is_too_late() -> None:
    t = Timeline(ECL)
    t.data("vhf.eclairs")
    t.data("vhf.attitude")
    [_, first] = t.settle()
    t.accept(first.id)
    t.wait(120)  # burstbus was down: nothing decided meanwhile
    t.status(first.id, "complete")  # recorded 120 s after the last sign of life
    vanished, retry, second = t.settle()  # the backoff is over too: the second attempt at once
    assert vanished.data["status"] == "vanished" and retry.data["attempt"] == 2 and second.data["attempt"] == 2
    assert vanished.data["deadline"] == "2026-11-20T03:01:00.000000Z"  # the dispatch answer + 60 s, not now
    assert fold(BURST, t.records).runs[first.data["run_id"]].attempts[0].late == 1


def test_a_refused_dispatch_is_a_failed_attempt() -> None:
    t = Timeline(ECL)
    t.data("vhf.eclairs")
    t.data("vhf.attitude")
    [_, first] = t.settle()
    t.add(Event("process.dispatched", {"request_id": first.id, "outcome": "refused", "detail": "no responders"},
                stream=BURST, actor="system:orchestrator"))
    [retry] = t.settle()
    assert retry.data["reason"] == "attempt 1 failed: dispatch refused: no responders"


def test_a_request_by_hand_is_a_run_of_its_own_with_what_changed() -> None:
    t = Timeline(ECL)
    asked = t.add(Event("process.asked", {"pipeline": "ECL-LOC", "burst_id": BURST, "parameters": {"threshold": "5"},
                                          "requested_by": "xmpp:alice@fsc.example"}, stream=BURST,
                        actor="xmpp:alice@fsc.example"))
    assert asked is not None
    [idling] = t.settle()
    assert idling.type == "process.idling" and idling.data["missing"] == ["vhf.eclairs", "vhf.attitude"]
    t.data("vhf.eclairs")
    t.data("vhf.attitude")
    events = t.settle()
    manual = next(e for e in events if e.type == "process.requested" and e.data["asked_id"] == asked.id)
    assert manual.data["run_id"] == ids.asked_run_id(asked.id) != ids.run_id("ecl-loc", BURST, None)
    assert manual.data["parameters"] == {"threshold": "5"} and manual.data["changed"] == {"threshold": "5"}
    assert manual.data["requested_by"] == "xmpp:alice@fsc.example"
    assert any(e.data["run_id"] == ids.run_id("ecl-loc", BURST, None) for e in events if e.type == "process.requested")


def test_an_operator_retry_after_giving_up_is_honoured() -> None:
    t = Timeline(pipeline("quick", ("vhf.eclairs",), max_attempts=1, timeout=60))
    t.data("vhf.eclairs")
    [first] = t.settle()
    t.accept(first.id)
    t.status(first.id, "failed", log="disk full")
    [gave_up] = t.settle()
    assert gave_up.type == "process.gave_up"
    t.add(Event("process.retry_requested", {"run_id": first.data["run_id"], "burst_id": BURST, "attempt": 2,
                                            "reason": "disk cleaned"}, stream=BURST, actor="xmpp:bob@fsc.example"))
    [second] = t.settle()
    assert second.data["attempt"] == 2 and second.data["reason"] == "retry: disk cleaned"


def test_a_status_without_request_id_finds_the_newest_run_of_its_process() -> None:
    t = Timeline(pipeline("ecl-loc", ("vhf.eclairs",), timeout=60))
    t.data("vhf.eclairs")
    [first] = t.settle()
    t.status(None, "complete", pipeline="ecl-loc")
    assert t.settle() == [] and t.decide().due is None  # complete: nothing more to watch
