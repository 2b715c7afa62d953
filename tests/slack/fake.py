"""A local fake of the Slack Web API methods burstbus uses (the only faked service).

It behaves as Slack does where it matters: Bearer token check (``invalid_auth``), unknown
channels (``channel_not_found``), 429 with ``Retry-After`` when told to rate-limit (once per
channel, or Slack's own way: a post sooner than ``rate_interval`` after the channel's last one),
503 while "down", answers held back (``gate``, ``answer_delay``) after the message is posted,
message metadata read back through ``conversations.history`` (top-level messages and
broadcast replies) and ``conversations.replies`` (one thread), and ``chat.update`` (a
message's text replaced; its earlier texts kept in ``edits``). slack-sdk talks to it through
``base_url``.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "xoxb-burstbus-test"


@dataclass
class FakeSlack:
    channels: set[str] = field(default_factory=lambda: {"#grb-alerts", "C0GRBLVK1"})
    messages: list[dict[str, Any]] = field(default_factory=list)
    #: Every chat.postMessage that reached a known channel, 429s included: (channel, loop time).
    attempts: list[tuple[str, float]] = field(default_factory=list)
    #: Channels whose next post gets a 429 (each once).
    rate_limit_next: set[str] = field(default_factory=set)
    #: Slack's limit: a post to a channel sooner than this after its last accepted one gets a 429.
    rate_interval: float | None = None
    rate_limited: int = 0
    down: bool = False
    #: While set, chat.postMessage records the message, then waits for this before answering.
    gate: asyncio.Event | None = None
    #: Slow answers: chat.postMessage records the message, then answers this many seconds later.
    answer_delay: float = 0.0
    #: conversations.history / .replies answer this error (e.g. ``missing_scope``) when set.
    history_error: str | None = None
    history_calls: int = 0
    calls: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None
    _ts: float = 0.0
    _accepted_at: dict[str, float] = field(default_factory=dict)

    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._method)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/api/"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _method(self, request: web.Request) -> web.Response:
        self.calls += 1
        arrived = asyncio.get_running_loop().time()
        if self.down:
            return web.Response(status=503, text="upstream connect error")
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if request.method == "GET":
            args: dict[str, Any] = dict(request.query)
        elif request.content_type == "application/json":
            args = await request.json()
        else:
            args = dict(await request.post())
        method = request.match_info["method"]
        if method == "auth.test":
            return web.json_response({"ok": True, "user_id": "U0BURSTBUS", "team": "fsc"})
        if method in ("conversations.history", "conversations.replies"):
            return self._history(method, args)
        if method == "chat.update":
            return self._update(args)
        if method != "chat.postMessage":
            return web.json_response({"ok": False, "error": "unknown_method"})
        channel = str(args.get("channel"))
        if channel not in self.channels:
            return web.json_response({"ok": False, "error": "channel_not_found"})
        self.attempts.append((channel, arrived))
        too_soon = self.rate_interval is not None and arrived - self._accepted_at.get(channel, -1e9) < self.rate_interval
        if channel in self.rate_limit_next or too_soon:
            self.rate_limit_next.discard(channel)
            self.rate_limited += 1
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "1"})
        self._accepted_at[channel] = arrived
        self._ts = max(self._ts + 0.000001, time.time())  # Slack's ts: its clock, unique per channel
        ts = f"{self._ts:.6f}"
        message = {**args, "ts": ts}
        if isinstance(message.get("reply_broadcast"), str):
            message["reply_broadcast"] = json.loads(message["reply_broadcast"])
        self.messages.append(message)
        if self.gate is not None:
            await self.gate.wait()
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        return web.json_response({"ok": True, "channel": channel, "ts": ts, "message": {"text": args.get("text")}})

    def _update(self, args: dict[str, Any]) -> web.Response:
        """``chat.update``: the message's text replaced (its earlier texts kept in ``edits``)."""
        channel, ts = str(args.get("channel")), str(args.get("ts"))
        found = next((m for m in self.messages if m["channel"] == channel and m["ts"] == ts), None)
        if found is None:
            return web.json_response({"ok": False, "error": "message_not_found"})
        found.setdefault("edits", []).append(found.get("text"))
        found["text"] = args.get("text")
        return web.json_response({"ok": True, "channel": channel, "ts": ts, "text": args.get("text")})

    def _history(self, method: str, args: dict[str, Any]) -> web.Response:
        self.history_calls += 1
        if self.history_error:
            return web.json_response({"ok": False, "error": self.history_error})
        channel = str(args.get("channel"))
        if channel not in self.channels:
            return web.json_response({"ok": False, "error": "channel_not_found"})
        oldest = float(args.get("oldest") or 0)
        found = [m for m in self.messages if m["channel"] == channel and float(m["ts"]) >= oldest]
        if method == "conversations.history":  # newest first; thread replies only if broadcast
            found = [m for m in reversed(found) if "thread_ts" not in m or m.get("reply_broadcast")]
        else:  # the thread, oldest first
            thread = str(args.get("ts"))
            found = [m for m in found if m["ts"] == thread or m.get("thread_ts") == thread]
        with_metadata = str(args.get("include_all_metadata")).lower() in ("1", "true")
        start, limit = int(args.get("cursor") or 0), int(args.get("limit") or 100)
        page = [{k: v for k, v in m.items() if k != "metadata" or with_metadata} for m in found[start:start + limit]]
        more = start + limit < len(found)
        return web.json_response({"ok": True, "messages": page, "has_more": more,
                                  "response_metadata": {"next_cursor": str(start + limit) if more else ""}})

    def in_channel(self, channel: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["channel"] == channel]

    def gaps(self, channel: str) -> list[float]:
        """Seconds between consecutive post attempts to ``channel`` (429s included)."""
        times = [t for c, t in self.attempts if c == channel]
        return [b - a for a, b in zip(times, times[1:], strict=False)]
