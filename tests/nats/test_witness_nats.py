"""The witness on a real nats-server: a signed checkpoint published on its subject (and filed),
one recorded by ``burstbus checkpoint`` in another process published by the running service,
and the checkpoint a subscriber kept catching the log truncated by one event afterwards."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import nats

from burstbus.config import load_config
from burstbus.handlers.witness.checkpoint import SignedCheckpoint, check_signature, documents_in
from burstbus.handlers.witness.keys import PublicKey
from burstbus.handlers.witness.witness import Witness
from burstbus.service import Core, build_service
from tests.nats.conftest import Servers
from tests.waiting import wait_for
from tests.witness.helpers import BURST, burstbus, copy_log, make_key, notice, submit, truncate


def witness_config(data: Path, url: str, key: Path, **witness: Any) -> Any:
    return load_config(environ={}, overrides={
        "data": {"dir": str(data)}, "nats": {"url": url}, "vtp": {"enabled": False}, "http": {"enabled": False},
        "witness": {"enabled": True, "key_file": str(key), "interval": 0, "log_name": "fsc.test",
                    "file": str(data.parent / "witnessed" / "checkpoints.jsonl"), **witness},
    })


async def test_a_checkpoint_published_on_nats_catches_the_log_truncated_by_one_event(tmp_path: Path, servers: Servers) -> None:
    server = await servers.start()
    key = make_key(tmp_path)
    public = PublicKey.parse(str(key.with_name("witness.key.pub")))
    data = tmp_path / "data"
    subscriber = await nats.connect(server.url)  # a partner centre keeping what the centre publishes
    received: list[Any] = []

    async def keep(msg: Any) -> None:
        received.append(msg)

    await subscriber.subscribe("burstbus.checkpoints", cb=keep)
    await subscriber.flush()
    core = await Core.open(witness_config(data, server.url, key))
    service = build_service(core)
    service.start()
    try:
        witness = service.part(Witness)
        assert witness is not None
        await wait_for(lambda: all(f.positioned.is_set() for f in witness.followers.values()), "the witness's outboxes")
        for n in range(4):
            await submit(core, notice(n, BURST))
        head = (await core.log.head()).seq
        copy_log(data / "log.sqlite", tmp_path / "copy" / "log.sqlite")  # the log as it is when signed

        signed = await witness.sign_now(actor="test")
        await wait_for(lambda: received, "the checkpoint on NATS")
        [published] = documents_in(received[0].data.decode())
        assert published == signed.checkpoint and published.payload.seq == head
        assert received[0].data.decode() == signed.checkpoint.text()  # the document's exact line
        assert received[0].headers["Nats-Msg-Id"] == f"checkpoint:{(await core.log.get(signed.seq)).id}"
        assert check_signature(published, [public]) == public

        # recorded by another process beside the running service: the service's outbox publishes it
        await submit(core, notice(9, BURST))
        cli = await asyncio.to_thread(burstbus, data, "checkpoint", env={"BURSTBUS_WITNESS_KEY_FILE": str(key)})
        assert cli.returncode == 0, cli.stdout + cli.stderr
        by_cli = SignedCheckpoint.from_document(json.loads(cli.stdout))
        await wait_for(lambda: len(received) >= 2, "the command's checkpoint on NATS")
        assert documents_in(received[1].data.decode()) == [by_cli]
        health = witness.health()
        assert health["up"] is True and health["outlets"]["witness.nats"]["published"] == 2  # type: ignore[index]
    finally:
        service.stop()
        await service.wait()
        await service.close()
        await core.close()
        await subscriber.close()

    filed = (tmp_path / "witnessed" / "checkpoints.jsonl").read_text().splitlines()
    assert filed == [signed.checkpoint.text(), by_cli.text()]
    kept = tmp_path / "kept-from-nats.json"
    kept.write_bytes(received[0].data)
    pub = str(key.with_name("witness.key.pub"))
    ok = burstbus(data, "verify", "--against", str(tmp_path / "witnessed" / "checkpoints.jsonl"), "--public-key", pub)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count("ok: the log extends checkpoint") == 2

    truncate(tmp_path / "copy" / "log.sqlite", rows=1)
    caught = burstbus(tmp_path / "copy", "verify", "--against", str(kept), "--public-key", pub)
    assert caught.returncode == 1, caught.stdout + caught.stderr
    assert caught.stdout.startswith(f"TRUNCATED: checkpoint seq {head} ")
    assert f"the log ends at seq {head - 1}; 1 signed record(s) are gone: seq {head}" in caught.stdout


async def test_the_witness_signs_by_itself_every_interval_and_restarts_where_it_was(tmp_path: Path, servers: Servers) -> None:
    server = await servers.start()
    key = make_key(tmp_path)
    data = tmp_path / "data"
    config = witness_config(data, server.url, key, interval=0.2)

    filed = tmp_path / "witnessed" / "checkpoints.jsonl"

    async def checkpoints(core: Core) -> list[int]:
        return [r.seq for r in await core.log.read(0) if r.type == "log.checkpoint_signed"]

    core = await Core.open(config)
    service = build_service(core)
    service.start()
    try:
        await submit(core, notice(1, BURST))
        await wait_for(lambda: checkpoints(core), "a periodic checkpoint")

        async def head_is_a_checkpoint() -> bool:  # what the notice leads to may land after the first one
            head = await core.log.head()
            newest = await core.log.get(head.seq)
            return newest is not None and newest.type == "log.checkpoint_signed"

        await wait_for(head_is_a_checkpoint, "a periodic checkpoint of everything")
        witness = service.part(Witness)
        assert witness is not None
        assert await witness.sign_if_new() is None  # nothing but the checkpoint since: nothing to sign
        await wait_for(lambda: filed.is_file() and filed.read_text().strip(), "the checkpoint filed")
    finally:
        service.stop()
        await service.wait()
        await service.close()
        await core.close()
    before = filed.read_text()
    # a restart: the file outbox resumes from its position (nothing filed twice), the timer goes on
    core = await Core.open(config)
    service = build_service(core)
    service.start()
    try:
        await submit(core, notice(2, BURST))
        await wait_for(lambda: len(filed.read_text().splitlines()) >= 2, "the next periodic checkpoint, filed")
    finally:
        service.stop()
        await service.wait()
        await service.close()
        await core.close()
    lines = filed.read_text().splitlines()
    assert filed.read_text().startswith(before) and len(set(lines)) == len(lines)
