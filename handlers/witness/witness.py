"""The witness: sign the log's head, record the checkpoint, and publish it where others keep it.

* **Signing** (:class:`Signer`, shared by the component, ``burstbus checkpoint`` and
  ``burstbus evidence``): the head (seq, hash, recorded_at) with the hash of record 1 and the
  log's name, signed with the centre's key (:mod:`.checkpoint` has the exact bytes), recorded
  as ``log.checkpoint_signed`` under an id derived from (key, seq, hash): signing one head twice
  — the timer and an operator, two nodes — records it once.
* **Periodically** every ``[witness] interval`` (counted from the newest recorded checkpoint,
  so a restart does not sign at once), unless nothing but checkpoints was appended since.
* **Publishing is an outbox** (the log first): one follower per destination of
  ``log.checkpoint_signed`` events, each with its own checkpoint in ``state.sqlite``
  (``witness.file``, ``witness.nats``, ``witness.xmpp:<room>``, ``witness.slack:<channel>``),
  so a checkpoint recorded by ``burstbus checkpoint`` in another process goes out too, a
  destination that is down holds up no other, and a crash repeats a publication, never loses
  one. The file and NATS start from the beginning (a new file gets every checkpoint so far);
  chat rooms and channels from the head (no backlog posted into a room). Only checkpoints that
  verify with our own key are published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from burstbus.catalogue import LOG_CHECKPOINT_SIGNED
from burstbus.chat import Post
from burstbus.component import Publish, StartupError
from burstbus.events import Event, RecordedEvent, derived_event_id, format_time, parse_time
from burstbus.state import StateStore
from burstbus.store.base import EventLog, ReadFilter
from burstbus.store.consumer import Batch, Follower, Start
from burstbus.tasks import cancel_and_wait

from .checkpoint import CheckpointError, Payload, SignedCheckpoint, check_signature, sign
from .config import WitnessSection
from .keys import SigningKey, WitnessKeyError, load_signing_key

log = logging.getLogger(__name__)

ACTOR = "system:witness"
STREAM = "log"


class NothingToSign(Exception):
    """The log is empty: there is no head to sign."""


def checkpoint_event_id(key_id: str, seq: int, hash_: str) -> str:
    """One event per (key, head): the same head signed again is the same event."""
    return derived_event_id(LOG_CHECKPOINT_SIGNED, key_id, str(seq), hash_)


@dataclass(frozen=True)
class Signed:
    """A checkpoint and where the log recorded it; ``new`` False when that head was signed before."""

    checkpoint: SignedCheckpoint
    seq: int
    new: bool


def key_for(section: WitnessSection) -> SigningKey:
    """The configured key, or :class:`StartupError` naming ``witness.key_file``."""
    if section.key_file is None:
        raise StartupError("witness.key_file", "no key configured (create one: burstbus witness keygen --key-file PATH)")
    try:
        return load_signing_key(section.key_file)
    except WitnessKeyError as exc:
        raise StartupError("witness.key_file", str(exc)) from None


class Signer:
    """Signs the log's head with the centre's key and records it."""

    def __init__(self, event_log: EventLog, key: SigningKey, log_name: str,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.log = event_log
        self.key = key
        self.log_name = log_name
        self.clock = clock
        self._first_hash: str | None = None

    async def sign(self, *, actor: str = ACTOR, reason: str = "on demand") -> Signed:
        head = await self.log.head()
        if head.seq == 0 or head.recorded_at is None:
            raise NothingToSign("the log is empty: nothing to sign")
        if self._first_hash is None:
            first = await self.log.get(1)
            if first is None:
                raise NothingToSign("the log has no record 1")
            self._first_hash = first.hash
        payload = Payload(self.log_name, self._first_hash, head.seq, head.hash, head.recorded_at,
                          format_time(self.clock()), self.key.public.key_id)
        checkpoint = sign(payload, self.key)
        event = Event(LOG_CHECKPOINT_SIGNED, {"checkpoint": checkpoint.document(), "reason": reason}, stream=STREAM,
                      actor=actor, id=checkpoint_event_id(payload.key_id, head.seq, head.hash))
        [where] = await self.log.append([event])
        if not where.new:  # that head was signed before: the recorded checkpoint is the one
            recorded = await self.log.get(where.seq)
            if recorded is not None:
                checkpoint = SignedCheckpoint.from_document(recorded.data["checkpoint"])
        return Signed(checkpoint, where.seq, where.new)


def chat_text(checkpoint: SignedCheckpoint, *, code_block: bool = False) -> str:
    """What a room or channel shows: one readable line, then the document itself (which
    ``burstbus verify --against`` reads out of a copied message)."""
    p = checkpoint.payload
    line = f"burstbus log checkpoint ({p.log}): seq {p.seq} hash {p.hash}, signed {p.signed_at} by key {p.key_id}"
    return f"{line}\n```\n{checkpoint.text()}\n```" if code_block else f"{line}\n{checkpoint.text()}"


class FileOutlet:
    """Appends each checkpoint as one JSON line, fsynced; a line already at the end (a batch
    repeated after a crash) is not written again."""

    def __init__(self, path: Path):
        self.path = path

    async def __call__(self, checkpoint: SignedCheckpoint, event_id: str) -> None:
        await asyncio.to_thread(self._append, checkpoint.text())

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - 65536))
            tail = handle.read()
            if line.encode("ascii") in tail.split(b"\n"):
                return
            prefix = b"\n" if tail and not tail.endswith(b"\n") else b""  # after a torn last line
            handle.write(prefix + line.encode("ascii") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())


@dataclass
class Outlet:
    """One destination: its consumer name, where a first run starts, and how to send."""

    name: str
    start: Start
    send: Callable[[SignedCheckpoint, str], Awaitable[None]]


def nats_outlet(publish: Publish, subject: str) -> Outlet:
    async def send(checkpoint: SignedCheckpoint, event_id: str) -> None:
        await publish(subject, checkpoint.text().encode("ascii"), {"Nats-Msg-Id": f"checkpoint:{event_id}"})

    return Outlet("witness.nats", Start.BEGINNING, send)


def chat_outlet(kind: str, post: Post, where: str, *, code_block: bool) -> Outlet:
    async def send(checkpoint: SignedCheckpoint, event_id: str) -> None:
        await post(where, chat_text(checkpoint, code_block=code_block), event_id)

    return Outlet(f"witness.{kind}:{where}", Start.HEAD, send)


class Witness:
    """The supervised component: periodic signing and one outbox follower per destination."""

    def __init__(self, event_log: EventLog, state: StateStore, section: WitnessSection, outlets: list[Outlet], *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.log = event_log
        self.section = section
        self.clock = clock
        self.signer: Signer | None = None
        self.outlets = {o.name: o for o in outlets}
        self.followers: dict[str, Follower[RecordedEvent]] = {
            o.name: Follower(event_log, self._handler(o), name=o.name, checkpoint=state.checkpoint(o.name), start=o.start,
                             types=[LOG_CHECKPOINT_SIGNED], batch_size=100, retry_delay=1.0, max_retry_delay=60.0)
            for o in outlets
        }
        self.signed_total = 0
        self.skipped_total = 0
        self.published: dict[str, int] = {o.name: 0 for o in outlets}
        self.last: Signed | None = None
        self.last_error: str | None = None

    # -- signing ---------------------------------------------------------------------------

    def start_signer(self) -> Signer:
        if self.signer is None:
            self.signer = Signer(self.log, key_for(self.section), self.section.log_name, self.clock)
        return self.signer

    async def sign_now(self, *, actor: str, reason: str = "on demand") -> Signed:
        """A checkpoint of the head now (the bot's ``checkpoint``); raises NothingToSign."""
        signed = await self.start_signer().sign(actor=actor, reason=reason)
        self._signed(signed)
        return signed

    def _signed(self, signed: Signed) -> None:
        self.last = signed
        if signed.new:
            self.signed_total += 1
            log.info("witness: signed %s (recorded at seq %d)", signed.checkpoint.summary(), signed.seq)

    async def sign_if_new(self) -> Signed | None:
        """The periodic checkpoint, unless nothing but checkpoints came since the last one."""
        head = await self.log.head()
        if head.seq == 0:
            self.skipped_total += 1
            return None
        newest = await self.log.get(head.seq)
        if newest is not None and newest.type == LOG_CHECKPOINT_SIGNED:
            self.skipped_total += 1
            return None
        signed = await self.start_signer().sign(actor=ACTOR, reason="interval")
        self._signed(signed)
        return signed

    async def _newest_signed_at(self) -> datetime | None:
        """When the newest recorded checkpoint (by our key) was signed: the timer counts from it."""
        signer = self.start_signer()
        newest: datetime | None = None
        after = 0
        flt = ReadFilter.of(types=[LOG_CHECKPOINT_SIGNED])
        while records := await self.log.read(after, flt, 1000):
            for record in records:
                payload = record.data.get("checkpoint", {}).get("payload", {})
                if payload.get("key_id") == signer.key.public.key_id and isinstance(payload.get("signed_at"), str):
                    with contextlib.suppress(ValueError):
                        moment = parse_time(payload["signed_at"])
                        newest = moment if newest is None or moment > newest else newest
            after = records[-1].seq
        return newest

    async def _sign_periodically(self) -> None:
        for follower in self.followers.values():  # chat outlets start at the head: before the first checkpoint
            await follower.positioned.wait()
        if self.section.interval <= 0:
            await asyncio.Event().wait()
        interval = timedelta(seconds=self.section.interval)
        newest = await self._newest_signed_at()
        while True:
            now = self.clock()
            due = newest + interval if newest is not None else now
            wait = (due - now).total_seconds()
            if wait > 0:
                await asyncio.sleep(min(wait, 60.0))  # re-read the clock at least every minute
                continue
            try:
                await self.sign_if_new()
                self.last_error = None
            except NothingToSign:
                pass
            except Exception as exc:  # the log unavailable: tried again next interval, shown in health
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("witness: no checkpoint signed: %s", self.last_error)
            newest = now

    # -- publishing ------------------------------------------------------------------------

    def _handler(self, outlet: Outlet) -> Callable[[Batch[RecordedEvent]], Awaitable[None]]:
        async def handle(batch: Batch[RecordedEvent]) -> None:
            for record in batch.records:
                checkpoint = self._ours(record)
                if checkpoint is not None:
                    await outlet.send(checkpoint, record.id)
                    self.published[outlet.name] += 1
        return handle

    def _ours(self, record: RecordedEvent) -> SignedCheckpoint | None:
        """The recorded checkpoint if it verifies with our key (nothing else is published)."""
        assert self.signer is not None
        try:
            checkpoint = SignedCheckpoint.from_document(record.data.get("checkpoint"))
            check_signature(checkpoint, [self.signer.key.public])
        except CheckpointError as exc:
            log.warning("witness: the checkpoint recorded at seq %d is not published: %s", record.seq, exc)
            return None
        return checkpoint

    # -- the component ---------------------------------------------------------------------

    async def run(self) -> None:
        self.start_signer()  # a missing or too open key stops the start, naming witness.key_file
        tasks = [asyncio.create_task(f.run(), name=f"burstbus-{name}") for name, f in self.followers.items()]
        tasks.append(asyncio.create_task(self._sign_periodically(), name="burstbus-witness-signer"))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raise what stopped it, for the supervisor
        finally:
            await cancel_and_wait(tasks)

    def health(self) -> Mapping[str, Any]:
        outlets = {name: {**f.health(), "published": self.published[name]} for name, f in self.followers.items()}
        last = self.last.checkpoint.payload if self.last is not None else None
        return {
            "up": all(o["up"] or not o["retrying"] for o in outlets.values()) and self.last_error is None,
            "key_id": self.signer.key.public.key_id if self.signer is not None else None,
            "interval": self.section.interval,
            "signed": self.signed_total,
            "skipped": self.skipped_total,
            "last_checkpoint": {"seq": last.seq, "hash": last.hash, "signed_at": last.signed_at} if last else None,
            "last_error": self.last_error,
            "outlets": outlets,
        }
