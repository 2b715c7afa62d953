"""Provenance: the chain of events that made a product or a notice, as W3C PROV-JSON.

Why no separate store: provenance *is* the log. A product is a ``data.available`` with
``produced_by`` = the request id of the attempt that made it; that attempt is a
``process.requested`` naming its exact inputs (event ids), pipeline, parameters and who or
what asked (a person's ``process.asked``, an automatic start, a retry); its statuses carry
the software version; each input is a ``data.available`` again (another product, or raw data
a service announced), and the burst they belong to was opened by an alert packet
(``burst.identified`` → ``voevent.accepted``). :func:`document` walks that chain backwards
(pure); :func:`load` reads what it needs from the log.

The PROV-JSON shape (https://www.w3.org/Submission/prov-json/): ``entity`` (data, products,
notices — keyed ``event:<event id>``), ``activity`` (attempts — ``event:<request id>``),
``agent`` (pipelines, people, transports), and the relations ``wasGeneratedBy``, ``used``,
``wasAssociatedWith`` (the pipeline; a person with ``prov:role`` requester), ``wasAttributedTo``
(who announced or sent it), ``wasDerivedFrom`` (a product from each input; a notice from
the packets it cites), ``wasInfluencedBy`` (raw data by the alert packet of its burst).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from burstbus.catalogue import (
    BURST_IDENTIFIED,
    DATA_AVAILABLE,
    PROCESS_ASKED,
    PROCESS_REQUESTED,
    PROCESS_STATUS,
    VOEVENT_ACCEPTED,
)
from burstbus.events import RecordedEvent
from burstbus.ingest import accepted_event_id
from burstbus.notices import decision_id
from burstbus.store.base import EventLog, ReadFilter

PREFIXES = {"burstbus": "urn:burstbus:", "event": "urn:burstbus:event:", "agent": "urn:burstbus:agent:"}
#: How far back a chain is followed (products of products …, citations of citations).
MAX_DEPTH = 50


class NotFound(LookupError):
    """Nothing in the log has that id (or IVORN), or it is not a product, data, run or notice."""


def _entity_key(event_id: str) -> str:
    return f"event:{event_id}"


def _agent_key(name: str) -> str:
    return f"agent:{name}"


@dataclass
class _Prov:
    """A PROV-JSON document being built; relation ids are numbered in insertion order."""

    entity: dict[str, dict[str, Any]] = field(default_factory=dict)
    activity: dict[str, dict[str, Any]] = field(default_factory=dict)
    agent: dict[str, dict[str, Any]] = field(default_factory=dict)
    relations: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def relate(self, kind: str, **attributes: Any) -> None:
        table = self.relations.setdefault(kind, {})
        value = {k.replace("__", ":"): v for k, v in attributes.items() if v is not None}
        if value not in table.values():
            table[f"_:{kind}{len(table) + 1}"] = value

    def add_agent(self, name: str, kind: str, **attributes: Any) -> str:
        key = _agent_key(name)
        self.agent.setdefault(key, {"prov:type": kind, "prov:label": name,
                                    **{k.replace("__", ":"): v for k, v in attributes.items() if v is not None}})
        return key

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"prefix": dict(PREFIXES)}
        for name in ("entity", "activity", "agent"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        out.update({k: v for k, v in self.relations.items() if v})
        return out


def _clean(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if v is not None and v != "" and v != {}}


class _Walk:
    def __init__(self, records: Sequence[RecordedEvent], notices: Mapping[str, RecordedEvent]):
        self.by_id = {r.id: r for r in records}
        self.requests = {r.id: r for r in records if r.type == PROCESS_REQUESTED}
        self.asked = {r.id: r for r in records if r.type == PROCESS_ASKED}
        self.statuses: dict[str, list[RecordedEvent]] = {}
        for r in records:
            if r.type == PROCESS_STATUS and r.data.get("request_id"):
                self.statuses.setdefault(str(r.data["request_id"]), []).append(r)
        self.identified = [r for r in records if r.type == BURST_IDENTIFIED]
        self.notices = notices  # accepted event id → record (the burst's notices and cited ones)
        self.prov = _Prov()
        self.seen: set[str] = set()

    # -- notices -------------------------------------------------------------------------

    def notice(self, record: RecordedEvent, depth: int = 0) -> str:
        key = _entity_key(record.id)
        if key in self.prov.entity:
            return key
        d = record.data
        self.prov.entity[key] = _clean({
            "prov:type": "burstbus:notice", "prov:label": d.get("ivorn"), "burstbus:ivorn": d.get("ivorn"),
            "burstbus:role": d.get("role"), "burstbus:sha256": d.get("sha256"), "burstbus:seq": record.seq,
            "burstbus:authored": d.get("authored"), "prov:generatedAtTime": d.get("authored") or record.recorded_at,
        })
        sender = self.prov.add_agent(record.actor, "burstbus:transport")
        self.prov.relate("wasAttributedTo", prov__entity=key, prov__agent=sender, burstbus__recorded_at=record.recorded_at)
        if depth >= MAX_DEPTH:
            return key
        for citation in d.get("citations") or ():
            cited = self.notices.get(accepted_event_id(str(citation.get("ivorn", ""))))
            if cited is not None:
                self.prov.relate("wasDerivedFrom", prov__generatedEntity=key, prov__usedEntity=self.notice(cited, depth + 1),
                                 burstbus__citation=citation.get("type"))
        return key

    def alert(self) -> str | None:
        """The burst's original alert packet: its first identified notice."""
        first = min(self.identified, key=lambda r: r.seq, default=None)
        if first is None:
            return None
        packet = self.notices.get(_accepted_id_of(first))
        return self.notice(packet) if packet is not None else None

    # -- data and runs ---------------------------------------------------------------------

    def data(self, record: RecordedEvent, depth: int = 0) -> str:
        key = _entity_key(record.id)
        if key in self.seen:
            return key
        self.seen.add(key)
        d = record.data
        self.prov.entity[key] = _clean({
            "prov:type": "burstbus:product" if d.get("produced_by") else "burstbus:data", "prov:label": d.get("kind"),
            "burstbus:kind": d.get("kind"), "prov:location": d.get("location"), "burstbus:size": d.get("size"),
            "burstbus:checksum": d.get("checksum"), "burstbus:burst_id": d.get("burst_id"), "burstbus:obs_id": d.get("obs_id"),
            "burstbus:pass_id": d.get("pass_id"), "burstbus:version": d.get("version"), "burstbus:seq": record.seq,
            "prov:generatedAtTime": record.occurred_at,
        })
        announcer = self.prov.add_agent(record.actor, "burstbus:transport")
        self.prov.relate("wasAttributedTo", prov__entity=key, prov__agent=announcer, burstbus__recorded_at=record.recorded_at)
        request = self.requests.get(str(d.get("produced_by") or ""))
        if request is not None and depth < MAX_DEPTH:
            activity = self.run(request, depth + 1)
            self.prov.relate("wasGeneratedBy", prov__entity=key, prov__activity=activity, prov__time=record.occurred_at)
            for used in request.data.get("inputs") or ():
                source = self.by_id.get(str(used.get("event_id")))
                if source is not None:
                    self.prov.relate("wasDerivedFrom", prov__generatedEntity=key, prov__usedEntity=self.data(source, depth + 1),
                                     prov__activity=activity)
        elif d.get("produced_by"):
            self.prov.entity[key]["burstbus:produced_by"] = d["produced_by"]  # a run this log does not hold
        else:
            alert = self.alert()
            if alert is not None:
                self.prov.relate("wasInfluencedBy", prov__influencee=key, prov__influencer=alert,
                                 burstbus__relation="the alert that opened the burst")
        return key

    def run(self, request: RecordedEvent, depth: int = 0) -> str:
        key = _entity_key(request.id)
        if key in self.prov.activity:
            return key
        d = request.data
        statuses = self.statuses.get(request.id, [])
        versions = [str(s.data["version"]) for s in statuses if s.data.get("version")]
        ended = next((s for s in reversed(statuses) if s.data.get("status") in ("complete", "failed", "vanished")), None)
        self.prov.activity[key] = _clean({
            "prov:type": "burstbus:run", "prov:label": f"{d.get('pipeline')} attempt {d.get('attempt')}",
            "burstbus:pipeline": d.get("pipeline"), "burstbus:process": d.get("process"), "burstbus:run_id": d.get("run_id"),
            "burstbus:attempt": d.get("attempt"), "burstbus:parameters": d.get("parameters"),
            "burstbus:changed": d.get("changed"), "burstbus:reason": d.get("reason"),
            "burstbus:version": versions[-1] if versions else None, "burstbus:status": ended.data.get("status") if ended else None,
            "prov:startTime": request.occurred_at, "prov:endTime": ended.recorded_at if ended else None,
        })
        pipeline = self.prov.add_agent(f"pipeline:{d.get('pipeline')}", "prov:SoftwareAgent",
                                       burstbus__version=versions[-1] if versions else None)
        self.prov.relate("wasAssociatedWith", prov__activity=key, prov__agent=pipeline, prov__role="pipeline")
        decider = self.prov.add_agent(request.actor, "prov:SoftwareAgent")
        self.prov.relate("wasAssociatedWith", prov__activity=key, prov__agent=decider, prov__role="orchestrator")
        asked = self.asked.get(str(d.get("asked_id") or ""))
        if asked is not None:
            person = self.prov.add_agent(asked.actor, "prov:Person")
            self.prov.relate("wasAssociatedWith", prov__activity=key, prov__agent=person, prov__role="requester",
                             burstbus__asked_at=asked.recorded_at, burstbus__asked=asked.id)
        for used in d.get("inputs") or ():
            source = self.by_id.get(str(used.get("event_id")))
            if source is not None and depth < MAX_DEPTH:
                self.prov.relate("used", prov__activity=key, prov__entity=self.data(source, depth + 1))
        return key


