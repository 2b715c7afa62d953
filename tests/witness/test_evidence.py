"""``burstbus evidence BURST``: the burst's events with their exact packets, tied by chain
segments to signed checkpoints; ``burstbus verify-bundle`` (and the documented procedure,
without burstbus) accepts it with no database, and refuses it after any change."""

from __future__ import annotations

import asyncio
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from burstbus.events import Event, derived_event_id
from burstbus.handlers.witness.bundle import BundleError, verify_bundle
from burstbus.handlers.witness.keys import PublicKey
from burstbus.ingest import accepted_event_id
from burstbus.service import Core
from tests.packets import voevent
from tests.witness.helpers import (
    BURST,
    OTHER,
    burstbus,
    config_for,
    make_key,
    noise,
    notice,
    sign,
    submit,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
REQUEST = "0123456789abcdef0123456789abcdef"
TRIGGER_IVORN = f"ivo://test.example/trigger/tarot#{REQUEST}-abc"


async def build_burst(data: Path, key: Path) -> dict[str, int]:
    """A burst's night: notices (one citing another), a pipeline run on data, a trigger asked for,
    approved (a person's command), sent as its own packet; noise between, a checkpoint in the
    middle and none after the last event (evidence signs one)."""
    core = await Core.open(config_for(data))
    seqs: dict[str, int] = {}
    try:
        seqs["notice0"] = await submit(core, notice(0, BURST))
        await noise(core, 3, "a")
        seqs["notice1"] = await submit(core, notice(1, BURST, cites=[(f"ivo://test.example/svom#{BURST}_0", "followup")]))
        seqs["other"] = await submit(core, notice(0, OTHER))
        await core.catch_up()  # burst.identified for each
        seqs["first_checkpoint"] = (await sign(key, core)).checkpoint.payload.seq
        await noise(core, 5, "b")
        data_id = derived_event_id("test", "data")
        [available] = await core.log.append([Event("data.available", {"kind": "grm.lc", "location": "s3://x"}, stream="",
                                                   actor="nats:pipeline", id=data_id)])
        seqs["data"] = available.seq
        [run] = await core.log.append([Event("process.requested", {"burst_id": BURST, "inputs": [{"event_id": data_id, "kind": "grm.lc"}]},
                                             stream=BURST, actor="system:orchestrator")])
        seqs["run"] = run.seq
        common = {"request_id": REQUEST, "telescope": "TAROT", "burst_id": BURST}
        [requested] = await core.log.append([Event("trigger.requested", {**common, "requested_by": "alice@fsc.example"},
                                                   stream=BURST, actor="xmpp:alice@fsc.example")])
        [asked] = await core.log.append([Event("ba.command", {"command": "trigger", "request_id": REQUEST, "outcome": "ok",
                                                              "text": f"trigger TAROT {BURST}"}, stream="ba",
                                               actor="xmpp:alice@fsc.example")])
        [unrelated] = await core.log.append([Event("ba.command", {"command": "bursts", "outcome": "ok", "text": "bursts"},
                                                   stream="ba", actor="xmpp:bob@fsc.example")])
        await noise(core, 2, "c")
        [approved] = await core.log.append([Event("trigger.approved", {**common, "approved_by": "bob@fsc.example",
                                                                       "voevent_ivorn": TRIGGER_IVORN},
                                                  stream=BURST, actor="xmpp:bob@fsc.example")])
        seqs["packet"] = await submit(core, voevent(TRIGGER_IVORN, role="utility"))
        [sent] = await core.log.append([Event("trigger.sent", {**common, "voevent_ivorn": TRIGGER_IVORN,
                                                               "channels": {"vtp": {"ivorn": TRIGGER_IVORN, "seq": seqs["packet"]}}},
                                              stream=BURST, actor="system:triggers")])
        await noise(core, 2, "d")
        await core.catch_up()
        seqs.update(requested=requested.seq, asked=asked.seq, unrelated=unrelated.seq, approved=approved.seq, sent=sent.seq,
                    head=(await core.log.head()).seq)
        assert (await core.log.find(accepted_event_id(TRIGGER_IVORN))) is not None
    finally:
        await core.close()
    return seqs


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("evidence")
    key = make_key(root)
    data = root / "data"
    seqs = asyncio.run(build_burst(data, key))
    out = root / "bundle.jsonl"
    result = burstbus(data, "evidence", BURST, "-o", str(out), env={"BURSTBUS_WITNESS_KEY_FILE": str(key)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "signed a new checkpoint for it" in result.stderr  # the last events came after the newest checkpoint
    return {"root": root, "key": key, "pub": key.with_name("witness.key.pub"), "seqs": seqs, "bundle": out,
            "bytes": out.read_bytes()}


def test_the_bundle_holds_the_bursts_events_and_exact_packets_and_verifies_without_a_database(made: dict) -> None:
    seqs, data = made["seqs"], made["bytes"]
    lines = data.decode().splitlines()
    manifest = json.loads(lines[0])["manifest"]
    events = set(manifest["events"])
    for name in ("notice0", "notice1", "data", "run", "requested", "asked", "approved", "packet", "sent"):
        assert seqs[name] in events, name
    assert seqs["other"] not in events and seqs["unrelated"] not in events  # carried in a segment, not claimed
    assert len(manifest["segments"]) == 2  # one to the checkpoint in the middle, one to the one evidence signed
    assert manifest["segments"][0] == {"checkpoint": 0, "from_seq": seqs["notice0"], "to_seq": seqs["first_checkpoint"]}
    records = {r["seq"]: r for r in map(json.loads, lines[1 + manifest["checkpoints"]:])}
    assert json.loads(records[seqs["notice0"]]["data_json"])["xml"].encode() == notice(0, BURST)  # byte for byte
    assert seqs["first_checkpoint"] + 1 not in records  # the noise between two segments stays out

    nowhere = made["root"] / "auditor" / "no-data-here"  # no log, no configuration: only the file and the key
    nowhere.parent.mkdir()
    checked = burstbus(nowhere, "verify-bundle", str(made["bundle"]), "--public-key", str(made["pub"]))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith(f"ok: {made['bundle']}: {len(events)} events of {BURST}")
    assert "trigger.approved" in checked.stdout and "voevent.accepted" in checked.stdout
    assert not nowhere.exists()


def test_the_documented_procedure_checks_it_without_burstbus(made: dict, tmp_path: Path) -> None:
    script = re.search(r"```python\n(# verify_bundle\.py.*?)```", DOC.read_text(), re.S)
    assert script, "docs/architecture.md lost its verify_bundle.py"
    path = tmp_path / "verify_bundle.py"
    path.write_text(script.group(1))
    public = PublicKey.parse(str(made["pub"])).base64
    ok = subprocess.run([sys.executable, "-I", str(path), str(made["bundle"]), public], capture_output=True, text=True,
                        cwd=tmp_path, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith(f"OK: {len(json.loads(made['bytes'].splitlines()[0])['manifest']['events'])} events of {BURST}")
    data = bytearray(made["bytes"])
    data[len(data) // 2] ^= 0x01
    (tmp_path / "changed.jsonl").write_bytes(data)
    bad = subprocess.run([sys.executable, "-I", str(path), str(tmp_path / "changed.jsonl"), public], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)
    assert bad.returncode != 0


def mutations(data: bytes) -> list[tuple[str, bytes]]:
    """Changes an archivist, a careless editor or a forger might make."""
    lines = data.split(b"\n")[:-1]
    out: list[tuple[str, bytes]] = []
    join = lambda parts: b"\n".join(parts) + b"\n"  # noqa: E731
    for i, line in enumerate(lines):
        for at in (0, len(line) // 3, len(line) // 2, len(line) - 2):
            changed = bytearray(line)
            changed[at] = ord("X") if changed[at] != ord("X") else ord("Y")
            out.append((f"line {i + 1} byte {at}", join([*lines[:i], bytes(changed), *lines[i + 1:]])))
        out.append((f"line {i + 1} removed", join(lines[:i] + lines[i + 1:])))
        out.append((f"line {i + 1} twice", join(lines[:i + 1] + lines[i:])))
    out.append(("two records swapped", join([*lines[:-2], lines[-1], lines[-2]])))
    out.append(("a line added", data + lines[-1] + b"\n"))
    out.append(("a trailing line feed", data + b"\n"))
    out.append(("the last line feed gone", data[:-1]))
    out.append(("the header re-indented", json.dumps(json.loads(lines[0]), indent=1).replace("\n", "").encode() + b"\n"
                + data.split(b"\n", 1)[1]))
    out.append(("a space after a colon", data.replace(b'"seq":', b'"seq": ', 1)))
    header = json.loads(lines[0])
    header["manifest"]["events"] = header["manifest"]["events"][:-1]  # an event quietly left out
    out.append(("an event dropped from the manifest", json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
                + b"\n" + data.split(b"\n", 1)[1]))
    rng = random.Random(20261202)
    for _ in range(300):
        at = rng.randrange(len(data))
        changed = bytearray(data)
        changed[at] = (changed[at] + rng.randrange(1, 256)) % 256
        out.append((f"byte {at}", bytes(changed)))
    return out


def test_any_change_to_the_bundle_fails_the_check(made: dict, tmp_path: Path) -> None:
    key = PublicKey.parse(str(made["pub"]))
    data = made["bytes"]
    assert verify_bundle(data, [key]).burst == BURST
    passed = []
    for what, changed in mutations(data):
        assert changed != data
        try:
            verify_bundle(changed, [key])
        except BundleError:
            continue
        passed.append(what)
    assert passed == [], f"changes that still verified: {passed[:5]}"
    # and the command says where, with exit 1
    lines = data.split(b"\n")
    record = json.loads(lines[-2])
    edited = data.replace(lines[-2], lines[-2].replace(b'"stream":"', b'"stream":"x', 1))
    (tmp_path / "edited.jsonl").write_bytes(edited)
    failed = burstbus(tmp_path / "nothing", "verify-bundle", str(tmp_path / "edited.jsonl"), "--public-key", str(made["pub"]))
    assert failed.returncode == 1
    assert failed.stdout.startswith("FAILED: ") and f"record at seq {record['seq']} was changed" in failed.stdout


def test_a_checkpoint_signed_with_openssl_tools_checks_as_documented(made: dict, tmp_path: Path) -> None:
    """The doc's jq + openssl line verifies a checkpoint's signature (skipped without them)."""
    import shutil

    if not (shutil.which("jq") and shutil.which("openssl")):
        pytest.skip("jq or openssl not installed")
    checkpoint = made["bytes"].split(b"\n")[1]
    (tmp_path / "cp.json").write_bytes(checkpoint)
    script = ("jq -j '\"burstbus-checkpoint/1\\n\" + (.payload|tojson)' cp.json > msg && "
              "jq -r .signature cp.json | base64 -d > sig && "
              f"openssl pkeyutl -verify -pubin -inkey {made['pub']} -rawin -in msg -sigfile sig")
    done = subprocess.run(["sh", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Signature Verified Successfully" in done.stdout, done.stdout + done.stderr
