"""The silence clock, pure: a silence is declared once, its recovery once, and a restart neither
resets the clock nor pages for burstbus's own downtime."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from burstbus.bridges.kafka.liveness import (
    Clock,
    alarm_text,
    duration_text,
    heard_time,
    restore,
    step,
)
from burstbus.catalogue import KAFKA_RECOVERED, KAFKA_SILENT
from burstbus.events import format_time

T0 = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_silence_then_recovery_each_recorded_once() -> None:
    clock = Clock(60.0, heard_at=at(0), started_at=at(0), ready=True)
    clock, nothing = step(clock, at(59), upstream="gcn", watched="gcn.heartbeat")
    assert nothing is None
    clock, silent = step(clock, at(61), upstream="gcn", watched="gcn.heartbeat")
    assert silent is not None and silent.type == KAFKA_SILENT
    assert silent.data["last_heard"] == format_time(at(0)) and silent.data["silent_for"] == 61.0
    clock, again = step(clock, at(300), upstream="gcn", watched="gcn.heartbeat")
    assert again is None  # one silence, one event
    clock, back = step(clock.heard(at(400)), at(400.5), upstream="gcn", watched="gcn.heartbeat")
    assert back is not None and back.type == KAFKA_RECOVERED
    assert back.data["silent_event"] == silent.event_id and back.data["silent_for"] == 400.0
    assert clock.silence is None


def test_a_restart_keeps_the_clock_and_the_silence_under_way() -> None:
    before = Clock(60.0, heard_at=at(0), started_at=at(0), ready=True)
    before, silent = step(before, at(90), upstream="gcn", watched="gcn.heartbeat")
    assert silent is not None
    # what state.sqlite keeps, read back by a new run started later
    after = restore(60.0, format_time(at(0)), silent.event_id, format_time(at(0)), started_at=at(200))
    after, again = step(replace(after, ready=True), at(201), upstream="gcn", watched="gcn.heartbeat")
    assert again is None and after.silence is not None  # not paged twice
    _, back = step(after.heard(at(205)), at(205), upstream="gcn", watched="gcn.heartbeat")
    assert back is not None and back.type == KAFKA_RECOVERED and back.data["silent_event"] == silent.event_id


def test_a_restart_does_not_reset_the_clock() -> None:
    # heard at 0, burstbus restarted at 50 (threshold 60): still silent at 61, counted from 0
    clock = restore(60.0, format_time(at(0)), None, None, started_at=at(50))
    clock, early = step(clock, at(61), upstream="gcn", watched="gcn.heartbeat")
    assert early is None  # this run has not read the heartbeat topic to its end yet
    clock, silent = step(replace(clock, ready=True), at(62), upstream="gcn", watched="gcn.heartbeat")
    assert silent is not None and silent.data["silent_for"] == 62.0
    # the same silence derived again after a crash: the same event id
    redo = restore(60.0, format_time(at(0)), None, None, started_at=at(70))
    _, silent_again = step(replace(redo, ready=True), at(75), upstream="gcn", watched="gcn.heartbeat")
    assert silent_again is not None and silent_again.event_id == silent.event_id


def test_judging_waits_for_the_first_catch_up_or_a_threshold() -> None:
    # last heard long ago (burstbus was down): no page until the heartbeat topic was read
    clock = restore(60.0, format_time(at(0)), None, None, started_at=at(1000))
    assert step(clock, at(1001), upstream="gcn", watched="gcn.heartbeat")[1] is None
    # the heartbeats produced meanwhile are read: the feed was alive
    clock = replace(clock.heard(at(1000.5)), ready=True)
    assert step(clock, at(1002), upstream="gcn", watched="gcn.heartbeat")[1] is None
    # nothing readable at all: judged a threshold after the start
    stuck = restore(60.0, format_time(at(0)), None, None, started_at=at(1000))
    assert step(stuck, at(1061), upstream="gcn", watched="gcn.heartbeat")[1] is not None


def test_old_heartbeats_read_after_a_restart_count_from_when_they_were_sent() -> None:
    assert heard_time(at(100), at(99.5), 60.0) == at(100)  # live
    assert heard_time(at(100), at(10), 60.0) == at(10)  # a backlog: not life now
    assert heard_time(at(100), None, 60.0) == at(100)
    assert heard_time(at(100), at(200), 60.0) == at(100)  # a sender clock ahead of ours


def test_texts() -> None:
    assert duration_text(45) == "45 s" and duration_text(200) == "3 min 20 s" and duration_text(7500) == "2 h 05 min"
    silent = alarm_text(KAFKA_SILENT, {"upstream": "gcn", "watched": "gcn.heartbeat", "silent_for": 125.0,
                                       "last_heard": "2026-12-02T06:00:00.000000Z"}, "https://fsc.example")
    assert silent is not None and "SILENT" in silent and "gcn.heartbeat" in silent and "2 min 05 s" in silent
    assert "https://fsc.example/healthz" in silent and "last heard 2026-12-02 06:00:00 UTC" in silent
    never = alarm_text(KAFKA_SILENT, {"upstream": "gcn", "watched": "gcn.heartbeat", "silent_for": 60.0, "last_heard": None})
    assert never is not None and "(not heard since burstbus started)" in never and "?" not in never
    back = alarm_text(KAFKA_RECOVERED, {"upstream": "gcn", "heard_at": "2026-12-02T06:10:00.000000Z", "silent_for": 600})
    assert back is not None and "is back" in back and "10 min 00 s" in back
    gap = alarm_text("kafka.gap", {"upstream": "gcn", "topic": "t", "partition": 0, "lost": 7, "reason_text": "retention"})
    assert gap is not None and "7 message(s)" in gap
