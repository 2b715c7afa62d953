"""The log as a file: gzip-compressed JSON lines carrying the hash chain, and back.

Why a format of our own and not a database copy: an export is for the long term and for
others — an archive centre, an auditor, a new cluster — so it must be readable without
burstbus (one JSON object per line, ``zcat`` shows it) and checkable without trusting whoever
kept it (every record keeps its ``prev_hash`` and ``hash``; the data is the exact stored
text, so the hashes can be recomputed byte for byte: :func:`check_chain`).

* Line 1 is a header: ``{"burstbus_export": 1, "from_seq", "to_seq", "prev_hash", "head_hash",
  "exported_at", "count"}``; ``prev_hash`` is what the first record chains from (the genesis
  hash for an export from seq 1).
* Every other line is one record: the stored columns, ``data_json`` as a JSON string holding
  the exact canonical text that was hashed (not an object re-encoded by whoever reads it).

Reading back (:func:`read_export`) checks the header, the seq order and every hash before
handing a record on, and names the seq of the first record that does not check. Works on
any backend: the records are read with :func:`~burstbus.store.base.subscribe_stored`.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from burstbus.events import GENESIS_HASH, StoredRecord, utc_now
from burstbus.store.base import EventLog, LogError, subscribe_stored
from burstbus.store.chain import record_hash

FORMAT = 1
GZIP_MAGIC = b"\x1f\x8b"


class ExportError(LogError):
    """An export that does not check: a changed byte, a gap, a header that does not match."""


@dataclass(frozen=True)
class ExportHeader:
    from_seq: int
    to_seq: int
    prev_hash: str
    head_hash: str
    exported_at: str
    count: int

    def to_json(self) -> str:
        return json.dumps({"burstbus_export": FORMAT, **self.__dict__}, separators=(",", ":"))


def record_line(record: StoredRecord) -> str:
    """One record as its export line (pure)."""
    return json.dumps(
        {"seq": record.seq, "id": record.id, "type": record.type, "stream": record.stream, "actor": record.actor,
         "occurred_at": record.occurred_at, "recorded_at": record.recorded_at, "data_json": record.data_json,
         "prev_hash": record.prev_hash, "hash": record.hash},
        ensure_ascii=False, separators=(",", ":"),
    )


def parse_record(line: str, number: int) -> StoredRecord:
    """An export line back into a record; a line that is not one is an :class:`ExportError`."""
    try:
        item = json.loads(line)
        return StoredRecord(int(item["seq"]), str(item["id"]), str(item["type"]), str(item["stream"]), str(item["actor"]),
                            str(item["occurred_at"]), str(item["recorded_at"]), str(item["data_json"]),
                            str(item["prev_hash"]), str(item["hash"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"line {number} is not an exported record: {exc}") from None


def record_checks(record: StoredRecord) -> bool:
    """True if the record's hash is the hash of its own columns."""
    return record.hash == record_hash(
        prev_hash=record.prev_hash, seq=record.seq, id=record.id, type=record.type, stream=record.stream,
        actor=record.actor, occurred_at=record.occurred_at, recorded_at=record.recorded_at, data_json=record.data_json,
    )


def check_chain(records: Iterable[StoredRecord], *, first_seq: int, prev_hash: str) -> Iterator[StoredRecord]:
    """The records, each checked as it passes: seq in order from ``first_seq``, chained to the
    one before (``prev_hash`` for the first), and hashing to its own ``hash``."""
    expected_seq, expected_prev = first_seq, prev_hash
    for record in records:
        if record.seq != expected_seq:
            raise ExportError(f"seq {record.seq} where seq {expected_seq} was expected (a record is missing or repeated)")
        if record.prev_hash != expected_prev:
            raise ExportError(f"record at seq {record.seq} does not chain to the record before it (prev_hash differs)")
        if not record_checks(record):
            raise ExportError(f"record at seq {record.seq} was changed: its hash does not match its content")
        expected_seq, expected_prev = record.seq + 1, record.hash
        yield record


async def export_log(event_log: EventLog, out: IO[bytes], *, after: int = 0, until: int | None = None,
                     batch_size: int = 1000) -> ExportHeader:
    """Write records ``after < seq <= until`` (default: up to the head now) to ``out``, gzipped."""
    head = await event_log.head()
    last = head.seq if until is None else min(until, head.seq)
    if after > head.seq:
        raise ExportError(f"the log ends at seq {head.seq}; nothing after seq {after}")
    before = await event_log.get(after) if after > 0 else None
    prev_hash = before.hash if before is not None else GENESIS_HASH
    records: list[StoredRecord] = []
    if last > after:
        async for batch in subscribe_stored(event_log, after, batch_size):
            records.extend(r for r in batch if r.seq <= last)
            if batch[-1].seq >= last:
                break
    header = ExportHeader(after + 1, last, prev_hash, records[-1].hash if records else prev_hash, utc_now(), len(records))
    with gzip.GzipFile(fileobj=out, mode="wb") as zipped:
        text = io.TextIOWrapper(zipped, encoding="utf-8", newline="\n")
        text.write(header.to_json() + "\n")
        for record in records:
            text.write(record_line(record) + "\n")
        text.flush()
        text.detach()
    return header


def is_export(path: Path) -> bool:
    """Whether ``path`` is a log export (gzip whose first line is an export header)."""
    try:
        with path.open("rb") as raw:
            if raw.read(2) != GZIP_MAGIC:
                return False
        with gzip.open(path, "rt", encoding="utf-8") as text:
            return '"burstbus_export"' in text.readline(4096)
    except (OSError, EOFError, UnicodeDecodeError):
        return False


def read_export(path: Path) -> tuple[ExportHeader, Iterator[StoredRecord]]:
    """The header and the records of an export, each record checked as it is read."""
    text = gzip.open(path, "rt", encoding="utf-8")  # noqa: SIM115 - closed by the generator
    try:
        header = _header(text.readline())
    except BaseException:
        text.close()
        raise

    def records() -> Iterator[StoredRecord]:
        with text:
            parsed = (parse_record(line, number) for number, line in enumerate(text, start=2) if line.strip())
            count = 0
            for record in check_chain(parsed, first_seq=header.from_seq, prev_hash=header.prev_hash):
                count += 1
                yield record
            if count != header.count:
                raise ExportError(f"the export holds {count} records, its header says {header.count} (truncated?)")

    return header, records()


def _header(line: str) -> ExportHeader:
    try:
        item: dict[str, Any] = json.loads(line)
        if item.get("burstbus_export") != FORMAT:
            raise ValueError(f"format {item.get('burstbus_export')!r}")
        return ExportHeader(int(item["from_seq"]), int(item["to_seq"]), str(item["prev_hash"]), str(item["head_hash"]),
                            str(item["exported_at"]), int(item["count"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"not a burstbus log export (header: {exc})") from None
