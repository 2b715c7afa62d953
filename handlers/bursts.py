"""Burst correlation: which burst does an accepted notice belong to?

The decision is recorded as a ``burst.identified`` event (with the rule that matched and the
notice's facts) so that the ``bursts`` projection is a pure fold of the log and a replay —
an audit — sees the decision exactly as it was taken, whatever the rules are today.

Rules, first match wins:

1. operator rules from ``[[bursts.rules]]`` (XPath → burst id, optional prefix);
2. a citation (followup / supersedes / retraction) of a notice already tied to a burst;
   or, the other way round, an earlier notice in a burst that cites this one (packets can
   arrive, or be imported, out of order);
3. the notice's own identifier: SVOM's ``Burst_Id`` (``sb26021102``), else LVK's ``GraceID``
   (``S190518bb``), else a GCN trigger number ``TrigID`` with its mission (``swift-532871``,
   ``fermi-792135758``; never a placeholder or negative number). If that id was recorded as
   an *alias* of another burst (rule 4 below merged it), the notice joins that burst (rule
   ``alias``); if a burst of that id exists, it joins it (``param:Burst_Id`` …);
4. ``coincidence`` — only for a notice that would otherwise open a new burst (its own id is
   new, or it has none): a burst with a notice of *another* mission within ``[bursts]
   coincidence_window`` seconds of its event time, and no notice of the same mission, whose
   localisations (when both sides have one with a known error) are compatible: separation ≤
   ``coincidence_sigma`` × √(err₁² + err₂²), capped at ``coincidence_max_separation`` degrees
   (:mod:`burstbus.handlers.coincidence`). The notice joins that burst, and its own id becomes
   an alias of it, so the mission's later packets (same TrigID, same Burst_Id) follow without
   another coincidence. Both sides must be of a kind in ``[bursts] coincidence_kinds``
   (gamma-ray bursts by default: a neutrino 5 s after a GRB is news, not the same burst);
5. the notice's own id opens a new burst. A name the mission gives the burst (``Burst_Id``,
   ``GraceID``) always does; a trigger number only if the notice's kind
   (:func:`burstbus.voevent.kinds.notice_kind`) is one of ``[bursts] kinds`` (GRB, GW and
   unclassified packets by default): microlensing, counterpart, neutrino, known-source and
   pointing packets join bursts by citation or a known identifier, never open one by TrigID.

Why coincidence is tried only after the identifiers: an identifier is the mission's own word,
and coincidence is inference; and why it merges into an *existing* burst only (never renames
one): decisions are recorded and folded as they are, so the first notice's burst id stands
(a Fermi burst an SVOM notice joins stays ``fermi-…``; its ``sb…`` id is an alias).

Only roles listed in ``[bursts] roles`` (default: observation) take part, so GCN's test and
utility packets never open bursts.

Every notice gets exactly one decision in the log: ``burst.identified`` (the burst and the
rule; a coincidence also records the matched notice, time difference, separation and the
allowed separation), or ``burst.none`` (the reason: a role not in ``[bursts] roles``, a kind
that opens no burst, or no rule matched).
Both carry the same derived event id (from the notice's), so a redo after a crash, a second
node or a changed rule set can never record a second, different decision. Chat outboxes
follow these decisions: a notice is posted once its burst is known, with no waiting.

:func:`identify` is pure; :class:`BurstIdentifier` is the log follower around it, keeping
its index (IVORN → burst, citations, aliases, and the sightings the coincidence rule searches:
event time, position, error, mission, kind of every identified notice) in ``state.sqlite`` in
the same transaction as its checkpoint. The index is written from the decisions *as the log
holds them*, so a lost state rebuilt by a replay is the same index, and reaches the same
answers.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from lxml import etree

from burstbus.config import BurstRule, BurstsSection
from burstbus.events import Event, RecordedEvent
from burstbus.handlers.coincidence import (
    CoincidencePolicy,
    Match,
    Sighting,
    best_match,
    sighting_of,
)
from burstbus.notices import IDENTIFIED, NO_BURST, NOTICES, decision_id, is_voevent, notice_key
from burstbus.payload import xml_bytes
from burstbus.state import StateStore
from burstbus.store.base import EventLog
from burstbus.store.consumer import BACKGROUND_INTERVAL, Batch, Follower
from burstbus.voevent.kinds import notice_kind
from burstbus.voevent.parse import parse_xml

log = logging.getLogger(__name__)

CONSUMER = "handler.bursts"
#: Seconds a batch of decisions may wait to share the log's next commit: a decision per notice
#: would otherwise cost a single author one more fsync per notice (bench/vtp.py).
DECISION_LINGER = 0.01

#: Trigger numbers GCN uses as placeholders, which must never merge unrelated packets
#: (negative numbers too: IPN's ``-00001``, BAT known sources' ``-1355732300``).
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
class BurstPolicy:
    """Which kinds open bursts, and the coincidence rule's settings (``[bursts]``)."""

    open_kinds: tuple[str, ...] = ("grb", "gw", "other")
    coincidence: CoincidencePolicy = CoincidencePolicy()

    @staticmethod
    def of(section: BurstsSection) -> BurstPolicy:
        return BurstPolicy(tuple(section.kinds), CoincidencePolicy(
            tuple(section.coincidence_kinds), section.coincidence_window, section.coincidence_sigma,
            section.coincidence_max_separation))


