"""Received bytes → ``voevent.accepted`` or ``voevent.rejected`` in the log. Every transport calls this.

The pure part (size, safe parse, schema, IVORN and role checks, fact extraction) is
:func:`burstbus.voevent.examine.examine`; it is CPU-bound, so it runs in a thread pool. This
module adds the log:

* An accepted packet's event id is derived from its IVORN, so the log's ``UNIQUE(id)`` is
  the IVORN dedupe, atomic even across processes: re-sending identical bytes finds the
  original (``duplicate``: acknowledge, append nothing), different bytes under a known IVORN
  are refused (``conflict``) and that refusal is itself recorded.
* Every refusal is a ``voevent.rejected`` event with the reason, the SHA-256 and the first
  4 KiB of what was received: nothing is dropped silently.
* The authority rule (:mod:`burstbus.authority`) runs here, after the examination names the
  IVORN and before anything is appended: a source publishing outside the IVORN prefixes it is
  granted (a trigger stream above all) is refused with code ``authority``, whatever transport
  brought the packet.
* Signatures (:mod:`burstbus.signing`, when ``[signatures] enabled``): every accepted packet
  records what its OpenPGP signature showed (``signature``: valid / invalid / untrusted /
  none, and the key); a packet a ``require`` rule selects is refused with code ``signature``
  unless validly signed. Packets of the centre's own sources (``local:triggers``,
  ``local:notices``) are signed here, after the authority rule and before the append, so the
  signed bytes are what the log keeps and every transport sends; re-submitting the same
  unsigned render finds the signed packet already accepted (a duplicate, not a second
  signature). gpg runs in this module's thread pool, never on the event loop.
* The outcome is returned only after the append is durable, so a transport may ACK on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from burstbus.authority import AUTHORITY_CODE, AuthorityPolicy
from burstbus.catalogue import VOEVENT_ACCEPTED, VOEVENT_REJECTED
from burstbus.events import Event, derived_event_id
from burstbus.payload import xml_bytes, xml_fields
from burstbus.signing.armour import without_signature
from burstbus.signing.policy import SIGNATURE_CODE, Checked
from burstbus.store.base import EventLog
from burstbus.voevent.errors import VOEventRejected
from burstbus.voevent.examine import Examined, examine
from burstbus.voevent.extract import warm_up

if TYPE_CHECKING:
    from burstbus.signing.signatures import Signatures

log = logging.getLogger(__name__)

ACCEPTED = VOEVENT_ACCEPTED
REJECTED = VOEVENT_REJECTED
#: How much of a refused packet is kept in its ``voevent.rejected`` event.
REJECTED_EXCERPT_BYTES = 4096

Outcome = Literal["accepted", "duplicate", "rejected"]
#: The examination (or its refusal) and what the signature showed (None: signatures off).
_Examination = tuple[Examined | tuple[str, str], Checked | None]


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What happened to one packet. ``seq`` is the log position that records it:
    the accepted event (also for a duplicate: the original) or the rejection."""

    outcome: Outcome
    seq: int
    ivorn: str | None = None
    reason: str | None = None
    code: str | None = None

    @property
    def acknowledged(self) -> bool:
        """True when the sender should get an ACK: the packet is (already) in the log."""
        return self.outcome != "rejected"


@dataclass(frozen=True, slots=True)
class Submission:
    """One received packet and where it came from.

    ``key``: the transport's own identity of this delivery when it has one that survives a
    crash (a Kafka topic, partition, offset and digest): a refusal then gets an event id
    derived from it, so a transport that re-reads the same message after a crash between the
    append and its position write records the refusal once (an accepted packet's id is its
    IVORN's anyway). ``extra``: what the transport adds to the event's data for the audit
    (``{"kafka": {"partition": 0, "offset": 42, …}}``), never a key of the examination's."""

    raw: bytes
    via: str  # vtp, nats, xmpp, http, import, local, kafka
    peer: str  # address, JID, subject, topic or file path
    key: str | None = None
    extra: Mapping[str, Any] | None = None

    @property
    def actor(self) -> str:
        return f"{self.via}:{self.peer}"


