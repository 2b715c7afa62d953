"""Is the feed alive? The silence clock of one upstream, its events and their texts. Pure.

GCN publishes ``gcn.heartbeat`` about once a second, so a quiet alert topic (hours without a
GRB are normal) can be told from a dead feed. The clock is the last time the feed was
**heard** — a heartbeat (or, for an upstream without a heartbeat topic, an answer from the
broker) — and it is kept in ``state.sqlite`` with the silence under way, so **a restart does
not reset it**: after a restart the clock still runs from the last heartbeat heard before,
and a heartbeat read after the restart counts from when it was *sent* (its Kafka timestamp)
if that is older than the threshold, so a backlog of old heartbeats never looks like life.

A silence is declared (``kafka.silent``) once nothing was heard for ``threshold`` seconds —
but not before this run has read the heartbeat topic up to its end once (or waited a
threshold), so a restart never pages for a silence that was only burstbus's own downtime
if the feed has been beating meanwhile. The recovery (``kafka.recovered``) comes with the
first heartbeat heard after it. Both carry derived ids (the silence's from the last heard
time, the recovery's from the silence), so a crash and a redo record each once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from burstbus.catalogue import KAFKA_GAP, KAFKA_RECOVERED, KAFKA_SILENT
from burstbus.events import derived_event_id, format_time, parse_time


def heard_time(received: datetime, sent: datetime | None, threshold: float) -> datetime:
    """When a message shows the feed was alive: now, unless it was sent more than a threshold
    ago (a backlog read after a restart or an outage): then when it was sent."""
    if sent is None or sent > received:
        return received
    return sent if (received - sent).total_seconds() > threshold else received


@dataclass(frozen=True)
class Silence:
    """A silence under way: the event that declared it and the last time the feed was heard."""

    event_id: str
    since: datetime


@dataclass(frozen=True)
class Clock:
    """One upstream's liveness: last heard, the silence under way, whether this run may judge."""

    threshold: float
    heard_at: datetime | None = None
    silence: Silence | None = None
    #: When this run started following the feed (judging waits until ``ready`` or a threshold).
    started_at: datetime | None = None
    #: This run has read the heartbeat topic to its end once (or has no heartbeat topic).
    ready: bool = False

    def heard(self, at: datetime) -> Clock:
        if self.heard_at is not None and at <= self.heard_at:
            return self
        return replace(self, heard_at=at)

    def silent_for(self, now: datetime) -> float | None:
        """Seconds since last heard (from this run's start when never heard)."""
        reference = self.heard_at or self.started_at
        return None if reference is None else max(0.0, (now - reference).total_seconds())

    def may_judge(self, now: datetime) -> bool:
        if self.ready:
            return True
        return self.started_at is not None and (now - self.started_at).total_seconds() >= self.threshold

    def is_silent(self, now: datetime) -> bool:
        quiet = self.silent_for(now)
        return quiet is not None and quiet > self.threshold


@dataclass(frozen=True)
class Transition:
    """What :func:`step` found: a silence begins or ends (the event's type, id and data)."""

    type: str
    event_id: str
    data: dict[str, object]


def step(clock: Clock, now: datetime, *, upstream: str, watched: str) -> tuple[Clock, Transition | None]:
    """The clock after looking at it at ``now``, and the event to record, if any.

    ``watched``: what is listened to (``gcn.heartbeat``, or ``broker``) for the texts."""
    if clock.silence is None:
        if not clock.may_judge(now) or not clock.is_silent(now):
            return clock, None
        reference = clock.heard_at or clock.started_at
        assert reference is not None
        key = format_time(reference)
        event_id = derived_event_id(KAFKA_SILENT, upstream, key)
        data: dict[str, object] = {
            "upstream": upstream,
            "watched": watched,
            "last_heard": format_time(clock.heard_at) if clock.heard_at else None,
            "silent_for": round(clock.silent_for(now) or 0.0, 1),
            "threshold": clock.threshold,
        }
        return replace(clock, silence=Silence(event_id, reference)), Transition(KAFKA_SILENT, event_id, data)
    if clock.heard_at is not None and clock.heard_at > clock.silence.since and not clock.is_silent(now):
        data = {
            "upstream": upstream,
            "watched": watched,
            "silent_event": clock.silence.event_id,
            "last_heard_before": format_time(clock.silence.since),
            "heard_at": format_time(clock.heard_at),
            "silent_for": round((clock.heard_at - clock.silence.since).total_seconds(), 1),
        }
        event_id = derived_event_id(KAFKA_RECOVERED, upstream, clock.silence.event_id)
        return replace(clock, silence=None), Transition(KAFKA_RECOVERED, event_id, data)
    return clock, None


def restore(threshold: float, heard_at: str | None, silent_id: str | None, silent_since: str | None,
            started_at: datetime) -> Clock:
    """The clock as ``state.sqlite`` kept it, for a new run starting at ``started_at``."""
    silence = None
    if silent_id and silent_since:
        silence = Silence(silent_id, parse_time(silent_since))
    return Clock(threshold, parse_time(heard_at) if heard_at else None, silence, started_at)


def duration_text(seconds: float) -> str:
    """``45 s``, ``3 min 20 s``, ``2 h 05 min``."""
    total = int(round(seconds))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def time_text(iso: object) -> str:
    """``2026-12-02 06:30:00 UTC`` from the log's time text (``?`` when missing)."""
    if not isinstance(iso, str) or len(iso) < 19:
        return "?"
    return iso[:19].replace("T", " ") + " UTC"


def alarm_text(event_type: str, data: dict[str, object], link_base: str = "") -> str | None:
    """What the on-duty Burst Advocates are told about a ``kafka.*`` event (None: nothing)."""
    upstream = data.get("upstream", "?")
    health = f" Status: {link_base}/healthz" if link_base else ""
    if event_type == KAFKA_SILENT:
        watched = data.get("watched")
        what = "no heartbeat on " + str(watched) if watched and watched != "broker" else "no answer from the broker"
        heard = data.get("last_heard")
        since = f"last heard {time_text(heard)}" if heard else "not heard since burstbus started"
        return (f"⚠ Kafka feed '{upstream}' is SILENT: {what} for {duration_text(float(str(data.get('silent_for') or 0)))} "
                f"({since}). Alerts may not be arriving.{health}")
    if event_type == KAFKA_RECOVERED:
        return (f"✔ Kafka feed '{upstream}' is back: heard at {time_text(data.get('heard_at'))} after "
                f"{duration_text(float(str(data.get('silent_for') or 0)))} of silence.")
    if event_type == KAFKA_GAP:
        lost = data.get("lost")
        count = f"{lost} message(s)" if isinstance(lost, int) else "an unknown number of messages"
        return (f"⚠ Kafka gap on '{upstream}' {data.get('topic')}[{data.get('partition')}]: {count} will never be read "
                f"({data.get('reason_text', data.get('kind'))}).{health}")
    return None
