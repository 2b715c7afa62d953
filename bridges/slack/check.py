"""``burstbus slack check``: is the configured Slack usable, before a burst finds out?

What an operator needs to know at install time or after rotating a token, in the order the
outbox meets it: the token resolves and Slack accepts it (``auth.test``); each configured
channel can be read (``conversations.history``: the outbox checks a channel's history after a
crash, so that a post it made is not made twice) and posted to (a test message, unless
``--no-post``). Every line says what was checked and, when it failed, what to change; the
status is 1 when anything failed, so the command works in a deployment script.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from burstbus.bridges.slack.config import SlackSection
from burstbus.bridges.slack.outbox import SlackOutbox
from burstbus.config import ConfigError
from burstbus.events import utc_now

#: What Slack's error codes mean for the operator.
_ADVICE = {
    "invalid_auth": "the token is not valid (check [slack] token)",
    "not_authed": "no token was sent (check [slack] token)",
    "token_revoked": "the token was revoked: make a new one",
    "account_inactive": "the token's account or app is deactivated",
    "channel_not_found": "no such channel, or the bot cannot see it (invite the bot, or use the channel id)",
    "not_in_channel": "the bot is not a member of the channel: /invite it",
    "missing_scope": "the token lacks a scope (chat:write to post; channels:history or groups:history to read)",
    "is_archived": "the channel is archived",
    "ratelimited": "Slack asks to slow down: try again in a minute",
}


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    status: int = 0

    def ok(self, text: str) -> None:
        self.lines.append(f"ok       {text}")

    def problem(self, text: str) -> None:
        self.lines.append(f"PROBLEM  {text}")
        self.status = 1


def _why(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        error = str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
        return f"{error}: {_ADVICE[error]}" if error in _ADVICE else error
    return f"{type(exc).__name__}: {exc}"


async def check(section: SlackSection, *, post: bool = True) -> Report:
    """Check the token, then each channel (read, and post a test message if ``post``)."""
    report = Report()
    if not section.enabled:
        report.problem("Slack is not enabled ([slack] enabled = false): nothing to check")
        return report
    try:
        client: AsyncWebClient = SlackOutbox.client_for(section)
    except ConfigError as exc:
        report.problem(str(exc))
        return report
    try:
        identity = await client.auth_test()
    except Exception as exc:  # a wrong base_url or no network is as much an answer as a refusal
        report.problem(f"token: {_why(exc)}")
        return report
    report.ok(f"token accepted: team {identity.get('team')}, bot user {identity.get('user_id')}")
    for channel in section.channels:
        name = channel.channel
        try:
            await client.conversations_history(channel=name, limit=1)
            report.ok(f"{name}: history readable (a post interrupted by a crash is found, not repeated)")
        except Exception as exc:
            report.problem(f"{name}: history: {_why(exc)}")
        if not post:
            continue
        try:
            text = f"burstbus slack check from {socket.gethostname()} at {utc_now()}: this channel gets burst notices."
            answer = await client.chat_postMessage(channel=name, text=text)
            report.ok(f"{name}: test message posted (ts {answer.get('ts')})")
        except Exception as exc:
            report.problem(f"{name}: post: {_why(exc)}")
    return report
