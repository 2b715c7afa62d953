"""``verify --against``: does this log still extend the heads the centre signed?

A signed checkpoint holds one hash, of the record at its ``seq``. The log extends it when that
record still has that hash and every record up to it hashes to its own ``hash`` and chains to
the one before (so, SHA-256 being collision resistant, records 1..seq are exactly the ones that
were signed). What a change looks like:

* **truncated**: the log ends before the checkpoint's seq; the missing records are named;
* **damaged**: a record that does not hash to itself or does not chain (an edit that was not
  re-chained): ``burstbus verify`` finds it too, and the walk names it;
* **rewritten**: the chain is consistent, but the record at the checkpoint's seq has another
  hash — records were changed and everything after re-chained, which only a checkpoint kept
  elsewhere can reveal. One hash cannot say which record changed; the other signed checkpoints
  can bracket it: those given, and those the log itself records (``log.checkpoint_signed``
  events, whose signatures no rewriter can forge). The first changed record lies after the
  newest signed seq that still matches and at or before the oldest that no longer does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from burstbus.catalogue import LOG_CHECKPOINT_SIGNED
from burstbus.events import GENESIS_HASH
from burstbus.store.base import EventLog, ReadFilter, subscribe_stored
from burstbus.store.export import record_checks

from .checkpoint import CheckpointError, SignedCheckpoint, check_signature
from .keys import PublicKey


@dataclass
class AgainstReport:
    """What the comparison found: ``ok`` and the lines to print (the first one says it all)."""

    ok: bool
    lines: list[str] = field(default_factory=list)
    #: The log's head when checked, and where the first change lies (a range; None if none).
    head: int = 0
    changed_from: int | None = None
    changed_to: int | None = None


async def in_log_checkpoints(event_log: EventLog, keys: Sequence[PublicKey]) -> tuple[list[tuple[int, SignedCheckpoint]], list[str]]:
    """The log's own ``log.checkpoint_signed`` events signed by one of ``keys`` (event seq,
    checkpoint), and a problem line for each one whose signature no longer verifies."""
    found: list[tuple[int, SignedCheckpoint]] = []
    problems: list[str] = []
    known = {key.key_id for key in keys}
    after = 0
    flt = ReadFilter.of(types=[LOG_CHECKPOINT_SIGNED])
    while records := await event_log.read(after, flt, 1000):
        for record in records:
            try:
                checkpoint = SignedCheckpoint.from_document(record.data.get("checkpoint"))
            except CheckpointError as exc:
                problems.append(f"the checkpoint recorded at seq {record.seq} is not one ({exc}): altered")
                continue
            if checkpoint.payload.key_id not in known:
                continue
            try:
                check_signature(checkpoint, keys)
            except CheckpointError as exc:
                problems.append(f"the checkpoint recorded at seq {record.seq} was altered: {exc}")
                continue
            found.append((record.seq, checkpoint))
        after = records[-1].seq
    return found, problems


async def verify_against(event_log: EventLog, given: Sequence[SignedCheckpoint], keys: Sequence[PublicKey], *,
                         progress: Callable[[int], None] | None = None) -> AgainstReport:
    """Check the log against ``given`` checkpoints (signatures first, with ``keys``)."""
    report = AgainstReport(ok=True)
    for checkpoint in given:
        try:
            check_signature(checkpoint, keys)
        except CheckpointError as exc:
            report.ok = False
            report.lines.append(f"BAD CHECKPOINT ({checkpoint.payload.seq}): {exc}")
    if not report.ok:
        return report
    recorded, problems = await in_log_checkpoints(event_log, keys)
    head = await event_log.head()
    report.head = head.seq
    signed = list({c.text(): c for c in [*given, *(c for _, c in recorded)]}.values())  # each once
    targets = {c.payload.seq for c in signed} | {1}
    until = min(max(c.payload.seq for c in given), head.seq)
    walked, captured, damage = await _walk(event_log, until, targets, progress)

    def matches(checkpoint: SignedCheckpoint) -> bool | None:
        """True/False: the log's record at its seq has/has not its hash (False: gone); None:
        not compared (beyond the walk: after a damage, or later than every given checkpoint)."""
        seq = checkpoint.payload.seq
        if seq > head.seq:
            return False
        if seq > walked:
            return None
        return captured.get(seq) == checkpoint.payload.hash

    lines: list[str] = []
    for checkpoint in sorted(given, key=lambda c: c.payload.seq):
        p = checkpoint.payload
        what = f"checkpoint seq {p.seq} (signed {p.signed_at} by key {p.key_id}, log {p.log})"
        first = captured.get(1)
        if first is not None and first != p.first_hash:
            lines.append(f"REWRITTEN FROM SEQ 1 or ANOTHER LOG: {what}: record 1 has hash {first}, the signed log "
                         f"begins with {p.first_hash}")
            report.ok = False
        if p.seq > head.seq:
            missing = f"seq {p.seq}" if p.seq == head.seq + 1 else f"seq {head.seq + 1}..{p.seq}"
            lines.append(f"TRUNCATED: {what}: the log ends at seq {head.seq}; {p.seq - head.seq} signed record(s) are gone: {missing}")
            report.ok = False
        elif damage is not None and p.seq >= damage[0]:
            lines.append(f"DAMAGED at seq {damage[0]}: {damage[1]} (before {what} could be compared)")
            report.ok = False
        elif captured.get(p.seq) != p.hash:
            lines.append(f"REWRITTEN: {what}: the record at seq {p.seq} has hash {captured.get(p.seq)}, the signed hash is "
                         f"{p.hash}; records 1..{p.seq} still chain, so they were changed and re-chained")
            report.ok = False
        else:
            lines.append(f"ok: the log extends {what}: seq {p.seq} has the signed hash {p.hash} and records 1..{p.seq} verify")
    if damage is not None and report.ok:  # damage below every given seq cannot happen (walk ends there)
        lines.append(f"DAMAGED at seq {damage[0]}: {damage[1]}")
        report.ok = False
    for problem in problems:
        lines.append(f"ALTERED: {problem}")
        report.ok = False
    if not report.ok:
        _locate(report, lines, signed, matches, head.seq, damage)
    else:
        lines.append(f"the log now ends at seq {head.seq}; {len(recorded)} checkpoint(s) recorded in it were checked too")
    report.lines.extend(lines)
    return report


def _locate(report: AgainstReport, lines: list[str], signed: Sequence[SignedCheckpoint],
            matches: Callable[[SignedCheckpoint], bool | None], head: int, damage: tuple[int, str] | None) -> None:
    """Where the first change lies: exactly at a damage or after a truncated head; for a
    rewrite, between the newest signed seq that still matches and the oldest that does not."""
    good = [c.payload.seq for c in signed if matches(c) is True]
    differing = [c.payload.seq for c in signed if matches(c) is False and c.payload.seq <= head]
    gone = [c.payload.seq for c in signed if matches(c) is False and c.payload.seq > head]
    low = max(good, default=0)
    if damage is not None and (not differing or damage[0] <= min(differing)):
        report.changed_from = report.changed_to = damage[0]
        lines.append(f"where: seq {damage[0]} (the chain breaks there)")
        return
    if differing:
        high = min(differing)
        if low >= high:
            lines.append(f"where: the signed checkpoints disagree (seq {low} matches, seq {high} does not): "
                         "more than one history was signed with this key")
            return
        report.changed_from, report.changed_to = low + 1, high
        if low + 1 == high:
            lines.append(f"where: seq {high} is the first changed record (seq {low} still matches a signed checkpoint)")
        else:
            lines.append(f"where: the first changed record is in seq {low + 1}..{high} (seq {low} still matches a "
                         f"signed checkpoint, seq {high} no longer does; {len(signed)} signed checkpoint(s) compared)")
        return
    if gone:
        report.changed_from, report.changed_to = head + 1, max(gone)
        lines.append(f"where: after seq {head}, where the log now ends (records {head + 1}..{max(gone)} were signed)")


async def _walk(event_log: EventLog, until: int, targets: set[int],
                progress: Callable[[int], None] | None) -> tuple[int, dict[int, str], tuple[int, str] | None]:
    """Records 1..``until`` checked one by one: how far they verify, the hashes at ``targets``,
    and the first damage (seq, reason)."""
    captured: dict[int, str] = {}
    expected, prev = 1, GENESIS_HASH
    if until < 1:
        return 0, captured, None
    batches = subscribe_stored(event_log, 0, 2000)
    async with contextlib.aclosing(batches):  # type: ignore[type-var]
        async for batch in batches:
            for record in batch:
                if record.seq > until:
                    return expected - 1, captured, None
                if record.seq != expected:
                    return expected - 1, captured, (expected, f"seq {expected} is missing (the next record is seq {record.seq})")
                if record.prev_hash != prev:
                    return expected - 1, captured, (record.seq, "it does not chain to the record before it (prev_hash differs)")
                if not record_checks(record):
                    return expected - 1, captured, (record.seq, "its hash does not match its content (edited in place)")
                if record.seq in targets:
                    captured[record.seq] = record.hash
                prev, expected = record.hash, record.seq + 1
            if progress is not None:
                progress(expected - 1)
            if expected > until:
                break
    return expected - 1, captured, None
