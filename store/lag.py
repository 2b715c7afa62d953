"""How far a follower of the log is behind: the figure every follower's health and metrics report."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from burstbus.store.base import ReadFilter


async def consumer_lag(log: Any, position: int, head: int, types: Iterable[str] | None) -> int:
    """Events after a consumer's position; 0 when none of them is of a type it reads (a
    filtered follower only moves its position when something it reads arrives)."""
    if position >= head:
        return 0
    if types:
        pending = await log.read(position, ReadFilter.of(types=sorted(types)), limit=1)
        if not pending:
            return 0
    return head - position
