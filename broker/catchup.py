"""Catch-up for VTP subscribers that reconnect: where each one was, and whether it is owed a replay.

Why: VTP has no resume, so a subscriber whose connection drops (its network, a broker restart,
a failover) silently misses what was accepted meanwhile; Comet never had an answer. burstbus
has the log, so it can replay. A subscriber opts in by configuration (``[[vtp.catch_up]]``:
its IVORN *and* its network, since the IVORN in its authenticate reply is only a claim).

Its position is the seq below which it has acknowledged (or was not sent, by its filters)
everything: an event sent but not acknowledged when the connection dropped is sent again,
never skipped (Comet subscribers drop an IVORN they already have). Positions are kept in
memory and written to ``state.sqlite`` about every second and at each disconnect, so a broker
restart within the window owes the replay too; a crash loses at most that second, which
again means a repeat, not a gap.

Pure bookkeeping here; the broadcaster (:mod:`burstbus.broker.broadcaster`) sends.
"""

from __future__ import annotations

import ipaddress
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from burstbus.broker.config import CatchUpSubscriber
from burstbus.state import StateStore

log = logging.getLogger(__name__)

_TABLE = """
CREATE TABLE IF NOT EXISTS vtp_subscriber_positions (
    ivorn   TEXT PRIMARY KEY,
    seq     INTEGER NOT NULL,
    seen_at REAL NOT NULL
)
"""


@dataclass
class Position:
    seq: int
    #: When the subscriber was last connected (``time.time()``).
    seen_at: float


class CatchUp:
    """Which subscribers are owed a replay, from which seq; persisted in ``state.sqlite``."""

    def __init__(self, subscribers: Sequence[CatchUpSubscriber], window: float, state: StateStore | None = None,
                 clock: Callable[[], float] = time.time):
        self.rules = [(s.ivorn, ipaddress.ip_network(s.network, strict=False)) for s in subscribers]
        self.window = window
        self.state = state
        self.clock = clock
        self.positions: dict[str, Position] = {}
        self._dirty: set[str] = set()
        self.replays = 0
        self.replayed = 0

    @property
    def enabled(self) -> bool:
        return bool(self.rules) and self.window > 0

    def eligible(self, ivorn: str | None, host: str) -> bool:
        """Is a subscriber calling itself ``ivorn`` and connected from ``host`` one we keep a
        position for?"""
        if not ivorn or not self.enabled:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ivorn == wanted and address in network for wanted, network in self.rules)

    async def load(self) -> None:
        """Read the stored positions (once, when the broadcaster starts)."""
        if self.state is None:
            return

        def read(conn: sqlite3.Connection) -> list[tuple[str, int, float]]:
            conn.execute(_TABLE)
            return conn.execute("SELECT ivorn, seq, seen_at FROM vtp_subscriber_positions").fetchall()

        for ivorn, seq, seen_at in await self.state.transaction(read):
            self.positions.setdefault(ivorn, Position(int(seq), float(seen_at)))

    def remember(self, ivorn: str, seq: int) -> None:
        """The subscriber is (or was, until now) connected, with everything up to ``seq`` done."""
        known = self.positions.get(ivorn)
        if known is None or known.seq != seq or self.clock() - known.seen_at >= 1.0:
            self.positions[ivorn] = Position(seq, self.clock())
            self._dirty.add(ivorn)

    def resume_from(self, ivorn: str) -> int | None:
        """The seq to replay after, if the subscriber is owed a replay (it was seen within the
        window); None otherwise."""
        known = self.positions.get(ivorn)
        if known is None:
            return None
        away = self.clock() - known.seen_at
        if away > self.window:
            log.info("VTP subscriber %s was away %.0fs, beyond vtp.catch_up_window (%.0fs): no replay",
                     ivorn, away, self.window)
            return None
        return known.seq

    async def flush(self) -> None:
        """Write the positions that changed since the last flush."""
        if self.state is None or not self._dirty:
            return
        rows = [(ivorn, self.positions[ivorn].seq, self.positions[ivorn].seen_at) for ivorn in self._dirty]
        self._dirty = set()

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(_TABLE)
            conn.executemany(
                "INSERT INTO vtp_subscriber_positions (ivorn, seq, seen_at) VALUES (?, ?, ?) "
                "ON CONFLICT(ivorn) DO UPDATE SET seq = excluded.seq, seen_at = excluded.seen_at", rows,
            )

        try:
            await self.state.transaction(write)
        except Exception as exc:  # tried again at the next flush
            log.warning("VTP subscriber positions not saved: %s", exc)
            self._dirty.update(ivorn for ivorn, _, _ in rows)

    def health(self) -> dict[str, object]:
        return {"subscribers": len(self.rules), "window": self.window, "replays": self.replays,
                "replayed": self.replayed}
