"""Stopping tasks for certain: cancel, and cancel again while one runs on.

Every component that runs helper tasks stops them here, not with one ``cancel()`` and an
``await``: on Python 3.11 one cancel can be lost (see :func:`cancel_and_wait`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Sequence[asyncio.Task[Any]], every: float = 0.5) -> None:
    """Cancel ``tasks`` and return once every one has ended, cancelling again while any runs on.

    One cancel is not always enough on Python 3.11: ``asyncio.wait_for`` swallows a
    cancellation that arrives while the future it waits on has just completed (it returns
    that result instead). ``log.subscribe`` once waited for commits that way, so a stop that
    landed just after a commit woke the follower left it following the log for ever, and the
    service's stop waiting on it (the rare teardown hang of tests/broker). burstbus's own code
    now waits with ``asyncio.timeout``, but nats-py and slixmpp still use wait_for inside (the
    NATS outbox's flush: a stop of the NATS node once waited for ever on its outbox): hence
    cancelling again. ``asyncio.wait`` and ``asyncio.timeout`` never swallow a
    cancellation.
    """
    pending = {task for task in tasks if not task.done()}
    stopped = set(pending)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=every)
        for task in pending:
            log.warning("%s still running after being cancelled; cancelling again", task.get_name())
    for task in stopped:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s ended with an error while stopping", task.get_name(), exc_info=task.exception())
