"""The Slack outbox: accepted notices → channel messages, one thread per burst, from a checkpoint.

Follows the burst identifier's decisions (``burst.identified`` / ``burst.none``, one per
accepted notice, so each notice comes with its burst id) from consumer ``bridge.slack.out`` in
``state.sqlite`` (the first run starts at the log's head: replaying the archive into a channel
helps nobody). For each notice and each channel that wants it:

* the first notice of a burst opens a message whose thread collects the burst's later notices;
  an update that retracts or improves the position is also shown in the channel
  (``reply_broadcast``), because those change what a BA does;
* messages to a channel are spaced by ``min_interval`` (Slack: about one per second per
  channel), counted from the end of the previous send to that channel (a 429 is waited out
  inside the send, for its ``Retry-After``, by slack-sdk's retry handler);
* every post is recorded (event id, channel → ts) in the same database as the checkpoint, so a
  restart never posts a notice twice, and a failure mid-batch resumes at that message. Before
  each attempt the post is recorded *in flight* (``slack_inflight``) and the message carries
  the event id in its metadata; an attempt whose outcome is unknown (a timeout, a dropped
  connection, a stop that outlasted ``stop_grace``) is settled with Slack's history before it
  is ever sent again (:meth:`SlackOutbox._settle`).

Errors: Slack unreachable, 429 beyond the retries or 5xx → that message is retried, with a
back-off from ``retry_delay`` doubling up to 60 s that starts again at ``retry_delay`` after
every successful send; a refused token → the component fails (the supervisor retries with
backoff and ``/healthz`` shows why); a refusal about one channel (``channel_not_found``,
``not_in_channel``, ``is_archived``…) is logged, counted and recorded for that message, and the
other channels still get theirs.

A stop that lands while a post is in flight lets the post and its record finish for up to
``stop_grace`` seconds (the service's repeated cancels included); past that it stops with the
post recorded in flight and says so (WARNING naming the notice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jinja2
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from burstbus.bridges.slack.config import SlackChannel, SlackSection
from burstbus.config import resolve_secret
from burstbus.events import RecordedEvent, utc_now
from burstbus.notices import DECISIONS, NoticeView, decided_notices, notice_view
from burstbus.state import StateStore
from burstbus.store.base import EventLog
from burstbus.store.consumer import Batch, Follower, Start

log = logging.getLogger(__name__)

CONSUMER = "bridge.slack.out"
BUILTIN_TEMPLATES = Path(__file__).with_name("templates")

#: Slack errors that concern the whole workspace connection: retrying each message is pointless.
FATAL_ERRORS = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
                          "no_permission", "missing_scope", "org_login_required", "ekm_access_denied"})
#: … except these when reading history: the token may post without being allowed to read.
CANNOT_READ = frozenset({"no_permission", "missing_scope"})
#: Answers that mean the message was not posted (retried as it is).
NOT_POSTED = frozenset({"ratelimited", "service_unavailable"})
#: Answers after which it may or may not have been posted (settled with the history first).
UNSURE = frozenset({"fatal_error", "internal_error", "request_timeout"})

#: The metadata every post carries: its event id, so that Slack's history can tell whether an
#: attempt whose answer never arrived was posted.
METADATA_TYPE = "burstbus_notice"
#: How far before an attempt's start (our clock) its message is looked for (Slack's clock).
HISTORY_MARGIN = 600.0
HISTORY_PAGES = 10

_DDL = """
CREATE TABLE IF NOT EXISTS slack_threads (
    channel  TEXT NOT NULL,
    burst_id TEXT NOT NULL,
    ts       TEXT NOT NULL,
    best_err REAL,
    PRIMARY KEY (channel, burst_id)
);
CREATE TABLE IF NOT EXISTS slack_posts (
    event_id TEXT NOT NULL,
    channel  TEXT NOT NULL,
    ts       TEXT,
    error    TEXT,
    PRIMARY KEY (event_id, channel)
);
CREATE TABLE IF NOT EXISTS slack_inflight (
    event_id   TEXT NOT NULL,
    channel    TEXT NOT NULL,
    thread_ts  TEXT,
    started_at REAL NOT NULL,
    PRIMARY KEY (event_id, channel)
);
CREATE TABLE IF NOT EXISTS slack_channel_ids (
    channel TEXT PRIMARY KEY,
    id      TEXT NOT NULL
);
"""


class SlackRefused(RuntimeError):
    """Slack refused the token or its permissions; nothing can be posted until that is fixed."""


class _Retry(Exception):
    """Slack could not take it now (outage, 5xx, network): back off, then try that message again."""

    def __init__(self, reason: str, *, unsure: bool = False):
        super().__init__(reason)
        #: The message may have been posted: its in-flight record stays, to be settled.
        self.unsure = unsure


def _answer(exc: SlackApiError) -> Mapping[str, Any]:
    """Slack's JSON answer (a proxy in front of it may answer a 5xx with plain text)."""
    data = exc.response.data
    return data if isinstance(data, Mapping) else {}


