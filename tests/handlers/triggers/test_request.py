"""A request folded from its events: the first decision wins, whatever comes after."""

from __future__ import annotations

from typing import Any

from burstbus.catalogue import (
    TRIGGER_APPROVED,
    TRIGGER_DENIED,
    TRIGGER_EXPIRED,
    TRIGGER_FAILED,
    TRIGGER_SENT,
)
from burstbus.events import RecordedEvent
from burstbus.handlers.triggers.request import WITHDRAWN_REASON, Request, decision_id, delivery_id


def _record(type_: str, seq: int, **data: Any) -> RecordedEvent:
    return RecordedEvent(
        seq=seq, id=f"e{seq}", type=type_, stream="sb1", actor="test", occurred_at="2026-12-02T00:00:00.000000Z",
        recorded_at="2026-12-02T00:00:00.000000Z", data={"request_id": "r1", **data}, prev_hash="", hash="",
    )


def _request() -> Request:
    return Request.of(_record(
        "trigger.requested", 1, telescope="TAROT", burst_id="sb1", requested_by="ba@fsc.example", note="",
        params={"ra": 1.0, "dec": 2.0}, code_sha256="h", expires_at="2026-12-02T00:15:00.000000Z",
        two_person=True, approvers=["ap@fsc.example"],
    ))


def test_the_first_decision_wins() -> None:
    request = _request()
    request.fold(_record(TRIGGER_APPROVED, 2, approved_by="ap@fsc.example", voevent_ivorn="ivo://x/t#r1-a"))
    request.fold(_record(TRIGGER_DENIED, 3, denied_by="other@fsc.example", reason="late"))
    request.fold(_record(TRIGGER_EXPIRED, 4))
    assert (request.state, request.decided_by, request.voevent_ivorn) == ("approved", "ap@fsc.example", "ivo://x/t#r1-a")
    request.fold(_record(TRIGGER_SENT, 5, voevent_ivorn="ivo://x/t#r1-a", channels={"vtp": {}}))
    request.fold(_record(TRIGGER_FAILED, 6, reason="late failure"))
    assert request.state == "sent" and request.reason is None


def test_a_delivery_of_an_undecided_request_changes_nothing() -> None:
    request = _request()
    request.fold(_record(TRIGGER_SENT, 2, voevent_ivorn="ivo://x/t#r1-a"))
    assert request.state == "requested" and request.voevent_ivorn is None


def test_a_withdrawal_is_a_denial_by_the_requester() -> None:
    request = _request()
    request.fold(_record(TRIGGER_DENIED, 2, denied_by="ba@fsc.example", reason=WITHDRAWN_REASON, withdrawn=True))
    assert request.state == "denied" and request.withdrawn


def test_decisions_and_deliveries_share_one_id_per_request() -> None:
    assert decision_id("r1") == decision_id("r1") != decision_id("r2")
    assert delivery_id("r1") != decision_id("r1")
