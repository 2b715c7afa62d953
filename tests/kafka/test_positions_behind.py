"""Positions written behind the consumer's loop (:class:`SavedBehind`), on a real state.sqlite:
what is noted while a write is under way is merged into the next; a failed write keeps its
positions; a flush stores everything noted, so a position moved back afterwards stays back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from burstbus.bridges.kafka.positions import Positions, SavedBehind
from burstbus.state import StateStore
from tests.waiting import wait_for

A, B = ("gcn.notices.svom.voevent.eclairs", 0), ("igwn.gwalert", 0)


class Held(Positions):
    """Positions whose writes wait for ``release`` and can be made to fail."""

    def __init__(self, state: StateStore):
        super().__init__(state, "gcn")
        self.release = asyncio.Event()
        self.release.set()
        self.fail: Exception | None = None
        self.writes: list[dict[Any, int]] = []

    async def save(self, positions: Any, **kw: Any) -> None:
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        self.writes.append(dict(positions))
        await super().save(positions, **kw)


@pytest.fixture
async def held(tmp_path: Path) -> Any:
    state = await StateStore.open(tmp_path / "state.sqlite")
    positions = Held(state)
    await positions.open()
    yield positions
    await state.close()


async def test_positions_noted_during_a_write_are_merged_into_the_next(held: Held) -> None:
    behind = SavedBehind(held)
    held.release.clear()
    behind.note({A: 5})
    await asyncio.sleep(0)  # the first write has started and waits
    behind.note({A: 7, B: 2})
    behind.note({A: 6})  # never backwards
    held.release.set()
    await behind.flush()
    assert held.writes == [{A: 5}, {A: 7, B: 2}]
    assert await held.load() == {A: 7, B: 2}


async def test_a_failed_write_is_kept_and_written_by_the_flush(held: Held) -> None:
    behind = SavedBehind(held)
    held.fail = OSError("disk full")
    behind.note({A: 3})
    await wait_for(lambda: behind.last_error is not None, "the write to fail")
    assert behind.pending == {A: 3} and "disk full" in behind.last_error
    with pytest.raises(OSError):
        await behind.flush()
    held.fail = None
    await behind.flush()
    assert await held.load() == {A: 3} and not behind.pending


async def test_a_reset_after_forget_and_flush_is_not_undone_by_a_pending_write(held: Held) -> None:
    behind = SavedBehind(held)
    await held.save({A: 10})
    held.release.clear()
    behind.note({A: 12})
    await asyncio.sleep(0)
    behind.note({A: 15})  # pending behind the held write
    behind.forget(A)
    held.release.set()
    await behind.flush()
    await held.reset(A, 4)
    await behind.flush()
    assert await held.load() == {A: 4}
