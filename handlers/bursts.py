"""Burst correlation: which burst does an accepted notice belong to?

The decision is recorded as a ``burst.identified`` event (with the rule that matched and the
notice's facts) so that the ``bursts`` projection is a pure fold of the log and a replay —
an audit — sees the decision exactly as it was taken, whatever the rules are today.

Rules, first match wins:

1. operator rules from ``[[bursts.rules]]`` (XPath → burst id, optional prefix);
2. a citation (followup / supersedes / retraction) of a notice already tied to a burst;
   or, the other way round, an earlier notice in a burst that cites this one (packets can
   arrive, or be imported, out of order);
3. SVOM's ``Burst_Id`` parameter (``sb26021102``);
4. LVK's ``GraceID`` (``S190518bb``);
5. a GCN trigger number ``TrigID`` with its mission (``swift-532871``, ``fermi-792135758``).

Only roles listed in ``[bursts] roles`` (default: observation) take part, so GCN's test and
utility packets never open bursts.

Every notice gets exactly one decision in the log: ``burst.identified`` (the burst and the
rule), or ``burst.none`` (the reason: a role not in ``[bursts] roles``, or no rule matched).
Both carry the same derived event id (from the notice's), so a redo after a crash, a second
node or a changed rule set can never record a second, different decision. Chat outboxes
follow these decisions: a notice is posted once its burst is known, with no waiting.

:func:`identify` is pure; :class:`BurstIdentifier` is the log follower around it, keeping
its IVORN → burst index in ``state.sqlite`` in the same transaction as its checkpoint.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from lxml import etree

from burstbus.config import BurstRule
from burstbus.events import Event, RecordedEvent
from burstbus.notices import IDENTIFIED, NO_BURST, NOTICES, decision_id, is_voevent, notice_key
from burstbus.payload import xml_bytes
from burstbus.state import StateStore
from burstbus.store.base import EventLog
from burstbus.store.consumer import Batch, Follower
from burstbus.voevent.parse import parse_xml

log = logging.getLogger(__name__)

CONSUMER = "handler.bursts"
#: Seconds a batch of decisions may wait to share the log's next commit: a decision per notice
#: would otherwise cost a single author one more fsync per notice (bench/vtp.py).
DECISION_LINGER = 0.01

#: Trigger numbers GCN uses as placeholders, which must never merge unrelated packets.
PLACEHOLDER_TRIGGERS = {0, -1, 99999, 999999}

_SAFE_ID = re.compile(r"[^A-Za-z0-9_.:+-]+")


@dataclass(frozen=True, slots=True)
class CompiledRule:
    name: str
    xpath: etree.XPath
    prefix: str

    @staticmethod
    def of(rule: BurstRule) -> CompiledRule:
        return CompiledRule(rule.name, etree.XPath(rule.xpath), rule.prefix)


@dataclass(frozen=True, slots=True)
class Identification:
    burst_id: str
    rule: str
    detail: str


def clean_burst_id(value: str) -> str | None:
    """A burst id usable in commands and URLs: no spaces or odd characters, bounded length."""
    cleaned = _SAFE_ID.sub("-", value.strip()).strip("-")[:64]
    return cleaned or None


class BurstIndex(Protocol):
    """What identification needs to know about notices already tied to bursts."""

    def burst_of(self, ivorn: str) -> str | None:
        """The burst of an identified notice."""

    def cited_by(self, ivorn: str) -> tuple[str, str] | None:
        """(burst, citing IVORN) of an identified notice that cites ``ivorn``."""


@dataclass
class MemoryIndex:
    """A :class:`BurstIndex` in dictionaries (one batch's decisions, and tests)."""

    bursts: dict[str, str] = field(default_factory=dict)
    citing: dict[str, tuple[str, str]] = field(default_factory=dict)

    def burst_of(self, ivorn: str) -> str | None:
        return self.bursts.get(ivorn)

    def cited_by(self, ivorn: str) -> tuple[str, str] | None:
        return self.citing.get(ivorn)

    def record(self, data: Mapping[str, Any], burst_id: str) -> None:
        key = notice_key(data)
        self.bursts[key] = burst_id
        for citation in data.get("citations") or ():
            self.citing.setdefault(str(citation.get("ivorn", "")), (burst_id, key))


def identify(
    data: Mapping[str, Any],
    index: BurstIndex,
    rules: Sequence[CompiledRule] = (),
    roles: Sequence[str] = ("observation",),
) -> Identification | None:
    """Decide the burst of one accepted notice (``voevent.accepted`` or ``notice.accepted``
    data: a JSON notice has no XML for operator rules and no citations, but the same params,
    so an LVK JSON alert joins its superevent by ``GraceID``), or None."""
    if data.get("role") not in roles:
        return None
    if rules and is_voevent(data):
        found = _by_operator_rule(data, rules)
        if found:
            return found
    for citation in data.get("citations") or ():
        burst = index.burst_of(str(citation.get("ivorn", "")))
        if burst:
            return Identification(burst, f"citation:{citation.get('type', 'followup')}", str(citation["ivorn"]))
    citing = index.cited_by(notice_key(data))
    if citing:
        return Identification(citing[0], "cited-by", citing[1])
    params = data.get("params") or {}
    burst_id = clean_burst_id(str(params.get("Burst_Id") or ""))
    if burst_id:
        return Identification(burst_id, "param:Burst_Id", str(params["Burst_Id"]))
    grace_id = clean_burst_id(str(params.get("GraceID") or ""))
    if grace_id:
        return Identification(grace_id, "param:GraceID", str(params["GraceID"]))
    trig = str(params.get("TrigID") or "").strip()
    mission = str(data.get("mission") or "").strip()
    if trig and mission:
        try:
            number = int(trig)
        except ValueError:
            number = None
        if number is not None and number not in PLACEHOLDER_TRIGGERS:
            burst = clean_burst_id(f"{mission.lower()}-{number}")
            if burst:
                return Identification(burst, "param:TrigID", f"{mission} {trig}")
    return None


def _by_operator_rule(data: Mapping[str, Any], rules: Sequence[CompiledRule]) -> Identification | None:
    try:
        raw = xml_bytes(data)
        root = parse_xml(raw, max_bytes=len(raw) + 1)
    except Exception:  # accepted packets parse; be defensive all the same
        return None
    for rule in rules:
        try:
            result = rule.xpath(root)
        except etree.XPathError as exc:
            log.warning("burst rule %s failed on %s: %s", rule.name, data.get("ivorn"), exc)
            continue
        values = result if isinstance(result, list) else [result]
        for value in values:
            text = value.text if isinstance(value, etree._Element) else str(value)
            burst = clean_burst_id(rule.prefix + (text or "")) if text and str(text).strip() else None
            if burst:
                return Identification(burst, f"config:{rule.name}", str(text).strip())
    return None


def notice_facts(accepted: RecordedEvent) -> dict[str, Any]:
    """What the bursts projection needs to know about a notice, copied into the event."""
    data = accepted.data
    position = data.get("position") or {}
    return {
        "notice_at": data.get("authored") or accepted.recorded_at,
        "event_time": data.get("time"),
        "instrument": data.get("instrument"),
        "mission": data.get("mission"),
        "role": data.get("role"),
        "ra": position.get("ra"),
        "dec": position.get("dec"),
        "err": position.get("err"),
        "retraction": any(c.get("type") == "retraction" for c in data.get("citations") or ())
        or data.get("retraction") is True,  # a JSON notice says so itself (LVK RETRACTION)
    }


def identified_event(accepted: RecordedEvent, found: Identification) -> Event:
    return Event(
        type=IDENTIFIED,
        id=decision_id(accepted.id),
        stream=found.burst_id,
        actor="system:bursts",
        data={
            "burst_id": found.burst_id,
            "ivorn": notice_key(accepted.data),
            "accepted_seq": accepted.seq,
            "rule": found.rule,
            "detail": found.detail,
            "notice": notice_facts(accepted),
        },
    )


def no_burst_event(accepted: RecordedEvent, roles: Sequence[str]) -> Event:
    """The decision that a notice belongs to no burst, and why (same id as a burst would have)."""
    role = accepted.data.get("role")
    if role not in roles:
        reason, detail = "role", f"role {role!r} is not one of [bursts] roles ({', '.join(roles)})"
    else:
        reason, detail = "unmatched", "no operator rule, citation, Burst_Id, GraceID or TrigID matched"
    return Event(
        type=NO_BURST,
        id=decision_id(accepted.id),
        stream=accepted.stream,
        actor="system:bursts",
        data={"ivorn": notice_key(accepted.data), "accepted_seq": accepted.seq, "role": role,
              "reason": reason, "detail": detail},
    )


_INDEX = """
CREATE TABLE IF NOT EXISTS burst_index (
    ivorn    TEXT PRIMARY KEY,
    burst_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS burst_citations (
    cited_ivorn  TEXT PRIMARY KEY,
    burst_id     TEXT NOT NULL,
    citing_ivorn TEXT NOT NULL
);
"""


def _load_index(conn: sqlite3.Connection, ivorns: list[str]) -> MemoryIndex:
    """The stored index entries relevant to a batch: bursts of these IVORNs, and who cites them."""
    index = MemoryIndex()
    for start in range(0, len(ivorns), 500):
        chunk = ivorns[start : start + 500]
        marks = ",".join("?" * len(chunk))
        index.bursts.update(conn.execute(f"SELECT ivorn, burst_id FROM burst_index WHERE ivorn IN ({marks})", chunk).fetchall())
        for cited, burst, citing in conn.execute(
            f"SELECT cited_ivorn, burst_id, citing_ivorn FROM burst_citations WHERE cited_ivorn IN ({marks})", chunk
        ):
            index.citing[cited] = (burst, citing)
    return index


class BurstIdentifier:
    """Follows accepted notices (``voevent.accepted``, ``notice.accepted``) and appends one
    decision per notice: ``burst.identified`` or ``burst.none``. Its follower retries a failed
    batch from the checkpoint."""

    def __init__(self, log_: EventLog, state: StateStore, rules: Sequence[BurstRule] = (), roles: Sequence[str] = ("observation",)):
        self.log = log_
        self.state = state
        self.rules = [CompiledRule.of(r) for r in rules]
        self.roles = tuple(roles)
        self.identified_total = 0
        self.no_burst_total = 0
        self.follower: Follower[RecordedEvent] = Follower(
            log_, self._decide, name=CONSUMER, checkpoint=state.checkpoint(CONSUMER), types=NOTICES, batch_size=1000,
        )

    @property
    def position(self) -> int:
        """The seq of the last notice decided (0 before the first)."""
        return self.follower.position or 0

    async def start(self) -> None:
        await self.state.run(lambda c: c.executescript(_INDEX))
        await self.follower.begin()

    async def _decide(self, batch: Batch[RecordedEvent]) -> None:
        """Decide a batch, append the decisions, then save index and checkpoint together."""
        records = batch.records
        wanted = [r for r in records if r.type in NOTICES and r.seq > self.position]
        relevant = sorted(
            {notice_key(r.data) for r in wanted} | {str(c.get("ivorn", "")) for r in wanted for c in r.data.get("citations") or ()}
        )
        index = await self.state.run(lambda c: _load_index(c, relevant)) if relevant else MemoryIndex()
        events: list[Event] = []
        for record in wanted:
            found = identify(record.data, index, self.rules, self.roles)
            if found is None:
                events.append(no_burst_event(record, self.roles))
                continue
            index.record(record.data, found.burst_id)
            events.append(identified_event(record, found))
        decided = MemoryIndex()  # this batch's bursts as the log holds them, saved with the checkpoint
        if events:
            appended = await self.log.append(events, linger=DECISION_LINGER)
            for record, event, where in zip(wanted, events, appended, strict=True):
                final = event if where.new else await self.log.get(where.seq)  # decided before: the log's decision stands
                if final is not None and final.type == IDENTIFIED:
                    decided.record(record.data, str(final.data["burst_id"]))
                if where.new:
                    if event.type == IDENTIFIED:
                        self.identified_total += 1
                    else:
                        self.no_burst_total += 1

        def save(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT OR IGNORE INTO burst_index (ivorn, burst_id) VALUES (?, ?)", list(decided.bursts.items()))
            conn.executemany(
                "INSERT OR IGNORE INTO burst_citations (cited_ivorn, burst_id, citing_ivorn) VALUES (?, ?, ?)",
                [(cited, burst, citing) for cited, (burst, citing) in decided.citing.items()],
            )
            batch.write_checkpoint(conn)

        await self.state.transaction(save)

    async def catch_up(self, batch_size: int = 5000) -> None:
        """Decide everything accepted up to the log's current head."""
        await self.follower.catch_up(batch_size=batch_size)

    async def follow(self) -> None:
        """Run forever, deciding notices as they are accepted."""
        await self.follower.run()

    def health(self) -> dict[str, object]:
        """The follower's state (``/healthz``): down with the error while a batch is retried."""
        return {**self.follower.health(), "up": not self.follower.retrying, "identified": self.identified_total,
                "no_burst": self.no_burst_total}
