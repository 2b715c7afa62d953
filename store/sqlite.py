"""The embedded event log: one SQLite file in WAL mode, written by a single group-commit task.

Why this shape:

* **Group commit.** Every ``append`` call puts its events on a queue and waits. One writer
  task drains whatever is queued and writes it in a single transaction (one thread hop), so
  100 concurrent appenders share one fsync instead of paying for 100.
* **Durable on return.** ``synchronous=FULL`` (default) makes the WAL fsync at each commit;
  ``append`` resolves only after that commit. ``NORMAL`` is available for throughput where a
  power cut may lose the last transactions (not an application crash).
* **Safe with other processes.** The head (seq, hash) is read inside ``BEGIN IMMEDIATE``, so a
  CLI ``import`` and a running service can append to the same file without forking the chain.
* **Append-only.** Triggers refuse UPDATE and DELETE; ``verify`` catches anything that
  bypasses them (someone editing the file by other means).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite

from burstbus.events import (
    GENESIS_HASH,
    Appended,
    Event,
    RecordedEvent,
    StoredRecord,
    decode_json,
    normalise_time,
    utc_now,
)
from burstbus.histogram import Histogram
from burstbus.metrics import Family, counter, histogram
from burstbus.store.base import Head, LogClosed, LogError, LogUnavailable, ReadFilter, Verification
from burstbus.store.chain import chained_hash, record_hash, record_parts
from burstbus.store.export import ExportError, check_chain
from burstbus.store.follow import follow
from burstbus.store.sqlite_thread import connect, run_on_connection
from burstbus.tasks import cancel_and_wait

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    type        TEXT    NOT NULL,
    stream      TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    occurred_at TEXT    NOT NULL,
    recorded_at TEXT    NOT NULL,
    data        TEXT    NOT NULL,
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS events_type ON events (type, seq);
CREATE INDEX IF NOT EXISTS events_stream ON events (stream, seq);
CREATE INDEX IF NOT EXISTS events_recorded ON events (recorded_at);
CREATE TRIGGER IF NOT EXISTS events_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS events_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only: DELETE refused'); END;
"""

_COLUMNS = "seq, id, type, stream, actor, occurred_at, recorded_at, data, prev_hash, hash"

#: Most events one transaction takes; keeps a burst of appends from building one huge commit.
MAX_BATCH_EVENTS = 5000


#: Seconds between the background checkpoints: the copying of committed WAL pages into the
#: database runs on a connection and thread of its own (SQLite's PASSIVE mode: it never waits
#: for, nor holds up, the writer or a reader), at most this often and only after commits. SQLite
#: otherwise checkpoints inside whichever commit crosses ``wal_autocheckpoint``: measured in
#: bench/kafka.py at 50 alerts/s, one such commit every ~8 s took 41.5 ms (its usual 1–2 ms),
#: and the alert in it waited for the copy. A second of commits still copies each rewritten
#: index page once (a bulk import commits ~1–3k pages a second). Durability is the same:
#: every commit is in the WAL, fsync'd, before it returns.
CHECKPOINT_INTERVAL = 1.0

#: WAL pages (4 KiB) after which the writer copies the WAL itself, as SQLite does by default
#: (at 1000): only a backstop, should the background checkpoints fall behind or fail.
WAL_CHECKPOINT_PAGES = 16000

#: Records kept in memory for live followers (a follower further behind reads the database).
TAIL_RECORDS = 4096


@dataclass(slots=True)
class _Encoded:
    """An event ready to write: its data already in canonical text (encoding errors surface
    in the caller's ``append``, not in someone else's batch)."""

    id: str
    type: str
    stream: str
    actor: str
    occurred_at: str
    data_json: str
    #: The canonical record around prev_hash/recorded_at/seq (``store.chain.record_parts``).
    hash_parts: tuple[bytes, bytes]


