"""A local fake of the two Slack Web API methods burstbus uses (the only faked service).

It behaves as Slack does where it matters: Bearer token check (``invalid_auth``), unknown
channels (``channel_not_found``), 429 with ``Retry-After`` when told to rate-limit, 503 while
"down". slack-sdk talks to it through ``base_url``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "xoxb-burstbus-test"


@dataclass
class FakeSlack:
    channels: set[str] = field(default_factory=lambda: {"#grb-alerts", "C0GRBLVK1"})
    messages: list[dict[str, Any]] = field(default_factory=list)
    #: Channels whose next post gets a 429 (each once).
    rate_limit_next: set[str] = field(default_factory=set)
    rate_limited: int = 0
    down: bool = False
    #: While set, chat.postMessage records the message, then waits for this before answering.
    gate: asyncio.Event | None = None
    calls: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None
    _ts: int = 0

    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_post("/api/{method}", self._method)
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
        if self.down:
            return web.Response(status=503, text="upstream connect error")
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if request.content_type == "application/json":
            args = await request.json()
        else:
            args = dict(await request.post())
        method = request.match_info["method"]
        if method == "auth.test":
            return web.json_response({"ok": True, "user_id": "U0BURSTBUS", "team": "fsc"})
        if method != "chat.postMessage":
            return web.json_response({"ok": False, "error": "unknown_method"})
        channel = str(args.get("channel"))
        if channel not in self.channels:
            return web.json_response({"ok": False, "error": "channel_not_found"})
        if channel in self.rate_limit_next:
            self.rate_limit_next.discard(channel)
            self.rate_limited += 1
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "1"})
        self._ts += 1
        ts = f"1763700000.{self._ts:06d}"
        message = {**args, "ts": ts}
        if isinstance(message.get("reply_broadcast"), str):
            message["reply_broadcast"] = json.loads(message["reply_broadcast"])
        self.messages.append(message)
        if self.gate is not None:
            await self.gate.wait()
        return web.json_response({"ok": True, "channel": channel, "ts": ts, "message": {"text": args.get("text")}})

    def in_channel(self, channel: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["channel"] == channel]
