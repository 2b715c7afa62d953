"""The hash chain's verification state for the audit page, computed in the background.

``EventLog.verify()`` walks the whole chain: seconds on a million events, far too slow for
every page view. A :class:`ChainVerifier` runs it in a background task of the HTTP app (at
start, then every ``interval`` seconds when the log has grown) and keeps the last result, so
the page can say "verified up to seq N at TIME" — or where the chain is damaged — at once.
A page view nudges it (:meth:`ChainVerifier.nudge`): when the log has grown and no check
ran in the last ``min_gap`` seconds, one starts in the background, so the page shown next is
fresh without any page ever waiting for the walk. A failure of the check itself (log closed, storage error) is kept and shown as such: it is
neither "ok" nor "damaged".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from burstbus.events import utc_now
from burstbus.store.base import EventLog, Head, Verification
from burstbus.store.sqlite import (
    SQLiteEventLog,
    _verify_chain,  # the backend's own walk; see verify_off_the_reader
)

log = logging.getLogger(__name__)


async def verify_off_the_reader(log_: EventLog) -> Verification:
    """``log.verify()``, but for the SQLite log in a child process of low priority.

    ``SQLiteEventLog.verify`` walks the chain on the log's one reader connection, which every
    follower (projections, the VTP broadcaster, outboxes) reads through: measured here, 100,000
    events hold it for 0.9 s, so a million would stall live alert delivery for ~9 s at every
    check. A read-only connection of our own (WAL: a consistent snapshot, no lock on writers)
    takes the walk off that path. It runs in a child process (``nice`` 10), not a thread: the
    walk is Python hashing that holds the GIL, and on a million events (12 s) it cut the API's
    one-client rate from ~600 to ~200 requests/s while it ran (issue 20's profile). Other
    backends use their own ``verify``.
    """
    if isinstance(log_, SQLiteEventLog):
        return await _verify_in_child(log_.path)
    return await log_.verify()


async def _verify_in_child(path: Path) -> Verification:
    """Run this file as a script on ``path`` and read its one JSON line (killed if cancelled)."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-P", __file__, str(path),  # -P: this folder is not put on sys.path
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        out, err = await child.communicate()
    except BaseException:
        if child.returncode is None:
            child.kill()
            await child.wait()
        raise
    if child.returncode != 0:
        detail = err.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(f"the chain walk failed (exit {child.returncode}): {detail[-1] if detail else 'no output'}")
    found = json.loads(out)
    return Verification(found["count"], Head(*found["head"]), found["first_bad_seq"], found["reason"])


def _verify_sqlite_file(path: Path) -> Verification:
    uri = path.resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("BEGIN")  # one snapshot for the whole walk
        try:
            return _verify_chain(conn, None)
        finally:
            conn.execute("ROLLBACK")
    finally:
        conn.close()


def _child_main(path: str) -> None:
    """The child: walk the chain at low priority and print what was found as one JSON line."""
    with contextlib.suppress(OSError):
        os.nice(10)  # the service's own work comes first
    found = _verify_sqlite_file(Path(path))
    head = found.head
    print(json.dumps({"count": found.count, "head": [head.seq, head.hash, head.recorded_at],
                      "first_bad_seq": found.first_bad_seq, "reason": found.reason}))  # fmt: skip


@dataclass(frozen=True, slots=True)
class ChainState:
    """The outcome of the last completed verification."""

    checked_at: str  # when it finished (fixed-width UTC)
    head_seq: int  # the last seq verified intact (the chain's head when intact)
    head_hash: str | None
    count: int
    ok: bool
    damaged_seq: int | None = None
    reason: str | None = None
    error: str | None = None  # the check could not run (not a verdict on the chain)


class ChainVerifier:
    """Runs ``log.verify()`` now and then; ``state`` is the last result (None before the first).

    Only one verification runs at a time; :meth:`check` may be awaited directly (tests, or a
    page asking for a fresh check).
    """

    def __init__(self, log_: EventLog, interval: float = 300.0, min_gap: float = 30.0):
        self.log = log_
        self.interval = interval
        self.min_gap = min_gap
        self.state: ChainState | None = None
        self.running_since: str | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._nudged: asyncio.Task[None] | None = None
        self._last_started = -math.inf

    async def check(self) -> ChainState:
        """Verify the chain now and keep the result."""
        async with self._lock:
            self.running_since = utc_now()
            self._last_started = time.monotonic()
            try:
                found = await verify_off_the_reader(self.log)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the check failed, not the chain: say so
                log.exception("hash chain verification could not run")
                previous = self.state
                self.state = ChainState(
                    checked_at=utc_now(),
                    head_seq=previous.head_seq if previous else 0,
                    head_hash=previous.head_hash if previous else None,
                    count=previous.count if previous else 0,
                    ok=previous.ok if previous else False,
                    damaged_seq=previous.damaged_seq if previous else None,
                    reason=previous.reason if previous else None,
                    error=f"{type(exc).__name__}: {exc}",
                )
            else:
                self.state = ChainState(
                    checked_at=utc_now(),
                    head_seq=found.head.seq,
                    head_hash=found.head.hash if found.head.seq else None,
                    count=found.count,
                    ok=found.ok,
                    damaged_seq=found.first_bad_seq,
                    reason=found.reason,
                )
                if not found.ok:
                    log.error("hash chain damaged at seq %s: %s", found.first_bad_seq, found.reason)
            finally:
                self.running_since = None
            return self.state

    def nudge(self) -> None:
        """A page was viewed: if the log has grown since the last check and none ran in the
        last ``min_gap`` seconds, verify again in the background (the page does not wait)."""
        if self.running_since is not None or (self._nudged is not None and not self._nudged.done()):
            return
        if time.monotonic() - self._last_started < self.min_gap:
            return
        self._nudged = asyncio.create_task(self._check_if_grown(), name="burstbus-http-chaincheck-nudge")

    async def _check_if_grown(self) -> None:
        try:
            head = (await self.log.head()).seq
            if self.state is None or self.state.error or head != self.state.head_seq:
                await self.check()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("hash chain verification could not run")

    async def _loop(self) -> None:
        last_head = -1
        while True:
            try:
                head = (await self.log.head()).seq
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cannot read the log head for verification")
                head = last_head + 1  # try the check anyway: it records the failure
            if head != last_head or self.state is None or self.state.error:
                await self.check()
                last_head = head
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="burstbus-http-chaincheck")

    async def stop(self) -> None:
        for task in (self._task, self._nudged):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._nudged = None


if __name__ == "__main__":
    _child_main(sys.argv[1])
