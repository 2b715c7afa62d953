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
PROCESS_REQUESTED = "process.requested"
PROCESS_IDLING = "process.idling"
PROCESS_DISPATCHED = "process.dispatched"
PROCESS_GAVE_UP = "process.gave_up"
PROCESS_ASKED = "process.asked"
DATA_AVAILABLE = "data.available"
DATA_REJECTED = "data.rejected"
NATS_REJECTED = "nats.rejected"
BA_COMMAND = "ba.command"
TRIGGER_REQUESTED = "trigger.requested"
TRIGGER_APPROVED = "trigger.approved"
TRIGGER_DENIED = "trigger.denied"
TRIGGER_EXPIRED = "trigger.expired"
TRIGGER_SENT = "trigger.sent"
TRIGGER_FAILED = "trigger.failed"
NOTICE_ACCEPTED = "notice.accepted"
NOTICE_REJECTED = "notice.rejected"
KAFKA_GAP = "kafka.gap"
KAFKA_SILENT = "kafka.silent"
KAFKA_RECOVERED = "kafka.recovered"
TRIGGER_ACKNOWLEDGED = "trigger.acknowledged"
TRIGGER_OBSERVING = "trigger.observing"
TRIGGER_OBSERVED = "trigger.observed"
TRIGGER_DATA_UPLOADED = "trigger.data_uploaded"
TRIGGER_UNACKNOWLEDGED = "trigger.unacknowledged"
PUBLICATION_REQUESTED = "publication.requested"
PUBLICATION_REFUSED = "publication.refused"
PUBLICATION_ISSUED = "publication.issued"
PUBLICATION_DECLINED = "publication.declined"
PUBLICATION_SENT = "publication.sent"
PUBLICATION_FAILED = "publication.failed"
PUBLICATION_DRAFTED = "publication.drafted"
PUBLICATION_DRAFT_APPROVED = "publication.draft_approved"
LOG_CHECKPOINT_SIGNED = "log.checkpoint_signed"


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
    EventType(PROCESS_REQUESTED, "the orchestrator", "a run's attempt is queued: pipeline, exact inputs (event ids), parameters, attempt"),
    EventType(PROCESS_IDLING, "the orchestrator", "a pipeline's run waits for part of its inputs (which it has, which it lacks)"),
    EventType(PROCESS_DISPATCHED, "the orchestrator", "an attempt handed to its worker (NATS request or HTTP POST), and the answer"),
    EventType(PROCESS_GAVE_UP, "the orchestrator", "a run failed its last allowed attempt: no more retries, and why"),
    EventType(PROCESS_ASKED, "the bot, the HTTP API", "a person asked for a run by hand (Request Process): who, pipeline, burst, parameters"),
    EventType(DATA_AVAILABLE, "services and pipelines over NATS or HTTP", "data or a product is available: burst, obs/pass, kind, location, checksum, the run that made it"),
    EventType(DATA_REJECTED, "the NATS and HTTP bridges", "a refused data announcement, with the reason"),
    EventType(NATS_REJECTED, "the NATS bridge", "a refused message on an operator-mapped subject"),
    EventType(BA_COMMAND, "the bot", "a Burst Advocate's command and its outcome"),
    EventType(TRIGGER_REQUESTED, "the trigger workflow", "a telescope trigger requested, its code's keyed hash"),
    EventType(TRIGGER_APPROVED, "the trigger workflow", "the request's one decision: approved (and the packet's IVORN)"),
    EventType(TRIGGER_DENIED, "the trigger workflow", "the request's one decision: refused (or withdrawn by its requester)"),
    EventType(TRIGGER_EXPIRED, "the trigger workflow", "the request's one decision: its code expired"),
    EventType(TRIGGER_SENT, "the trigger workflow", "the approved trigger went out on every channel"),
    EventType(TRIGGER_FAILED, "the trigger workflow", "the approved trigger could not be delivered, and why"),
    EventType(NOTICE_ACCEPTED, "the Kafka bridge", "a JSON notice (LVK, Einstein Probe, IceCube …), exact bytes and the facts understood"),
    EventType(NOTICE_REJECTED, "the Kafka bridge", "a refused JSON message (not JSON, wrong schema, too large), with the reason"),
    EventType(KAFKA_GAP, "the Kafka bridge", "messages of a partition that will never be read (past retention, or the partition restarted)"),
    EventType(KAFKA_SILENT, "the Kafka bridge", "a feed went silent: no heartbeat (or broker answer) for longer than allowed"),
    EventType(KAFKA_RECOVERED, "the Kafka bridge", "a silent feed is heard again"),
    EventType(TRIGGER_ACKNOWLEDGED, "the follow-up linker", "a telescope's packet citing a trigger: it acknowledged the trigger"),
    EventType(TRIGGER_OBSERVING, "the follow-up linker", "a telescope's packet citing a trigger: its observation started"),
    EventType(TRIGGER_OBSERVED, "the follow-up linker", "a telescope's packet citing a trigger: its observation finished"),
    EventType(TRIGGER_DATA_UPLOADED, "the follow-up linker", "a telescope's packet citing a trigger: its data are uploaded, and where"),
    EventType(TRIGGER_UNACKNOWLEDGED, "the follow-up linker", "a sent trigger not acknowledged within its telescope's time (flagged to the BAs)"),
    EventType(PUBLICATION_REQUESTED, "NATS, HTTP, the orchestrator", "a request for a notice of the centre's own (validated)"),
    EventType(PUBLICATION_REFUSED, "NATS, HTTP", "a refused notice request, with the reason"),
    EventType(PUBLICATION_ISSUED, "the notice publisher", "a request's one decision: the notice's IVORN, revision, citations and content"),
    EventType(PUBLICATION_DECLINED, "the notice publisher", "a request's one decision: no notice, and why"),
    EventType(PUBLICATION_SENT, "the notice publisher", "the issued notice was accepted by the ingest (archived, on every transport)"),
    EventType(PUBLICATION_FAILED, "the notice publisher", "the issued notice was refused by the ingest, and why"),
    EventType(PUBLICATION_DRAFTED, "the Notice Creator (the bot)", "a person's draft of a notice, with the exact packet it would publish"),
    EventType(PUBLICATION_DRAFT_APPROVED, "the Notice Creator (the bot)", "the draft's one decision: a second person publishes it"),
    EventType(LOG_CHECKPOINT_SIGNED, "the witness (handlers/witness)", "the log's head (seq, hash, time) signed with the centre's Ed25519 key, as published"),
)
#: The types a notice is accepted as: a VOEvent, or a JSON notice (the same summary fields).
NOTICE_TYPES: tuple[str, ...] = (VOEVENT_ACCEPTED, NOTICE_ACCEPTED)
EVENT_TYPES: frozenset[str] = frozenset(t.name for t in CATALOGUE)

