"""The Slack outbox: accepted notices → channel messages, one thread per burst, from a checkpoint.

Follows the burst identifier's decisions (``burst.identified`` / ``burst.none``, one per
accepted notice, so each notice comes with its burst id) from consumer ``bridge.slack.out`` in
``state.sqlite`` (the first run starts at the log's head: replaying the archive into a channel
helps nobody). For each notice and each channel that wants it:

* the first notice of a burst opens a message whose thread collects the burst's later notices;
  an update that retracts or improves the position is also shown in the channel
  (``reply_broadcast``), because those change what a BA does;
* messages to a channel are spaced by ``min_interval`` (Slack: about one per second per channel)
  and a 429 is waited out for its ``Retry-After`` (slack-sdk's retry handler);
* every post is recorded (event id, channel → ts) in the same database as the checkpoint, so a
  restart never posts a notice twice, and a failure mid-batch resumes at that message.

Errors: Slack unreachable or 5xx → retried from where it stopped, for ever; a refused token →
the component fails (the supervisor retries with backoff and ``/healthz`` shows why); a
refusal about one channel (``channel_not_found``, ``not_in_channel``, ``is_archived``…) is
logged, counted and recorded for that message, and the other channels still get theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
"""


class SlackRefused(RuntimeError):
    """Slack refused the token or its permissions; nothing can be posted until that is fixed."""


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

    def render(self, view: NoticeView, *, first: bool) -> str:
        try:
            text = self.template.render(n=view, first=first)
        except Exception:
            log.exception("Slack template notice.j2 failed for %s; using the built-in one", view.ivorn)
            text = self.builtin.render(n=view, first=first)
        return "\n".join(line.rstrip() for line in text.strip().splitlines())


@dataclass(frozen=True)
class Thread:
    ts: str
    best_err: float | None


def _improves(err: float | None, best: float | None) -> bool:
    return err is not None and (best is None or err < best)


class SlackOutbox:
    """Posts notices to Slack channels; :meth:`run` is the supervised component."""

    def __init__(self, event_log: EventLog, state: StateStore, section: SlackSection, client: AsyncWebClient, *,
                 link_base: str, burst_roles: tuple[str, ...] = ("observation",), name: str = CONSUMER):
        self.log = event_log
        self.state = state
        self.section = section
        self.client = client
        self.templates = SlackTemplates(section.templates_dir)
        self.link_base = link_base.rstrip("/")
        self.name = name  # ``burst_roles`` is no longer needed: every notice has a decision
        self._last_post: dict[str, float] = {}
        #: Slack down or 5xx: the batch is retried from the checkpoint, with backoff; a
        #: refused token fails the component.
        self.follower: Follower[RecordedEvent] = Follower(
            event_log, self._deliver_batch, name=name, checkpoint=state.checkpoint(name), start=Start.HEAD,
            types=DECISIONS, batch_size=100, prepare=self._check_token,
            retryable=lambda exc: not isinstance(exc, SlackRefused),
            retry_delay=section.retry_delay, max_retry_delay=max(section.retry_delay, 60.0),
        )
        #: For health and metrics.
        self.posted_total = 0
        self.failed_total = 0
        self.last_error: str | None = None
        self.last_activity: str | None = None
        self.connected = False

    @classmethod
    def client_for(cls, section: SlackSection) -> AsyncWebClient:
        options: dict[str, Any] = {"token": resolve_secret(section.token, "slack.token"), "timeout": int(section.timeout)}
        if section.base_url:
            options["base_url"] = section.base_url
        client = AsyncWebClient(**options)
        client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=10))
        return client

    # -- the component ---------------------------------------------------------------------

    @property
    def position(self) -> int:
        return self.follower.position or 0

    async def run(self) -> None:
        """Post for ever; transient trouble is retried from the last recorded post."""
        await self.state.run(lambda conn: conn.executescript(_DDL))
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
            error = str(exc.response.get("error", ""))
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
        except Exception as exc:  # network, 5xx, rate limit beyond the retries: retried
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

    async def _post(self, channel: str, event_id: str, view: NoticeView) -> None:
        done, thread = await self.state.run(lambda conn: self._lookup(conn, event_id, channel, view.burst_id))
        if done:
            return
        first = thread is None
        options: dict[str, Any] = {"channel": channel, "text": self.templates.render(view, first=first),
                                   "unfurl_links": False, "unfurl_media": False}
        if thread is not None:
            options["thread_ts"] = thread.ts
            if self.section.broadcast_updates and (view.retraction or _improves(view.err, thread.best_err)):
                options["reply_broadcast"] = True
        await self._pace(channel)
        # Posting and recording it are one step: a stop that lands while Slack is answering
        # lets the record finish, or the restart would post the same notice again.
        step = asyncio.ensure_future(self._send(channel, event_id, view, first, options))
        try:
            await asyncio.shield(step)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(step, self.section.timeout)
            raise

    async def _send(self, channel: str, event_id: str, view: NoticeView, first: bool, options: dict[str, Any]) -> None:
        try:
            response = await self.client.chat_postMessage(**options)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "")) or str(exc)
            if error in FATAL_ERRORS:
                raise self._refused(error) from None
            if exc.response.status_code >= 500 or error in ("ratelimited", "fatal_error", "internal_error", "service_unavailable", "request_timeout"):
                raise  # transient: retried from this message
            self.failed_total += 1
            self.last_error = f"{channel}: {error}"
            log.error("Slack refused notice %s for %s: %s", view.ivorn, channel, error)
            await self.state.transaction(lambda conn: self._record(conn, event_id, channel, None, error, view, first))
            return
        ts = str(response.get("ts") or "")
        await self.state.transaction(lambda conn: self._record(conn, event_id, channel, ts, None, view, first))
        self.posted_total += 1
        self.connected = True
        self.last_activity = utc_now()

    async def _pace(self, channel: str) -> None:
        loop = asyncio.get_running_loop()
        wait = self._last_post.get(channel, -1e9) + self.section.min_interval - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_post[channel] = loop.time()

    def _lookup(self, conn: sqlite3.Connection, event_id: str, channel: str, burst_id: str | None) -> tuple[bool, Thread | None]:
        if conn.execute("SELECT 1 FROM slack_posts WHERE event_id = ? AND channel = ?", (event_id, channel)).fetchone():
            return True, None
        if not (burst_id and self.section.thread_per_burst):
            return False, None
        row = conn.execute("SELECT ts, best_err FROM slack_threads WHERE channel = ? AND burst_id = ?", (channel, burst_id)).fetchone()
        return False, Thread(*row) if row else None

    def _record(self, conn: sqlite3.Connection, event_id: str, channel: str, ts: str | None, error: str | None,
                view: NoticeView, first: bool) -> None:
        conn.execute("INSERT OR REPLACE INTO slack_posts (event_id, channel, ts, error) VALUES (?, ?, ?, ?)",
                     (event_id, channel, ts, error))
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
                "posted": self.posted_total, "failed": self.failed_total, "last_error": self.last_error}
