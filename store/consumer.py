"""The one way to follow the log: from a checkpoint, in batches, retrying, with health and lag.

Every reader that acts on the log — projections, the burst identifier, the VTP broadcaster,
the NATS/XMPP/Slack outboxes, the SSE hub — is a :class:`Follower` around a handler that
takes a :class:`Batch`. The follower owns what each of them used to write by hand:

* **where to start**: the stored :class:`~burstbus.store.checkpoints.Checkpoint`, else the
  start policy (:attr:`Start.BEGINNING`; :attr:`Start.HEAD` for chat outboxes' first run —
  the archive posted into a room helps nobody — and for VTP and SSE, which have no resume);
  a first-run head is stored at once, so a restart does not start from a newer head;
* **catch-up then live**: the log's ``subscribe`` (or ``subscribe_stored``, records
  undecoded, for a relay), which has no gap and no repeat at the seam;
* **the checkpoint**, moved only past batches the handler finished: inside the handler's own
  transaction when it has a database (:meth:`Batch.write_checkpoint`: exactly once), else
  after it returns (a crash in between repeats the batch, never skips it), or "behind"
  (:attr:`Save.BEHIND`: one write in flight, so an fsync never holds up the next batch; the
  stored position trails, and is never ahead of, what the handler confirmed);
* **retry**: a failing handler (or read) is retried with backoff from the last good
  position, never past the batch; meanwhile :meth:`health` shows it down with the error;
* **health and lag**: position, last activity, failures, last error, and the number of
  events of the followed types still to come (``store/lag.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from burstbus.events import format_time
from burstbus.store.base import EventLog, LogClosed, ReadFilter, subscribe_stored
from burstbus.store.checkpoints import Checkpoint
from burstbus.store.lag import consumer_lag

log = logging.getLogger(__name__)


class _Positioned(Protocol):
    @property
    def seq(self) -> int: ...


#: What is followed: decoded records (RecordedEvent) or stored ones (StoredRecord).
R = TypeVar("R", bound=_Positioned)


class Start(enum.Enum):
    """Where a follower without a stored checkpoint begins."""

    BEGINNING = "beginning"
    HEAD = "head"


#: ``batch_interval`` of the followers off an alert's path (the burst identifier, the trigger
#: linker, the projections). Live, each of them would handle every alert alone: one state or
#: projections transaction, an fsync and several thread hops per alert per follower, which is
#: CPU the alert's own path (ingest → log → VTP broadcast, no interval) then waits for.
#: Paced at one batch per 0.1 s, a lone alert is still handled at once, and a stream of them
#: shares one transaction per follower per 0.1 s; a decision 0.1 s later changes nothing for
#: anyone reading it (chat, pages, a trigger request).
BACKGROUND_INTERVAL = 0.1


class Save(enum.Enum):
    """When the follower stores the position of a batch the handler finished."""

    #: Once the handler returned (unless it wrote the checkpoint in its own transaction).
    AFTER = "after"
    #: In the background, one write at a time, trailing the handled position.
    BEHIND = "behind"


@dataclass(slots=True)
class Batch(Generic[R]):
    """Records for the handler, and the means to move the checkpoint with its own writes."""

    records: Sequence[R]
    checkpoint: Checkpoint | None = None
    #: Set by :meth:`write_checkpoint`: the follower then stores nothing itself.
    written: bool = field(default=False)

    @property
    def last(self) -> int:
        """The seq of the batch's last record: the position once the batch is handled."""
        return self.records[-1].seq

    def write_checkpoint(self, conn: sqlite3.Connection) -> None:
        """Move the checkpoint past this batch inside the handler's open transaction.

        ``conn`` must be the checkpoint's own database; call it in the transaction that
        commits the batch's effects, so both commit or neither does."""
        if self.checkpoint is None:
            return
        self.checkpoint.write(conn, self.last)
        self.written = True


Handler = Callable[[Batch[R]], Awaitable[None]]


def _always(exc: Exception) -> bool:
    return True