#: Type families burstbus keeps for itself: an operator's NATS mapping may not use them.
RESERVED_FAMILIES: tuple[str, ...] = (
    "voevent.", "process.", "burst.", "trigger.", "ba.", "bot.", "nats.", "vtp.", "xmpp.", "slack.",
    "http.", "notice.", "watchdog.", "system.", "kafka.", "data.", "publication.", "log.",
)

# -- VOEvent roles ----------------------------------------------------------------------------

#: The four roles of VOEvent 2.0 (``role`` attribute), in the standard's order.
VOEVENT_ROLES: tuple[str, ...] = ("observation", "prediction", "utility", "test")

# -- a trigger request's life -------------------------------------------------------------------

REQUESTED, APPROVED, DENIED, EXPIRED, SENT, FAILED = "requested", "approved", "denied", "expired", "sent", "failed"
#: After delivery, what the telescope says back (packets citing the trigger), and the flag of
#: a telescope that said nothing in time.
ACKNOWLEDGED, OBSERVING, OBSERVED, DATA_UPLOADED = "acknowledged", "observing", "observed", "data_uploaded"
UNACKNOWLEDGED = "unacknowledged"
TRIGGER_STATES: tuple[str, ...] = (
    REQUESTED, APPROVED, DENIED, EXPIRED, SENT, FAILED, UNACKNOWLEDGED, ACKNOWLEDGED, OBSERVING, OBSERVED, DATA_UPLOADED,
)
#: The telescope's steps in their order, each with the event type that records it.
FOLLOWUP_STEPS: tuple[tuple[str, str], ...] = (
    (ACKNOWLEDGED, TRIGGER_ACKNOWLEDGED), (OBSERVING, TRIGGER_OBSERVING), (OBSERVED, TRIGGER_OBSERVED),
    (DATA_UPLOADED, TRIGGER_DATA_UPLOADED),
)
FOLLOWUP_TYPES: tuple[str, ...] = tuple(kind for _, kind in FOLLOWUP_STEPS)
#: Every type that belongs to a request's life (``trigger.requested`` opens it).
TRIGGER_TYPES: tuple[str, ...] = (
    TRIGGER_REQUESTED, TRIGGER_APPROVED, TRIGGER_DENIED, TRIGGER_EXPIRED, TRIGGER_SENT, TRIGGER_FAILED,
    TRIGGER_UNACKNOWLEDGED, *FOLLOWUP_TYPES,
)


def _followup_transitions() -> dict[tuple[str, str], str]:
    """A step is taken from a delivered trigger (``sent``; ``failed`` too, as the packet may have
    reached the telescope on another channel; ``unacknowledged``: a late answer) or from any
    earlier step: a telescope may skip steps, never go back."""
    table: dict[tuple[str, str], str] = {(SENT, TRIGGER_UNACKNOWLEDGED): UNACKNOWLEDGED}
    before = [SENT, FAILED, UNACKNOWLEDGED]
    for state, kind in FOLLOWUP_STEPS:
        for source in before:
            table[(source, kind)] = state
        before.append(state)
    return table


#: (state, event type) → next state. The first decision wins: a pair that is not here (a second
#: decision, a delivery of an unapproved request, a step going back) changes nothing, in the
#: log's order.
TRIGGER_TRANSITIONS: Mapping[tuple[str, str], str] = {
    (REQUESTED, TRIGGER_APPROVED): APPROVED,
    (REQUESTED, TRIGGER_DENIED): DENIED,
    (REQUESTED, TRIGGER_EXPIRED): EXPIRED,
    (APPROVED, TRIGGER_SENT): SENT,
    (APPROVED, TRIGGER_FAILED): FAILED,
    **_followup_transitions(),
}
#: The trigger packet went out (on one channel at least), whatever the telescope said since.
TRIGGER_DELIVERED: frozenset[str] = frozenset({SENT, FAILED, UNACKNOWLEDGED, *(s for s, _ in FOLLOWUP_STEPS)})
#: States no event leaves.
TRIGGER_FINAL: frozenset[str] = frozenset(TRIGGER_STATES) - {state for state, _ in TRIGGER_TRANSITIONS}


def next_trigger_state(state: str, event_type: str) -> str | None:
    """The state after ``event_type`` in ``state``, or None when the event changes nothing."""
    return TRIGGER_TRANSITIONS.get((state, event_type))