@dataclass(slots=True)
class _Request:
    events: list[_Encoded]
    #: Seconds this request may wait for another to share its commit (0: commit at once).
    linger: float = 0.0
    done: asyncio.Future[list[Appended]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


def _row_to_event(row: Sequence[Any]) -> RecordedEvent:
    return RecordedEvent(
        seq=row[0],
        id=row[1],
        type=row[2],
        stream=row[3],
        actor=row[4],
        occurred_at=row[5],
        recorded_at=row[6],
        data=decode_json(row[7]),
        prev_hash=row[8],
        hash=row[9],
    )


def translated(exc: BaseException, what: str) -> LogError:
    """The log's own error for a SQLite failure (``exc`` as its cause): "database is locked"
    or "busy" (another process held the write lock past ``busy_timeout``) is
    :class:`LogUnavailable` (retry); anything else is :class:`LogError`."""
    if isinstance(exc, LogError):
        return exc
    text = str(exc).lower()
    error: LogError
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        error = LogUnavailable(f"{what}: {exc} (another process holds the database: retry)")
    else:
        error = LogError(f"{what}: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def _encode(e: Event) -> _Encoded:
    data_json = e.data_json()
    parts = record_parts(id=e.id, type=e.type, stream=e.stream, actor=e.actor, occurred_at=e.occurred_at, data_json=data_json)
    return _Encoded(e.id, e.type, e.stream, e.actor, e.occurred_at, data_json, parts)


def _write_batch(conn: sqlite3.Connection, events: list[_Encoded], now: str) -> tuple[list[Appended], list[StoredRecord], int]:
    """One transaction: read the head, skip known ids, chain and insert the rest, commit.

    Returns the outcome per event, the rows written and the head seq found before them."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT seq, hash, recorded_at FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev_hash, last_recorded = row if row else (0, GENESIS_HASH, "")
        head_before = seq
        # recorded_at never goes backwards, even if the wall clock does: time filters stay monotonic.
        recorded_at = max(now, last_recorded)
        known: dict[str, tuple[int, str]] = {}
        ids = list({e.id for e in events})
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for eid, eseq, ehash in conn.execute(f"SELECT id, seq, hash FROM events WHERE id IN ({marks})", chunk):
                known[eid] = (eseq, ehash)
        rows: list[StoredRecord] = []
        results: list[Appended] = []
        for e in events:
            if e.id in known:
                kseq, khash = known[e.id]
                results.append(Appended(kseq, e.id, khash, False))
                continue
            seq += 1
            digest = chained_hash(e.hash_parts, prev_hash, recorded_at, seq)
            rows.append(StoredRecord(seq, e.id, e.type, e.stream, e.actor, e.occurred_at, recorded_at, e.data_json, prev_hash, digest))
            results.append(Appended(seq, e.id, digest, True))
            known[e.id] = (seq, digest)
            prev_hash = digest
        _insert(conn, rows)
        conn.execute("COMMIT")
        return results, rows, head_before
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


#: Rows per INSERT statement. One statement for many rows binds them all and then runs
#: SQLite once, with the GIL released throughout; ``executemany`` takes the GIL back after
#: every row, and waits for it each time another thread (the event loop) holds it. 90 rows
#: are 900 parameters: under the 999 that SQLite builds before 3.32 allow.
ROWS_PER_INSERT = 90


@functools.lru_cache(maxsize=ROWS_PER_INSERT)
def _insert_sql(rows: int) -> str:
    """The INSERT of ``rows`` rows (one text per size, so SQLite's statement cache keeps each)."""
    return f"INSERT INTO events ({_COLUMNS}) VALUES " + ",".join(["(?,?,?,?,?,?,?,?,?,?)"] * rows)


def _insert(conn: sqlite3.Connection, rows: list[StoredRecord]) -> None:
    """Insert rows in order, :data:`ROWS_PER_INSERT` per statement."""
    for start in range(0, len(rows), ROWS_PER_INSERT):
        group = rows[start:start + ROWS_PER_INSERT]
        conn.execute(_insert_sql(len(group)), [value for row in group for value in row])


def _restore_rows(conn: sqlite3.Connection, rows: list[StoredRecord]) -> int:
    """One transaction: check that ``rows`` continue the chain at the head, insert them."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        head_seq, head_hash = row if row else (0, GENESIS_HASH)
        try:
            for _ in check_chain(rows, first_seq=head_seq + 1, prev_hash=head_hash):
                pass
        except ExportError as exc:
            raise LogError(f"{exc} (this log's head: seq {head_seq})") from None
        _insert(conn, rows)
        conn.execute("COMMIT")
        return int(head_seq)
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _verify_chain(conn: sqlite3.Connection, progress: Callable[[int], None] | None) -> Verification:
    """Recompute every hash in order; stop at the first record that does not match."""
    expected_seq = 1
    prev_hash = GENESIS_HASH
    last: tuple[int, str, str | None] = (0, GENESIS_HASH, None)
    cursor = conn.execute(f"SELECT {_COLUMNS} FROM events ORDER BY seq")
    count = 0
    while True:
        rows = cursor.fetchmany(5000)
        if not rows:
            break
        for seq, eid, etype, stream, actor, occurred_at, recorded_at, data_json, stored_prev, stored_hash in rows:
            head = Head(*last)
            if seq != expected_seq:
                return Verification(count, head, expected_seq, f"seq {expected_seq} is missing (next stored is {seq})")
            if stored_prev != prev_hash:
                return Verification(count, head, seq, "prev_hash does not match the previous record's hash")
            digest = record_hash(
                prev_hash=stored_prev,
                seq=seq,
                id=eid,
                type=etype,
                stream=stream,
                actor=actor,
                occurred_at=occurred_at,
                recorded_at=recorded_at,
                data_json=data_json,
            )
            if digest != stored_hash:
                return Verification(count, head, seq, "stored content does not match its hash")
            count += 1
            expected_seq += 1
            prev_hash = stored_hash
            last = (seq, stored_hash, recorded_at)
        if progress:
            progress(count)
    return Verification(count, Head(*last))


class SQLiteEventLog:
    """The SQLite backend of :class:`burstbus.store.base.EventLog`."""

    def __init__(
        self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection, poll_interval: float,
        checkpointer: aiosqlite.Connection, checkpoint_interval: float = CHECKPOINT_INTERVAL,
    ):
        self.path = path
        self._writer_conn = writer
        self._reader = reader
        self._poll_interval = poll_interval
        #: The background checkpoints' own connection (see CHECKPOINT_INTERVAL).
        self._checkpointer = checkpointer
        self._checkpoint_interval = checkpoint_interval
        #: ``batches_total`` at the last background checkpoint: none is run while it is unchanged.
        self._checkpointed_batches = 0
        self.checkpoints_total = 0
        self.checkpoint_seconds = Histogram()
        self._queue: asyncio.Queue[_Request | None] = asyncio.Queue()
        self._closed = False
        self._appended = asyncio.Event()
        #: A commit whose followers have not been woken yet (see _write_loop).
        self._unannounced = False
        self._writer_task = asyncio.create_task(self._write_loop(), name="burstbus-log-writer")
        self._checkpoint_task = asyncio.create_task(self._checkpoint_loop(), name="burstbus-log-checkpoints")

        self.appended_total = 0
        self.batches_total = 0
        #: Seconds from append() to the durable commit, per call (``/metrics``).
        self.append_seconds = Histogram()
        #: The last records this process committed, contiguous by seq: live followers (the
        #: projections, the VTP broadcaster, the NATS/XMPP/Slack outboxes, SSE) read new records
        #: from here instead of each decoding them again from the database. ``_tail_decoded``
        #: holds each one's RecordedEvent once a follower asked for it (None until then).
        #: Shared objects: treat them as read-only.
        self._tail: list[StoredRecord] = []
        self._tail_decoded: list[RecordedEvent | None] = []

    @classmethod
    async def open(
        cls, path: Path | str, *, synchronous: str = "FULL", poll_interval: float = 0.5,
        checkpoint_interval: float = CHECKPOINT_INTERVAL,
    ) -> SQLiteEventLog:
        """Open (creating if needed) the log at ``path``.

        ``poll_interval`` bounds how late a subscriber notices appends made by another process.
        """
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        opened: list[aiosqlite.Connection] = []
        try:
            writer = await connect(path, synchronous=synchronous.upper())
            opened.append(writer)
            await writer.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
            await writer.executescript(SCHEMA)
            reader = await connect(path, synchronous=synchronous.upper())
            opened.append(reader)
            checkpointer = await connect(path, synchronous=synchronous.upper())
        except sqlite3.Error as exc:  # not a database, unreadable, locked past busy_timeout
            for conn in opened:
                with contextlib.suppress(Exception):
                    await conn.close()
            raise translated(exc, f"opening the log at {path} failed") from exc
        return cls(path, writer, reader, poll_interval, checkpointer, checkpoint_interval)

    def metrics(self) -> list[Family]:
        return [
            counter("burstbus_log_appended_total", "Events this process appended since it started.", [({}, self.appended_total)]),
            counter("burstbus_log_append_batches_total", "Group-commit transactions this process wrote.", [({}, self.batches_total)]),
            histogram("burstbus_log_append_seconds", "Time from append() to durable commit, per call.", [({}, self.append_seconds)]),
            counter("burstbus_log_checkpoints_total", "Background WAL checkpoints this process ran.", [({}, self.checkpoints_total)]),
            histogram("burstbus_log_checkpoint_seconds", "Time of one background WAL checkpoint.", [({}, self.checkpoint_seconds)]),
        ]

    # -- checkpoints --------------------------------------------------------------------

    async def checkpoint(self) -> tuple[int, int]:
        """Copy what is committed in the WAL into the database now, on the checkpoints' own
        connection (PASSIVE: what a reader still uses stays for the next one). Returns
        (frames in the WAL, frames copied)."""
        started = time.perf_counter()
        row = await run_on_connection(self._checkpointer, lambda c: c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
        self.checkpoint_seconds.observe(time.perf_counter() - started)
        self.checkpoints_total += 1
        return int(row[1]), int(row[2])

    async def _checkpoint_loop(self) -> None:
        """Every ``checkpoint_interval`` seconds after commits, :meth:`checkpoint`. A failure
        is logged and tried again next time: meanwhile the writer's own backstop applies."""
        while True:
            await asyncio.sleep(self._checkpoint_interval)
            if self.batches_total == self._checkpointed_batches:
                continue
            self._checkpointed_batches = self.batches_total
            try:
                await self.checkpoint()
            except sqlite3.Error as exc:
                log.warning("background checkpoint of %s failed (the writer's own applies meanwhile): %s", self.path, exc)

    # -- writing -----------------------------------------------------------------------

    async def append(self, events: Sequence[Event], *, linger: float = 0.0) -> list[Appended]:
        if self._closed or self._writer_task.done():
            raise LogClosed("the event log is closed")
        if not events:
            return []
        encoded = [_encode(e) for e in events]
        request = _Request(encoded, linger)
        started = time.perf_counter()
        self._queue.put_nowait(request)
        # Not shielded: a cancelled caller cancels only its own future; its events may still
        # be written (they may already be in the transaction), as with any cancelled append.
        results = await request.done
        self.append_seconds.observe(time.perf_counter() - started)
        return results

    async def _write_loop(self) -> None:
        while True:
            if self._unannounced:
                # The appenders just answered usually append again at once: give them that
                # turn, so that their commit starts before the followers take the loop.
                await asyncio.sleep(0)
                if self._queue.empty():
                    self._wake_subscribers()
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            size = len(first.events)
            stop = False
            while size < MAX_BATCH_EVENTS and not self._queue.empty():
                more = self._queue.get_nowait()
                if more is None:
                    stop = True
                    break
                batch.append(more)
                size += len(more.events)
            if not stop and all(r.linger for r in batch):
                stop = await self._linger(batch, size)
            await self._commit(batch)
            if stop:
                return

    async def _linger(self, batch: list[_Request], size: int) -> bool:
        """Only lingering appends (a handler's decisions, which no sender waits on): hold
        them until another append arrives or the first one's linger is up, so that both share
        one commit and one fsync instead of taking one each (a burst decision per notice would
        otherwise double the commits of a single author). True if the log is closing."""
        if self._unannounced:
            self._wake_subscribers()  # the last commit's followers need not wait for this one
        loop = asyncio.get_running_loop()
        deadline = loop.time() + batch[0].linger
        while size < MAX_BATCH_EVENTS:
            try:
                async with asyncio.timeout_at(deadline):
                    more = await self._queue.get()
            except TimeoutError:
                return False
            if more is None:
                return True
            batch.append(more)
            size += len(more.events)
            if not more.linger:
                while size < MAX_BATCH_EVENTS and not self._queue.empty():
                    extra = self._queue.get_nowait()
                    if extra is None:
                        return True
                    batch.append(extra)
                    size += len(extra.events)
                return False
        return False

    async def _commit(self, batch: list[_Request]) -> None:
        events = [e for request in batch for e in request.events]
        writing = asyncio.ensure_future(run_on_connection(self._writer_conn, lambda c: _write_batch(c, events, utc_now())))
        if self._unannounced:
            # The previous commit's followers run on this thread while SQLite writes this one
            # on its own (the task above is scheduled first, so it is handed over first).
            self._wake_subscribers()
        try:
            results, rows, head_before = await writing
        except Exception as exc:  # the whole transaction rolled back: every waiter learns why
            log.error("append of %d events failed: %s", len(events), exc)
            error = translated(exc, "append failed")
            for request in batch:
                if not request.done.done():
                    request.done.set_exception(error)
            return
        offset = 0
        for request in batch:
            n = len(request.events)
            if not request.done.done():
                request.done.set_result(results[offset : offset + n])
            offset += n
        self.appended_total += sum(1 for r in results if r.new)
        self.batches_total += 1
        self._remember(rows, head_before)
        self._unannounced = True  # followers are woken by the write loop (see _write_loop)

    async def restore(self, records: Sequence[StoredRecord]) -> int:
        """Write records exactly as they were stored elsewhere (an export), continuing this log.

        Nothing is re-stamped or re-hashed: the first record must chain to the head (seq and
        hash), each to the one before it, and each must hash to its own ``hash`` — else
        :class:`LogError` naming its seq, and nothing of this call is written. One
        transaction; for ``burstbus import`` of an export, with no service appending."""
        if self._closed or self._writer_task.done():
            raise LogClosed("the event log is closed")
        if not records:
            return (await self.head()).seq
        rows = list(records)
        try:
            head_before = await run_on_connection(self._writer_conn, lambda c: _restore_rows(c, rows))
        except sqlite3.Error as exc:
            raise translated(exc, "restore failed") from exc
        self._remember(rows, head_before)
        self.appended_total += len(rows)
        self._wake_subscribers()
        return rows[-1].seq

    def _remember(self, rows: list[StoredRecord], head_before: int) -> None:
        """Keep what this process just committed for its live followers (see ``_tail``).

        Kept as stored; a record is decoded the first time a follower wants it decoded, so
        appends with no such follower pay nothing."""
        if not rows:
            return
        tail, decoded = self._tail, self._tail_decoded
        if tail and tail[-1].seq != head_before:
            tail.clear()  # another process appended in between: the tail must stay contiguous
            decoded.clear()
        tail.extend(rows)
        decoded.extend([None] * len(rows))
        if len(tail) > TAIL_RECORDS:
            del tail[: len(tail) - TAIL_RECORDS]
            del decoded[: len(decoded) - TAIL_RECORDS]

    def _tail_index(self, after: int) -> int | None:
        """Where ``after + 1`` is in the tail, if the tail holds it."""
        tail = self._tail
        if tail and tail[0].seq <= after + 1 <= tail[-1].seq:
            return after + 1 - tail[0].seq
        return None

    def _tail_positions(self, after: int, filter: ReadFilter | None, limit: int) -> list[int]:
        """Indexes in the tail of the records after ``after`` matching ``filter``, if the tail
        holds ``after + 1``; else none. Filtering needs no decoding."""
        tail = self._tail
        first = self._tail_index(after)
        if first is None:
            return []
        if filter is None:
            return list(range(first, min(len(tail), first + limit)))
        types = set(filter.types) if filter.types else None
        stream = filter.stream
        since = normalise_time(filter.since) if filter.since is not None else None
        until = normalise_time(filter.until) if filter.until is not None else None
        out: list[int] = []
        for i in range(first, len(tail)):
            item = tail[i]
            if ((types is None or item.type in types) and (stream is None or item.stream == stream)
                    and (since is None or item.recorded_at >= since) and (until is None or item.recorded_at <= until)):
                out.append(i)
                if len(out) >= limit:
                    break
        return out

    def _tail_read(self, after: int, filter: ReadFilter | None, limit: int) -> list[RecordedEvent]:
        """Records after ``after`` from the tail (see :meth:`_tail_positions`), decoded once
        for every follower."""
        tail, decoded = self._tail, self._tail_decoded
        out: list[RecordedEvent] = []
        for i in self._tail_positions(after, filter, limit):
            record = decoded[i]
            if record is None:
                record = decoded[i] = tail[i].decoded()
            out.append(record)
        return out

    async def _follow_read(self, after: int, filter: ReadFilter | None, limit: int) -> list[RecordedEvent]:
        """``read`` for followers: from the tail when it holds ``after + 1``, else the database.

        An answer from the tail may stop at its end even if another process has appended
        beyond it; a follower reads on from there (the next read past the tail asks the
        database, which sees every process's commits), so nothing is skipped. An empty one
        means nothing in the tail matched: ``follow`` then moves past it (:meth:`_tail_covered`)."""
        if self._tail_index(after) is not None:
            return self._tail_read(after, filter, limit)
        return await self.read(after, filter, limit)

    def _tail_covered(self, after: int, filter: ReadFilter) -> int:
        """The tail's last seq if it holds ``after + 1`` and nothing after ``after`` in it
        matches ``filter``; else ``after`` (``follow``'s ``covered``)."""
        if self._tail_index(after) is None or self._tail_positions(after, filter, 1):
            return after
        return self._tail[-1].seq

    async def _follow_read_stored(self, after: int, filter: ReadFilter | None, limit: int) -> list[StoredRecord]:
        """:meth:`_follow_read` with records as stored (no filter: see ``subscribe_stored``)."""
        first = self._tail_index(after)
        if first is not None:
            return self._tail[first:first + limit]
        sql, params = _select(after, None, limit)
        with self._boundary(f"read after seq {after} failed"):
            return [StoredRecord(*row) for row in await self._reader.execute_fetchall(sql, params)]

    def _wake_subscribers(self) -> None:
        self._unannounced = False
        waiting, self._appended = self._appended, asyncio.Event()
        waiting.set()

    # -- reading -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _boundary(self, what: str) -> Iterator[None]:
        """Reads run inside this: only the log's errors leave them (``translated``); a read
        racing ``close`` (aiosqlite's "Connection closed") is :class:`LogClosed`. Arguments
        are checked before it, so a caller's bad argument stays its ``ValueError``."""
        if self._closed:
            raise LogClosed("the event log is closed")
        try:
            yield
        except LogError:
            raise
        except sqlite3.Error as exc:
            raise translated(exc, what) from exc
        except ValueError as exc:  # aiosqlite's "Connection closed", or a row that does not decode
            if self._closed:
                raise LogClosed("the event log is closed") from exc
            raise translated(exc, what) from exc

    async def read(self, after: int = 0, filter: ReadFilter | None = None, limit: int | None = None) -> list[RecordedEvent]:
        sql, params = _select(after, filter, limit)  # a bad filter is the caller's ValueError
        with self._boundary(f"read after seq {after} failed"):
            rows = await self._reader.execute_fetchall(sql, params)
            return [_row_to_event(r) for r in rows]

    async def subscribe(
        self, after: int = 0, filter: ReadFilter | None = None, batch_size: int = 1000
    ) -> AsyncIterator[list[RecordedEvent]]:
        """Catch up from ``after``, then follow live appends.

        No gap and no repeat at the seam: the position advances only past records actually
        read, seq is gap-free and commits are ordered, so "read after my last seq" is exact.
        A scan that finds nothing waits for this process's writer to signal a commit, or for
        ``poll_interval`` (to notice other processes' appends).
        """
        async for batch in follow(
            self._follow_read, self.head, lambda: self._appended, lambda: self._closed,
            self._poll_interval, after, filter, batch_size, self._tail_covered,
        ):
            yield batch

    async def subscribe_stored(self, after: int = 0, batch_size: int = 1000) -> AsyncIterator[list[StoredRecord]]:
        """:meth:`subscribe` without a filter, records as stored (``store.base.subscribe_stored``)."""
        async for batch in follow(
            self._follow_read_stored, self.head, lambda: self._appended, lambda: self._closed,
            self._poll_interval, after, None, batch_size,
        ):
            yield batch

    async def get(self, seq: int) -> RecordedEvent | None:
        with self._boundary(f"get seq {seq} failed"):
            rows = list(await self._reader.execute_fetchall(f"SELECT {_COLUMNS} FROM events WHERE seq = ?", (seq,)))
            return _row_to_event(rows[0]) if rows else None

    async def find(self, event_id: str) -> RecordedEvent | None:
        with self._boundary(f"find id {event_id} failed"):
            rows = list(await self._reader.execute_fetchall(f"SELECT {_COLUMNS} FROM events WHERE id = ?", (event_id,)))
            return _row_to_event(rows[0]) if rows else None

    async def head(self) -> Head:
        with self._boundary("head failed"):
            rows = list(await self._reader.execute_fetchall("SELECT seq, hash, recorded_at FROM events ORDER BY seq DESC LIMIT 1"))
        if not rows:
            return Head(0, GENESIS_HASH, None)
        seq, digest, recorded_at = rows[0]
        return Head(seq, digest, recorded_at)

    async def seq_at(self, moment: str) -> int:
        moment = normalise_time(moment)  # a bad moment is the caller's ValueError
        with self._boundary("seq_at failed"):
            rows = list(await self._reader.execute_fetchall("SELECT MAX(seq) FROM events WHERE recorded_at <= ?", (moment,)))
        return int(rows[0][0] or 0)

    async def verify(self, progress: Callable[[int], None] | None = None) -> Verification:
        with self._boundary("verify failed"):
            return await run_on_connection(self._reader, lambda c: _verify_chain(c, progress))

    async def close(self) -> None:
        if self._closed:
            return
        self._queue.put_nowait(None)
        await self._writer_task
        self._closed = True
        self._wake_subscribers()
        await cancel_and_wait([self._checkpoint_task])
        await self._checkpointer.close()
        await self._writer_conn.close()
        await self._reader.close()


def _select(after: int, filter: ReadFilter | None, limit: int | None) -> tuple[str, list[Any]]:
    """Build the SELECT for ``read``: every value is a bound parameter."""
    clauses = ["seq > ?"]
    params: list[Any] = [after]
    if filter is not None:
        if filter.types:
            # One type: walk its (type, seq) index. Several (a projection runner's usual mix,
            # most of the log): walk seq and test the type — an IN over the index would
            # gather and then sort every range (measured 3x slower).
            column = "type" if len(filter.types) == 1 else "+type"
            clauses.append(f"{column} IN ({','.join('?' * len(filter.types))})")
            params.extend(filter.types)
        if filter.stream is not None:
            clauses.append("stream = ?")
            params.append(filter.stream)
        if filter.since is not None:
            clauses.append("recorded_at >= ?")
            params.append(normalise_time(filter.since))
        if filter.until is not None:
            clauses.append("recorded_at <= ?")
            params.append(normalise_time(filter.until))
    sql = f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(clauses)} ORDER BY seq"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return sql, params
