"""The vocabulary: every event type burstbus writes, the VOEvent roles, and a trigger's life.

Why one module: an event type is a contract between whoever appends it and every follower,
projection and page that reads it, and between the code and ``docs/events.md`` (a test checks
that the document describes exactly the types listed here). A literal spelled in nine files
drifts; a name imported from here cannot.

The trigger lifecycle is a table of data (h11's way with HTTP's states): the workflow, which
decides from the log, and the ``triggers`` projection, which lists requests, fold a request's
events through the same :func:`next_trigger_state`, so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# -- event types -----------------------------------------------------------------------------

VOEVENT_ACCEPTED = "voevent.accepted"
VOEVENT_REJECTED = "voevent.rejected"
BURST_IDENTIFIED = "burst.identified"
BURST_NONE = "burst.none"
PROCESS_STATUS = "process.status"
PROCESS_REJECTED = "process.rejected"
PROCESS_RETRY_REQUESTED = "process.retry_requested"
NATS_REJECTED = "nats.rejected"
BA_COMMAND = "ba.command"
TRIGGER_REQUESTED = "trigger.requested"
TRIGGER_APPROVED = "trigger.approved"
TRIGGER_DENIED = "trigger.denied"
TRIGGER_EXPIRED = "trigger.expired"
TRIGGER_SENT = "trigger.sent"
TRIGGER_FAILED = "trigger.failed"


@dataclass(frozen=True)
class EventType:
    """One type of the catalogue: its name, who appends it, and what it records."""

    name: str
    written_by: str
    summary: str


CATALOGUE: tuple[EventType, ...] = (
    EventType(VOEVENT_ACCEPTED, "the ingest (every transport)", "a VOEvent that passed examination and authority, exact bytes"),
    EventType(VOEVENT_REJECTED, "the ingest, the VTP receiver, HTTP, XMPP", "a refused packet, with the reason and an excerpt"),
    EventType(BURST_IDENTIFIED, "handlers/bursts.py", "the burst a notice belongs to"),
    EventType(BURST_NONE, "handlers/bursts.py", "a notice belongs to no burst, and why (its one decision, as burst.identified)"),
    EventType(PROCESS_STATUS, "pipelines over NATS", "a process run's status change"),
    EventType(PROCESS_REJECTED, "the NATS bridge", "a refused process status message"),
    EventType(PROCESS_RETRY_REQUESTED, "operators, the orchestrator", "a request to run a process again"),
    EventType(NATS_REJECTED, "the NATS bridge", "a refused message on an operator-mapped subject"),
    EventType(BA_COMMAND, "the bot", "a Burst Advocate's command and its outcome"),
    EventType(TRIGGER_REQUESTED, "the trigger workflow", "a telescope trigger requested, its code's keyed hash"),
    EventType(TRIGGER_APPROVED, "the trigger workflow", "the request's one decision: approved (and the packet's IVORN)"),
    EventType(TRIGGER_DENIED, "the trigger workflow", "the request's one decision: refused (or withdrawn by its requester)"),
    EventType(TRIGGER_EXPIRED, "the trigger workflow", "the request's one decision: its code expired"),
    EventType(TRIGGER_SENT, "the trigger workflow", "the approved trigger went out on every channel"),
    EventType(TRIGGER_FAILED, "the trigger workflow", "the approved trigger could not be delivered, and why"),
)
EVENT_TYPES: frozenset[str] = frozenset(t.name for t in CATALOGUE)

#: Type families burstbus keeps for itself: an operator's NATS mapping may not use them.
RESERVED_FAMILIES: tuple[str, ...] = (
    "voevent.", "process.", "burst.", "trigger.", "ba.", "bot.", "nats.", "vtp.", "xmpp.", "slack.",
    "http.", "notice.", "watchdog.", "system.",
)

# -- VOEvent roles ----------------------------------------------------------------------------

#: The four roles of VOEvent 2.0 (``role`` attribute), in the standard's order.
VOEVENT_ROLES: tuple[str, ...] = ("observation", "prediction", "utility", "test")

# -- a trigger request's life -------------------------------------------------------------------

REQUESTED, APPROVED, DENIED, EXPIRED, SENT, FAILED = "requested", "approved", "denied", "expired", "sent", "failed"
TRIGGER_STATES: tuple[str, ...] = (REQUESTED, APPROVED, DENIED, EXPIRED, SENT, FAILED)
#: Every type that belongs to a request's life (``trigger.requested`` opens it).
TRIGGER_TYPES: tuple[str, ...] = (
    TRIGGER_REQUESTED, TRIGGER_APPROVED, TRIGGER_DENIED, TRIGGER_EXPIRED, TRIGGER_SENT, TRIGGER_FAILED,
)
#: (state, event type) → next state. The first decision wins: a pair that is not here (a second
#: decision, a delivery of an unapproved request) changes nothing, in the log's order.
TRIGGER_TRANSITIONS: Mapping[tuple[str, str], str] = {
    (REQUESTED, TRIGGER_APPROVED): APPROVED,
    (REQUESTED, TRIGGER_DENIED): DENIED,
    (REQUESTED, TRIGGER_EXPIRED): EXPIRED,
    (APPROVED, TRIGGER_SENT): SENT,
    (APPROVED, TRIGGER_FAILED): FAILED,
}
#: States no event leaves.
TRIGGER_FINAL: frozenset[str] = frozenset(TRIGGER_STATES) - {state for state, _ in TRIGGER_TRANSITIONS}


def next_trigger_state(state: str, event_type: str) -> str | None:
    """The state after ``event_type`` in ``state``, or None when the event changes nothing."""
    return TRIGGER_TRANSITIONS.get((state, event_type))
