"""Per-sender rate limits, decided before a message becomes an event.

Every command is a permanent ``ba.command`` event, so without a limit anyone who can reach
the bot (an unlisted account on a federated server) could fill the log. A token bucket per
sender (bare JID; for askers a room hides, the room: a nickname is free to change): a few
commands per :data:`PERIOD` for unlisted senders, more for people in ``[acl]``. Over the limit,
the first message is answered and recorded once (outcome ``rate_limited``); the rest of the
window is dropped — no answer, no event — and only counted (health), with one log line per
window. Clocked by ``time.monotonic``, not the log's clock: it is about the sender's pace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

log = logging.getLogger(__name__)

#: Seconds: the bucket's refill period and the length of a limited window.
PERIOD = 10.0
#: Commands per PERIOD (and the burst allowed at once) for people in ``[acl]``.
LISTED = 20
#: … and for everyone else (unlisted JIDs, askers whose JID a room hides).
UNLISTED = 5
#: Buckets kept at most; idle (full) ones are forgotten first.
MAX_SENDERS = 10_000

Verdict = Literal["ok", "refuse", "drop"]


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    limited_until: float = 0.0
    dropped: int = 0


@dataclass
class RateLimiter:
    listed: int = LISTED
    unlisted: int = UNLISTED
    period: float = PERIOD
    clock: Callable[[], float] = time.monotonic
    what: str = "commands"
    refused_total: int = 0
    dropped_total: int = 0
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def check(self, sender: str, *, trusted: bool) -> Verdict:
        """``ok``: go on; ``refuse``: over the limit, answer and record this one; ``drop``:
        still in the limited window, say and record nothing."""
        now = self.clock()
        capacity = float(self.listed if trusted else self.unlisted)
        bucket = self._buckets.get(sender)
        if bucket is None:
            self._forget_idle(now)
            bucket = self._buckets[sender] = _Bucket(capacity, now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.stamp) * capacity / self.period)
        bucket.stamp = now
        if now < bucket.limited_until:
            bucket.dropped += 1
            self.dropped_total += 1
            return "drop"
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return "ok"
        previous, bucket.dropped = bucket.dropped, 0
        bucket.limited_until = now + self.period
        self.refused_total += 1
        log.warning(
            "rate limit: %s sent more than %d %s in %gs; the next %gs are dropped%s",
            sender, int(capacity), self.what, self.period, self.period,
            f" ({previous} dropped in its previous window)" if previous else "",
        )
        return "refuse"

    def _forget_idle(self, now: float) -> None:
        if len(self._buckets) < MAX_SENDERS:
            return
        for key, bucket in list(self._buckets.items()):
            if now >= bucket.limited_until and now - bucket.stamp >= self.period:
                del self._buckets[key]  # full again: forgetting it changes nothing
        while len(self._buckets) >= MAX_SENDERS:  # all busy: drop the oldest
            del self._buckets[next(iter(self._buckets))]

    def health(self) -> dict[str, object]:
        now = self.clock()
        return {
            "refused": self.refused_total,
            "dropped": self.dropped_total,
            "limited_now": sorted(k for k, b in self._buckets.items() if now < b.limited_until),
            "limits": {"listed": self.listed, "unlisted": self.unlisted, "period_s": self.period},
        }
