"""``burstbus slack check`` against the fake Slack Web API, through the real command line."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.slack.fake import TOKEN, FakeSlack


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    yield fake
    await fake.stop()


async def slack_check(tmp_path: Path, slack: FakeSlack, *args: str, token: str = TOKEN,
                      channels: tuple[str, ...] = ("#grb-alerts", "C0GRBLVK1")) -> tuple[int, str, str]:
    config = tmp_path / "burstbus.toml"
    config.write_text("[slack]\nenabled = true\ntoken = \"env:TEST_SLACK_TOKEN\"\n"
                      f"base_url = \"{slack.url}\"\n" + "".join(f"[[slack.channels]]\nchannel = \"{c}\"\n" for c in channels))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "burstbus.cli", "--config", str(config), "--data-dir", str(tmp_path / "data"), "slack", "check", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
        env={**os.environ, "TEST_SLACK_TOKEN": token},
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_good_token_and_channels_pass_and_get_a_test_message(tmp_path: Path, slack: FakeSlack) -> None:
    status, out, err = await slack_check(tmp_path, slack)
    assert status == 0, out + err
    assert "ok       token accepted: team fsc, bot user U0BURSTBUS" in out
    assert "ok       #grb-alerts: test message posted" in out and "ok       C0GRBLVK1: history readable" in out
    assert {m["channel"] for m in slack.messages} == {"#grb-alerts", "C0GRBLVK1"}
    assert all("burstbus slack check" in m["text"] for m in slack.messages)


async def test_a_wrong_token_says_so_and_exits_1(tmp_path: Path, slack: FakeSlack) -> None:
    status, out, err = await slack_check(tmp_path, slack, token="xoxb-wrong")
    assert status == 1 and "Traceback" not in err
    assert "PROBLEM  token: invalid_auth: the token is not valid (check [slack] token)" in out
    assert not slack.messages


async def test_an_unknown_channel_and_unreadable_history_are_named(tmp_path: Path, slack: FakeSlack) -> None:
    slack.history_error = "missing_scope"
    status, out, _ = await slack_check(tmp_path, slack, "--no-post", channels=("#grb-alerts", "#nope"))
    assert status == 1
    assert "PROBLEM  #grb-alerts: history: missing_scope: the token lacks a scope" in out
    assert not slack.messages  # --no-post