DEFAULT_POLICY = BurstPolicy()


@dataclass(frozen=True, slots=True)
class Identification:
    burst_id: str
    rule: str
    detail: str
    #: The notice's own id when it names another burst (rules ``alias`` and ``coincidence``).
    alias: str | None = None
    #: Why a ``coincidence`` matched (:meth:`Match.as_data`).
    coincidence: Mapping[str, Any] | None = None


def clean_burst_id(value: str) -> str | None:
    """A burst id usable in commands and URLs: no spaces or odd characters, bounded length."""
    cleaned = _SAFE_ID.sub("-", value.strip()).strip("-")[:64]
    return cleaned or None


def trigger_number(value: Any) -> int | None:
    """A GCN ``TrigID`` that identifies a trigger: a positive integer that is no placeholder."""
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return None if number <= 0 or number in PLACEHOLDER_TRIGGERS else number


class BurstIndex(Protocol):
    """What identification needs to know about notices already tied to bursts."""

    def burst_of(self, ivorn: str) -> str | None:
        """The burst of an identified notice."""

    def cited_by(self, ivorn: str) -> tuple[str, str] | None:
        """(burst, citing IVORN) of an identified notice that cites ``ivorn``."""

    def known(self, burst_id: str) -> bool:
        """Does a burst of this id exist (has a notice been identified into it)?"""

    def alias_of(self, burst_id: str) -> str | None:
        """The burst an id was merged into by coincidence, if it was."""

    def near(self, time: float, window: float, other_than: str) -> Iterable[Sighting]:
        """Sightings of missions other than ``other_than`` with an event time within ``window``
        seconds of ``time`` (a mission's own notices never coincide with it, and a flood of one
        mission's notices must not make each later one read all the earlier ones)."""

    def sightings_of(self, burst_id: str) -> Iterable[Sighting]:
        """Every sighting of a burst."""


#: Width of the time buckets a :class:`MemoryIndex` files sightings in (seconds).
_BUCKET = 64.0


