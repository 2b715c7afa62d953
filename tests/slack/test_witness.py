"""The witness's checkpoints in a Slack channel (the project's fake of the Web API): posted once,
in a code block a person can copy, and read back by ``verify --against``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from burstbus.config import load_config
from burstbus.handlers.witness.checkpoint import documents_in
from burstbus.handlers.witness.witness import Witness
from burstbus.service import Core, build_service
from tests.slack.fake import TOKEN, FakeSlack
from tests.waiting import wait_for
from tests.witness.helpers import BURST, burstbus, make_key, notice, submit


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    yield fake
    await fake.stop()


async def test_a_checkpoint_reaches_a_slack_channel(tmp_path: Path, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SLACK_TOKEN", TOKEN)
    key = make_key(tmp_path)
    data = tmp_path / "data"
    config = load_config(environ={}, overrides={
        "data": {"dir": str(data)}, "http": {"enabled": False, "public_url": "https://fsc.example/burstbus"},
        "nats": {"enabled": False}, "vtp": {"enabled": False},
        "slack": {"enabled": True, "token": "env:TEST_SLACK_TOKEN", "base_url": slack.url, "min_interval": 0.01,
                  "retry_delay": 0.05, "channels": [{"channel": "#grb-alerts"}]},
        "witness": {"enabled": True, "key_file": str(key), "interval": 0, "slack_channels": ["#grb-alerts"]},
    })
    core = await Core.open(config)
    service = build_service(core)
    service.start()
    try:
        witness = service.part(Witness)
        assert witness is not None
        await wait_for(lambda: all(f.positioned.is_set() for f in witness.followers.values()), "the witness's outbox")
        await submit(core, notice(1, BURST))
        signed = await witness.sign_now(actor="test")
        posted = await wait_for(lambda: [m for m in slack.in_channel("#grb-alerts") if "burstbus log checkpoint" in m["text"]],
                                "the checkpoint in the channel")
    finally:
        service.stop()
        await service.wait()
        await service.close()
        await core.close()
    [message] = posted
    assert "```" in message["text"]
    assert documents_in(message["text"]) == [signed.checkpoint]
    copied = tmp_path / "from-slack.txt"
    copied.write_text(message["text"])
    ok = burstbus(data, "verify", "--against", str(copied), "--public-key", str(key.with_name("witness.key.pub")))
    assert ok.returncode == 0, ok.stdout + ok.stderr