def _error_of(exc: SlackApiError) -> str:
    return str(_answer(exc).get("error") or "")


def _transient(exc: SlackApiError) -> _Retry | None:
    """What a Slack answer means for a post: None if it is a verdict (token, channel)."""
    error, status = _error_of(exc), exc.response.status_code
    if status == 429 or error in NOT_POSTED or (status == 503 and not _answer(exc)):
        return _Retry(f"Slack answered {status} {error or 'unavailable'}")
    if error in UNSURE or status >= 500:
        return _Retry(f"Slack answered {status} {error}".rstrip(), unsure=True)
    return None


def _network(exc: BaseException) -> _Retry | None:
    """A failure to reach Slack: not posted if it never connected, else unknown."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _Retry(f"Slack unreachable: {exc}")
    if isinstance(exc, TimeoutError | aiohttp.ClientError | OSError):
        return _Retry(f"no answer from Slack: {type(exc).__name__}: {exc}".rstrip(": "), unsure=True)
    return None


def slack_escape(value: object) -> str:
    """Slack's three control characters in text (``&``, ``<``, ``>``); links are built by templates."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackTemplates:
    """``notice.j2`` from the override directory, else the built-in; values are Slack-escaped."""

    def __init__(self, override: Path | None = None):
        folders = [str(override)] if override is not None else []
        options: dict[str, Any] = {"autoescape": False, "undefined": jinja2.StrictUndefined,
                                   "finalize": lambda v: slack_escape("" if v is None else v)}
        loader = jinja2.FileSystemLoader([*folders, str(BUILTIN_TEMPLATES)])
        self.template = jinja2.Environment(loader=loader, **options).get_template("notice.j2")
        self.builtin = jinja2.Environment(loader=jinja2.FileSystemLoader(str(BUILTIN_TEMPLATES)), **options).get_template("notice.j2")

    def render(self, view: NoticeView, *, first: bool, retracted: bool = False) -> str:
        try:
            text = self.template.render(n=view, first=first, retracted=retracted)
        except Exception:
            log.exception("Slack template notice.j2 failed for %s; using the built-in one", view.ivorn)
            text = self.builtin.render(n=view, first=first, retracted=retracted)
        return "\n".join(line.rstrip() for line in text.strip().splitlines())


@dataclass(frozen=True)
class Thread:
    ts: str
    best_err: float | None


@dataclass(frozen=True)
class InFlight:
    """A post attempted and not known to have been answered (``slack_inflight``)."""

    thread_ts: str | None
    started_at: float


def _improves(err: float | None, best: float | None) -> bool:
    return err is not None and (best is None or err < best)


