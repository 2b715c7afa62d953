"""A pipeline's result announced as data becomes a notice request.

The orchestrator's vocabulary for "a product is ready" is ``data.available`` (burst, kind,
location; ``produced_by`` the run that made it). A product whose kind is one of
``[notices] data_kinds`` is a notice request: its location holds the request's JSON (the
same object NATS and HTTP take, :mod:`.request`). This follower (consumer
``handler.notices.products``) reads it and hands it to the intake, so it is judged, recorded
and published exactly like a request sent directly.

* Locations: ``file://`` (a path the centre's pipelines write to) and ``data:`` URIs
  (RFC 2397, the JSON inline: ``data:application/json;base64,…`` or percent-encoded).
  Network URLs are not fetched here: a slow server would hold up every later product.
* One product, one request: a request without its own ``request_id`` gets
  ``data:<the data.available event id>``, so a replay of the follower (a crash before its
  checkpoint) finds the request already there; an unreadable product is refused once
  (``publication.refused``, id derived from the product's event).
* First run: from the log's head. Turning notices on must not publish notices for every old
  product in the log.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from burstbus.catalogue import DATA_AVAILABLE
from burstbus.events import RecordedEvent
from burstbus.state import StateStore
from burstbus.store.base import EventLog
from burstbus.store.consumer import Batch, Follower, Start

from .intake import NoticeIntake

log = logging.getLogger(__name__)

CONSUMER = "handler.notices.products"
VIA = "data"


class Unreadable(Exception):
    """The product's location cannot be read as a request; the message says why."""


def read_location(location: str, limit: int) -> bytes:
    """The bytes at a ``file://`` or ``data:`` location, at most ``limit`` (blocking: call it in
    a thread); :class:`Unreadable` otherwise."""
    if location.startswith("data:"):
        header, comma, payload = location[len("data:"):].partition(",")
        if not comma:
            raise Unreadable("a data: URI needs a comma before its data")
        try:
            raw = base64.b64decode(payload, validate=True) if header.endswith(";base64") else unquote(payload).encode("utf-8")
        except ValueError as exc:
            raise Unreadable(f"the data: URI's base64 is not valid: {exc}") from None
    else:
        parts = urlsplit(location)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            raise Unreadable(f"only file:// and data: locations are read for notice requests, not {location[:80]!r}")
        path = Path(unquote(parts.path))
        try:
            with open(path, "rb") as handle:
                raw = handle.read(limit + 1)
        except OSError as exc:
            raise Unreadable(f"{path} cannot be read: {exc.strerror or exc}") from None
    if len(raw) > limit:
        raise Unreadable(f"the request at {location[:80]} has more than {limit:,} bytes, the limit")
    return raw


class NoticeProducts:
    """Follows ``data.available`` of the notice kinds; :meth:`run` is the supervised component."""

    def __init__(self, event_log: EventLog, state: StateStore, intake: NoticeIntake, kinds: Sequence[str]):
        self.intake = intake
        self.kinds = frozenset(kinds)
        self.requested_total = 0
        self.refused_total = 0
        self.follower: Follower[RecordedEvent] = Follower(
            event_log, self._handle, name=CONSUMER, checkpoint=state.checkpoint(CONSUMER), start=Start.HEAD,
            types=[DATA_AVAILABLE], batch_size=100,
        )

    async def run(self) -> None:
        await self.follower.run()

    async def _handle(self, batch: Batch[RecordedEvent]) -> None:
        for record in batch.records:
            if record.type == DATA_AVAILABLE and str(record.data.get("kind") or "") in self.kinds:
                await self.take(record)

    async def take(self, product: RecordedEvent) -> None:
        kind, location = str(product.data.get("kind")), str(product.data.get("location") or "")
        key = f"data:{product.id}"
        loop = asyncio.get_running_loop()
        try:
            raw = await loop.run_in_executor(None, read_location, location, self.intake.max_bytes)
        except Unreadable as exc:
            await self._refused(await self.intake.refuse(location.encode("utf-8"), str(exc), "unreadable",
                                                         via=VIA, peer=kind, key=key))
            return
        value: Any
        try:
            value = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            value = None
        if not isinstance(value, dict):  # the intake says what is wrong with it, as it would to NATS
            await self._refused(await self.intake.submit(raw, via=VIA, peer=kind, key=key))
            return
        value.setdefault("request_id", key)
        if product.data.get("burst_id") and "burst_id" not in value:
            value["burst_id"] = product.data["burst_id"]
        result = await self.intake.submit_value(value, via=VIA, peer=kind, key=key)
        if result.acknowledged:
            self.requested_total += 1
            log.info("product %s (%s) became notice request %s", product.id, kind, result.request_id)
        else:
            await self._refused(result)

    async def _refused(self, result: Any) -> None:
        self.refused_total += 1
        log.warning("a %s product was not taken as a notice request: %s", VIA, result.reason)

    def health(self) -> dict[str, Any]:
        return {**self.follower.health(), "requested": self.requested_total, "refused": self.refused_total}
