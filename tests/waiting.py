"""Waiting for a condition in tests: generous deadlines, never assertions on timings."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

DEADLINE = 60.0  # generous: we wait for conditions, never assert on timings


async def wait_for(condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """Poll ``condition`` (sync or async) until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def sleep_swallowing_one_cancel(swallowed: list[bool]) -> None:
    """Sleep for ever, carrying on after the first cancel (noted in ``swallowed``) as Python
    3.11's ``asyncio.wait_for`` may, and ending at the second: a task a single cancel cannot stop."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if swallowed:
                raise
            swallowed.append(True)
