"""Slack: notices reach channels as a user sees them — one thread per burst, updates that
matter shown in the channel, rate limits waited out (and never drawn again by the pacing),
nothing twice across a restart or a stop while Slack is slow, a back-off that starts again after
each recovery, and a bad channel or a refused token reported without losing the others' messages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from burstbus.bridges.slack.metrics import slack_metrics
from burstbus.bridges.slack.outbox import SlackOutbox
from burstbus.config import ConfigError, load_config
from burstbus.service import Core, Service, build_service
from tests.packets import voevent
from tests.slack.fake import TOKEN, FakeSlack
from tests.waiting import wait_for

LINK = "https://fsc.example/burstbus"


@pytest.fixture(autouse=True)
def slack_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SLACK_TOKEN", TOKEN)  # the token as operators give it: env:NAME


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    yield fake
    await fake.stop()


def config_for(tmp_path: Path, slack: FakeSlack, **extra: Any):
    section = {"enabled": True, "token": "env:TEST_SLACK_TOKEN", "base_url": slack.url, "min_interval": 0.01,
               "retry_delay": 0.05, "burst_wait": 30.0,
               "channels": [{"channel": "#grb-alerts"}, {"channel": "C0GRBLVK1", "missions": ["LVK"]}], **extra}
    return load_config(environ={}, overrides={
        "data": {"dir": str(tmp_path / "data")}, "http": {"enabled": False, "public_url": LINK},
        "nats": {"enabled": False}, "vtp": {"enabled": False}, "slack": section,
    })


class Running:
    def __init__(self, core: Core, service: Service):
        self.core, self.service = core, service

    async def submit(self, raw: bytes) -> None:
        result = await self.core.ingest.submit(raw, via="local", peer="test")
        assert result.outcome == "accepted", result

    async def stop(self) -> None:
        self.service.stop()
        await self.service.wait()
        await self.core.close()


async def start(config) -> Running:
    core = await Core.open(config)
    service = build_service(core)
    assert service.part(SlackOutbox) is not None
    service.start()
    await wait_for(lambda: (o := service.part(SlackOutbox)) is not None and o.connected, "the Slack token to be checked")
    return Running(core, service)


def swift(n: int, trig: str, err: float, cites: list[tuple[str, str]] | None = None) -> bytes:
    return voevent(f"ivo://nasa.gsfc.gcn/SWIFT#Notice_{trig}_{n}", params={"TrigID": trig}, err=err, cites=cites)


async def test_one_thread_per_burst_and_updates_that_matter_shown_in_the_channel(tmp_path: Path, slack: FakeSlack) -> None:
    bus = await start(config_for(tmp_path, slack))
    try:
        await bus.submit(swift(1, "555", 0.05))
        await wait_for(lambda: len(slack.messages) == 1, "the first notice")
        await bus.submit(swift(2, "555", 0.2))  # worse position: a quiet thread reply
        await bus.submit(swift(3, "555", 0.001))  # better position: also shown in the channel
        await bus.submit(swift(1, "777", 0.1))  # another burst: its own top-level message
        await wait_for(lambda: len(slack.messages) == 4, "every notice")
        outbox = bus.service.part(SlackOutbox)
        assert outbox is not None
        # the fake has a message before its answer reaches the outbox: wait for the count
        await wait_for(lambda: outbox.posted_total == 4, "the outbox to record the fourth post")
        families = {f.name: f for f in await slack_metrics(outbox, bus.core.log)()}
        assert families["burstbus_slack_out_total"].samples[0][-1] == 4
        assert families["burstbus_slack_connected"].samples[0][-1] == 1
        health = next(c for c in bus.service.components if c.name == "slack").health()
        assert health["up"] is True and health["posted"] == 4 and health["last_activity"]
    finally:
        await bus.stop()
    first, worse, better, other = slack.in_channel("#grb-alerts")
    assert "swift-555" in first["text"] and f"<{LINK}/bursts/swift-555|burst page>" in first["text"]
    assert "thread_ts" not in first and "thread_ts" not in other and "swift-777" in other["text"]
    assert worse["thread_ts"] == first["ts"] and not worse.get("reply_broadcast")
    assert better["thread_ts"] == first["ts"] and better["reply_broadcast"] is True
    assert "3.6″" in better["text"]  # 0.001° as a phone shows it
    assert slack.in_channel("C0GRBLVK1") == []  # that channel wants LVK only


async def test_rate_limit_is_waited_out_and_nothing_is_posted_twice_across_a_restart(tmp_path: Path, slack: FakeSlack) -> None:
    config = config_for(tmp_path, slack)
    bus = await start(config)
    slack.rate_limit_next.add("#grb-alerts")
    await bus.submit(swift(1, "100", 0.1))
    await wait_for(lambda: len(slack.messages) == 1, "the notice after the 429")
    assert slack.rate_limited == 1
    await bus.stop()
    # While burstbus is down, notices keep arriving in the log (e.g. an import); then it restarts.
    bus = await start(config)
    slack.down = True
    await bus.submit(swift(2, "100", 0.05))
    await bus.submit(swift(1, "200", 0.05))
    await wait_for(lambda: (o := bus.service.part(SlackOutbox)) and o.last_error, "Slack's outage to be noticed")
    slack.down = False
    await wait_for(lambda: len(slack.messages) == 3, "the notices held back by the outage")
    await bus.stop()
    bus = await start(config)
    await bus.submit(swift(3, "100", 0.01))
    await wait_for(lambda: len(slack.messages) == 4, "the notice after the second restart")
    await bus.stop()
    texts = [m["text"] for m in slack.messages]
    assert len(set(texts)) == 4
    assert slack.messages[3]["thread_ts"] == slack.messages[0]["ts"]  # the thread survived the restarts


async def test_a_stop_while_slack_is_answering_does_not_post_twice(tmp_path: Path, slack: FakeSlack) -> None:
    config = config_for(tmp_path, slack)
    bus = await start(config)
    slack.gate = asyncio.Event()
    await bus.submit(swift(1, "400", 0.1))
    await wait_for(lambda: len(slack.messages) == 1, "Slack to have the message (its answer held back)")
    stopping = asyncio.create_task(bus.stop())  # SIGTERM lands while Slack is still answering
    await asyncio.sleep(0.1)
    slack.gate.set()
    await stopping
    bus = await start(config)
    await bus.submit(swift(2, "400", 0.05))
    await wait_for(lambda: len(slack.messages) == 2, "the next notice")
    await bus.stop()
    assert [m["text"].count("Notice_400_1") for m in slack.messages] == [1, 0]  # the first was not posted again


async def test_after_a_429_posts_to_a_channel_stay_a_full_interval_apart(tmp_path: Path, slack: FakeSlack) -> None:
    slack.rate_interval = 1.0  # Slack's own way: a post sooner than 1 s after the channel's last one is a 429
    bus = await start(config_for(tmp_path, slack, min_interval=1.0))
    try:
        slack.rate_limit_next.add("#grb-alerts")
        for trig in ("501", "502", "503"):  # three bursts at once: three top-level messages
            await bus.submit(swift(1, trig, 0.1))
        await wait_for(lambda: len(slack.messages) == 3, "the three notices")
    finally:
        await bus.stop()
    assert slack.rate_limited == 1  # the one injected: the pacing drew no other
    gaps = slack.gaps("#grb-alerts")  # the fake's arrival times, the 429ed attempt included
    assert len(gaps) == 3 and min(gaps) >= 1.0, gaps


async def test_a_stop_while_slack_holds_its_answer_3_5_s_posts_the_notice_once(
        tmp_path: Path, slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    config = config_for(tmp_path, slack)
    bus = await start(config)
    slack.answer_delay = 3.5  # past the service's second cancel (2 s), within slack.stop_grace (5 s)
    await bus.submit(swift(1, "410", 0.1))
    await wait_for(lambda: len(slack.messages) == 1, "Slack to have the message (its answer 3.5 s away)")
    await bus.stop()
    assert not [r for r in caplog.records if "in flight" in r.getMessage()]  # it finished: nothing to report
    slack.answer_delay = 0.0
    bus = await start(config)
    await bus.submit(swift(2, "410", 0.05))
    await wait_for(lambda: len(slack.messages) == 2, "the next notice")
    await bus.stop()
    first, second = slack.messages
    assert "Notice_410_1" in first["text"] and "Notice_410_2" in second["text"]  # the first was not posted again
    assert second["thread_ts"] == first["ts"]
    assert slack.history_calls == 0  # its record was written: nothing to ask Slack


@pytest.mark.parametrize("history", ["readable", "missing_scope"])
async def test_a_stop_past_the_grace_is_reported_and_the_restart_never_posts_it_twice(
        tmp_path: Path, slack: FakeSlack, caplog: pytest.LogCaptureFixture, history: str) -> None:
    caplog.set_level(logging.INFO)
    config = config_for(tmp_path, slack, stop_grace=0.3)
    bus = await start(config)
    slack.answer_delay = 3.5
    await bus.submit(swift(1, "420", 0.1))
    await wait_for(lambda: len(slack.messages) == 1, "Slack to have the message (its answer 3.5 s away)")
    await bus.stop()
    stopped = [r for r in caplog.records if "stop_grace" in r.getMessage()]
    assert len(stopped) == 1 and stopped[0].levelno == logging.WARNING and "Notice_420_1" in stopped[0].getMessage()
    caplog.clear()
    slack.answer_delay = 0.0
    slack.history_error = None if history == "readable" else "missing_scope"  # a token without channels:history
    bus = await start(config)
    try:
        await bus.submit(swift(2, "420", 0.05))
        await wait_for(lambda: len(slack.messages) == 2, "the next notice")
        outbox = bus.service.part(SlackOutbox)
        assert outbox is not None
    finally:
        await bus.stop()
    first, second = slack.messages
    assert "Notice_420_1" in first["text"] and "Notice_420_2" in second["text"]  # the first: once in total
    assert slack.history_calls >= 1
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "Notice_420_1" in r.getMessage()]
    if history == "readable":
        assert second["thread_ts"] == first["ts"]  # its ts came back from Slack's history
        assert any("had reached #grb-alerts" in m for m in said), said
        assert outbox.failed_total == 0
    else:
        assert "thread_ts" not in second  # its ts is unknown: the burst's next notice opens a message
        assert any("may or may not have reached" in m for m in said), said
        assert outbox.failed_total == 1 and "unconfirmed" in (outbox.last_error or "")


async def test_a_post_whose_answer_never_came_is_checked_with_slack_before_it_is_sent_again(
        tmp_path: Path, slack: FakeSlack) -> None:
    bus = await start(config_for(tmp_path, slack, timeout=1.0))
    try:
        slack.answer_delay = 2.0  # the client gives up first: posted or not, it cannot know
        await bus.submit(swift(1, "430", 0.1))
        await wait_for(lambda: slack.history_calls, "the outbox to ask Slack whether it arrived")
        slack.answer_delay = 0.0
        await bus.submit(swift(2, "430", 0.05))
        await wait_for(lambda: len(slack.messages) == 2, "the next notice")
        outbox = bus.service.part(SlackOutbox)
        assert outbox is not None and outbox.retry_waits >= 1
        await wait_for(lambda: outbox.posted_total == 2, "the second post's record")
    finally:
        await bus.stop()
    first, second = slack.messages
    assert "Notice_430_1" in first["text"] and "Notice_430_2" in second["text"]
    assert second["thread_ts"] == first["ts"]


async def test_the_back_off_starts_again_from_its_first_step_after_each_recovery(tmp_path: Path, slack: FakeSlack) -> None:
    bus = await start(config_for(tmp_path, slack, retry_delay=0.05))
    outbox = bus.service.part(SlackOutbox)
    assert outbox is not None
    waits: list[float] = []

    async def pause(delay: float) -> None:  # the back-off's clock: Slack is back after so many steps
        waits.append(delay)
        if len(waits) in (5, 6):
            slack.down = False
        await asyncio.sleep(0)

    outbox.sleep = pause
    try:
        slack.down = True  # the first outage lasts five steps of the back-off
        await bus.submit(swift(1, "440", 0.1))
        await wait_for(lambda: len(slack.messages) == 1, "the first recovery")
        assert waits == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8])
        # Later (an hour or a second: the back-off counts sends, not time) a short outage:
        slack.down = True
        await bus.submit(swift(2, "440", 0.05))
        await wait_for(lambda: len(slack.messages) == 2, "the second recovery")
        assert waits[5:] == pytest.approx([0.05])  # posted after the first step: the back-off was reset
        assert outbox.retry_waits == 6 and outbox.last_retry_delay == pytest.approx(0.05)
        families = {f.name: f for f in await slack_metrics(outbox, bus.core.log)()}
        assert families["burstbus_slack_retry_waits_total"].samples[0][-1] == 6
    finally:
        await bus.stop()
    assert [m["text"].count("Notice_440_1") for m in slack.messages] == [1, 0]


async def test_a_missing_channel_is_reported_and_the_others_still_get_their_notices(tmp_path: Path, slack: FakeSlack) -> None:
    config = config_for(tmp_path, slack, channels=[{"channel": "#gone"}, {"channel": "#grb-alerts"}])
    bus = await start(config)
    try:
        await bus.submit(swift(1, "300", 0.1))
        await wait_for(lambda: len(slack.messages) == 1, "the notice in the channel that exists")
        outbox = bus.service.part(SlackOutbox)
        assert outbox is not None
        await wait_for(lambda: outbox.failed_total == 1, "the failure to be counted")
        assert outbox.last_error == "#gone: channel_not_found"
    finally:
        await bus.stop()


async def test_a_refused_token_shows_the_component_down_with_the_reason(tmp_path: Path, slack: FakeSlack) -> None:
    config = load_config(environ={}, overrides={
        "data": {"dir": str(tmp_path / "data")}, "http": {"enabled": False}, "nats": {"enabled": False},
        "vtp": {"enabled": False},
        "slack": {"enabled": True, "token": "xoxb-wrong", "base_url": slack.url, "channels": [{"channel": "#grb-alerts"}]},
    })
    core = await Core.open(config)
    service = build_service(core)
    service.start()
    try:
        component = next(c for c in service.components if c.name == "slack")
        await wait_for(lambda: component.failure, "the refusal")
        assert "invalid_auth" in (component.failure or "") and component.health()["up"] is False
    finally:
        service.stop()
        await service.wait()
        await core.close()


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("token", "", "required"),
    ("channels", [], "at least one channel"),
    ("channels", [{"channel": "not a channel!"}], "not a channel"),
    ("base_url", "slack.com/api", "ending in /"),
])
def test_bad_slack_configuration_names_the_key(key: str, value: Any, problem: str) -> None:
    section = {"enabled": True, "token": "xoxb-x", "channels": [{"channel": "#a"}], key: value}
    with pytest.raises(ConfigError, match=problem) as caught:
        load_config(environ={}, overrides={"slack": section})
    assert caught.value.key.startswith(f"slack.{key}")


def test_slack_text_is_escaped() -> None:
    from burstbus.bridges.slack.outbox import SlackTemplates
    from burstbus.notices import notice_view

    view = notice_view({"ivorn": "ivo://x/y#<b>&", "role": "observation", "instrument": "<!channel>"},
                       burst_id="b&1", link_base=LINK, seq=1, event_id="e")
    text = SlackTemplates().render(view, first=True)
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text and "ivo://x/y#&lt;b&gt;&amp;" in text
