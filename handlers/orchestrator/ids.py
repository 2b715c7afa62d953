"""The orchestrator's deterministic event ids: one decision, whoever takes it.

Why derived ids (as the burst identifier's): the orchestrator may run on two nodes following
one JetStream log, and it redoes a batch after a crash. Every decision it can take has one
id, computed from what it is about, so the log's ``UNIQUE(id)`` keeps the first and the
second append is a no-op (``new=False``) — two nodes or a restart decide once.

* a run (all its attempts) — :func:`run_id`: the pipeline and its scope (one automatic run
  per pipeline per burst, or per observation), or the ``process.asked`` event of a request by
  hand (each is a run of its own);
* an attempt — :func:`request_id`: the run and the attempt's number. It is the
  ``process.requested`` event's id and the idempotency key the worker is given;
* each decision about an attempt or a run: :func:`dispatched_id`, :func:`vanished_id`,
  :func:`retry_id`, :func:`gave_up_id`, :func:`idling_id`.
"""

from __future__ import annotations

from collections.abc import Iterable

from burstbus.events import derived_event_id


def run_id(pipeline: str, burst_id: str, obs_id: str | None) -> str:
    """The automatic run of ``pipeline`` for a burst (``obs_id`` None) or one observation."""
    return derived_event_id("process.run", pipeline, burst_id, obs_id or "")


def asked_run_id(asked_event_id: str) -> str:
    """The run a request by hand (its ``process.asked`` event) starts."""
    return derived_event_id("process.run", "asked", asked_event_id)


def request_id(run: str, attempt: int) -> str:
    return derived_event_id("process.request", run, str(attempt))


def dispatched_id(request: str) -> str:
    return derived_event_id("process.dispatched", request)


def vanished_id(request: str) -> str:
    return derived_event_id("process.vanished", request)


def retry_id(run: str, attempt: int) -> str:
    """The orchestrator's decision to run ``attempt`` (the next one) of ``run``."""
    return derived_event_id("process.retry", run, str(attempt))


def gave_up_id(run: str) -> str:
    return derived_event_id("process.gave_up", run)


def idling_id(run: str, has: Iterable[str]) -> str:
    """One ``process.idling`` per set of kinds a waiting run has: a new one as more arrive."""
    return derived_event_id("process.idling", run, ",".join(sorted(has)))