class Follower(Generic[R]):
    """Follows ``event_log`` for one consumer and hands it batches (see the module doc)."""

    def __init__(
        self,
        event_log: EventLog,
        handle: Handler[R],
        *,
        name: str,
        checkpoint: Checkpoint | None = None,
        start: Start = Start.BEGINNING,
        types: Iterable[str] | None = None,
        stored: bool = False,
        batch_size: int = 1000,
        save: Save = Save.AFTER,
        prepare: Callable[[], Awaitable[None]] | None = None,
        retryable: Callable[[Exception], bool] = _always,
        retry_delay: float = 1.0,
        max_retry_delay: float = 30.0,
        batch_interval: float = 0.0,
    ):
        """``stored``: records as stored (``StoredRecord``, no type filter) for relays.
        ``prepare`` runs before every (re)start of following, e.g. to check a connection;
        its failures are retried like the handler's. ``retryable`` says which failures are
        retried; any other ends :meth:`run` with it (the service's supervisor takes over).
        ``batch_interval``: the least time, in seconds, between the starts of two live
        batches (see :data:`BACKGROUND_INTERVAL`); 0 reads again as soon as a batch is done."""
        if stored and types:
            raise ValueError("a stored follower reads every type (subscribe_stored has no filter)")
        self.log = event_log
        self.handle = handle
        self.name = name
        self.checkpoint = checkpoint
        self.start = start
        self.types = tuple(sorted(set(types))) if types else None
        self.filter = ReadFilter.of(types=self.types) if self.types else None
        self.stored = stored
        self.batch_size = batch_size
        self.save = save
        self.prepare = prepare
        self.retryable = retryable
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.batch_interval = batch_interval
        #: The seq of the last record handled (None until the start position is known).
        self.position: int | None = None
        #: Set while the position is at the head the last read saw.
        self.caught_up = asyncio.Event()
        #: Set once the start position is known (:meth:`begin` succeeded).
        self.positioned = asyncio.Event()
        self.failures = 0
        self.last_error: str | None = None
        self.handled_total = 0
        self._failing = False
        self._running = False
        self._last_activity: float | None = None
        self._saved: int | None = None
        self._saver: asyncio.Task[None] | None = None

    # -- position ------------------------------------------------------------------------

    async def begin(self) -> int:
        """The position to follow from, decided now: the one in memory (a restart of
        :meth:`run` keeps it), the stored checkpoint, else the start policy."""
        if self.position is not None:
            return self.position
        stored = await self.checkpoint.load() if self.checkpoint is not None else None
        if stored is None:
            stored = 0 if self.start is Start.BEGINNING else (await self.log.head()).seq
            if self.checkpoint is not None and self.start is Start.HEAD:
                await self.checkpoint.save(stored)  # a restart resumes here, not at a newer head
                log.info("%s starts at log seq %d (first run)", self.name, stored)
        self.position = self._saved = stored
        self.positioned.set()
        return stored

    # -- following -----------------------------------------------------------------------

    async def run(self) -> None:
        """Follow for ever (until the log closes): catch up, then live; failures retried."""
        self._running = True
        delay = self.retry_delay
        try:
            while True:
                try:
                    await self.begin()  # in the loop: a log unavailable at start is waited out too
                    if self.prepare is not None:
                        await self.prepare()
                    await self._mark_caught_up()
                    async with contextlib.aclosing(self._batches()) as batches:  # type: ignore[type-var]
                        async for records in batches:
                            started = time.monotonic()
                            await self._deliver(records)
                            delay = self.retry_delay
                            if self.batch_interval and len(records) < self.batch_size:
                                # Live, and paced: what commits meanwhile waits and shares the
                                # next batch (a full batch is catch-up: read on at once).
                                await asyncio.sleep(self.batch_interval - (time.monotonic() - started))
                    return  # the log closed
                except LogClosed:
                    return
                except Exception as exc:
                    self._failed(exc)
                    if not self.retryable(exc):
                        raise
                    log.warning("%s failed after seq %s (%s); retrying in %.1fs", self.name, self.position, self.last_error, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.max_retry_delay)
        finally:
            self._running = False
            await self._finish_saving()

    async def catch_up(self, stop_at: int | None = None, progress: Callable[[int], None] | None = None,
                       batch_size: int | None = None) -> int:
        """Handle everything up to the log's current head (or ``stop_at``), store that
        position and return it: for commands that run without a service. No retry: a
        failure is the command's."""
        if self.stored:
            raise ValueError("catch_up reads decoded records")
        position = await self.begin()
        target = (await self.log.head()).seq
        if stop_at is not None:
            target = min(target, stop_at)
        size = batch_size or self.batch_size
        while position < target:
            records = [r for r in await self.log.read(position, self.filter, size) if r.seq <= target]
            if not records:
                break
            await self._deliver(records)  # type: ignore[arg-type]  # decoded: R is RecordedEvent here
            position = records[-1].seq
            if progress is not None:
                progress(position)
        if position < target:  # only records of other types up to the target: nothing to do
            if self.checkpoint is not None:
                await self.checkpoint.save(target)
            self.position = self._saved = target
        return target

    def _batches(self) -> AsyncIterator[list[R]]:
        assert self.position is not None
        if self.stored:
            return subscribe_stored(self.log, self.position, self.batch_size)  # type: ignore[return-value]
        return self.log.subscribe(self.position, self.filter, self.batch_size)  # type: ignore[return-value]

    async def _deliver(self, records: Sequence[R]) -> None:
        batch = Batch(records, self.checkpoint)
        # Not caught up while a batch is in hand: "caught up" promises that nothing read is
        # still being handled (seen: a test took a set flag from the previous batch as the
        # outbox being idle, stopped the XMPP server under an unacknowledged send, and got
        # the message twice).
        self.caught_up.clear()
        await self.handle(batch)
        last = records[-1].seq
        if batch.written:
            self._saved = last
        elif self.checkpoint is not None and self.save is Save.AFTER:
            await self.checkpoint.save(last)
            self._saved = last
        # No await from here on: a caller reading ``position`` sees it move with the handler.
        self.position = last
        self.handled_total += len(records)
        self._last_activity = time.time()
        self._failing = False
        if len(records) < self.batch_size:  # that read reached the head
            self.caught_up.set()
        else:
            self.caught_up.clear()
        if self.checkpoint is not None and self.save is Save.BEHIND and not batch.written:
            self._save_soon()

    async def _mark_caught_up(self) -> None:
        assert self.position is not None
        if self.stored:
            waiting = (await self.log.head()).seq > self.position
        else:
            waiting = bool(await self.log.read(self.position, self.filter, limit=1))
        if waiting:
            self.caught_up.clear()
        else:
            self.caught_up.set()
            self._failing = False  # nothing waiting: nothing failing (a read had failed)

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._failing = True
        self.caught_up.clear()

    # -- the "behind" checkpoint ---------------------------------------------------------

    def _save_soon(self) -> None:
        if self._saver is None or self._saver.done():
            self._saver = asyncio.create_task(self._save_behind(), name=f"burstbus-{self.name}-checkpoint")

    async def _save_behind(self) -> None:
        assert self.checkpoint is not None
        while self.position is not None and (self._saved is None or self._saved < self.position):
            target = self.position
            try:
                await self.checkpoint.save(target)
            except Exception as exc:  # tried again after the next batch
                log.warning("%s: checkpoint not saved at seq %d: %s", self.name, target, exc)
                return
            self._saved = target

    async def _finish_saving(self) -> None:
        """On the way out: let the write in flight finish, and store the last position."""
        if self.checkpoint is None or self.save is not Save.BEHIND:
            return
        behind = self.position is not None and (self._saved is None or self._saved < self.position)
        if behind and (self._saver is None or self._saver.done()):
            self._save_soon()
        saver = self._saver
        if saver is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(saver)

    # -- health --------------------------------------------------------------------------

    @property
    def saved(self) -> int | None:
        """The position last stored (trails :attr:`position` by a write in ``BEHIND`` mode)."""
        return self._saved

    @property
    def last_activity(self) -> str | None:
        """When a batch was last handled (UTC, the log's time format)."""
        if self._last_activity is None:
            return None
        return format_time(datetime.fromtimestamp(self._last_activity, UTC))

    @property
    def up(self) -> bool:
        """Following, and the last attempt did not fail."""
        return self._running and not self._failing

    @property
    def retrying(self) -> bool:
        """The last attempt failed; the follower waits to try that batch again."""
        return self._running and self._failing

    def health(self) -> dict[str, Any]:
        """What ``/healthz`` shows: down while retrying, with the error."""
        return {
            "up": self.up,
            "retrying": self.retrying,
            "position": self.position,
            "caught_up": self.caught_up.is_set(),
            "last_activity": self.last_activity,
            "failures": self.failures,
            "last_error": self.last_error,
        }

    async def lag(self) -> int:
        """Events of the followed types between the position and the log's head."""
        return await consumer_lag(self.log, self.position or 0, (await self.log.head()).seq, self.types)
