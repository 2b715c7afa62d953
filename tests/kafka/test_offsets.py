"""Where a partition is read from, and when a stored position means a gap — tested here, without
the broker, because the test broker (Tansu) deviates from Apache Kafka exactly there: it keeps
everything (its oldest offset never moves, so retention never makes a gap), answers
``offsets_for_times`` with 0 and reports a "latest" offset below the real end. A reset (the
partition restarted below our position) is also tested live, in test_inbound.py."""

from __future__ import annotations

from datetime import UTC, datetime

from burstbus.bridges.kafka.inbound import gap_event
from burstbus.bridges.kafka.offsets import Gap, behind_end, first_offset, lag, resume


def test_first_start_now_earliest_or_a_time() -> None:
    when = datetime(2026, 11, 30, tzinfo=UTC)
    assert resume(None, 10, 50, start="now") .offset == 50
    assert resume(None, 10, 50, start="earliest").offset == 10
    assert resume(None, 10, 50, start=when, at_time=42).offset == 42
    assert resume(None, 10, 50, start=when, at_time=-1).offset == 50  # nothing since then
    assert resume(None, 10, 50, start=when, at_time=3).offset == 10  # clamped into what is held
    assert all(resume(None, 10, 50, start=s).first for s in ("now", "earliest"))
    # a partition that appeared after the topic was first wanted: everything in it is new
    assert first_offset("now", 0, 7, None, appeared_later=True) == 0


def test_a_stored_position_resumes_exactly() -> None:
    decided = resume(37, 10, 50)
    assert decided.offset == 37 and decided.gap is None and not decided.first
    assert resume(50, 10, 50).gap is None  # caught up to the end
    assert resume(10, 10, 50).gap is None  # exactly the oldest kept


def test_a_position_older_than_retention_is_a_gap_naming_the_lost_offsets() -> None:
    decided = resume(5, 12, 50)
    assert decided.offset == 12
    assert decided.gap == Gap("retention", expected=5, resumed_at=12, lost_from=5, lost_to=12)
    assert decided.gap.lost == 7
    event = gap_event("gcn", "gcn.notices.svom.voevent.eclairs", 0, decided.gap)
    assert event.type == "kafka.gap" and event.stream == "kafka/gcn"
    assert event.data["lost"] == 7 and event.data["lost_from"] == 5 and event.data["lost_to"] == 12
    assert "5–11" in event.data["reason_text"]
    assert gap_event("gcn", "gcn.notices.svom.voevent.eclairs", 0, decided.gap).id == event.id  # once, across redos


def test_a_position_past_the_end_is_a_reset() -> None:
    decided = resume(80, 0, 5)
    assert decided.offset == 0 and decided.gap is not None
    assert decided.gap.kind == "reset" and decided.gap.lost is None
    assert resume(80, 0, -1).gap is None  # an unknown end is never called a reset


def test_the_end_reported_in_fetch_answers() -> None:
    assert behind_end(80, 5) and not behind_end(5, 5) and not behind_end(80, -1)
    assert lag(5, 12) == 7 and lag(None, 12) is None and lag(3, -1) is None and lag(20, 12) == 0
