"""The event log's protocol: the one small interface every backend implements.

Each guarantee is stated here once and checked by the shared contract suite
(``tests/store/contract.py``) that every backend (SQLite, JetStream) must pass:

* ``append`` is durable when it returns, assigns a gap-free global ``seq`` in commit order,
  links each record into the SHA-256 hash chain, and is idempotent per event ``id``.
* ``read`` returns records in ``seq`` order with optional filters.
* ``subscribe`` yields everything after a position, then live records, with no gap and no
  repeat at the seam between the two.
* ``verify`` walks the chain and names the first damaged ``seq``.

Errors: every method raises only :class:`LogError` and its subclasses for the log's own
failures (:class:`LogClosed`; :class:`LogUnavailable`, "retry"), with the backend's exception
as ``__cause__``; a caller's mistake (a bad argument) stays a ``ValueError``/``TypeError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from burstbus.events import Appended, Event, RecordedEvent, StoredRecord
from burstbus.metrics import Family


class LogError(Exception):
    """A failure of the log itself (storage, corruption, closed log): never a caller's mistake."""


class LogClosed(LogError):
    """The log was closed; nothing more can be appended or read."""


class LogUnavailable(LogError):
    """The log is briefly unavailable: retry. Its backend did not answer in time or could not
    be reached (a JetStream leader election, a restarting server, a lost connection, a SQLite
    database locked by another process), and nothing says it failed for good.

    Every backend raises its transport's timeouts and connection errors as this (the original
    as ``__cause__``), never as the client library's own exceptions. After an ``append`` that
    raised it the events may or may not be stored: appending them again (same ids) is safe,
    the log is idempotent per event id."""


@dataclass(frozen=True, slots=True)
class Head:
    """The newest record's position and hash; ``seq`` 0 and the genesis hash when empty."""

    seq: int
    hash: str
    recorded_at: str | None


@dataclass(frozen=True, slots=True)
class Verification:
    """What ``verify`` found. ``first_bad_seq`` is None when the chain is intact."""

    count: int
    head: Head
    first_bad_seq: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None


@dataclass(frozen=True, slots=True)
class ReadFilter:
    """Which records a read selects; every field optional. Times compare with ``recorded_at``."""

    types: tuple[str, ...] | None = None
    stream: str | None = None
    since: str | None = None
    until: str | None = None

    @staticmethod
    def of(
        types: Iterable[str] | None = None,
        stream: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> ReadFilter:
        return ReadFilter(tuple(types) if types else None, stream, since, until)


class EventLog(Protocol):
    """The append-only, hash-chained event log."""

    async def append(self, events: Sequence[Event], *, linger: float = 0.0) -> list[Appended]:
        """Durably append events in order; an id already present is a no-op (``new=False``).

        ``linger``: for appends no sender waits on (a handler's decisions), how long the
        backend may hold them to share a commit with the next append (it returns later, as
        durable as ever). A backend without group commits ignores it."""

    async def read(
        self, after: int = 0, filter: ReadFilter | None = None, limit: int | None = None
    ) -> list[RecordedEvent]:
        """Records with ``seq > after`` matching ``filter``, in order, at most ``limit``."""

    def subscribe(
        self, after: int = 0, filter: ReadFilter | None = None, batch_size: int = 1000
    ) -> AsyncIterator[list[RecordedEvent]]:
        """Batches of records after ``after``: first the stored ones, then live ones."""

    async def get(self, seq: int) -> RecordedEvent | None:
        """The record at ``seq``, if any."""

    async def find(self, event_id: str) -> RecordedEvent | None:
        """The record with this event id, if any."""

    async def head(self) -> Head:
        """The newest record's position."""

    async def seq_at(self, moment: str) -> int:
        """The last seq recorded at or before ``moment`` (0 if none): what the log knew then."""

    async def verify(self, progress: Callable[[int], None] | None = None) -> Verification:
        """Walk the whole chain; report the first damaged seq, if any."""

    async def close(self) -> None:
        """Finish pending appends and release the backend."""

    def metrics(self) -> list[Family]:
        """The backend's own Prometheus families (``burstbus_log_…``: appends, latency,
        retries), for ``/metrics``: each backend says what it counts."""


def subscribe_stored(log: EventLog, after: int = 0, batch_size: int = 1000) -> AsyncIterator[list[StoredRecord]]:
    """``subscribe`` (no filter) with each record in its stored form, data as JSON text.

    For relays that re-send records without looking inside them. SQLite and JetStream give
    the stored text as it is (their ``subscribe_stored``: nothing decoded, nothing encoded
    again); for any other backend the decoded data is encoded canonically again.
    """
    native = getattr(log, "subscribe_stored", None)
    if native is not None:
        return cast(AsyncIterator[list[StoredRecord]], native(after, batch_size))
    return _encoded_again(log.subscribe(after=after, batch_size=batch_size))


async def _encoded_again(batches: AsyncIterator[list[RecordedEvent]]) -> AsyncIterator[list[StoredRecord]]:
    async with contextlib.aclosing(batches):  # type: ignore[type-var]
        async for batch in batches:
            yield [StoredRecord.of(r) for r in batch]
