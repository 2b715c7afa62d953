"""The event log on a NATS JetStream stream: the scale-out backend (R3 in a cluster).

Layout and why:

* **One stream, the stream sequence is the log seq.** The stream captures only
  ``<prefix>.log.>``, refuses deletes and purges (``deny_delete``/``deny_purge``: append-only,
  like the SQLite triggers) and every write goes through the optimistic check below, so its
  sequence is gap-free and *is* ``seq``.
* **Subject per event:** ``<prefix>.log.<id token>.<type>``. The type makes one-type reads a
  subject filter (``<prefix>.log.*.<type>``); the id token makes ``find(id)`` one
  ``last_by_subj`` lookup (``<prefix>.log.<id token>.>``), which is also the idempotency check
  that holds forever, not only within the stream's duplicate window. ``Nats-Msg-Id`` = event
  id covers the window anyway (a retried publish whose ack was lost).
* **Hash chain with optimistic concurrency.** Each publish carries
  ``Nats-Expected-Last-Sequence: <head seq>`` and the record hashed as ``seq = head + 1``,
  ``prev_hash = head hash``. If another writer (another node) got there first the server
  refuses it (err_code 10071); we re-read the head, check whether that writer appended the
  same id, and retry. Within one process a lock orders appends, so one call's events stay
  consecutive; across nodes they may interleave.
* **Two nodes, one id, the same moment**: the loser gets ``new=False`` with the winner's
  seq, whatever the server answered it: "duplicate" (the ack's seq is loaded), 10071 (the
  next round finds the winner's record) or, on a clustered stream, 10158 "duplicate message
  id is in process" (the winner's publish is proposed, not yet applied): we poll ``find``
  until its record is visible (milliseconds here), bounded by ``timeout``, then resolve it
  the same way; if the winner's publish failed instead, the next round stores ours.
* **Errors**: every public method raises only the log's errors (``store.base``), the NATS
  client's exception as ``__cause__`` (:func:`translated`): timeouts, lost connections and
  the server's "temporarily unavailable" answers are ``LogUnavailable`` (retry: a leader
  election here lasts 6-9 s); a 404 means "absent" only for "no message found".
* **Payload**: JSON with the record's fields and ``data_json``, the exact canonical text that
  was hashed (so ``verify`` hashes the stored bytes, not a re-encoding).

* **Appends are checked by the server first, published in turn.** An ``append`` call's first
  round looks nothing up: each publish also carries ``Nats-Expected-Last-Subject-Sequence: 0``
  on the id's subjects (``…-Subject: <prefix>.log.<id token>.>``), so the server stores it
  only if no record has that id, atomically with the head check (one round trip per record).
  After a refusal a round checks all its ids at once (concurrent ``last_by_subj`` lookups),
  then publishes its records one after the
  other, each with ``Nats-Expected-Last-Sequence`` = the seq its predecessor was confirmed
  at; a refusal stops the call there and the rest is retried from a fresh head. Not
  pipelined: another writer can store a *different* record under one of our ids (two nodes
  appending the same derived decision), and no header lets the server check that a
  pipelined successor follows *our* record rather than theirs (``Nats-Expected-Last-Msg-Id``
  compares ids only): a pipeline forked the chain there.
* **Reads come in batches** (``$JS.API.DIRECT.GET`` with ``batch``, nats-server ≥ 2.11;
  the stream is created with ``allow_direct``): one request returns up to 1,000 records.
  Direct gets may be answered by a replica that lags the leader, so a read that comes back
  short is confirmed by one leader lookup (``next_by_subj``) before it reports "nothing more":
  a follower with a filter moves its position to a head it saw, and must not skip a record a
  lagging replica did not have yet. Without direct gets (an old server), one record per request.

Durability: a publish ack means the stream leader stored the message (and, with R3, that a
quorum of replicas did). nats-server fsyncs its files every ``sync_interval`` (2 minutes by
default): on a single node an acked append survives a process crash but may be lost on power
loss unless ``sync_interval: always``; with R3 it survives the loss of one node outright.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, NamedTuple

import nats
import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import StorageType, StreamConfig

from burstbus.events import (
    GENESIS_HASH,
    Appended,
    Event,
    RecordedEvent,
    StoredRecord,
    decode_json,
    normalise_time,
    utc_now,
)
from burstbus.histogram import Histogram
from burstbus.metrics import Family, counter, histogram
from burstbus.store.base import Head, LogClosed, LogError, LogUnavailable, ReadFilter, Verification
from burstbus.store.chain import record_hash
from burstbus.store.follow import follow

log = logging.getLogger(__name__)

#: The server's refusals of an optimistic write: another writer got there first.
WRONG_LAST_SEQUENCE = 10071
WRONG_LAST_MSG_ID = 10070
CONFLICTS = (WRONG_LAST_SEQUENCE, WRONG_LAST_MSG_ID)
#: 409 "duplicate message id is in process": another writer's publish of this ``Nats-Msg-Id``
#: is proposed but not yet applied (a clustered stream only; the server stages the id before
#: replication). Its outcome is awaited (``_await_other_writer``), not reported as an error.
DUPLICATE_IN_PROCESS = 10158
#: 404 answers: "no message found" is an answer (None); "stream not found" is a failure
#: (except when opening, where it means "create it").
NO_MESSAGE_FOUND = 10037
STREAM_NOT_FOUND = 10059
#: Server answers meaning "not now" (an election, a server catching up): 503s such as
#: 10008 "JetStream system temporarily unavailable", 408s, and 10009 "not leader".
UNAVAILABLE_CODES = (408, 503)
UNAVAILABLE_ERR_CODES = (10008, 10009)
#: The client's errors that mean the server could not be reached or did not answer in time.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    TimeoutError,  # nats.errors.TimeoutError and FlushTimeoutError are TimeoutErrors too
    nats.errors.NoRespondersError, nats.errors.NoServersError, nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError, nats.errors.OutboundBufferLimitError, nats.errors.SlowConsumerError,
    OSError,
)
#: Seconds batched reads pause after a direct get found no responders (an election, or
#: direct gets switched off): reads go to the leader one record at a time meanwhile.
DIRECT_PAUSE = 30.0
#: Records per direct-get batch request, and the bytes one batch may carry (VOEvents can be
#: ~1 MiB each; the reply must not overrun the client's pending-bytes limit).
DIRECT_BATCH = 1000
DIRECT_MAX_BYTES = 8 * 1024 * 1024
DEFAULT_STREAM = "BURSTBUS_LOG"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NOT_TOKEN = re.compile(r"[^A-Za-z0-9_.-]+")


def id_token(event_id: str) -> str:
    """The event id as one subject token (ids that are not safe tokens are hashed)."""
    if _TOKEN.match(event_id):
        return event_id
    return "h" + hashlib.sha256(event_id.encode("utf-8")).hexdigest()[:40]


def type_tokens(event_type: str) -> str:
    cleaned = ".".join(t for t in _NOT_TOKEN.sub("_", event_type).split(".") if t)
    return cleaned or "_"


def _payload(seq: int, e: Event, data_json: str, recorded_at: str, prev_hash: str, digest: str) -> bytes:
    return orjson.dumps({
        "seq": seq, "id": e.id, "type": e.type, "stream": e.stream, "actor": e.actor,
        "occurred_at": e.occurred_at, "recorded_at": recorded_at, "data_json": data_json,
        "prev_hash": prev_hash, "hash": digest,
    })


def _decode(payload: bytes) -> tuple[RecordedEvent, str]:
    try:
        body = orjson.loads(payload)
        text = body["data_json"]
        data = decode_json(text)
        record = RecordedEvent(
            body["seq"], body["id"], body["type"], body["stream"], body["actor"], body["occurred_at"],
            body["recorded_at"], data, body["prev_hash"], body["hash"],
        )
    except (ValueError, KeyError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
        raise LogError(f"unreadable record in the stream: {type(exc).__name__}: {exc}") from exc
    return record, text


def translated(exc: BaseException, what: str, closed: bool = False) -> LogError:
    """The log's own error for a failure of the NATS client or server (``exc`` as its cause).

    Timeouts, lost connections, "no responders" and the server's "temporarily unavailable"
    answers are :class:`LogUnavailable` (retry); a connection closed for good is
    :class:`LogClosed` once the log is closed, else :class:`LogError`; any other server
    refusal is :class:`LogError`."""
    if isinstance(exc, LogError):
        return exc
    error: LogError
    detail = f"{what}: {type(exc).__name__}: {exc}"
    if closed:
        error = LogClosed(f"the event log is closed ({detail})")
    elif isinstance(exc, nats.js.errors.APIError):
        if exc.code in UNAVAILABLE_CODES or exc.err_code in UNAVAILABLE_ERR_CODES:
            error = LogUnavailable(f"{detail} (JetStream is briefly unavailable: retry)")
        else:
            error = LogError(detail)
    elif isinstance(exc, nats.errors.ConnectionClosedError):
        error = LogError(f"{detail} (the NATS connection was closed)")
    elif isinstance(exc, _UNREACHABLE):
        error = LogUnavailable(f"{detail} (no answer from JetStream: retry)")
    else:
        error = LogError(detail)
    error.__cause__ = exc
    return error


def _matches(record: RecordedEvent, filter: ReadFilter | None) -> bool:
    if filter is None:
        return True
    if filter.types and record.type not in filter.types:
        return False
    if filter.stream is not None and record.stream != filter.stream:
        return False
    if filter.since is not None and record.recorded_at < normalise_time(filter.since):
        return False
    return not (filter.until is not None and record.recorded_at > normalise_time(filter.until))


class _Ack(NamedTuple):
    seq: int
    duplicate: bool


class _Duplicate(NamedTuple):
    """A publish answered "duplicate": that ``Nats-Msg-Id`` is stored at ``seq``."""

    seq: int


def _ack(msg: Msg, stream: str) -> _Ack | BaseException:
    """A JetStream publish answer: the ack, or the refusal as an exception."""
    status = (msg.headers or {}).get("Status")
    if status == "503":  # nothing stores the subject now (no stream, or no leader yet)
        return LogUnavailable(f"no JetStream stream answers for {stream} (no responders)")
    try:
        body = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        return LogError(f"unreadable publish answer: {msg.data[:200]!r}")
    if "error" in body:
        error = body["error"]
        return nats.js.errors.APIError(
            code=error.get("code"), err_code=error.get("err_code"), description=error.get("description"), stream=stream,
        )
    return _Ack(int(body["seq"]), bool(body.get("duplicate")))


class _Planned:
    """One record of an append call, hashed against its predecessor and ready to publish."""

    __slots__ = ("event", "data_json", "seq", "digest", "recorded_at")

    def __init__(self, event: Event, data_json: str, seq: int, digest: str, recorded_at: str):
        self.event = event
        self.data_json = data_json
        self.seq = seq
        self.digest = digest
        self.recorded_at = recorded_at


class JetStreamEventLog:
    """The JetStream backend of :class:`burstbus.store.base.EventLog`."""

    def __init__(self, nc: NATS, *, stream: str, prefix: str, poll_interval: float, own_connection: bool, timeout: float,
                 retry_for: float | None = None):
        self.nc = nc
        self.js = nc.jetstream(timeout=timeout)
        self.stream = stream
        self.prefix = prefix
        self.timeout = timeout
        self._poll_interval = poll_interval
        self._own_connection = own_connection
        self._lock = asyncio.Lock()
        self._head: Head | None = None
        self._closed = False
        self._appended = asyncio.Event()
        #: Batched direct gets work on this stream (False: one leader request per record).
        self.direct = True
        #: Loop time until which batched reads are paused after "no responders" (0: not paused).
        self._direct_paused_until = 0.0
        self._reply_prefix: str | None = None
        self._replies: Subscription | None = None
        self._reply_counter = 0
        self._waiting: dict[str, asyncio.Future[Msg]] = {}
        self.conflicts_total = 0
        #: Records this process stored (``new=True``).
        self.appended_total = 0
        #: Seconds an append keeps trying while the stream is unavailable (default 3 × timeout).
        self.retry_for = 3 * timeout if retry_for is None else retry_for
        #: Rounds an append tried again (unconfirmed publish, election in progress).
        self.append_retries_total = 0
        #: This call's publishes left unconfirmed: id → the hash of the record planned.
        self._unconfirmed: dict[str, str] = {}
        #: Appends that met another writer's publish of the same id still in process (10158)
        #: and waited for its outcome.
        self.in_process_total = 0
        #: Seconds from append() to the stream's acknowledgement, per call (``/metrics``).
        self.append_seconds = Histogram()
        #: What this log needs running and stops when it closes: the embedded nats-server when
        #: ``burstbus`` started one for it (set by whoever opened the log; the NATS bridge
        #: shares it rather than starting a second server on the same store).
        self.server: Any = None
        self.after_close: list[Callable[[], Awaitable[None]]] = []
        #: Batched reads served (for tests and metrics).
        self.direct_batches_total = 0

    def metrics(self) -> list[Family]:
        return [
            counter("burstbus_log_appended_total", "Events this process appended since it started.", [({}, self.appended_total)]),
            histogram("burstbus_log_append_seconds", "Time from append() to the stream's acknowledgement, per call.",
                      [({}, self.append_seconds)]),
            counter("burstbus_log_append_conflicts_total", "Appends that met another writer's record at the head (10071) and tried again.",
                    [({}, self.conflicts_total)]),
            counter("burstbus_log_append_in_process_total",
                    "Appends that met another writer's publish of the same id still in process (10158) and waited for it.",
                    [({}, self.in_process_total)]),
            counter("burstbus_log_append_retries_total", "Append rounds tried again while the stream was unavailable (election, no ack).",
                    [({}, self.append_retries_total)]),
            counter("burstbus_log_direct_get_batches_total", "Batched direct-get reads served.", [({}, self.direct_batches_total)]),
        ]

    @contextlib.contextmanager
    def _boundary(self, what: str) -> Iterator[None]:
        """Every public method runs inside this: the log's errors only leave it (see
        :func:`translated`). Cancellation passes through untouched."""
        try:
            yield
        except LogError:
            raise
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise translated(exc, what, self._closed) from exc

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosed("the event log is closed")

    @classmethod
    async def open(
        cls,
        servers: str | list[str] | NATS,
        *,
        stream: str = DEFAULT_STREAM,
        prefix: str = "burstbus",
        replicas: int = 1,
        duplicate_window: float = 120.0,
        poll_interval: float = 0.5,
        timeout: float = 10.0,
        connect_options: dict[str, Any] | None = None,
    ) -> JetStreamEventLog:
        """Connect (or use ``servers`` if it is a client) and create the stream if missing.

        An existing stream is used as it is (its replicas are an operator's decision), except
        that direct gets are switched on if they are off (batched reads need them).
        """
        own = not isinstance(servers, NATS)
        if own:
            options = {"max_reconnect_attempts": -1, "reconnect_time_wait": 0.5, **(connect_options or {})}
            options.pop("servers", None)
            try:
                nc = await nats.connect(servers, **options)  # type: ignore[arg-type]
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                raise translated(exc, f"connecting to {servers}") from exc
        else:
            nc = servers  # type: ignore[assignment]
        event_log = cls(nc, stream=stream, prefix=prefix, poll_interval=poll_interval, own_connection=own, timeout=timeout)
        try:
            with event_log._boundary(f"opening stream {stream}"):
                await event_log._ensure_stream(replicas, duplicate_window)
        except BaseException:
            if own:
                with contextlib.suppress(Exception):
                    await nc.close()
            raise
        return event_log

    async def _ensure_stream(self, replicas: int, duplicate_window: float) -> None:
        try:
            info = await self.js.stream_info(self.stream)
        except nats.js.errors.NotFoundError as exc:
            if exc.err_code not in (None, STREAM_NOT_FOUND):  # another 404: a real failure
                raise
            await self.js.add_stream(StreamConfig(
                name=self.stream, subjects=[f"{self.prefix}.log.>"], storage=StorageType.FILE, num_replicas=replicas,
                deny_delete=True, deny_purge=True, allow_direct=True, duplicate_window=duplicate_window,
            ))
            return
        if info.config.num_replicas != replicas:
            log.warning("stream %s has %s replicas, configured %d: leaving it as it is",
                        self.stream, info.config.num_replicas, replicas)
        if not info.config.allow_direct:
            info.config.allow_direct = True
            try:
                await self.js.update_stream(info.config)
            except nats.js.errors.APIError as exc:
                log.warning("stream %s: cannot enable direct gets (%s); reading one record per request", self.stream, exc)
                self.direct = False

    def _subject(self, e: Event) -> str:
        return f"{self.prefix}.log.{id_token(e.id)}.{type_tokens(e.type)}"

    # -- writing ---------------------------------------------------------------------------

    async def append(self, events: Sequence[Event], *, linger: float = 0.0) -> list[Appended]:
        # ``linger`` is for group commits; here each record is published in turn (see above).
        if self._closed:
            raise LogClosed("the event log is closed")
        if not events:
            return []
        encoded = [(e, e.data_json()) for e in events]  # encoding errors fail this caller only
        started = time.perf_counter()
        async with self._lock:
            if self._closed:
                raise LogClosed("the event log is closed")
            try:
                done = await self._append_retrying(encoded)
            except BaseException:
                self._head = None
                raise
            finally:
                self._unconfirmed.clear()
        results: list[Appended] = []
        seen: set[str] = set()
        for e in events:
            first = done[e.id]
            results.append(first if e.id not in seen else Appended(first.seq, e.id, first.hash, False))
            seen.add(e.id)
        stored = sum(1 for r in done.values() if r.new)
        self.appended_total += stored
        if stored:
            self._wake_subscribers()
        self.append_seconds.observe(time.perf_counter() - started)
        return results

    async def _append_retrying(self, encoded: Sequence[tuple[Event, str]]) -> dict[str, Appended]:
        """The append, tried again while the stream is briefly unavailable (a leader election,
        an unconfirmed publish), up to :attr:`retry_for` seconds: every caller — the VTP
        receiver, NATS and HTTP senders, the handlers — then gets the real outcome of an
        election instead of "maybe stored". Each round re-reads the head and finds the ids
        first, so a record stored by an unconfirmed publish is found, not stored twice."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_for
        delay = 0.05
        while True:
            try:
                with self._boundary("append failed"):
                    return await self._append_locked(encoded)
            except LogUnavailable as exc:
                self._head = None
                if self._closed or loop.time() + delay >= deadline:
                    raise
                self.append_retries_total += 1
                log.warning("stream %s: append not confirmed (%s); trying again in %.2fs", self.stream, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _append_locked(self, encoded: Sequence[tuple[Event, str]]) -> dict[str, Appended]:
        done: dict[str, Appended] = {}
        pending: list[tuple[Event, str]] = []
        for e, data_json in encoded:
            if e.id not in {p[0].id for p in pending}:
                pending.append((e, data_json))
        #: Until when this call waits for other writers' publishes of its ids (10158).
        in_process_deadline: float | None = None
        #: The first round skips the lookups: the server checks each id (see _publish_chained).
        optimistic = self._server_checks_ids()
        while pending:
            # The head first, then the ids: a publish that succeeds against this head means
            # nothing was appended since, so an id not found now is really not in the log.
            head = self._head or await self._read_head()
            if optimistic:
                found: list[RecordedEvent | None] = [None] * len(pending)
            else:
                found = list(await asyncio.gather(*(self._find(e.id) for e, _ in pending)))
            fresh: list[tuple[Event, str]] = []
            for (e, data_json), record in zip(pending, found, strict=True):
                if record is not None:
                    done[e.id] = Appended(record.seq, e.id, record.hash, self._unconfirmed.get(e.id) == record.hash)
                else:
                    fresh.append((e, data_json))
            if not fresh:
                return done
            stored, problem = await self._publish_chained(head, fresh, id_check=optimistic)
            optimistic = False
            for item in stored:
                done[item.event.id] = Appended(item.seq, item.event.id, item.digest, True)
            pending = fresh[len(stored):]
            if not pending:
                return done
            self._head = None  # re-read it: another writer, or an unconfirmed publish
            blocked = pending[0][0]  # the record the server refused or answered "duplicate" for
            if isinstance(problem, _Duplicate):
                # Stored already (another writer, or our own retried publish): take its seq
                # from the answer; if that record is not ours after all, find() decides.
                original = await self._load(problem.seq)
                if original is not None and original[0].id == blocked.id:
                    ours = self._unconfirmed.get(blocked.id) == original[0].hash
                    done[blocked.id] = Appended(original[0].seq, blocked.id, original[0].hash, ours)
                    pending = pending[1:]
                continue
            if isinstance(problem, nats.js.errors.APIError) and problem.err_code in CONFLICTS:
                self.conflicts_total += 1
                continue
            if isinstance(problem, nats.js.errors.APIError) and problem.err_code == DUPLICATE_IN_PROCESS:
                # Two nodes appending one id at the same moment: the other's publish is
                # proposed, not yet applied. Its outcome decides: once its record is visible
                # the next round finds it (new=False, its seq); if it failed (its proposal
                # dropped by a leader change) the next round stores ours.
                self.in_process_total += 1
                now = asyncio.get_running_loop().time()
                if in_process_deadline is None:
                    in_process_deadline = now + self.timeout
                elif now >= in_process_deadline:
                    raise LogUnavailable(
                        f"another writer's append of id {blocked.id} was still in process after {self.timeout}s"
                    ) from problem
                await self._await_other_writer(blocked.id, in_process_deadline)
                continue
            if problem is None:  # not reached: a stop always says why
                continue
            raise problem
        return done

    def _server_checks_ids(self) -> bool:
        """The connected server honours ``Nats-Expected-Last-Subject-Sequence-Subject``
        (nats-server ≥ 2.11); an older one would check the literal subject only (the id under
        this type), so appends there look their ids up first, as before."""
        version = self.nc.connected_server_version
        try:
            return (version.major, version.minor) >= (2, 11)
        except (TypeError, ValueError, AttributeError):  # an unparsable version: do not rely on it
            return False

    async def _await_other_writer(self, event_id: str, deadline: float) -> None:
        """Poll (leader lookups, backing off from 2 ms to 100 ms) until a record with this id
        is visible or ``deadline`` passes. Measured on a loopback R3 cluster, another
        writer's in-process publish is applied within milliseconds."""
        loop = asyncio.get_running_loop()
        delay = 0.002
        while await self._find(event_id) is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.1)

    async def _publish_chained(
        self, head: Head, items: Sequence[tuple[Event, str]], *, id_check: bool = False
    ) -> tuple[list[_Planned], BaseException | _Duplicate | None]:
        """Publish ``items`` after ``head``, each once the one before it is confirmed stored as
        planned; return what was stored and what stopped the rest (a refusal, or a duplicate
        ack naming the seq where that id is stored).

        One at a time, not pipelined: a later record is hashed against the earlier one as
        this call planned it, and only an ack says that exact record holds its seq. Another
        writer may store a different record under the same id (two nodes appending the same
        derived decision); ``Nats-Expected-Last-Msg-Id`` cannot tell the two apart, and a
        pipelined successor would be stored after the other writer's record, hashed against
        ours: a forked chain (tests/nats/test_jetstream_log.py).

        ``id_check``: the ids were not looked up; each publish also asks the server to store it
        only if no record has its id (``Nats-Expected-Last-Subject-Sequence: 0`` on the id's
        subjects, nats-server ≥ 2.11), checked atomically with the head. A refusal (10071)
        sends the call to the next round, which looks the ids up. This halves the round trips
        of an append: measured in bench/jetstream.py, a lookup cost as much as the publish."""
        stored: list[_Planned] = []
        previous = head
        for e, data_json in items:
            seq = previous.seq + 1
            recorded_at = max(utc_now(), previous.recorded_at or "")
            digest = record_hash(
                prev_hash=previous.hash, seq=seq, id=e.id, type=e.type, stream=e.stream, actor=e.actor,
                occurred_at=e.occurred_at, recorded_at=recorded_at, data_json=data_json,
            )
            headers = {"Nats-Msg-Id": e.id, "Nats-Expected-Stream": self.stream,
                       "Nats-Expected-Last-Sequence": str(previous.seq)}
            if id_check:
                headers["Nats-Expected-Last-Subject-Sequence"] = "0"
                headers["Nats-Expected-Last-Subject-Sequence-Subject"] = f"{self.prefix}.log.{id_token(e.id)}.>"
            payload = _payload(seq, e, data_json, recorded_at, previous.hash, digest)
            future = await self._request(self._subject(e), payload, headers)
            try:
                async with asyncio.timeout(self.timeout):
                    ack = _ack(await future, self.stream)
            except TimeoutError as exc:
                # Maybe stored, maybe not: the next round finds it (then it is ours: new=True
                # if it is the record planned here) or publishes it again.
                self._unconfirmed[e.id] = digest
                problem = LogUnavailable(f"append not confirmed within {self.timeout}s")
                problem.__cause__ = exc
                return stored, problem
            finally:
                future.cancel()
            if isinstance(ack, BaseException):
                return stored, ack
            if ack.duplicate:
                return stored, _Duplicate(ack.seq)
            if ack.seq != seq:
                return stored, LogError(f"stream {self.stream} stored seq {ack.seq} where {seq} was expected")
            stored.append(_Planned(e, data_json, seq, digest, recorded_at))
            previous = self._head = Head(seq, digest, recorded_at)
        return stored, None

    async def _request(self, subject: str, payload: bytes, headers: dict[str, str]) -> asyncio.Future[Msg]:
        """Publish with a reply subject of our own and return the future of the answer.

        Not nats-py's ``publish_async``: its reply handler raises (instead of resolving the
        future) on the server's 400 errors, which are exactly the conflicts we retry on."""
        if self._reply_prefix is None:
            self._reply_prefix = self.nc.new_inbox()
            self._replies = await self.nc.subscribe(f"{self._reply_prefix}.*", cb=self._on_reply)
        self._reply_counter += 1
        token = str(self._reply_counter)
        future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        future.add_done_callback(lambda _: self._waiting.pop(token, None))
        await self.nc.publish(subject, payload, reply=f"{self._reply_prefix}.{token}", headers=headers)
        return future

    async def _on_reply(self, msg: Msg) -> None:
        future = self._waiting.get(msg.subject.rpartition(".")[2])
        if future is not None and not future.done():
            future.set_result(msg)

    def _wake_subscribers(self) -> None:
        waiting, self._appended = self._appended, asyncio.Event()
        waiting.set()

    # -- reading ---------------------------------------------------------------------------

    async def _load(self, seq: int, subject: str | None = None, next: bool = False) -> tuple[RecordedEvent, str] | None:
        """One record from the stream leader (``next``: the first at or after ``seq`` on ``subject``)."""
        try:
            msg = await self.js.get_msg(self.stream, seq=seq, subject=subject, next=next)
        except nats.js.errors.NotFoundError as exc:
            if exc.err_code not in (None, NO_MESSAGE_FOUND):  # "stream not found" is no answer
                raise
            return None
        if msg.data is None:
            return None
        record, text = _decode(msg.data)
        if msg.seq != record.seq:
            raise LogError(f"stream seq {msg.seq} holds a record claiming seq {record.seq}")
        return record, text

    async def _direct_batch(self, start: int, subject: str, batch: int) -> tuple[list[tuple[RecordedEvent, str]], bool] | None:
        """Up to ``batch`` records from ``start`` on ``subject`` in one request; the flag says
        the server reported more pending. None: direct gets are not available here."""
        prefix = getattr(self.js, "_prefix", "$JS.API")
        inbox = self.nc.new_inbox()
        subscription = await self.nc.subscribe(inbox)
        request = {"seq": start, "next_by_subj": subject, "batch": batch, "max_bytes": DIRECT_MAX_BYTES}
        out: list[tuple[RecordedEvent, str]] = []
        more = False
        try:
            await self.nc.publish(f"{prefix}.DIRECT.GET.{self.stream}", orjson.dumps(request), reply=inbox)
            while True:
                msg = await subscription.next_msg(timeout=self.timeout)
                headers = msg.headers or {}
                status = headers.get("Status")
                if status is None:
                    if "Nats-Num-Pending" not in headers:  # a server before 2.11: no batches
                        log.warning("stream %s: the server does not batch direct gets; reading one record per request", self.stream)
                        return None
                    record, text = _decode(msg.data)
                    if headers.get("Nats-Sequence") not in (None, str(record.seq)):
                        raise LogError(f"stream seq {headers.get('Nats-Sequence')} holds a record claiming seq {record.seq}")
                    out.append((record, text))
                    if len(out) >= batch:
                        more = headers.get("Nats-Num-Pending", "0") != "0"
                        break
                    continue
                if status == "204":  # end of batch (max_bytes may end it early)
                    more = headers.get("Nats-Num-Pending", "0") != "0"
                    break
                if status in ("404", "408"):  # nothing (more) at or after start
                    break
                if status == "503":  # no responders: off for this stream, or none answering right now
                    # (an election): read from the leader for a while, then try batches again.
                    self._direct_paused_until = asyncio.get_running_loop().time() + DIRECT_PAUSE
                    log.warning("stream %s: no direct-get responders; reading one record per request for %gs",
                                self.stream, DIRECT_PAUSE)
                    return None
                raise LogError(f"direct get on {self.stream}: status {status} {headers.get('Description', '')}")
        except nats.errors.TimeoutError as exc:
            raise LogUnavailable(f"direct get on {self.stream}: no answer within {self.timeout}s") from exc
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        self.direct_batches_total += 1
        return out, more

    async def _read_raw(
        self, after: int, filter: ReadFilter | None, limit: int | None
    ) -> list[tuple[RecordedEvent, str]]:
        subject = f"{self.prefix}.log.>"
        if filter is not None and filter.types and len(filter.types) == 1:
            subject = f"{self.prefix}.log.*.{type_tokens(filter.types[0])}"
        out: list[tuple[RecordedEvent, str]] = []
        position = after

        def take(found: tuple[RecordedEvent, str]) -> bool:
            """Keep one record; True when ``limit`` is reached."""
            nonlocal position
            position = found[0].seq
            if _matches(found[0], filter):
                out.append(found)
            return limit is not None and len(out) >= limit

        while limit is None or len(out) < limit:
            if self.direct and asyncio.get_running_loop().time() >= self._direct_paused_until:
                # Ask for what is still wanted, or a full batch when a filter is applied here.
                exact = filter is None or (subject != f"{self.prefix}.log.>" and filter.stream is None
                                           and filter.since is None and filter.until is None)
                want = DIRECT_BATCH if limit is None or not exact else max(1, min(DIRECT_BATCH, limit - len(out)))
                paused = self._direct_paused_until
                got = await self._direct_batch(position + 1, subject, want)
                if got is None:
                    if self._direct_paused_until == paused:  # not a pause: the server cannot batch, for good
                        self.direct = False
                else:
                    records, more = got
                    if any(take(found) for found in records):
                        break
                    if more and records:
                        continue
            # Nothing more here, or a short batch (possibly from a lagging replica): the
            # leader has every acknowledged record, so it says whether this is the end.
            found_next = await self._load(position + 1, subject, next=True)
            if found_next is None or take(found_next):
                break
        return out

    async def read(self, after: int = 0, filter: ReadFilter | None = None, limit: int | None = None) -> list[RecordedEvent]:
        self._check_open()
        if limit is not None and limit <= 0:
            return []
        with self._boundary(f"read after seq {after} failed"):
            return [record for record, _ in await self._read_raw(after, filter, limit)]

    async def subscribe(
        self, after: int = 0, filter: ReadFilter | None = None, batch_size: int = 1000
    ) -> AsyncIterator[list[RecordedEvent]]:
        """Catch up, then follow: "read after my last seq" is exact on a gap-free stream.
        Appends by this process wake the reader; others' are seen within ``poll_interval``."""
        async for batch in follow(
            self.read, self.head, lambda: self._appended, lambda: self._closed,
            self._poll_interval, after, filter, batch_size,
        ):
            yield batch

    async def subscribe_stored(self, after: int = 0, batch_size: int = 1000) -> AsyncIterator[list[StoredRecord]]:
        """:meth:`subscribe` without a filter, records as stored (``store.base.subscribe_stored``)."""

        async def read_stored(after: int, filter: ReadFilter | None, limit: int) -> list[StoredRecord]:
            self._check_open()
            with self._boundary(f"read after seq {after} failed"):
                found = await self._read_raw(after, None, limit)
            return [StoredRecord(r.seq, r.id, r.type, r.stream, r.actor, r.occurred_at, r.recorded_at, text, r.prev_hash, r.hash)
                    for r, text in found]

        async for batch in follow(
            read_stored, self.head, lambda: self._appended, lambda: self._closed,
            self._poll_interval, after, None, batch_size,
        ):
            yield batch

    async def get(self, seq: int) -> RecordedEvent | None:
        self._check_open()
        if seq < 1:
            return None
        with self._boundary(f"get seq {seq} failed"):
            found = await self._load(seq)
        return found[0] if found else None

    async def find(self, event_id: str) -> RecordedEvent | None:
        self._check_open()
        with self._boundary(f"find id {event_id} failed"):
            return await self._find(event_id)

    async def _find(self, event_id: str) -> RecordedEvent | None:
        """The record with this id, from the stream leader (the last on the id's subjects)."""
        try:
            msg = await self.js.get_msg(self.stream, subject=f"{self.prefix}.log.{id_token(event_id)}.>")
        except nats.js.errors.NotFoundError as exc:
            if exc.err_code not in (None, NO_MESSAGE_FOUND):  # "stream not found": unknown, not absent
                raise
            return None
        if msg.data is None:
            return None
        record, _ = _decode(msg.data)
        return record if record.id == event_id else None

    async def head(self) -> Head:
        self._check_open()
        with self._boundary("head failed"):
            return await self._read_head()

    async def _read_head(self) -> Head:
        info = await self.js.stream_info(self.stream)
        last = info.state.last_seq
        if not last:
            return Head(0, GENESIS_HASH, None)
        found = await self._load(last)
        if found is None:
            raise LogError(f"stream {self.stream} has no message at its last seq {last}")
        record = found[0]
        head = Head(record.seq, record.hash, record.recorded_at)
        self._head = head
        return head

    async def seq_at(self, moment: str) -> int:
        """Binary search: ``recorded_at`` never decreases along seq."""
        target = normalise_time(moment)
        low, high = 0, (await self.head()).seq
        while low < high:
            middle = (low + high + 1) // 2
            record = await self.get(middle)
            if record is not None and record.recorded_at <= target:
                low = middle
            else:
                high = middle - 1
        return low

    async def verify(self, progress: Callable[[int], None] | None = None) -> Verification:
        self._check_open()
        with self._boundary("verify failed"):
            return await self._verify(progress)

    async def _verify(self, progress: Callable[[int], None] | None) -> Verification:
        prev_hash = GENESIS_HASH
        last = Head(0, GENESIS_HASH, None)
        count = 0
        end = (await self.js.stream_info(self.stream)).state.last_seq
        position = 0
        while position < end:
            page = await self._read_raw(position, None, min(DIRECT_BATCH, end - position))
            if not page:
                return Verification(count, last, position + 1, f"seq {position + 1} is missing")
            for record, data_json in page:
                seq = position + 1
                if record.seq != seq:
                    return Verification(count, last, seq, f"seq {seq} is missing")
                if record.prev_hash != prev_hash:
                    return Verification(count, last, seq, "prev_hash does not match the previous record's hash")
                digest = record_hash(
                    prev_hash=record.prev_hash, seq=seq, id=record.id, type=record.type, stream=record.stream,
                    actor=record.actor, occurred_at=record.occurred_at, recorded_at=record.recorded_at, data_json=data_json,
                )
                if digest != record.hash:
                    return Verification(count, last, seq, "stored content does not match its hash")
                count += 1
                position = seq
                prev_hash = record.hash
                last = Head(seq, record.hash, record.recorded_at)
                if progress and count % 5000 == 0:
                    progress(count)
        if progress:
            progress(count)
        return Verification(count, last)

    async def close(self) -> None:
        if self._closed:
            return
        async with self._lock:  # pending appends finish first
            self._closed = True
        self._wake_subscribers()
        if self._replies is not None:
            with contextlib.suppress(Exception):
                await self._replies.unsubscribe()
        if self._own_connection:
            with contextlib.suppress(Exception):
                await self.nc.close()
        for hook in self.after_close:
            await hook()
