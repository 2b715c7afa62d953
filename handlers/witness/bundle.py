"""The evidence bundle's format, and its offline check (no database, no configuration needed).

A bundle is UTF-8 JSON lines:

1. **header**: ``{"burstbus_evidence":1,"manifest":{…},"signature":"<base64>"}`` in canonical
   JSON (sorted keys, compact, ASCII). ``signature`` is the centre's Ed25519 signature of
   ``burstbus-evidence/1\\n`` + the manifest's canonical JSON. The manifest says which burst,
   when, which key (``key_id``, ``public_key``), which seqs are the burst's events
   (``events``), the chain segments (``segments``: ``from_seq``, ``to_seq``, ``checkpoint`` =
   the index of the checkpoint line that segment ends at), how many checkpoint and record lines
   follow, and ``body_sha256``: SHA-256 of every byte after the header's line feed.
2. **checkpoints**: one signed checkpoint document per line (:mod:`.checkpoint`), canonical.
3. **records**: every record of every segment, in seq order, one per line in ``burstbus
   export``'s record form (``data_json`` is the exact stored text that was hashed).

**Why it proves something**: each segment runs from a burst event to the first signed
checkpoint at or after it. Recomputing each record's hash (``store/chain.py``), checking that
each chains to the one before, and that the segment's last hash is the checkpoint's signed hash
for that seq, shows the records are exactly those the centre signed into its log's head — with
the checkpoint's signature, not the bundle's, as the anchor (a checkpoint others kept when it
was published shows it was not made later). The manifest's signature and ``body_sha256`` add
that the selection (which events are the burst's) is the centre's and that nothing was changed,
added or dropped: any change to any byte fails the check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from burstbus.events import StoredRecord
from burstbus.store.export import ExportError, check_chain, parse_record, record_line

from .checkpoint import CheckpointError, SignedCheckpoint, canonical, check_signature
from .keys import PublicKey, SigningKey

FORMAT = 1
DOMAIN = b"burstbus-evidence/1\n"
MANIFEST_KEYS = frozenset({"body_sha256", "burst", "checkpoints", "created_at", "events", "first_hash", "key_id", "log",
                           "public_key", "records", "segments"})


class BundleError(ValueError):
    """A bundle that does not check; the message says what and where."""


@dataclass(frozen=True)
class Segment:
    from_seq: int
    to_seq: int
    checkpoint: int

    def to_json(self) -> dict[str, int]:
        return {"checkpoint": self.checkpoint, "from_seq": self.from_seq, "to_seq": self.to_seq}


def build_bundle(*, burst: str, created_at: str, events: Sequence[int], segments: Sequence[Segment],
                 checkpoints: Sequence[SignedCheckpoint], records: Sequence[StoredRecord], key: SigningKey) -> bytes:
    """The bundle's bytes (records in seq order, as the segments list them)."""
    first = checkpoints[0].payload
    body = "".join(c.text() + "\n" for c in checkpoints) + "".join(record_line(r) + "\n" for r in records)
    body_bytes = body.encode("utf-8")
    manifest = {
        "body_sha256": hashlib.sha256(body_bytes).hexdigest(), "burst": burst, "checkpoints": len(checkpoints),
        "created_at": created_at, "events": list(events), "first_hash": first.first_hash, "key_id": key.public.key_id,
        "log": first.log, "public_key": key.public.base64, "records": len(records),
        "segments": [s.to_json() for s in segments],
    }
    signature = key.sign(DOMAIN + canonical(manifest).encode("ascii"))
    header = canonical({"burstbus_evidence": FORMAT, "manifest": manifest, "signature": base64.b64encode(signature).decode("ascii")})
    return header.encode("ascii") + b"\n" + body_bytes


@dataclass
class BundleReport:
    """A bundle that checked: what it holds, for the person who asked."""

    burst: str
    created_at: str
    key_id: str
    events: list[StoredRecord]
    checkpoints: list[SignedCheckpoint]
    segments: list[Segment]
    records: int
    named_key: bool = False
    notes: list[str] = field(default_factory=list)