def accepted_event_id(ivorn: str) -> str:
    """The one event id a VOEvent IVORN can ever have in the log."""
    return derived_event_id(ACCEPTED, ivorn)


def accepted_event(item: Submission, examined: Examined, signature: Mapping[str, Any] | None = None) -> Event:
    summary = examined.summary
    data: dict[str, Any] = dict(summary)
    data.update(xml_fields(item.raw))
    data.update(sha256=examined.sha256, size=len(item.raw), via=item.via, peer=item.peer)
    if item.extra:
        data.update({k: v for k, v in item.extra.items() if k not in data})
    if examined.tolerated:  # known quirks of real senders that the strict schema refuses
        data["tolerated"] = list(examined.tolerated)
    if signature is not None:
        data["signature"] = dict(signature)
    return Event(
        type=ACCEPTED,
        data=data,
        stream=str(summary.get("stream") or ""),
        actor=item.actor,
        id=accepted_event_id(summary["ivorn"]),
    )


def rejected_event_id(key: str) -> str:
    """The one id a refusal of the delivery ``key`` (:attr:`Submission.key`) can have."""
    return derived_event_id(REJECTED, key)


def rejected_event(
    item: Submission, reason: str, code: str, ivorn: str | None = None, signature: Mapping[str, Any] | None = None
) -> Event:
    excerpt = item.raw[:REJECTED_EXCERPT_BYTES]
    data: dict[str, Any] = {
        "reason": reason,
        "code": code,
        "via": item.via,
        "peer": item.peer,
        "sha256": hashlib.sha256(item.raw).hexdigest(),
        "size": len(item.raw),
        "truncated": len(item.raw) > REJECTED_EXCERPT_BYTES,
    }
    if ivorn:
        data["ivorn"] = ivorn
    if signature is not None:
        data["signature"] = dict(signature)
    data.update({f"excerpt_{k}": v for k, v in xml_fields(excerpt).items()})
    if item.extra:
        data.update({k: v for k, v in item.extra.items() if k not in data})
    if item.key:
        return Event(type=REJECTED, data=data, stream="", actor=item.actor, id=rejected_event_id(item.key))
    return Event(type=REJECTED, data=data, stream="", actor=item.actor)


