"""Catch-up-then-live reading, shared by every log backend.

A backend supplies ``read`` and ``head`` and signals its own commits on an ``asyncio.Event``
it replaces after each wake-up; this generator does the rest. It is exact because a log's
seq is gap-free and commits are ordered: the position only moves past records actually read
(or, with a filter, past a head noted *before* a read that found nothing), so there is no
gap and no repeat at the seam between stored and live records.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar

from burstbus.store.base import Head, ReadFilter


class _Positioned(Protocol):
    @property
    def seq(self) -> int: ...


#: What is followed: decoded records (RecordedEvent) or stored ones (StoredRecord).
R = TypeVar("R", bound=_Positioned)


async def follow(
    read: Callable[[int, ReadFilter | None, int], Awaitable[list[R]]],
    head: Callable[[], Awaitable[Head]],
    wake_event: Callable[[], asyncio.Event],
    closed: Callable[[], bool],
    poll_interval: float,
    after: int,
    filter: ReadFilter | None,
    batch_size: int,
    covered: Callable[[int, ReadFilter], int] | None = None,
) -> AsyncIterator[list[R]]:
    """Yield batches after ``after``: stored ones first, then live ones as they commit.

    Waits for ``wake_event()`` (this process's commits) or ``poll_interval`` (other
    processes' commits) when there is nothing to read.

    ``covered(position, filter)``: the seq up to which the backend knows, without a query,
    that nothing after ``position`` matches ``filter`` — this process's own latest commits,
    which it keeps in memory — or ``position`` when it does not know. A filtered follower
    woken by a commit holding nothing for it then moves past that commit with no query at
    all, where it asked the database three times (read, head, read again) on the one reader
    connection every other follower and the ingest's lookups queue on. What other processes
    appended beyond is seen at the next wake-up or within ``poll_interval``, as before.
    """
    position = after
    while not closed():
        wake = wake_event()
        batch = await read(position, filter, batch_size)
        if not batch and filter is not None:
            known = covered(position, filter) if covered is not None else position
            if known > position:
                position = known
            else:
                # Nothing matched: note the head, then read again, and only then move past what
                # the filter skipped (a head noted after the read could hide a record committed
                # between the two). The head is asked only here, not before every read: a wake-up
                # for a matching record is one read, with no query ahead of it on the log's
                # reader, where it queued behind every other follower's (bench/kafka.py, 50 alerts/s:
                # append → VTP broadcast p50 3.0 → 0.6 ms).
                head_before = (await head()).seq
                batch = await read(position, filter, batch_size)
                if not batch:
                    position = max(position, head_before)
        if batch:
            position = batch[-1].seq
            yield batch
            continue
        with contextlib.suppress(TimeoutError):
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that lands just after the wake-up, and the follower then never stops.
            async with asyncio.timeout(poll_interval):
                await wake.wait()