def manifest_of(data: bytes) -> Mapping[str, Any]:
    """The manifest as written (unchecked): which key to look for."""
    header, _, _ = data.partition(b"\n")
    try:
        value = json.loads(header)
        return dict(value["manifest"])
    except (ValueError, KeyError, TypeError):
        raise BundleError("line 1 is not an evidence bundle's header") from None


def verify_bundle(data: bytes, trusted: Sequence[PublicKey]) -> BundleReport:
    """Check every byte of a bundle; :class:`BundleError` naming the first thing that fails."""
    header_bytes, newline, body = data.partition(b"\n")
    if not newline:
        raise BundleError("not an evidence bundle (no header line)")
    manifest, signature = _header(header_bytes)
    key = _trusted_key(manifest, trusted)
    if not key.verifies(signature, DOMAIN + canonical(manifest).encode("ascii")):
        raise BundleError(f"line 1: the manifest's signature does not verify with key {key.key_id}: the header was altered")
    try:
        lines = body.decode("utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise BundleError(f"the bundle is not UTF-8 at byte {len(header_bytes) + 1 + exc.start}") from None
    if lines[-1] != "":
        raise BundleError("the bundle does not end with a line feed")
    lines.pop()
    n_checkpoints, n_records = manifest["checkpoints"], manifest["records"]
    if len(lines) != n_checkpoints + n_records:
        raise BundleError(f"{len(lines)} lines follow the header; the manifest says {n_checkpoints} + {n_records}")
    checkpoints = [_checkpoint(line, number, key, manifest) for number, line in enumerate(lines[:n_checkpoints], start=2)]
    try:
        records = [parse_record(line, number) for number, line in enumerate(lines[n_checkpoints:], start=2 + n_checkpoints)]
    except ExportError as exc:
        raise BundleError(str(exc)) from None
    segments = _segments(manifest, checkpoints)
    by_seq = _check_segments(segments, checkpoints, records)
    events = manifest["events"]
    if not isinstance(events, list) or not events or any(not isinstance(s, int) or isinstance(s, bool) for s in events):
        raise BundleError("the manifest's events are not a list of seqs")
    if events != sorted(set(events)):
        raise BundleError("the manifest's events are not in order, or repeat")
    missing = [s for s in events if s not in by_seq]
    if missing:
        raise BundleError(f"event seq {missing[0]} of the burst is in no segment")
    # Last, the catch-all: every byte after the header as signed (the checks above name where
    # a change lies when they can; this one catches any other, down to a line's spacing).
    if hashlib.sha256(body).hexdigest() != manifest["body_sha256"]:
        raise BundleError("the lines after the header are not the ones signed (their SHA-256 differs): changed, added or removed")
    report = BundleReport(str(manifest["burst"]), str(manifest["created_at"]), key.key_id, [by_seq[s] for s in events],
                          checkpoints, segments, len(records))
    for name in sorted({c.payload.log for c in checkpoints} - {manifest["log"]}):
        report.notes.append(f"a checkpoint names the log {name!r} (the bundle: {manifest['log']!r}; same record 1)")
    return report


def _header(header_bytes: bytes) -> tuple[dict[str, Any], bytes]:
    try:
        text = header_bytes.decode("ascii")
        value = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise BundleError("line 1 is not an evidence bundle's header (not ASCII JSON)") from None
    if not isinstance(value, dict) or value.get("burstbus_evidence") != FORMAT or set(value) != {"burstbus_evidence", "manifest", "signature"}:
        raise BundleError("line 1 is not a burstbus evidence bundle header (format 1)")
    if canonical(value) != text:
        raise BundleError("line 1 is not in its canonical form (it was re-encoded or edited)")
    manifest = value["manifest"]
    if not isinstance(manifest, dict) or set(manifest) != MANIFEST_KEYS:
        raise BundleError(f"the manifest's keys are not {sorted(MANIFEST_KEYS)}")
    for key in ("checkpoints", "records"):
        if not isinstance(manifest[key], int) or isinstance(manifest[key], bool) or manifest[key] < 0:
            raise BundleError(f"the manifest's {key} is not a count")
    try:
        signature = base64.b64decode(str(value["signature"]), validate=True)
    except (binascii.Error, ValueError):
        raise BundleError("line 1: the signature is not base64") from None
    return manifest, signature


def _trusted_key(manifest: Mapping[str, Any], trusted: Sequence[PublicKey]) -> PublicKey:
    wanted = manifest["key_id"]
    for key in trusted:
        if key.key_id == wanted:
            return key
    have = ", ".join(k.key_id for k in trusted) or "none"
    raise BundleError(f"signed by key {wanted}, which is not a trusted key (trusted: {have})")


def _checkpoint(line: str, number: int, key: PublicKey, manifest: Mapping[str, Any]) -> SignedCheckpoint:
    try:
        checkpoint = SignedCheckpoint.from_document(json.loads(line))
        if checkpoint.text() != line:
            raise CheckpointError("not in its canonical form")
        check_signature(checkpoint, [key])
    except (ValueError, CheckpointError) as exc:
        raise BundleError(f"line {number}: checkpoint: {exc}") from None
    p = checkpoint.payload
    if p.first_hash != manifest["first_hash"]:  # the log's identity; its name is a label (it may be renamed)
        raise BundleError(f"line {number}: the checkpoint is of another log (its record 1 has hash {p.first_hash})")
    return checkpoint


def _segments(manifest: Mapping[str, Any], checkpoints: Sequence[SignedCheckpoint]) -> list[Segment]:
    raw = manifest["segments"]
    if not isinstance(raw, list) or not raw:
        raise BundleError("the manifest lists no segments")
    out: list[Segment] = []
    for i, item in enumerate(raw):
        try:
            segment = Segment(int(item["from_seq"]), int(item["to_seq"]), int(item["checkpoint"]))
        except (KeyError, TypeError, ValueError):
            raise BundleError(f"segment {i} is malformed") from None
        if not 0 <= segment.checkpoint < len(checkpoints):
            raise BundleError(f"segment {i} ends at checkpoint {segment.checkpoint}, which the bundle does not hold")
        if segment.to_seq != checkpoints[segment.checkpoint].payload.seq or segment.from_seq > segment.to_seq or segment.from_seq < 1:
            raise BundleError(f"segment {i} (seq {segment.from_seq}..{segment.to_seq}) does not end at its checkpoint's seq")
        if out and segment.from_seq <= out[-1].to_seq:
            raise BundleError(f"segment {i} overlaps or precedes the one before it")
        out.append(segment)
    return out


def _check_segments(segments: Sequence[Segment], checkpoints: Sequence[SignedCheckpoint],
                    records: Sequence[StoredRecord]) -> dict[int, StoredRecord]:
    """Each segment's records recomputed and chained, ending at its checkpoint's signed hash."""
    by_seq: dict[int, StoredRecord] = {}
    at = 0
    for i, segment in enumerate(segments):
        count = segment.to_seq - segment.from_seq + 1
        part = records[at:at + count]
        at += count
        if len(part) != count:
            raise BundleError(f"segment {i} (seq {segment.from_seq}..{segment.to_seq}) is missing records")
        try:
            checked = list(check_chain(part, first_seq=segment.from_seq, prev_hash=part[0].prev_hash))
        except ExportError as exc:
            raise BundleError(f"segment {i}: {exc}") from None
        signed = checkpoints[segment.checkpoint].payload
        if checked[-1].hash != signed.hash:
            raise BundleError(f"segment {i}: the record at seq {segment.to_seq} has hash {checked[-1].hash}, "
                              f"the checkpoint signed {signed.hash}")
        by_seq.update((r.seq, r) for r in checked)
    if at != len(records):
        raise BundleError(f"{len(records) - at} record line(s) belong to no segment")
    return by_seq
