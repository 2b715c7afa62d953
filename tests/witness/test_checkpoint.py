"""A signed checkpoint: its exact bytes, its document, its checks; the key's file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from burstbus.handlers.witness.checkpoint import (
    CheckpointError,
    Payload,
    SignedCheckpoint,
    check_signature,
    documents_in,
    sign,
)
from burstbus.handlers.witness.keys import (
    PublicKey,
    SigningKey,
    WitnessKeyError,
    generate_key_file,
    load_signing_key,
)
from burstbus.handlers.witness.witness import chat_text

FIRST = "ab" * 32
HEAD = "cd" * 32


def key() -> SigningKey:
    return SigningKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


def payload(k: SigningKey, **changes: object) -> Payload:
    values: dict[str, object] = {"log": "fsc.svom.org", "first_hash": FIRST, "seq": 1234, "hash": HEAD,
                                 "recorded_at": "2026-12-01T03:04:05.123456Z", "signed_at": "2026-12-01T03:05:00.000001Z",
                                 "key_id": k.public.key_id}
    values.update(changes)
    return Payload(**values)  # type: ignore[arg-type]


def test_the_signed_bytes_are_exactly_as_documented() -> None:
    k = key()
    p = payload(k)
    assert p.signed_bytes() == (
        b'burstbus-checkpoint/1\n{"first_hash":"' + FIRST.encode() + b'","hash":"' + HEAD.encode()
        + b'","key_id":"' + k.public.key_id.encode() + b'","log":"fsc.svom.org","recorded_at":"2026-12-01T03:04:05.123456Z",'
        b'"seq":1234,"signed_at":"2026-12-01T03:05:00.000001Z"}'
    )
    signed = sign(p, k)
    # Ed25519 is deterministic: what openssl or any library computes over those bytes
    assert k.public.key.verify(signed.signature, p.signed_bytes()) is None
    document = json.loads(signed.text())
    assert list(document) == ["burstbus_checkpoint", "payload", "public_key", "signature"]
    assert signed.text() == json.dumps(document, sort_keys=True, separators=(",", ":"))
    assert SignedCheckpoint.from_document(document) == signed


def test_a_change_anywhere_or_another_key_fails_the_check() -> None:
    k, other = key(), SigningKey(Ed25519PrivateKey.generate())
    signed = sign(payload(k), k)
    assert check_signature(signed, [other.public, k.public]).key_id == k.public.key_id
    for field, value in (("seq", 1233), ("hash", "cc" * 32), ("signed_at", "2026-12-01T03:05:00.000002Z"), ("log", "csc")):
        changed = SignedCheckpoint(payload(k, **{field: value}), signed.signature, signed.public_key)
        with pytest.raises(CheckpointError, match="does not verify"):
            check_signature(changed, [k.public])
    with pytest.raises(CheckpointError, match="not a trusted key"):
        check_signature(signed, [other.public])
    forged = sign(payload(other), other)  # a rewriter's own key, naming itself
    with pytest.raises(CheckpointError, match="not a trusted key"):
        check_signature(forged, [k.public])
    document = signed.document()
    for broken in ({**document, "extra": 1}, {**document, "payload": {**document["payload"], "seq": "1234"}},
                   {**document, "signature": "!!"}, {**document, "burstbus_checkpoint": 2}):
        with pytest.raises(CheckpointError):
            SignedCheckpoint.from_document(broken)


def test_checkpoints_are_found_wherever_they_were_kept() -> None:
    k = key()
    one, two = sign(payload(k, seq=10), k), sign(payload(k, seq=20), k)
    event_line = json.dumps({"seq": 11, "type": "log.checkpoint_signed", "data": {"checkpoint": one.document(), "reason": "interval"}})
    assert documents_in(one.text()) == [one]
    assert documents_in(json.dumps(one.document(), indent=2)) == [one]
    assert documents_in(f"{one.text()}\n{two.text()}\n{one.text()}\n") == [one, two]  # the witness's file; repeats once
    assert documents_in(event_line) == [one]  # burstbus log --type log.checkpoint_signed
    assert documents_in(chat_text(two) + "\n") == [two]  # copied from a room
    assert documents_in("ok\n" + chat_text(one, code_block=True)) == [one]  # from Slack
    assert documents_in("nothing here") == []


def test_the_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "k" / "witness.key"
    made = generate_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_signing_key(path).public == made.public
    assert PublicKey.parse(str(path.with_name("witness.key.pub"))).key_id == made.public.key_id
    assert PublicKey.parse(made.public.base64) == made.public
    with pytest.raises(WitnessKeyError, match="never overwritten"):
        generate_key_file(path)
    os.chmod(path, 0o644)
    with pytest.raises(WitnessKeyError, match="may be read by others"):
        load_signing_key(path)
    with pytest.raises(WitnessKeyError, match="does not exist"):
        load_signing_key(tmp_path / "missing.key")


def test_run_with_a_key_others_may_read_stops_at_start_naming_the_setting(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "witness.key"
    generate_key_file(path)
    os.chmod(path, 0o640)
    env = {**os.environ, "BURSTBUS_NATS_ENABLED": "false", "BURSTBUS_VTP_ENABLED": "false", "BURSTBUS_HTTP_ENABLED": "false",
           "BURSTBUS_WITNESS_ENABLED": "true", "BURSTBUS_WITNESS_KEY_FILE": str(path)}
    result = subprocess.run([sys.executable, "-m", "burstbus.cli", "--data-dir", str(tmp_path / "data"), "run"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=env)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.startswith("burstbus: ")]
    assert line.startswith(f"burstbus: cannot start: [witness] key_file: {path} may be read by others (mode 0640)")
