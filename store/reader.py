"""Read-only access to the projections file, off the event loop: the read side's one reader.

Every front end (the HTTP API and pages, the bot) reads the projections through it; its
errors are the store's own (:class:`ReadModelError`), which HTTP maps to 503 and the bot to a
polite answer.

Each worker thread of a small pool holds its own read-only ``sqlite3`` connection (opened on
first use, ``mode=ro`` and ``query_only``), so a query never blocks the loop and never
contends with the projection runner's writes (WAL: readers see the last commit). A call
runs in one read transaction, so a handler that reads several tables sees one snapshot.

A query that runs longer than ``timeout`` seconds is interrupted (SQLite progress handler):
one expensive request cannot occupy a reader thread indefinitely.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: SQLite VM steps between two checks of the deadline (cheap: ~µs apart).
_PROGRESS_STEPS = 20_000


class ReadModelError(Exception):
    """The projections could not answer: a front end says so (HTTP 503, a polite bot reply)."""

    description = "Read model unavailable"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ReadModelUnavailable(ReadModelError):
    """Not there or not readable now (a fresh install before the first projection, a lock)."""


class QueryTimeout(ReadModelError):
    """A query ran past the reader's time limit and was stopped."""

    description = "Query time limit exceeded"


class ProjectionReader:
    """Runs ``fn(sqlite3.Connection, *args)`` on a pool of read-only connections."""

    def __init__(self, path: Path | str, *, threads: int = 4, timeout: float = 10.0):
        self.path = Path(path)
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="burstbus-read")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            uri = self.path.resolve().as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only = ON")
            conn.execute("PRAGMA busy_timeout = 5000")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            conn = self._connection()
        except sqlite3.Error as exc:
            raise ReadModelUnavailable(f"the projections database cannot be opened: {exc}") from None
        deadline = time.monotonic() + self.timeout
        try:
            if conn.in_transaction:  # left open by an earlier failure
                conn.execute("ROLLBACK")
            conn.set_progress_handler(lambda: time.monotonic() > deadline, _PROGRESS_STEPS)
            conn.execute("BEGIN")
            return fn(conn, *args)
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise QueryTimeout(
                    f"the query took longer than {self.timeout:g} s and was stopped; "
                    "narrow the filters or page with a smaller limit"
                ) from None
            # "no such table", a locked or missing file: the read model is not there yet.
            raise ReadModelUnavailable(f"the projections cannot be read now: {exc}") from None
        finally:
            conn.set_progress_handler(None, 0)
            if conn.in_transaction:
                conn.execute("ROLLBACK")  # read-only: nothing to keep

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise ReadModelUnavailable("the projections reader is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._call, fn, args)

    def close(self) -> None:
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