class SlackOutbox:
    """Posts notices to Slack channels; :meth:`run` is the supervised component."""

    def __init__(self, event_log: EventLog, state: StateStore, section: SlackSection, client: AsyncWebClient, *,
                 link_base: str, burst_roles: tuple[str, ...] = ("observation",), name: str = CONSUMER,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.log = event_log
        self.state = state
        self.section = section
        self.client = client
        self.templates = SlackTemplates(section.templates_dir)
        self.link_base = link_base.rstrip("/")
        self.name = name  # ``burst_roles`` is no longer needed: every notice has a decision
        #: The back-off's wait (replaceable in tests: an outage without the wall time).
        self.sleep = sleep
        #: Per channel: when its last send ended (answered or failed), on the loop's clock.
        self._last_done: dict[str, float] = {}
        #: Channel as configured (``#name``) → its id, from Slack's answers (history wants ids).
        self._channel_ids: dict[str, str] = {}
        #: The next back-off wait: ``retry_delay`` again after every successful send.
        self._delay = section.retry_delay
        self._max_delay = max(section.retry_delay, 60.0)
        #: Slack trouble is retried per message by the outbox itself (its back-off resets
        #: after a send); what reaches the follower is a refused token (fails the component)
        #: or the log's own trouble (retried from the checkpoint with the follower's backoff).
        self.follower: Follower[RecordedEvent] = Follower(
            event_log, self._deliver_batch, name=name, checkpoint=state.checkpoint(name), start=Start.HEAD,
            types=DECISIONS, batch_size=100, prepare=self._check_token,
            retryable=lambda exc: not isinstance(exc, SlackRefused),
            retry_delay=section.retry_delay, max_retry_delay=self._max_delay,
        )
        #: For health and metrics.
        self.posted_total = 0
        self.failed_total = 0
        #: Back-off waits so far (each outage costs at least one), and the last one's length.
        self.retry_waits = 0
        self.last_retry_delay: float | None = None
        self.last_error: str | None = None
        self.last_activity: str | None = None
        self.connected = False

    @classmethod
    def client_for(cls, section: SlackSection) -> AsyncWebClient:
        options: dict[str, Any] = {"token": resolve_secret(section.token, "slack.token"), "timeout": int(section.timeout)}
        if section.base_url:
            options["base_url"] = section.base_url
        client = AsyncWebClient(**options)
        # Only 429s are retried inside slack-sdk. Its default handler also resends a request
        # whose connection dropped, which for a post Slack already took is a second message:
        # the outbox retries those itself, after asking Slack's history (_settle).
        client.retry_handlers = [AsyncRateLimitErrorRetryHandler(max_retry_count=10)]
        return client

    # -- the component ---------------------------------------------------------------------

    @property
    def position(self) -> int:
        return self.follower.position or 0

    async def run(self) -> None:
        """Post for ever; transient trouble is retried from the last recorded post."""
        await self.state.run(lambda conn: conn.executescript(_DDL))
        rows = await self.state.run(lambda conn: conn.execute("SELECT channel, id FROM slack_channel_ids").fetchall())
        self._channel_ids.update(dict(rows))
        try:
            await self.follower.run()
        finally:
            self.connected = False

    async def _check_token(self) -> None:
        """Before every (re)start of following: is the token still good?"""
        try:
            await self.client.auth_test()
        except SlackApiError as exc:
            self.connected = False
            error = _error_of(exc)
            if exc.response.status_code >= 500 or error not in FATAL_ERRORS:
                self.last_error = f"{type(exc).__name__}: {exc}"
                raise  # Slack unwell, not a verdict on the token: retried
            raise self._refused(error) from None
        except Exception as exc:  # network: retried
            self.connected = False
            self.last_error = f"{type(exc).__name__}: {exc}"
            raise
        self.connected = True
        self.last_error = None

    def _refused(self, error: str) -> SlackRefused:
        self.last_error = f"Slack refused the token: {error}"
        return SlackRefused(self.last_error)

    async def _deliver_batch(self, batch: Batch[RecordedEvent]) -> None:
        try:
            for record, burst in await decided_notices(self.log, batch.records):
                await self.deliver(record, burst)
        except SlackRefused:
            self.connected = False
            raise
        except Exception as exc:  # not Slack's: the log, the state database; retried by the follower
            self.connected = False
            self.last_error = f"{type(exc).__name__}: {exc}"
            raise

    # -- one notice ------------------------------------------------------------------------

    def channels_for(self, data: Mapping[str, Any]) -> list[SlackChannel]:
        mission = str(data.get("mission") or "").lower()
        return [c for c in self.section.channels
                if data.get("role") in c.roles and (not c.missions or mission in {m.lower() for m in c.missions})]

    async def deliver(self, record: RecordedEvent, burst: str | None) -> None:
        """Post one notice (``voevent.accepted``, decided to be in ``burst``) to its channels;
        one already recorded as posted there is skipped (a batch redone after a failure)."""
        channels = self.channels_for(record.data)
        if not channels:
            return
        view = notice_view(record.data, burst_id=burst, link_base=self.link_base, seq=record.seq, event_id=record.id)
        for channel in channels:
            await self._post(channel.channel, record.id, view)
            if view.retraction and view.burst_id and self.section.thread_per_burst:
                await self._mark_thread_retracted(channel.channel, record.id, view)

    async def _post(self, channel: str, event_id: str, view: NoticeView) -> None:
        """Post it to ``channel`` unless recorded; Slack's trouble is waited out here, with a
        back-off that starts again at ``retry_delay`` once a send went through."""
        while True:
            done, thread, pending = await self.state.run(lambda conn: self._lookup(conn, event_id, channel, view.burst_id))
            if done:
                return
            first = thread is None
            try:
                if pending is None or not await self._settle(channel, event_id, view, first, pending):
                    await self._pace(channel)
                    await self._shielded(self._attempt(channel, event_id, view, first, self._options(channel, event_id, view, thread)),
                                         channel, view)
            except _Retry as retry:
                self.connected = False
                self.last_error = f"{channel}: {retry}"
                await self._back_off(channel, view, retry)
                continue
            self._delay = self.section.retry_delay  # Slack answered: the next outage starts from the first step
            return

    async def post_text(self, channel: str, text: str, id: str) -> None:
        """A plain message in ``channel`` (the ``chat.channels`` port: the witness's signed
        checkpoints), paced with the notices posted there; a refusal raises (its caller, an
        outbox of its own, retries). ``id``: the event's id, in the message metadata."""
        await self._pace(channel)
        try:
            await self.client.chat_postMessage(channel=channel, text=text, unfurl_links=False, unfurl_media=False,
                                               metadata={"event_type": "burstbus_checkpoint", "event_payload": {"event_id": id}})
        finally:
            self._last_done[channel] = asyncio.get_running_loop().time()

    def _options(self, channel: str, event_id: str, view: NoticeView, thread: Thread | None) -> dict[str, Any]:
        options: dict[str, Any] = {"channel": channel, "text": self.templates.render(view, first=thread is None),
                                   "unfurl_links": False, "unfurl_media": False,
                                   "metadata": {"event_type": METADATA_TYPE, "event_payload": {"event_id": event_id}}}
        if thread is not None:
            options["thread_ts"] = thread.ts
            if self.section.broadcast_updates and (view.retraction or _improves(view.err, thread.best_err)):
                options["reply_broadcast"] = True
        return options

    # -- a retraction edits the thread's opening message -------------------------------------

    async def _mark_thread_retracted(self, channel: str, event_id: str, view: NoticeView) -> None:
        """Edit the message that opened the burst's thread (``chat.update``) so the channel
        shows the burst retracted without opening the thread. Done once per retraction and
        channel (recorded in ``slack_posts`` as ``<event id>:parent``); an edit Slack refuses
        is logged and recorded, and Slack's trouble is waited out as for a post."""
        key = f"{event_id}:parent"

        def lookup(conn: sqlite3.Connection) -> tuple[bool, str | None, str | None]:
            if conn.execute("SELECT 1 FROM slack_posts WHERE event_id = ? AND channel = ?", (key, channel)).fetchone():
                return True, None, None
            row = conn.execute("SELECT ts FROM slack_threads WHERE channel = ? AND burst_id = ?", (channel, view.burst_id)).fetchone()
            if row is None:
                return False, None, None
            opened = conn.execute("SELECT event_id FROM slack_posts WHERE channel = ? AND ts = ? AND event_id != ?",
                                  (channel, row[0], event_id)).fetchone()
            return False, row[0], opened[0] if opened else None

        done, thread_ts, opener = await self.state.run(lookup)
        if done or thread_ts is None or opener is None:
            return  # already edited, or the retraction itself opened the thread (it says so)
        first = await self.log.find(opener)
        if first is None:
            return
        opened = notice_view(first.data, burst_id=view.burst_id, link_base=self.link_base, seq=first.seq, event_id=first.id)
        text = self.templates.render(opened, first=True, retracted=True)
        while True:
            error: str | None = None
            try:
                await self._pace(channel)
                await self.client.chat_update(channel=self._channel_ids.get(channel, channel), ts=thread_ts, text=text)
            except SlackApiError as exc:
                error = _error_of(exc) or str(exc)
                if error in FATAL_ERRORS - CANNOT_READ:
                    raise self._refused(error) from None
                if (retry := _transient(exc)) is not None:
                    await self._back_off(channel, view, retry)
                    continue
                log.error("Slack refused to mark the thread of %s in %s retracted: %s", view.burst_id, channel, error)
            except Exception as exc:
                if (retry := _network(exc)) is None:
                    raise
                await self._back_off(channel, view, retry)  # an edit is idempotent: simply again
                continue
            finally:
                self._last_done[channel] = asyncio.get_running_loop().time()
            break
        await self.state.transaction(lambda conn: conn.execute(
            "INSERT OR REPLACE INTO slack_posts (event_id, channel, ts, error) VALUES (?, ?, ?, ?)",
            (key, channel, thread_ts, error)))

    async def _back_off(self, channel: str, view: NoticeView, retry: _Retry) -> None:
        delay = self._delay
        self._delay = min(delay * 2, self._max_delay)
        self.retry_waits += 1
        self.last_retry_delay = delay
        log.warning("Slack: notice %s for %s not posted yet (%s); retrying in %.2fs", view.ivorn, channel, retry, delay)
        await self.sleep(delay)

    async def _pace(self, channel: str) -> None:
        """Wait until ``min_interval`` has passed since the last send to ``channel`` ended."""
        loop = asyncio.get_running_loop()
        while (wait := self._last_done.get(channel, -math.inf) + self.section.min_interval - loop.time()) > 0:
            await asyncio.sleep(wait)

    async def _shielded(self, attempt: Coroutine[Any, Any, None], channel: str, view: NoticeView) -> None:
        """Run the attempt (in-flight record, post, record) through a stop: a cancel lets it
        finish for up to ``stop_grace`` seconds; past that it stops with the post in flight."""
        step = asyncio.ensure_future(attempt)
        try:
            await asyncio.shield(step)
            return
        except asyncio.CancelledError:
            pass
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.section.stop_grace
        while not step.done() and (remaining := deadline - loop.time()) > 0:
            try:
                await asyncio.wait({step}, timeout=remaining)
            except asyncio.CancelledError:
                continue  # the service cancels again every 2 s: the bound still holds
        if step.done():
            failure = None if step.cancelled() else step.exception()
            if isinstance(failure, _Retry) and failure.unsure:
                log.warning("Slack: stopping with notice %s for %s in flight (%s); the restart asks Slack whether "
                            "it arrived before posting it", view.ivorn, channel, failure)
        else:
            step.add_done_callback(lambda t: t.cancelled() or t.exception())  # its end is not awaited
            step.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({step}, timeout=1.0)
            log.warning("Slack had not answered the post of notice %s to %s within slack.stop_grace (%.1fs): "
                        "stopping with it recorded in flight; the restart asks Slack whether it arrived and "
                        "never posts it twice", view.ivorn, channel, self.section.stop_grace)
        raise asyncio.CancelledError

    async def _attempt(self, channel: str, event_id: str, view: NoticeView, first: bool, options: dict[str, Any]) -> None:
        """One send: recorded in flight, posted, then recorded as posted (or as refused)."""
        thread_ts = options.get("thread_ts")
        await self.state.transaction(lambda conn: conn.execute(
            "INSERT OR REPLACE INTO slack_inflight (event_id, channel, thread_ts, started_at) VALUES (?, ?, ?, ?)",
            (event_id, channel, thread_ts, time.time())))
        loop = asyncio.get_running_loop()
        try:
            response = await self.client.chat_postMessage(**options)
        except SlackApiError as exc:
            self._last_done[channel] = loop.time()
            error = _error_of(exc) or str(exc)
            if error in FATAL_ERRORS:
                await self._forget_attempt(event_id, channel)
                raise self._refused(error) from None
            if (retry := _transient(exc)) is not None:
                if not retry.unsure:
                    await self._forget_attempt(event_id, channel)
                raise retry from exc
            self.failed_total += 1
            self.last_error = f"{channel}: {error}"
            log.error("Slack refused notice %s for %s: %s", view.ivorn, channel, error)
            await self.state.transaction(lambda conn: self._record(conn, event_id, channel, None, error, view, first))
            return
        except Exception as exc:
            self._last_done[channel] = loop.time()
            if (retry := _network(exc)) is None:
                raise  # not Slack's trouble: the follower's (the in-flight record is settled on the retry)
            if not retry.unsure:
                await self._forget_attempt(event_id, channel)
            raise retry from exc
        self._last_done[channel] = loop.time()
        ts = str(response.get("ts") or "")
        channel_id = str(response.get("channel") or "")
        await self.state.transaction(lambda conn: self._record(conn, event_id, channel, ts, None, view, first, channel_id))
        if channel_id:
            self._channel_ids[channel] = channel_id
        self.posted_total += 1
        self.connected = True
        self.last_activity = utc_now()

    async def _forget_attempt(self, event_id: str, channel: str) -> None:
        """Slack said it did not post it: no longer in flight."""
        await self.state.transaction(lambda conn: conn.execute(
            "DELETE FROM slack_inflight WHERE event_id = ? AND channel = ?", (event_id, channel)))

    # -- an attempt whose outcome is unknown ----------------------------------------------

    async def _settle(self, channel: str, event_id: str, view: NoticeView, first: bool, pending: InFlight) -> bool:
        """Did an earlier attempt (its answer never arrived) post it? Asks Slack's history for
        the message carrying this event id. Posted: recorded with its ts (True). Not there:
        forgotten, to be posted now (False). Cannot tell (history not readable, e.g. no
        ``channels:history`` scope): recorded as unconfirmed and not posted again (True)."""
        try:
            ts, complete = await self._find(channel, event_id, pending)
        except SlackApiError as exc:
            error = _error_of(exc) or str(exc)
            if error in FATAL_ERRORS - CANNOT_READ:
                raise self._refused(error) from None
            if (retry := _transient(exc)) is not None:
                raise _Retry(f"checking whether it was posted: {retry}") from exc
            ts, complete = None, False
            reason = f"Slack's history could not be read: {error}"
        except Exception as exc:
            if (retry := _network(exc)) is None:
                raise
            raise _Retry(f"checking whether it was posted: {retry}") from exc
        else:
            reason = f"not found in the last {HISTORY_PAGES} pages of history"
        self.connected = True
        if ts is not None:
            await self.state.transaction(lambda conn: self._record(conn, event_id, channel, ts, None, view, first))
            self.posted_total += 1
            self.last_activity = utc_now()
            log.warning("Slack: notice %s had reached %s (ts %s) before its record was written; recorded now, "
                        "not posted again", view.ivorn, channel, ts)
            return True
        if complete:
            await self._forget_attempt(event_id, channel)
            log.info("Slack: notice %s had not reached %s before the interruption; posting it", view.ivorn, channel)
            return False
        error = f"unconfirmed: {reason}"
        await self.state.transaction(lambda conn: self._record(conn, event_id, channel, None, error, view, first))
        self.failed_total += 1
        self.last_error = f"{channel}: notice {view.ivorn} {error}"
        log.warning("Slack: notice %s may or may not have reached %s (its post was interrupted and %s); "
                    "not posting it again", view.ivorn, channel, reason)
        return True

    async def _find(self, channel: str, event_id: str, pending: InFlight) -> tuple[str | None, bool]:
        """The ts of the message carrying ``event_id`` posted since the attempt (a thread reply
        is looked for in its thread), and whether the search covered everything since."""
        args: dict[str, Any] = {"channel": self._channel_ids.get(channel, channel), "include_all_metadata": True,
                                "oldest": f"{pending.started_at - HISTORY_MARGIN:.6f}", "limit": 200}
        for _ in range(HISTORY_PAGES):
            if pending.thread_ts:
                response = await self.client.conversations_replies(ts=pending.thread_ts, **args)
            else:
                response = await self.client.conversations_history(**args)
            for message in response.get("messages") or []:
                metadata = message.get("metadata") or {}
                if metadata.get("event_type") == METADATA_TYPE and (metadata.get("event_payload") or {}).get("event_id") == event_id:
                    return str(message.get("ts")), True
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None, True
            args["cursor"] = cursor
        return None, False

    # -- records ---------------------------------------------------------------------------

    def _lookup(self, conn: sqlite3.Connection, event_id: str, channel: str,
                burst_id: str | None) -> tuple[bool, Thread | None, InFlight | None]:
        if conn.execute("SELECT 1 FROM slack_posts WHERE event_id = ? AND channel = ?", (event_id, channel)).fetchone():
            return True, None, None
        row = conn.execute("SELECT thread_ts, started_at FROM slack_inflight WHERE event_id = ? AND channel = ?",
                           (event_id, channel)).fetchone()
        pending = InFlight(*row) if row else None
        if not (burst_id and self.section.thread_per_burst):
            return False, None, pending
        row = conn.execute("SELECT ts, best_err FROM slack_threads WHERE channel = ? AND burst_id = ?", (channel, burst_id)).fetchone()
        return False, Thread(*row) if row else None, pending

    def _record(self, conn: sqlite3.Connection, event_id: str, channel: str, ts: str | None, error: str | None,
                view: NoticeView, first: bool, channel_id: str = "") -> None:
        conn.execute("INSERT OR REPLACE INTO slack_posts (event_id, channel, ts, error) VALUES (?, ?, ?, ?)",
                     (event_id, channel, ts, error))
        conn.execute("DELETE FROM slack_inflight WHERE event_id = ? AND channel = ?", (event_id, channel))
        if channel_id and channel_id != channel:
            conn.execute("INSERT OR REPLACE INTO slack_channel_ids (channel, id) VALUES (?, ?)", (channel, channel_id))
        if ts is None or not (view.burst_id and self.section.thread_per_burst):
            return
        if first:
            conn.execute("INSERT OR IGNORE INTO slack_threads (channel, burst_id, ts, best_err) VALUES (?, ?, ?, ?)",
                         (channel, view.burst_id, ts, view.err))
        elif view.err is not None:
            conn.execute("UPDATE slack_threads SET best_err = ? WHERE channel = ? AND burst_id = ? AND (best_err IS NULL OR best_err > ?)",
                         (view.err, channel, view.burst_id, view.err))

    def health(self) -> dict[str, object]:
        return {"up": self.connected, "last_activity": self.last_activity, "position": self.position,
                "posted": self.posted_total, "failed": self.failed_total, "retry_waits": self.retry_waits,
                "last_error": self.last_error}