@dataclass
class MemoryIndex:
    """A :class:`BurstIndex` in dictionaries (one batch's decisions, and tests)."""

    bursts: dict[str, str] = field(default_factory=dict)
    citing: dict[str, tuple[str, str]] = field(default_factory=dict)
    ids: set[str] = field(default_factory=set)
    aliases: dict[str, str] = field(default_factory=dict)
    _sightings: dict[str, Sighting] = field(default_factory=dict)
    _by_time: dict[int, dict[str, list[Sighting]]] = field(default_factory=dict)  # bucket → mission → sightings
    _by_burst: dict[str, list[Sighting]] = field(default_factory=dict)

    def burst_of(self, ivorn: str) -> str | None:
        return self.bursts.get(ivorn)

    def cited_by(self, ivorn: str) -> tuple[str, str] | None:
        return self.citing.get(ivorn)

    def known(self, burst_id: str) -> bool:
        return burst_id in self.ids

    def alias_of(self, burst_id: str) -> str | None:
        return self.aliases.get(burst_id)

    def near(self, time: float, window: float, other_than: str) -> Iterable[Sighting]:
        first, last = int((time - window) // _BUCKET), int((time + window) // _BUCKET)
        return [s for b in range(first, last + 1) for mission, seen in self._by_time.get(b, {}).items() if mission != other_than
                for s in seen if abs(s.time - time) <= window]

    def sightings_of(self, burst_id: str) -> Iterable[Sighting]:
        return list(self._by_burst.get(burst_id, ()))

    @property
    def sightings(self) -> Mapping[str, Sighting]:
        """Every sighting by IVORN (what is saved)."""
        return self._sightings

    def add_sighting(self, seen: Sighting) -> None:
        """File a sighting (the first for an IVORN stands: a notice is in one burst)."""
        if seen.ivorn in self._sightings:
            return
        self._sightings[seen.ivorn] = seen
        self._by_time.setdefault(int(seen.time // _BUCKET), {}).setdefault(seen.mission, []).append(seen)
        self._by_burst.setdefault(seen.burst_id, []).append(seen)

    def record(self, data: Mapping[str, Any], burst_id: str, alias: str | None = None) -> None:
        """A decision taken: the notice is in ``burst_id`` (and its own id ``alias`` names it)."""
        key = notice_key(data)
        self.bursts[key] = burst_id
        self.ids.add(burst_id)
        for citation in data.get("citations") or ():
            self.citing.setdefault(str(citation.get("ivorn", "")), (burst_id, key))
        if alias and alias != burst_id:
            self.aliases.setdefault(alias, burst_id)
        seen = sighting_of(data, key, burst_id)
        if seen is not None:
            self.add_sighting(seen)


def own_identifier(data: Mapping[str, Any]) -> Identification | None:
    """The burst id a notice names itself (``Burst_Id``, else ``GraceID``, else mission +
    ``TrigID``), whether or not such a burst exists yet."""
    params = data.get("params") or {}
    burst_id = clean_burst_id(str(params.get("Burst_Id") or ""))
    if burst_id:
        return Identification(burst_id, "param:Burst_Id", str(params["Burst_Id"]))
    grace_id = clean_burst_id(str(params.get("GraceID") or ""))
    if grace_id:
        return Identification(grace_id, "param:GraceID", str(params["GraceID"]))
    trig = str(params.get("TrigID") or "").strip()
    mission = str(data.get("mission") or "").strip()
    number = trigger_number(trig) if trig and mission else None
    if number is not None:
        burst = clean_burst_id(f"{mission.lower()}-{number}")
        if burst:
            return Identification(burst, "param:TrigID", f"{mission} {trig}")
    return None


def identify(
    data: Mapping[str, Any],
    index: BurstIndex,
    rules: Sequence[CompiledRule] = (),
    roles: Sequence[str] = ("observation",),
    policy: BurstPolicy = DEFAULT_POLICY,
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
    own = own_identifier(data)
    if own is not None:
        target = index.alias_of(own.burst_id)
        if target:
            return Identification(target, "alias", f"{own.rule} {own.detail}: {own.burst_id} was merged into {target}",
                                  alias=own.burst_id)
        if index.known(own.burst_id):
            return own
    match = coincidence(data, index, policy.coincidence)
    if match is not None:
        return Identification(match.burst_id, "coincidence", _coincidence_text(match), alias=own.burst_id if own else None,
                              coincidence=match.as_data())
    if own is not None and opens(own, data, policy):
        return own
    return None


def opens(own: Identification, data: Mapping[str, Any], policy: BurstPolicy) -> bool:
    """May this notice open burst ``own``? A name the mission gives the burst itself (SVOM's
    ``Burst_Id``, LVK's ``GraceID``) always may — an MXT notice of ``sb26022501`` is that
    burst's even when its ECLAIRs notice never arrived; a trigger number names a trigger of
    anything (a microlensing event, a neutrino, a ToO target), so it opens one only for the
    kinds in ``[bursts] kinds``."""
    return own.rule != "param:TrigID" or notice_kind(data) in policy.open_kinds


def coincidence(data: Mapping[str, Any], index: BurstIndex, policy: CoincidencePolicy) -> Match | None:
    """The burst of another mission this notice coincides with (see the module's rule 4)."""
    new = sighting_of(data, notice_key(data), "")
    if new is None or new.kind not in policy.kinds:
        return None
    return best_match(new, index.near(new.time, policy.window, new.mission), index.sightings_of, policy)


def _coincidence_text(match: Match) -> str:
    sky = ("no localisation with a known error on both sides" if match.separation is None
           else f"{match.separation:.2f}° from {match.position_ivorn} (≤ {match.limit:.2f}°)")
    return f"{match.mission} notice {match.ivorn}: {match.dt:+.3f} s, {sky}"


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
            "kind": notice_kind(accepted.data),
            **({"alias": found.alias} if found.alias else {}),
            **({"coincidence": dict(found.coincidence)} if found.coincidence else {}),
            "notice": notice_facts(accepted),
        },
    )


def no_burst_event(accepted: RecordedEvent, roles: Sequence[str], policy: BurstPolicy = DEFAULT_POLICY) -> Event:
    """The decision that a notice belongs to no burst, and why (same id as a burst would have)."""
    role = accepted.data.get("role")
    kind = notice_kind(accepted.data)
    own = own_identifier(accepted.data)
    if role not in roles:
        reason, detail = "role", f"role {role!r} is not one of [bursts] roles ({', '.join(roles)})"
    elif own is not None and not opens(own, accepted.data, policy):
        reason, detail = "kind", (f"a {kind} notice opens no burst ([bursts] kinds: {', '.join(policy.open_kinds)}), "
                                  f"and no burst {own.burst_id} ({own.rule}) is known")
    else:
        reason, detail = "unmatched", "no operator rule, citation, Burst_Id, GraceID, TrigID or coincidence matched"
    return Event(
        type=NO_BURST,
        id=decision_id(accepted.id),
        stream=accepted.stream,
        actor="system:bursts",
        data={"ivorn": notice_key(accepted.data), "accepted_seq": accepted.seq, "role": role, "kind": kind,
              "reason": reason, "detail": detail},
    )


_INDEX = """
CREATE TABLE IF NOT EXISTS burst_index (
    ivorn    TEXT PRIMARY KEY,
    burst_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS burst_index_burst ON burst_index (burst_id);
CREATE TABLE IF NOT EXISTS burst_citations (
    cited_ivorn  TEXT PRIMARY KEY,
    burst_id     TEXT NOT NULL,
    citing_ivorn TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS burst_aliases (
    alias    TEXT PRIMARY KEY,
    burst_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS burst_sightings (
    ivorn    TEXT PRIMARY KEY,
    burst_id TEXT NOT NULL,
    mission  TEXT NOT NULL,
    kind     TEXT NOT NULL,
    time     REAL NOT NULL,
    ra       REAL,
    dec      REAL,
    err      REAL
);
CREATE INDEX IF NOT EXISTS burst_sightings_time ON burst_sightings (time);
CREATE INDEX IF NOT EXISTS burst_sightings_burst ON burst_sightings (burst_id);
"""
_SIGHTING = "ivorn, burst_id, mission, kind, time, ra, dec, err"


def _chunks(values: Sequence[str], size: int = 500) -> Iterable[tuple[list[str], str]]:
    for start in range(0, len(values), size):
        chunk = list(values[start : start + size])
        yield chunk, ",".join("?" * len(chunk))


#: The most sightings one notice's coincidence search reads, nearest in time first: a flood of
#: notices in one second (a replayed test stream, a bench) must not make every later notice
#: read them all (quadratic), and a real coincidence is among the nearest.
MAX_CANDIDATES = 200


def _load_index(conn: sqlite3.Connection, ivorns: list[str], ids: list[str], moments: list[tuple[float, str]],
                policy: CoincidencePolicy) -> MemoryIndex:
    """The stored index entries relevant to a batch: bursts of these IVORNs and who cites them;
    which of the notices' own ids are bursts or aliases; the sightings of other missions near
    the notices' (time, mission) ``moments`` (at most :data:`MAX_CANDIDATES` each, nearest
    first), and every sighting of the bursts those belong to."""
    index = MemoryIndex()
    for chunk, marks in _chunks(ivorns):
        index.bursts.update(conn.execute(f"SELECT ivorn, burst_id FROM burst_index WHERE ivorn IN ({marks})", chunk).fetchall())
        for cited, burst, citing in conn.execute(
            f"SELECT cited_ivorn, burst_id, citing_ivorn FROM burst_citations WHERE cited_ivorn IN ({marks})", chunk
        ):
            index.citing[cited] = (burst, citing)
    for chunk, marks in _chunks(ids):
        index.ids.update(r[0] for r in conn.execute(f"SELECT DISTINCT burst_id FROM burst_index WHERE burst_id IN ({marks})", chunk))
        index.aliases.update(conn.execute(f"SELECT alias, burst_id FROM burst_aliases WHERE alias IN ({marks})", chunk).fetchall())
    if policy.kinds and policy.window > 0:
        kinds = ",".join("?" * len(policy.kinds))
        bursts: set[str] = set()
        for moment, mission in moments:
            for row in conn.execute(f"SELECT {_SIGHTING} FROM burst_sightings WHERE time BETWEEN ? AND ? "  # noqa: S608
                                    f"AND kind IN ({kinds}) AND mission != ? "
                                    "ORDER BY abs(time - ?), burst_id, ivorn LIMIT ?",
                                    (moment - policy.window, moment + policy.window, *policy.kinds, mission, moment,
                                     MAX_CANDIDATES)):
                index.add_sighting(Sighting(*row))
                bursts.add(row[1])
        for chunk, marks in _chunks(sorted(bursts)):
            for row in conn.execute(f"SELECT {_SIGHTING} FROM burst_sightings WHERE burst_id IN ({marks})", chunk):
                index.add_sighting(Sighting(*row))
        index.ids.update(bursts)
    return index


class BurstIdentifier:
    """Follows accepted notices (``voevent.accepted``, ``notice.accepted``) and appends one
    decision per notice: ``burst.identified`` or ``burst.none``. Its follower retries a failed
    batch from the checkpoint."""

    def __init__(self, log_: EventLog, state: StateStore, rules: Sequence[BurstRule] = (), roles: Sequence[str] = ("observation",),
                 policy: BurstPolicy = DEFAULT_POLICY):
        self.log = log_
        self.state = state
        self.rules = [CompiledRule.of(r) for r in rules]
        self.roles = tuple(roles)
        self.policy = policy
        self.identified_total = 0
        self.no_burst_total = 0
        self.follower: Follower[RecordedEvent] = Follower(
            log_, self._decide, name=CONSUMER, checkpoint=state.checkpoint(CONSUMER), types=NOTICES, batch_size=1000,
            batch_interval=BACKGROUND_INTERVAL,
        )

    @staticmethod
    def of(log_: EventLog, state: StateStore, section: BurstsSection) -> BurstIdentifier:
        """The identifier ``[bursts]`` describes."""
        return BurstIdentifier(log_, state, section.rules, section.roles, BurstPolicy.of(section))

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
        ids = sorted({own.burst_id for r in wanted if (own := own_identifier(r.data)) is not None})
        policy = self.policy.coincidence
        moments = sorted({(seen.time, seen.mission) for r in wanted
                          if (seen := sighting_of(r.data, "", "")) is not None and seen.kind in policy.kinds})
        index = await self.state.run(lambda c: _load_index(c, relevant, ids, moments, policy)) if wanted else MemoryIndex()
        events: list[Event] = []
        for record in wanted:
            found = identify(record.data, index, self.rules, self.roles, self.policy)
            if found is None:
                events.append(no_burst_event(record, self.roles, self.policy))
                continue
            index.record(record.data, found.burst_id, found.alias)
            events.append(identified_event(record, found))
        decided = MemoryIndex()  # this batch's bursts as the log holds them, saved with the checkpoint
        if events:
            appended = await self.log.append(events, linger=DECISION_LINGER)
            for record, event, where in zip(wanted, events, appended, strict=True):
                final = event if where.new else await self.log.get(where.seq)  # decided before: the log's decision stands
                if final is not None and final.type == IDENTIFIED:
                    alias = final.data.get("alias")
                    decided.record(record.data, str(final.data["burst_id"]), str(alias) if alias else None)
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
            conn.executemany("INSERT OR IGNORE INTO burst_aliases (alias, burst_id) VALUES (?, ?)", list(decided.aliases.items()))
            conn.executemany(
                f"INSERT OR IGNORE INTO burst_sightings ({_SIGHTING}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(s.ivorn, s.burst_id, s.mission, s.kind, s.time, s.ra, s.dec, s.err) for s in decided.sightings.values()],
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
