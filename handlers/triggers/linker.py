"""Follow-up coming back: a telescope's packet that cites a trigger advances that trigger's life.

A log follower (consumer ``handler.triggers.followup``) of the trigger IVORNs the workflow
chose (``trigger.approved`` / ``.sent`` / ``.failed``: ``voevent_ivorn``) and of every
accepted packet. It keeps an IVORN → request index in ``state.sqlite``, written in the same
transaction as its checkpoint; an index built from the log in the log's order, so a packet
citing a trigger is always seen after the trigger it cites, whatever any projection's lag.

For an accepted packet citing a known trigger IVORN it records the step the packet reports
(:mod:`.followup`): ``trigger.acknowledged``, ``.observing``, ``.observed`` or
``.data_uploaded`` (with the data's location), in the burst's stream, with the request id,
telescope and requester, under an id derived from the packet's own event (one step per
packet, across crashes and nodes). Whether the state moves is the catalogue's transition
table's business (a step never goes back); the event is the fact either way — every upload's
location stays in the log, and each upload with a URI is also a ``data.available`` of kind
``followup.<telescope>`` (:func:`data_event`): the orchestrator's own input, so an
archive-ingest pipeline that needs it starts.

Not advanced, but archived like any packet: a packet citing no trigger we know, one that says
no step we know, one from outside the telescope's ``reply_prefixes``, and our own trigger
packets.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from burstbus.authority import TRIGGER_SOURCE, canonical
from burstbus.catalogue import (
    DATA_AVAILABLE,
    TRIGGER_APPROVED,
    TRIGGER_DATA_UPLOADED,
    TRIGGER_FAILED,
    TRIGGER_REQUESTED,
    TRIGGER_SENT,
    VOEVENT_ACCEPTED,
)
from burstbus.events import Event, RecordedEvent, derived_event_id
from burstbus.payload import xml_bytes
from burstbus.state import StateStore
from burstbus.store.base import EventLog, ReadFilter
from burstbus.store.consumer import BACKGROUND_INTERVAL, Batch, Follower

from .config import TriggersSection
from .followup import Reply, read_reply

log = logging.getLogger(__name__)

CONSUMER = "handler.triggers.followup"
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
ACTOR = "system:triggers.followup"

_INDEX = """
CREATE TABLE IF NOT EXISTS trigger_packets (
    ivorn      TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    burst_id   TEXT NOT NULL,
    telescope  TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class TriggerPacket:
    """A trigger packet the workflow sent (or chose the IVORN of)."""

    ivorn: str
    request_id: str
    burst_id: str
    telescope: str


def step_event_id(event_type: str, packet_event_id: str) -> str:
    """The one step a telescope's packet can record."""
    return derived_event_id(event_type, packet_event_id)


def step_event(packet: RecordedEvent, trigger: TriggerPacket, reply: Reply, requested_by: str | None) -> Event:
    data: dict[str, Any] = {
        "request_id": trigger.request_id, "telescope": trigger.telescope, "burst_id": trigger.burst_id,
        "requested_by": requested_by, "trigger_ivorn": trigger.ivorn, "voevent_ivorn": packet.data.get("ivorn"),
        "accepted_seq": packet.seq, "source": packet.actor, "status": reply.status,
    }
    if reply.data_location:
        data["data_location"] = reply.data_location
    return Event(reply.event_type, data, stream=trigger.burst_id, actor=ACTOR, id=step_event_id(reply.event_type, packet.id))


def followup_kind(telescope: str) -> str:
    """The data kind of a telescope's uploaded follow-up data, for the orchestrator's
    ``needs`` (an archive-ingest pipeline: ``needs = ["followup.COLIBRI"]``)."""
    return f"followup.{telescope}"


def data_event(step: Event) -> Event | None:
    """``data.available`` for an upload whose location is a URI: the orchestrator's own input,
    so a pipeline needing ``followup.<telescope>`` starts on it (obs_id: the trigger request).
    None when the location is missing or no URI (the step still says what the packet said)."""
    location = str(step.data.get("data_location") or "")
    if step.type != TRIGGER_DATA_UPLOADED or not _URI.match(location) or len(location) > 2048:
        return None
    data = {"burst_id": step.data["burst_id"], "obs_id": step.data["request_id"],
            "kind": followup_kind(str(step.data["telescope"])), "location": location}
    return Event(DATA_AVAILABLE, data, stream=step.stream, actor=ACTOR, id=derived_event_id(DATA_AVAILABLE, step.id))


def _covered(prefixes: Sequence[str], ivorn: str) -> bool:
    return not prefixes or any(canonical(ivorn).startswith(canonical(p)) for p in prefixes)


class FollowupLinker:
    """The follower; :meth:`run` is the supervised component."""

    def __init__(self, event_log: EventLog, state: StateStore, section: TriggersSection):
        self.log = event_log
        self.state = state
        self.section = section
        self.linked_total = 0
        self.ignored_total = 0
        self.follower: Follower[RecordedEvent] = Follower(
            event_log, self._handle, name=CONSUMER, checkpoint=state.checkpoint(CONSUMER),
            types=[TRIGGER_APPROVED, TRIGGER_SENT, TRIGGER_FAILED, VOEVENT_ACCEPTED], batch_size=1000,
            batch_interval=BACKGROUND_INTERVAL,
        )

    async def start(self) -> None:
        await self.state.run(lambda conn: conn.executescript(_INDEX))

    async def run(self) -> None:
        await self.start()
        await self.follower.run()

    async def catch_up(self) -> None:
        await self.start()
        await self.follower.catch_up()

    async def _handle(self, batch: Batch[RecordedEvent]) -> None:
        fresh: dict[str, TriggerPacket] = {}
        cited: set[str] = set()
        for record in batch.records:
            if record.type in (TRIGGER_APPROVED, TRIGGER_SENT, TRIGGER_FAILED):
                packet = _trigger_packet(record.data)
                if packet is not None:
                    fresh.setdefault(packet.ivorn, packet)
            elif record.type == VOEVENT_ACCEPTED:
                cited.update(str(c.get("ivorn") or "") for c in record.data.get("citations") or ())
        known = dict(fresh)
        missing = sorted(cited - set(known))
        if missing:
            known.update(await self.state.run(lambda conn: _load(conn, missing)))
        events: list[Event] = []
        for record in batch.records:
            if record.type == VOEVENT_ACCEPTED and record.data.get("citations"):
                events += await self._step(record, known)
        if events:
            appended = await self.log.append(events)
            self.linked_total += sum(1 for e, a in zip(events, appended, strict=True) if a.new and e.type != DATA_AVAILABLE)

        def save(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT OR IGNORE INTO trigger_packets (ivorn, request_id, burst_id, telescope) VALUES (?,?,?,?)",
                             [(p.ivorn, p.request_id, p.burst_id, p.telescope) for p in fresh.values()])
            batch.write_checkpoint(conn)

        await self.state.transaction(save)

    async def _step(self, record: RecordedEvent, known: Mapping[str, TriggerPacket]) -> list[Event]:
        """The step event for one packet (and the data it announces), or nothing."""
        targets = [known[str(c.get("ivorn"))] for c in record.data.get("citations") or () if str(c.get("ivorn")) in known]
        if not targets:
            return []  # cites no trigger of ours: an ordinary packet
        trigger = targets[0]
        ivorn = str(record.data.get("ivorn") or "")
        if record.actor == TRIGGER_SOURCE or ivorn in known:
            return []  # one of our own trigger packets
        scope = self.section.telescope(trigger.telescope)
        if scope is not None and not _covered(scope.reply_prefixes, ivorn):
            self.ignored_total += 1
            log.warning("%s cites the %s trigger %s but is not under its reply_prefixes (%s); archived, nothing changed",
                        ivorn, trigger.telescope, trigger.request_id, ", ".join(scope.reply_prefixes))
            return []
        reply = read_reply(xml_bytes(record.data), self.section.followup_param)
        if reply is None:
            self.ignored_total += 1
            log.info("%s cites the %s trigger %s but says no step we know (Param %s); archived, nothing changed",
                     ivorn, trigger.telescope, trigger.request_id, self.section.followup_param)
            return []
        requested_by = await self._requester(trigger)
        log.info("%s: %s %s for trigger %s on %s", ivorn, trigger.telescope, reply.state, trigger.request_id, trigger.burst_id)
        step = step_event(record, trigger, reply, requested_by)
        data = data_event(step)
        return [step] if data is None else [step, data]

    async def _requester(self, trigger: TriggerPacket) -> str | None:
        for record in await self.log.read(0, ReadFilter.of(types=[TRIGGER_REQUESTED], stream=trigger.burst_id)):
            if record.data.get("request_id") == trigger.request_id:
                return str(record.data.get("requested_by") or "") or None
        return None

    def health(self) -> dict[str, Any]:
        return {**self.follower.health(), "linked": self.linked_total, "ignored": self.ignored_total}


def _trigger_packet(data: Mapping[str, Any]) -> TriggerPacket | None:
    ivorn, request_id = data.get("voevent_ivorn"), data.get("request_id")
    if not ivorn or not request_id:
        return None
    return TriggerPacket(str(ivorn), str(request_id), str(data.get("burst_id") or ""), str(data.get("telescope") or ""))


def _load(conn: sqlite3.Connection, ivorns: list[str]) -> dict[str, TriggerPacket]:
    found: dict[str, TriggerPacket] = {}
    for start in range(0, len(ivorns), 500):
        chunk = ivorns[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(f"SELECT ivorn, request_id, burst_id, telescope FROM trigger_packets WHERE ivorn IN ({marks})", chunk):
            found[row[0]] = TriggerPacket(*row)
    return found
