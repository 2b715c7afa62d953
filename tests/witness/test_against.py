"""``burstbus verify --against``: a truncated log, a log rewritten and re-chained, an altered
checkpoint — each caught by someone holding only a signed checkpoint and the public key, and
named; ``burstbus verify`` alone sees nothing wrong with the first two."""

from __future__ import annotations

import asyncio
from pathlib import Path

from burstbus.service import Core
from tests.witness.helpers import (
    BURST,
    OTHER,
    burstbus,
    config_for,
    copy_log,
    make_key,
    noise,
    notice,
    rewrite,
    sign,
    submit,
    truncate,
)


def test_a_log_truncated_by_one_event_is_caught_and_the_missing_seq_named(tmp_path: Path) -> None:
    key = make_key(tmp_path)
    pub = str(key.with_name("witness.key.pub"))
    data, copy = tmp_path / "data", tmp_path / "copy"

    async def build() -> tuple[int, str]:
        core = await Core.open(config_for(data))
        try:
            for n in range(3):
                await submit(core, notice(n, BURST))
            await core.catch_up()
            await sign(key, core)  # recorded in the log: the witness's periodic checkpoint
            await noise(core, 4, "after")
            head = (await core.log.head()).seq
            copy_log(data / "log.sqlite", copy / "log.sqlite")  # the log as it is when signed
            signed = await sign(key, core)
            assert signed.checkpoint.payload.seq == head
            return head, signed.checkpoint.text()
        finally:
            await core.close()

    head, checkpoint = asyncio.run(build())
    (tmp_path / "checkpoint.json").write_text(checkpoint + "\n")
    intact = burstbus(data, "verify", "--against", str(tmp_path / "checkpoint.json"), "--public-key", pub)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert f"ok: the log extends checkpoint seq {head} " in intact.stdout

    truncate(copy / "log.sqlite", rows=1)
    plain = burstbus(copy, "verify")
    assert plain.returncode == 0, plain.stdout  # the chain of what is left is intact: only the checkpoint knows
    caught = burstbus(copy, "verify", "--against", checkpoint, "--public-key", pub)  # the JSON itself as the argument
    assert caught.returncode == 1, caught.stdout + caught.stderr
    assert caught.stdout.startswith(f"TRUNCATED: checkpoint seq {head} ")
    assert f"the log ends at seq {head - 1}; 1 signed record(s) are gone: seq {head}" in caught.stdout
    assert f"where: after seq {head - 1}, where the log now ends" in caught.stdout


def test_one_event_rewritten_and_everything_after_rechained_is_caught_and_bracketed(tmp_path: Path) -> None:
    key = make_key(tmp_path)
    pub = str(key.with_name("witness.key.pub"))
    data, copy = tmp_path / "data", tmp_path / "copy"

    async def build() -> tuple[int, int, int, int, str]:
        core = await Core.open(config_for(data))
        try:
            seqs = [await submit(core, notice(n, BURST)) for n in range(3)]
            await core.catch_up()
            first = await sign(key, core)  # in the log, before the rewritten packet
            await noise(core, 3, "a")
            victim = await submit(core, notice(9, OTHER))  # the packet someone wants to have said something else
            await noise(core, 3, "b")
            second = await sign(key, core)  # in the log, after it
            await noise(core, 3, "c")
            final = await sign(key, core)  # the one an auditor was given
            assert seqs and victim > first.checkpoint.payload.seq
            return (first.checkpoint.payload.seq, victim, second.checkpoint.payload.seq, final.checkpoint.payload.seq,
                    final.checkpoint.text())
        finally:
            await core.close()

    low, victim, high, head, checkpoint = asyncio.run(build())
    (tmp_path / "checkpoint.json").write_text(checkpoint)
    copy_log(data / "log.sqlite", copy / "log.sqlite")
    rewrite(copy / "log.sqlite", victim, lambda text: text.replace("123.456", "124.456"))  # move the burst by a degree

    plain = burstbus(copy, "verify")
    assert plain.returncode == 0, plain.stdout  # re-chained: consistent, so the plain walk finds nothing
    caught = burstbus(copy, "verify", "--against", str(tmp_path / "checkpoint.json"), "--public-key", pub)
    assert caught.returncode == 1, caught.stdout + caught.stderr
    assert caught.stdout.startswith(f"REWRITTEN: checkpoint seq {head} ")
    assert f"the record at seq {head} has hash" in caught.stdout
    assert f"where: the first changed record is in seq {low + 1}..{high} (seq {low} still matches" in caught.stdout
    assert low < victim <= high

    # someone who never had the database: an export of the rewritten log, imported elsewhere
    exported = burstbus(copy, "export", "-o", str(tmp_path / "log.jsonl.gz"))
    assert exported.returncode == 0, exported.stderr
    imported = burstbus(tmp_path / "auditor", "import", str(tmp_path / "log.jsonl.gz"))
    assert imported.returncode == 0, imported.stdout + imported.stderr  # its chain is consistent: import takes it
    audited = burstbus(tmp_path / "auditor", "verify", "--against", str(tmp_path / "checkpoint.json"), "--public-key", pub)
    assert audited.returncode == 1 and audited.stdout.startswith(f"REWRITTEN: checkpoint seq {head} ")


def test_an_altered_checkpoint_in_the_log_and_an_untrusted_key_are_refused(tmp_path: Path) -> None:
    key, other = make_key(tmp_path), make_key(tmp_path / "other")
    data, copy = tmp_path / "data", tmp_path / "copy"

    async def build() -> tuple[int, str]:
        core = await Core.open(config_for(data))
        try:
            await submit(core, notice(1, BURST))
            first = await sign(key, core)
            await noise(core, 2, "x")
            final = await sign(key, core)
            return first.seq, final.checkpoint.text()
        finally:
            await core.close()

    recorded_at, checkpoint = asyncio.run(build())
    copy_log(data / "log.sqlite", copy / "log.sqlite")
    rewrite(copy / "log.sqlite", recorded_at, lambda text: text.replace('"signed_at":"2', '"signed_at":"1'))
    caught = burstbus(copy, "verify", "--against", checkpoint, "--public-key", str(key.with_name("witness.key.pub")))
    assert caught.returncode == 1
    assert f"ALTERED: the checkpoint recorded at seq {recorded_at} was altered" in caught.stdout

    untrusted = burstbus(data, "verify", "--against", checkpoint, "--public-key", str(other.with_name("witness.key.pub")))
    assert untrusted.returncode == 1
    assert "BAD CHECKPOINT" in untrusted.stdout and "not a trusted key" in untrusted.stdout
    named = burstbus(data, "verify", "--against", checkpoint)  # no key given: the one it names, said loudly
    assert named.returncode == 0, named.stdout + named.stderr
    assert "WARNING: no trusted key given" in named.stderr
