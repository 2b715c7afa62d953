"""``burstbus evidence BURST``: a burst's events, with the chain that ties them to signed heads.

**Which events** (:func:`burst_events`): every record whose stream is the burst id (its
``burst.identified`` decisions, processes and data, trigger requests, decisions, deliveries and
the telescopes' answers, the centre's notices about it), the ``ba.command`` records of its
trigger requests (who typed the request, the approval, the denial), and every record those
cite: by seq (``accepted_seq`` — the notices with their exact packets — ``rejected_seq``,
``request_seq``, a delivery's VTP ``seq``), by event id (a run's inputs, a person's request)
and by IVORN (the trigger packet, a telescope's packet: the accepted packet's id is derived
from its IVORN).

**What ties them to the log** (:func:`segments_for`): for each event, the records from it to
the first signed checkpoint at or after it (``log.checkpoint_signed`` events, signed with the
centre's key). Why not the whole log up to one checkpoint: a hash chain links a record to a later
head only through every record in between, in full, so a segment is the shortest proof there is,
and the prefix before the burst proves nothing about it while costing the whole log; why not
one segment to the newest checkpoint: an old burst would carry every event since. With a
checkpoint every ``[witness] interval``, each segment spans at most that long after its event.
What a bundle cannot prove is that it holds *every* event of the burst: that rests on the
centre's selection, which its signature on the manifest vouches for.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

from burstbus.catalogue import BA_COMMAND, TRIGGER_TYPES
from burstbus.events import RecordedEvent, StoredRecord, utc_now
from burstbus.ingest import accepted_event_id
from burstbus.store.base import EventLog, ReadFilter, subscribe_stored
from burstbus.store.export import ExportError, check_chain

from .against import in_log_checkpoints
from .bundle import Segment, build_bundle
from .checkpoint import SignedCheckpoint
from .keys import SigningKey

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class EvidenceError(Exception):
    """No bundle can be made (an unknown burst, a log that no longer matches what was signed)."""


async def _read_all(event_log: EventLog, flt: ReadFilter) -> list[RecordedEvent]:
    out: list[RecordedEvent] = []
    after = 0
    while records := await event_log.read(after, flt, 1000):
        out.extend(records)
        after = records[-1].seq
    return out


def references(data: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """What a record's data cites: ``("seq", n)``, ``("id", event id)``, ``("ivorn", ivorn)``."""
    if isinstance(data, Mapping):
        for name, value in data.items():
            yield from references(value, str(name))
    elif isinstance(data, list):
        for value in data:
            yield from references(value, key)
    elif isinstance(data, int) and not isinstance(data, bool):
        if key == "seq" or key.endswith("_seq"):
            yield "seq", data
    elif isinstance(data, str):
        if _UUID.match(data):
            yield "id", data
        elif (key == "ivorn" or key.endswith("_ivorn")) and data.startswith("ivo://"):
            yield "ivorn", data


async def burst_events(event_log: EventLog, burst: str) -> list[RecordedEvent]:
    """Every event of ``burst`` (see the module doc), in seq order."""
    own = await _read_all(event_log, ReadFilter.of(stream=burst))
    if not own:
        raise EvidenceError(f"no event has the stream {burst!r}: not a burst id this log knows")
    found: dict[int, RecordedEvent] = {r.seq: r for r in own}
    requests = {str(r.data["request_id"]) for r in own if r.type in TRIGGER_TYPES and r.data.get("request_id")}
    if requests:
        for record in await _read_all(event_log, ReadFilter.of(types=[BA_COMMAND])):
            if record.data.get("request_id") in requests:
                found[record.seq] = record
    for record in list(found.values()):
        for kind, value in references(record.data):
            cited: RecordedEvent | None = None
            if kind == "seq":
                cited = await event_log.get(value) if 0 < value <= record.seq else None
            elif kind == "id":
                cited = await event_log.find(value)
            else:
                cited = await event_log.find(accepted_event_id(value))
            if cited is not None:
                found.setdefault(cited.seq, cited)
    return [found[seq] for seq in sorted(found)]


def segments_for(seqs: Sequence[int], checkpoints: Sequence[SignedCheckpoint]) -> tuple[list[Segment], list[SignedCheckpoint], list[int]]:
    """Each seq's segment to the first checkpoint at or after it (checkpoints sorted by seq);
    the checkpoints used, and the seqs no checkpoint covers yet."""
    ordered = sorted(checkpoints, key=lambda c: c.payload.seq)
    groups: dict[int, list[int]] = {}
    uncovered: list[int] = []
    for seq in sorted(seqs):
        index = next((i for i, c in enumerate(ordered) if c.payload.seq >= seq), None)
        if index is None:
            uncovered.append(seq)
        else:
            groups.setdefault(index, []).append(seq)
    used: list[SignedCheckpoint] = []
    segments: list[Segment] = []
    for index in sorted(groups):
        used.append(ordered[index])
        segments.append(Segment(min(groups[index]), ordered[index].payload.seq, len(used) - 1))
    return segments, used, uncovered


async def _stored(event_log: EventLog, first: int, last: int) -> list[StoredRecord]:
    out: list[StoredRecord] = []
    batches = subscribe_stored(event_log, first - 1, 1000)
    async with contextlib.aclosing(batches):  # type: ignore[type-var]
        async for batch in batches:
            out.extend(r for r in batch if r.seq <= last)
            if batch[-1].seq >= last:
                break
    return out


async def make_bundle(event_log: EventLog, burst: str, key: SigningKey, *,
                      sign_head: Callable[[], Awaitable[SignedCheckpoint]]) -> tuple[bytes, list[RecordedEvent], list[SignedCheckpoint]]:
    """The bundle's bytes, the burst's events and the checkpoints used. ``sign_head`` is called
    (once) when some event comes after the newest checkpoint: it signs and records one now."""
    events = await burst_events(event_log, burst)
    seqs = [r.seq for r in events]
    recorded, problems = await in_log_checkpoints(event_log, [key.public])
    if problems:
        raise EvidenceError(f"{problems[0]}; run burstbus verify --against")
    checkpoints = [c for _, c in recorded]
    segments, used, uncovered = segments_for(seqs, checkpoints)
    if uncovered:
        checkpoints.append(await sign_head())
        segments, used, uncovered = segments_for(seqs, checkpoints)
        if uncovered:
            raise EvidenceError(f"seq {uncovered[0]} is after the checkpoint just signed")
    records: list[StoredRecord] = []
    for segment in segments:
        part = await _stored(event_log, segment.from_seq, segment.to_seq)
        try:
            list(check_chain(part, first_seq=segment.from_seq, prev_hash=part[0].prev_hash if part else ""))
        except ExportError as exc:
            raise EvidenceError(f"the log does not verify: {exc}") from None
        signed = used[segment.checkpoint].payload
        if not part or part[-1].seq != signed.seq or part[-1].hash != signed.hash:
            raise EvidenceError(f"the log no longer matches the checkpoint of seq {signed.seq} it signed "
                                "(run burstbus verify --against)")
        records.extend(part)
    data = build_bundle(burst=burst, created_at=utc_now(), events=seqs, segments=segments, checkpoints=used,
                        records=records, key=key)
    return data, events, used