def _accepted_id_of(identified: RecordedEvent) -> str:
    """The accepted notice a ``burst.identified`` is about (by its IVORN's derived id)."""
    return accepted_event_id(str(identified.data.get("ivorn") or ""))


def document(target: RecordedEvent, records: Sequence[RecordedEvent], notices: Mapping[str, RecordedEvent]) -> dict[str, Any]:
    """The PROV-JSON document of ``target`` (a ``data.available``, a ``process.requested`` or a
    notice) from its burst's ``records`` and the ``notices`` they reach (accepted event id →
    record). Raises :class:`NotFound` for any other kind of event."""
    walk = _Walk([*records, target], notices)
    if target.type == DATA_AVAILABLE:
        walk.data(target)
    elif target.type == PROCESS_REQUESTED:
        walk.run(target)
    elif target.type == VOEVENT_ACCEPTED:
        key = walk.notice(target)
        alert = walk.alert()
        if alert is not None and alert != key:
            walk.prov.relate("wasInfluencedBy", prov__influencee=key, prov__influencer=alert,
                             burstbus__relation="the alert that opened the burst")
    else:
        raise NotFound(f"{target.type} {target.id} is not a product, data, run or notice")
    return walk.prov.json()


async def load(log: EventLog, wanted: str) -> dict[str, Any]:
    """The provenance of an event id (a product, data, a run's request id) or a notice's IVORN."""
    target = await log.find(wanted) if "://" not in wanted else None
    if target is None:
        target = await log.find(accepted_event_id(wanted))
    if target is None:
        raise NotFound(f"nothing in the log has the id or IVORN {wanted!r}")
    burst = ""
    if target.type == VOEVENT_ACCEPTED:
        decision = await log.find(decision_id(target.id))
        if decision is not None and decision.type == BURST_IDENTIFIED:
            burst = str(decision.data.get("burst_id") or "")
    else:
        burst = str(target.data.get("burst_id") or target.stream or "")
    records = await log.read(filter=ReadFilter.of(stream=burst)) if burst else []
    notices: dict[str, RecordedEvent] = {}
    pending: list[str] = [_accepted_id_of(r) for r in records if r.type == BURST_IDENTIFIED]
    if target.type == VOEVENT_ACCEPTED:
        notices[target.id] = target
        pending += _cited(target)
    while pending and len(notices) < 10_000:
        event_id = pending.pop()
        if event_id in notices:
            continue
        found = await log.find(event_id)
        if found is not None and found.type == VOEVENT_ACCEPTED:
            notices[event_id] = found
            pending += _cited(found)
    return document(target, records, notices)


def _cited(record: RecordedEvent) -> Iterable[str]:
    return [accepted_event_id(str(c.get("ivorn", ""))) for c in record.data.get("citations") or ()]