class Ingest:
    """The single entry point for VOEvents, whatever transport brought them."""

    def __init__(
        self, log_: EventLog, *, max_bytes: int = 1_048_576, threads: int = 2, authority: AuthorityPolicy | None = None,
        signatures: Signatures | None = None,
    ):
        self.log = log_
        self.max_bytes = max_bytes
        #: Who may publish under which IVORNs (:mod:`burstbus.authority`); the service passes the
        #: configured policy, a bare Ingest (unit tests, tools) reserves nothing.
        self.authority = authority or AuthorityPolicy.open()
        #: Signature checks and our own signing (:mod:`burstbus.signing`); None: off.
        self.signatures = signatures
        self._threads = max(1, threads)
        self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="burstbus-ingest")
        self.counts: Counter[tuple[str, Outcome]] = Counter()

    async def _examine_all(self, raws: list[bytes]) -> list[_Examination]:
        """Examine packets on the pool, one call per thread with a share of them: a call per
        packet costs the loop a future and a wake-up each: a third of a bulk ingest's time here."""
        loop = asyncio.get_running_loop()
        share = -(-len(raws) // self._threads) if raws else 1
        parts = await asyncio.gather(*[loop.run_in_executor(self._pool, self._examine_each, raws[i : i + share])
                                       for i in range(0, len(raws), share)])
        return [found for part in parts for found in part]

    def _examine_each(self, raws: list[bytes]) -> list[_Examination]:
        return [self._examine_and_check(raw) for raw in raws]

    async def submit(self, raw: bytes, *, via: str, peer: str) -> IngestResult:
        """Examine one packet and record the outcome; returns once it is durable."""
        [result] = await self.submit_many([Submission(raw, via, peer)])
        return result

    async def submit_many(self, items: Sequence[Submission]) -> list[IngestResult]:
        """Examine several packets in parallel and record them with one append (bulk import)."""
        examinations = await self._examine_all([item.raw for item in items])
        events: list[Event] = []
        items = list(items)
        for i, (verdict, checked) in enumerate(examinations):
            item = items[i]
            if isinstance(verdict, tuple):
                events.append(rejected_event(item, *verdict))
                continue
            ivorn = str(verdict.summary["ivorn"])
            refusal = self.authority.refusal(item.via, item.peer, ivorn)
            if refusal is not None and await self._have_these_bytes(ivorn, verdict.sha256):
                # Byte for byte a packet already accepted (our own notice coming back through a
                # Kafka topic or a peer broker): it changes nothing, so it is a duplicate, not an
                # attempt to speak for someone else. Not in a trigger stream (see _have_these_bytes).
                events.append(accepted_event(item, verdict, self._facts(item, verdict, checked)))
            elif refusal is not None:
                events.append(rejected_event(item, refusal, AUTHORITY_CODE, ivorn))
            elif self.signatures is None or checked is None:
                events.append(accepted_event(item, verdict))
            else:
                if checked.found == "none" and self.signatures.signs(item.via, item.peer):
                    signed = await self._own_signed(item, ivorn)
                    if isinstance(signed, str):
                        events.append(rejected_event(item, signed, SIGNATURE_CODE, ivorn))
                        continue
                    item, (verdict, checked) = signed
                    items[i] = item
                    if isinstance(verdict, tuple) or checked is None:  # our own signed bytes refused: a bug
                        reason = verdict[0] if isinstance(verdict, tuple) else "not checked"
                        events.append(rejected_event(item, f"the signed packet was refused: {reason}", "internal", ivorn))
                        continue
                decided = self.signatures.decide(item.via, item.peer, ivorn, verdict.summary.get("author_ivorn"), checked)
                if decided.refusal is not None:
                    events.append(rejected_event(item, decided.refusal, SIGNATURE_CODE, ivorn, decided.facts))
                else:
                    events.append(accepted_event(item, verdict, decided.facts))
        appended = await self.log.append(events)
        results: list[IngestResult | None] = [None] * len(items)
        conflicts: list[tuple[int, Event]] = []
        for i, (item, event, where) in enumerate(zip(items, events, appended, strict=True)):
            if event.type == REJECTED:
                results[i] = IngestResult("rejected", where.seq, event.data.get("ivorn"), event.data["reason"], event.data["code"])
                continue
            ivorn = event.data["ivorn"]
            if where.new:
                results[i] = IngestResult("accepted", where.seq, ivorn)
                continue
            original = await self.log.get(where.seq)
            if original is not None and original.data.get("sha256") == event.data["sha256"]:
                results[i] = IngestResult("duplicate", where.seq, ivorn)
                continue
            reason = (
                f"IVORN {ivorn} was already accepted (log seq {where.seq}) with different content; "
                "a changed packet needs a new IVORN"
            )
            conflicts.append((i, rejected_event(item, reason, "conflict", ivorn)))
        if conflicts:
            recorded = await self.log.append([event for _, event in conflicts])
            for (i, event), where in zip(conflicts, recorded, strict=True):
                results[i] = IngestResult("rejected", where.seq, event.data.get("ivorn"), event.data["reason"], "conflict")
        final = [r for r in results if r is not None]
        for item, result in zip(items, final, strict=True):
            self.counts[(item.via, result.outcome)] += 1
            if result.outcome == "rejected":
                log.info("refused %s packet from %s: %s", item.via, item.peer, result.reason)
        return final

    def _facts(self, item: Submission, examined: Examined, checked: Checked | None) -> dict[str, Any] | None:
        if self.signatures is None or checked is None:
            return None
        author = examined.summary.get("author_ivorn")
        return self.signatures.decide(item.via, item.peer, str(examined.summary["ivorn"]), author, checked).facts

    async def _own_signed(self, item: Submission, ivorn: str) -> tuple[Submission, _Examination] | str:
        """Our own packet, signed: the one already accepted under ``ivorn`` if it is this render
        signed before (a re-submission after a crash: signing again would give new bytes, a
        conflict), else freshly signed. A string when it cannot be signed (the refusal)."""
        assert self.signatures is not None
        loop = asyncio.get_running_loop()
        existing = await self.log.find(accepted_event_id(ivorn))
        if existing is not None:
            stored = xml_bytes(existing.data)
            if stored != item.raw and without_signature(stored) == item.raw:
                signed = replace(item, raw=stored)
                return signed, await loop.run_in_executor(self._pool, self._examine_and_check, stored, True)
        try:
            raw = await loop.run_in_executor(self._pool, self.signatures.sign, item.raw)
        except Exception as exc:  # SigningFailed, or gpg itself: never send it unsigned
            log.error("could not sign %s from %s: %s", ivorn, item.actor, exc)
            return f"could not sign the packet with [signatures] sign_with: {exc}"
        signed = replace(item, raw=raw)
        return signed, await loop.run_in_executor(self._pool, self._examine_and_check, raw, True)

    async def _have_these_bytes(self, ivorn: str, sha256: str) -> bool:
        """Whether the log already holds ``ivorn`` accepted with exactly these bytes (outside a
        trigger stream, where every other source's attempt is recorded as a refusal)."""
        if self.authority.in_trigger_stream(ivorn):
            return False
        original = await self.log.find(accepted_event_id(ivorn))
        return original is not None and original.data.get("sha256") == sha256

    async def refuse(
        self, raw: bytes, *, via: str, peer: str, reason: str, code: str, key: str | None = None, **extra: Any
    ) -> IngestResult:
        """Record a refusal decided before the examination (a frame too large or cut short, a
        sender not allowed to submit at all): the same ``voevent.rejected`` every transport
        writes, counted and logged like the ingest's own refusals; returns once durable.
        ``key`` as :attr:`Submission.key` (one event per delivery across re-reads)."""
        item = Submission(raw, via, peer, key)
        event = rejected_event(item, reason, code)
        if extra:
            event = Event(type=event.type, data={**event.data, **extra}, stream=event.stream, actor=event.actor, id=event.id)
        [where] = await self.log.append([event])
        self.counts[(via, "rejected")] += 1
        log.info("refused %s packet from %s: %s", via, peer, reason)
        return IngestResult("rejected", where.seq, None, reason, code)

    def _examine_and_check(self, raw: bytes, signed_here: bool = False) -> _Examination:
        """In a pool thread: the examination, then (if it passed and signatures are on) what the
        signature shows. A broken signature is a fact (``invalid``), never a crash."""
        verdict = self._examine(raw)
        if isinstance(verdict, tuple) or self.signatures is None:
            return verdict, None
        try:
            checked = self.signatures.check(raw)
        except Exception as exc:
            log.exception("unexpected error checking a signature")
            checked = Checked("bad", detail=f"internal error while checking the signature: {exc}")
        if signed_here:
            checked = replace(checked, signed_here=True)
        return verdict, checked

    def _examine(self, raw: bytes) -> Examined | tuple[str, str]:
        """The examined packet, or (reason, code) when it is refused."""
        try:
            return examine(raw, max_bytes=self.max_bytes)
        except VOEventRejected as exc:
            return exc.reason, exc.code
        except Exception as exc:  # a bug in extraction must refuse the packet, not crash the transport
            log.exception("unexpected error examining a packet")
            return f"internal error while examining the packet: {exc}", "internal"

    async def warm_up(self) -> None:
        """Do the extractor's one-time setup (astropy tables) now, not on the first alert."""
        await asyncio.get_running_loop().run_in_executor(self._pool, warm_up)

    async def close(self) -> None:
        """Stop the examination threads and wait for them: a thread still tearing down its
        lxml schema while the interpreter exits can crash the process (seen: double free)."""
        await asyncio.get_running_loop().run_in_executor(None, lambda: self._pool.shutdown(wait=True, cancel_futures=True))
        if self.signatures is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.signatures.close)
