"""The supervisor: a failing component is shown down, restarted with a back-off that starts
over after a good run, and stopped even when a library swallowed the cancel."""

from __future__ import annotations

import asyncio

import pytest

import burstbus.service
from burstbus.service import Service


async def test_a_failing_component_is_reported_down_and_restarted() -> None:
    attempts = 0

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("upstream refused the connection")
        await asyncio.Event().wait()  # then runs until stopped

    service = Service(core=None)  # type: ignore[arg-type]  # the supervisor needs no core
    service.add("flaky", flaky)
    [component] = service.components
    service.start()
    while component.failure is None and attempts < 2:
        await asyncio.sleep(0.01)
    if attempts < 2:
        down = component.health()
        assert down["up"] is False and "upstream refused" in str(down["failure"])
    while attempts < 2:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0)
    up = component.health()
    assert up["up"] is True and up["restarts"] == 1 and up["failure"] is None
    service.stop()
    await service.wait()
    assert component.health()["up"] is False


async def test_stop_asks_again_a_component_that_swallowed_its_cancel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python 3.11's wait_for (in nats-py, slixmpp) can swallow a cancel; the service stopped
    then waited for ever (seen as a demo that would not exit on SIGTERM)."""
    monkeypatch.setattr(burstbus.service, "RECANCEL_AFTER", 0.05)
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # the first cancel is lost, as inside wait_for

    service = Service(core=None)  # type: ignore[arg-type]  # the supervisor needs no core
    service.add("stubborn", stubborn)
    service.start()
    await asyncio.sleep(0)
    service.stop()
    await asyncio.wait_for(service.wait(), 60)
    assert swallowed == 1


async def _restart_delays(service: Service, failures: int) -> list[float]:
    """The delays the supervisor chose for a component failing ``failures`` times, then running."""
    attempts = 0
    delays: list[float] = []

    async def failing() -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= failures:
            raise RuntimeError(f"outage {attempts}")
        await asyncio.Event().wait()

    service.add("failing", failing)
    [component] = service.components
    service.start()
    while attempts <= failures:
        if component.restart_delay is not None and len(delays) < component.restarts:
            delays.append(component.restart_delay)
        await asyncio.sleep(0)
    delays += [component.restart_delay] if len(delays) < component.restarts else []  # type: ignore[list-item]
    health = component.health()
    assert health["up"] is True and health["failure"] is None
    assert health["restarts"] == failures and health["last_error"] == f"RuntimeError: outage {failures}"
    assert health["last_error_at"] is not None  # kept after the recovery, for the operator
    service.stop()
    await service.wait()
    return delays


async def test_the_restart_delay_doubles_while_a_component_keeps_failing() -> None:
    service = Service(core=None)  # type: ignore[arg-type]  # the supervisor needs no core
    service.first_restart_delay, service.max_restart_delay = 0.001, 0.004
    service.healthy_after = float("inf")  # no run counts as a good one
    assert await _restart_delays(service, 4) == [0.001, 0.002, 0.004, 0.004]


async def test_the_restart_delay_starts_over_after_a_good_run() -> None:
    """Two outages an hour apart: the second is not waited out at the first one's back-off."""
    service = Service(core=None)  # type: ignore[arg-type]  # the supervisor needs no core
    service.first_restart_delay, service.max_restart_delay = 0.001, 0.004
    service.healthy_after = 0.0  # every run counts as a good one
    assert await _restart_delays(service, 4) == [0.001, 0.001, 0.001, 0.001]


async def test_a_component_that_never_stops_does_not_hold_the_stop_past_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM ends the service within ``STOP_BOUND`` even if a component ignores every cancel."""
    monkeypatch.setattr(burstbus.service, "RECANCEL_AFTER", 0.05)
    monkeypatch.setattr(burstbus.service, "STOP_BOUND", 0.2)
    release = asyncio.Event()

    async def deaf() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # every cancel ignored

    service = Service(core=None)  # type: ignore[arg-type]  # the supervisor needs no core
    service.add("deaf", deaf)
    service.start()
    await asyncio.sleep(0)
    service.stop()
    await service.wait()  # returns: the bound was reached
    [component] = service.components
    assert component.task is not None and not component.task.done()
    release.set()
    await component.task
