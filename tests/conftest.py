"""Suite-wide test set-up.

The suite runs on pytest-xdist workers (``-n 4 --dist loadfile``, see pyproject; ``-n 0`` serially): each
test file runs whole on one worker process, so module-scoped servers, the session loop that
Twisted's reactor is bound to, and the session's Prosody stay per process, as in a serial run.

Ports: every server the tests start gets its port from :func:`tests.ports.free_port` (a block
per worker, outside the kernel's ephemeral range), including the nats-servers that
``burstbus.bridges.nats.server`` picks a port for itself (``port=0``) and the tests that import
its ``free_port``; patched here, before any test module is imported, so that both names are ours.

A test that pytest-timeout stops shows, besides its threads, what every asyncio task of the
loops still open was waiting for: a hang in a coroutine leaves every thread idle, so the
threads alone say nothing.
"""

from __future__ import annotations

import asyncio
import gc
import io
from typing import Any

import pytest

import burstbus.bridges.nats.server as nats_server
from tests import ports

nats_server.free_port = ports.free_port


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.excinfo is not None and "Timeout" in str(call.excinfo.value):
        report.sections.append(("asyncio tasks at the timeout", _task_stacks()))


def _task_stacks() -> str:
    out = io.StringIO()
    loops = [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and not o.is_closed()]
    for loop in loops:
        for task in asyncio.all_tasks(loop):
            out.write(f"--- {task!r}\n")
            for line in _awaiting(task.get_coro()):
                out.write(f"    {line}\n")
    return out.getvalue() or "no asyncio task"


def _awaiting(coro: Any) -> list[str]:
    """Where a suspended coroutine waits, through every coroutine and async generator it
    awaits (``Task.print_stack`` shows only the outermost frame of a suspended task)."""
    lines: list[str] = []
    while coro is not None and len(lines) < 40:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            lines.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        inner = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None) or getattr(coro, "gi_yieldfrom", None)
        if inner is not None and not hasattr(inner, "cr_frame") and not hasattr(inner, "ag_frame") and not hasattr(inner, "gi_frame"):
            lines.append(f"awaiting {inner!r}")
            break
        coro = inner
    return lines
