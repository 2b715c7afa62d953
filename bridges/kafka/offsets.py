"""Where to read a partition from, and when a stored position means lost messages. Pure.

The consumer asks the broker for a partition's watermarks (``low``: the oldest offset it still
keeps; ``high``: the next offset it will write) and, on a first start from a time, for the
offset of that time; these functions decide from those numbers and the stored position:

* **no stored position** (this topic is new to this node): the configured ``start`` — the end
  (``now``), the beginning (``earliest``), or the first offset at or after a time — if the
  topic existed when first wanted; a partition that appeared after that (a topic created
  later, a partition added) is read from its beginning: everything in it is new.
* **stored position below ``low``**: the broker dropped messages we never read (GCN keeps a
  few days; burstbus was down longer): a **gap** from the position to ``low``, recorded as
  ``kafka.gap`` and shown in ``/healthz``; reading resumes at ``low``.
* **stored position above ``high``**: the partition restarted below us (the topic was deleted
  and created again, a cluster rebuilt): a **reset**, recorded the same way; reading resumes at
  ``low`` — those are messages we have never seen (the event ids carry the message digest, so
  a recreated offset is never mistaken for the old message at that offset).

The test broker (Tansu) answers ``offsets_for_times`` with 0 and ``ListOffsets`` "latest" with
a number below the real end, and it keeps everything (its low watermark never moves), so
these rules are tested here without it; what the broker reports in its fetch answers (the
end the consumer compares its position with) is right there, and a reset is tested live.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Start = Literal["now", "earliest"] | datetime
Kind = Literal["retention", "reset"]


@dataclass(frozen=True)
class Gap:
    """Messages of one partition that will never be read."""

    kind: Kind
    #: The stored position (the next offset we expected).
    expected: int
    #: Where reading resumes.
    resumed_at: int
    #: ``[lost_from, lost_to)``: the offsets never read (retention). For a reset, unknown:
    #: whatever the old partition held past ``expected`` (None).
    lost_from: int | None
    lost_to: int | None

    @property
    def lost(self) -> int | None:
        if self.lost_from is None or self.lost_to is None:
            return None
        return max(0, self.lost_to - self.lost_from)


@dataclass(frozen=True)
class Resume:
    """Where to read one partition from, and the gap found on the way (if any)."""

    offset: int
    gap: Gap | None = None
    #: True when the offset is new (no stored position): store it at once, so a crash before
    #: the first message does not move a "now" start later.
    first: bool = False


def first_offset(start: Start, low: int, high: int, at_time: int | None, *, appeared_later: bool) -> int:
    """The first offset of a partition with no stored position.

    ``at_time``: the broker's answer to offsets-for-times for ``start`` (-1 or None: no message
    at or after it)."""
    if appeared_later or start == "earliest":
        return low
    if start == "now":
        return high
    if at_time is None or at_time < 0:
        return high
    return min(max(at_time, low), high)


def resume(stored: int | None, low: int, high: int, *, start: Start = "now", at_time: int | None = None,
           appeared_later: bool = False) -> Resume:
    """Where to read a partition with watermarks ``low``/``high`` from (see the module doc).

    ``high`` < 0 (the broker did not say) checks only ``low``: a position above an unknown end
    is never called a reset."""
    low = max(low, 0)
    if stored is None:
        return Resume(first_offset(start, low, max(high, low), at_time, appeared_later=appeared_later), first=True)
    if stored < low:
        return Resume(low, Gap("retention", stored, low, stored, low))
    if high >= 0 and stored > high:
        return Resume(low, Gap("reset", stored, low, None, None))
    return Resume(stored)


def behind_end(position: int, reported_high: int) -> bool:
    """True when the end the broker reports in its fetch answers is below our position: the
    partition restarted (a reset). An unknown end (negative: no fetch answered yet) is not."""
    return reported_high >= 0 and position > reported_high


def lag(position: int | None, reported_high: int) -> int | None:
    """Messages the broker holds beyond our position (None when either is unknown)."""
    if position is None or position < 0 or reported_high < 0:
        return None
    return max(0, reported_high - position)
