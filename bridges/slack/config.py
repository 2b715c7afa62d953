"""The ``[slack]`` configuration section.

Follows ``burstbus.config``'s conventions (frozen dataclasses, ``metadata`` for choices and
minimums, secrets as ``env:NAME`` / ``file:/path``); :func:`check_slack` is its cross-field check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from burstbus.config import ConfigError, resolve_secret

_CHANNEL = re.compile(r"^(#?[a-z0-9][a-z0-9._-]{0,79}|[CGD][A-Z0-9]{6,})$")
VALID_ROLES = ("observation", "prediction", "utility", "test")


@dataclass(frozen=True)
class SlackChannel:
    """A channel that gets notice summaries: its id (``C0123ABCD``) or name (``#grb-alerts``)."""

    #: The channel id (``C0123ABCD``) or name (``#grb-alerts``); the bot must be a member.
    channel: str
    #: Which notices: VOEvent roles, and (if any) missions (``SVOM``, ``SWIFT``, ``LVK``…).
    roles: tuple[str, ...] = ("observation",)
    missions: tuple[str, ...] = ()


@dataclass(frozen=True)
class SlackSection:
    """Slack: notice summaries into channels, one thread per burst (the Web API, slack-sdk)."""

    #: Post to Slack at all.
    enabled: bool = False
    #: The bot token (``xoxb-…``); keep it out of the file: ``env:SLACK_TOKEN`` or ``file:/path``.
    token: str = ""
    #: Web API base URL, ending in ``/api/``. Empty: Slack's own (``https://slack.com/api/``).
    base_url: str = ""
    #: ``[[slack.channels]]``: where summaries go, and which.
    channels: tuple[SlackChannel, ...] = ()
    #: Later notices of a burst go into the thread of its first message in each channel.
    thread_per_burst: bool = True
    #: Also show threaded replies in the channel when they retract or improve the position.
    broadcast_updates: bool = True
    #: Slack allows about one message per second per channel; never post faster than this.
    min_interval: float = field(default=1.0, metadata={"minimum": 0.0})
    #: No longer used (the outbox follows the identifier's decisions: nothing waits); still
    #: accepted so that existing configurations load.
    burst_wait: float = field(default=10.0, metadata={"minimum": 0.0})
    #: A template directory whose ``notice.j2`` replaces the built-in one.
    templates_dir: Path | None = None
    #: Seconds between retries while Slack cannot be reached (doubling up to 60; back to this
    #: after every successful send).
    retry_delay: float = field(default=1.0, metadata={"minimum": 0.01})
    timeout: float = field(default=30.0, metadata={"minimum": 0.1})
    #: A stop lets a post in flight and its record finish for up to this many seconds; past
    #: that it stops with the post recorded in flight (a WARNING names the notice) and the
    #: restart asks Slack's history whether it arrived before posting it.
    stop_grace: float = field(default=5.0, metadata={"minimum": 0.0})


def check_slack(section: SlackSection) -> None:
    """Cross-field checks, raising ConfigError with the key."""
    if not section.enabled:
        return
    if not section.token:
        raise ConfigError("slack.token", "required when Slack is enabled (e.g. env:SLACK_TOKEN)")
    resolve_secret(section.token, "slack.token")
    if section.base_url and not re.match(r"^https?://[^\s]+/$", section.base_url):
        raise ConfigError("slack.base_url", f"must be an http(s) URL ending in / (like https://slack.com/api/), not {section.base_url!r}")
    if not section.channels:
        raise ConfigError("slack.channels", "at least one channel is needed when Slack is enabled")
    for i, channel in enumerate(section.channels):
        if not _CHANNEL.match(channel.channel):
            raise ConfigError(f"slack.channels[{i}].channel", f"not a channel id or name: {channel.channel!r}")
        for role in channel.roles:
            if role not in VALID_ROLES:
                raise ConfigError(f"slack.channels[{i}].roles", f"must be among {', '.join(VALID_ROLES)}, not {role!r}")
    if section.templates_dir is not None and not (section.templates_dir / "notice.j2").is_file():
        raise ConfigError("slack.templates_dir", f"no notice.j2 in {section.templates_dir}")
