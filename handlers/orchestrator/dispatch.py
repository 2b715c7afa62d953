"""Handing an attempt to its worker: a NATS request to the pipeline's subject, or an HTTP POST
to its URL (the REST processing request), and what the answer means.

Why three outcomes, not two: a dispatch either certainly did not reach a worker (no
responder on the subject, the connection refused, the worker said ``NAK`` or answered 4xx/5xx)
— **refused**, the attempt failed and is retried by the rules — or a worker took it
(**accepted**: any other reply, a 2xx) — or nobody knows (**unconfirmed**: no reply in time,
the connection dropped mid-request): the worker may be running it, so the attempt is watched
like an accepted one and vanishes if nothing is heard within its timeout.

Not an outcome: burstbus's own NATS connection being down (``RequestNotSent``, as at a start
before NATS connects). Nothing was asked of anybody, so nothing is recorded; the orchestrator
sends the same attempt again a moment later rather than spend one of its attempts.

Dispatch is at least once: after a crash between the ``process.requested`` and its
``process.dispatched``, or when two nodes follow one log, a worker may receive the same
request twice. The body's ``request_id`` (also the ``Nats-Msg-Id`` header, and HTTP's
``Idempotency-Key``) is the key a worker uses to do the work once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from burstbus.catalogue import PROCESS_DISPATCHED
from burstbus.component import Request, RequestNotDelivered, RequestUnanswered
from burstbus.events import Event

from . import ids
from .runs import SYSTEM_ACTOR

#: Headers a worker can find the idempotency key in.
NATS_KEY = "Nats-Msg-Id"
REQUEST_HEADER = "Burstbus-Request-Id"
HTTP_KEY = "Idempotency-Key"
DETAIL_CHARS = 500


@dataclass(frozen=True, slots=True)
class Outcome:
    """``accepted``, ``unconfirmed`` or ``refused``, and what was answered (or why)."""

    outcome: str
    detail: str


def body(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _excerpt(raw: bytes | str) -> str:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    text = text.strip()
    return text if len(text) <= DETAIL_CHARS else text[:DETAIL_CHARS] + "…"


def nats_answer(reply: bytes) -> Outcome:
    """A worker's reply: ``NAK …`` refuses, anything else accepts (``ACK``, a JSON receipt)."""
    text = _excerpt(reply)
    if text.upper().startswith("NAK"):
        return Outcome("refused", text)
    return Outcome("accepted", text or "(empty reply)")


async def by_nats(request: Request | None, subject: str, payload: Mapping[str, Any], timeout: float) -> Outcome:
    if request is None:
        return Outcome("refused", f"NATS is off: cannot request {subject}")
    key = str(payload["request_id"])
    try:
        reply = await request(subject, body(payload), {NATS_KEY: key, REQUEST_HEADER: key}, timeout)
    except RequestNotDelivered as exc:
        return Outcome("refused", str(exc))
    except RequestUnanswered as exc:
        return Outcome("unconfirmed", str(exc))
    return nats_answer(reply)


async def by_http(session: aiohttp.ClientSession, url: str, payload: Mapping[str, Any], timeout: float) -> Outcome:
    key = str(payload["request_id"])
    headers = {HTTP_KEY: key, REQUEST_HEADER: key, "Content-Type": "application/json"}
    try:
        async with session.post(url, data=body(payload), headers=headers,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            text = await response.text(errors="replace")
            if 200 <= response.status < 300:
                return Outcome("accepted", _excerpt(f"HTTP {response.status} {text}"))
            return Outcome("refused", _excerpt(f"HTTP {response.status} {text}"))
    except aiohttp.ClientConnectorError as exc:  # never connected: nobody has it
        return Outcome("refused", _excerpt(f"cannot connect to {url}: {exc.os_error or exc}"))
    except TimeoutError:
        return Outcome("unconfirmed", f"no answer from {url} within {timeout:g} s")
    except aiohttp.ClientError as exc:  # connected, then lost: it may have arrived
        return Outcome("unconfirmed", _excerpt(f"{type(exc).__name__} from {url}: {exc}"))


def dispatched_event(payload: Mapping[str, Any], target: Mapping[str, str], outcome: Outcome) -> Event:
    """The record of a dispatch's answer; one per attempt (the first answer recorded stands)."""
    data = {key: payload.get(key) for key in ("run_id", "request_id", "attempt", "pipeline", "process", "burst_id",
                                              "obs_id", "pass_id")}
    data.update(target=dict(target), outcome=outcome.outcome, detail=outcome.detail)
    return Event(PROCESS_DISPATCHED, data, stream=str(payload.get("burst_id") or ""), actor=SYSTEM_ACTOR,
                 id=ids.dispatched_id(str(payload["request_id"])))
