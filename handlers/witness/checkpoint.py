"""A signed checkpoint: the exact bytes the centre signs, the document it publishes, the checks.

**The signed bytes** are the ASCII text ``burstbus-checkpoint/1`` and a line feed, followed by
the payload as canonical JSON — keys sorted, no whitespace, ASCII only (``\\uXXXX`` escapes,
never needed for these values), integers as digits::

    burstbus-checkpoint/1\\n{"first_hash":"<64 hex>","hash":"<64 hex>","key_id":"<16 hex>",
    "log":"<name>","recorded_at":"<time>","seq":<int>,"signed_at":"<time>"}

(one line; wrapped here). ``seq``/``hash``/``recorded_at``: the head record signed;
``first_hash``: the hash of record 1, which with ``log`` (``[witness] log_name``) names the
log; ``signed_at``: when; ``key_id``: the first 16 hex digits of SHA-256 of the raw public
key. The first line keeps a checkpoint signature from ever being taken for a signature of
anything else the key signs (an evidence bundle's manifest begins ``burstbus-evidence/1``).

**The document** (what is published, filed, recorded in ``log.checkpoint_signed``), as
canonical JSON in one line::

    {"burstbus_checkpoint":1,"payload":{…},"public_key":"<base64, 32 bytes>","signature":"<base64, 64 bytes>"}

``public_key`` says which key the signer used; a verifier trusts a key it got elsewhere (the
centre's published key), never the one a document names.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .keys import PublicKey, SigningKey

FORMAT = 1
DOMAIN = b"burstbus-checkpoint/1\n"
_HASH = re.compile(r"^[0-9a-f]{64}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
_MARK = '"burstbus_checkpoint"'


class CheckpointError(ValueError):
    """A checkpoint that is not one, or does not check (shape, key, signature)."""


def canonical(value: Any) -> str:
    """The canonical JSON text of signed and published values (sorted, compact, ASCII)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


@dataclass(frozen=True)
class Payload:
    """What is signed: the head of one log at one moment, by one key."""

    log: str
    first_hash: str
    seq: int
    hash: str
    recorded_at: str
    signed_at: str
    key_id: str

    def to_json(self) -> dict[str, Any]:
        return {"first_hash": self.first_hash, "hash": self.hash, "key_id": self.key_id, "log": self.log,
                "recorded_at": self.recorded_at, "seq": self.seq, "signed_at": self.signed_at}

    def signed_bytes(self) -> bytes:
        return DOMAIN + canonical(self.to_json()).encode("ascii")

    @classmethod
    def from_json(cls, value: Any) -> Payload:
        if not isinstance(value, Mapping):
            raise CheckpointError("its payload is not an object")
        expected = {"first_hash", "hash", "key_id", "log", "recorded_at", "seq", "signed_at"}
        if set(value) != expected:
            raise CheckpointError(f"its payload has the keys {sorted(value)}, not {sorted(expected)}")
        seq = value["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise CheckpointError(f"its seq is not a positive integer: {seq!r}")
        for key, pattern in (("hash", _HASH), ("first_hash", _HASH), ("key_id", _KEY_ID),
                             ("recorded_at", _TIME), ("signed_at", _TIME)):
            if not isinstance(value[key], str) or not pattern.match(value[key]):
                raise CheckpointError(f"its {key} is malformed: {value[key]!r}")
        if not isinstance(value["log"], str) or not value["log"]:
            raise CheckpointError("its log name is missing")
        return cls(value["log"], value["first_hash"], seq, value["hash"], value["recorded_at"], value["signed_at"],
                   value["key_id"])


@dataclass(frozen=True)
class SignedCheckpoint:
    payload: Payload
    signature: bytes
    #: The key the document says signed it (base64 of the raw 32 bytes): a hint, not a trust.
    public_key: str

    def document(self) -> dict[str, Any]:
        return {"burstbus_checkpoint": FORMAT, "payload": self.payload.to_json(), "public_key": self.public_key,
                "signature": base64.b64encode(self.signature).decode("ascii")}

    def text(self) -> str:
        """The document as published: one line of canonical JSON."""
        return canonical(self.document())

    def summary(self) -> str:
        p = self.payload
        return f"seq {p.seq} hash {p.hash} (recorded {p.recorded_at}), signed {p.signed_at} by key {p.key_id} (log {p.log})"

    @classmethod
    def from_document(cls, value: Any) -> SignedCheckpoint:
        """A document back into a checkpoint (shape checked; the signature is not checked here)."""
        if not isinstance(value, Mapping) or value.get("burstbus_checkpoint") != FORMAT:
            raise CheckpointError("not a burstbus checkpoint (format 1)")
        if set(value) != {"burstbus_checkpoint", "payload", "public_key", "signature"}:
            raise CheckpointError(f"a checkpoint has the keys burstbus_checkpoint, payload, public_key, signature, not {sorted(value)}")
        payload = Payload.from_json(value["payload"])
        try:
            signature = base64.b64decode(str(value["signature"]), validate=True)
            public = base64.b64decode(str(value["public_key"]), validate=True)
        except (binascii.Error, ValueError):
            raise CheckpointError("its signature or public key is not base64") from None
        if len(signature) != 64 or len(public) != 32:
            raise CheckpointError("its signature (64 bytes) or public key (32 bytes) has the wrong length")
        return cls(payload, signature, str(value["public_key"]))

    def named_key(self) -> PublicKey:
        """The key the document names (for a verifier that has no other: say so when using it)."""
        return PublicKey.from_base64(self.public_key)


def sign(payload: Payload, key: SigningKey) -> SignedCheckpoint:
    if payload.key_id != key.public.key_id:
        raise ValueError("the payload names another key")
    return SignedCheckpoint(payload, key.sign(payload.signed_bytes()), key.public.base64)


def check_signature(checkpoint: SignedCheckpoint, trusted: Sequence[PublicKey]) -> PublicKey:
    """The trusted key that signed ``checkpoint``; :class:`CheckpointError` when none did."""
    wanted = checkpoint.payload.key_id
    for key in trusted:
        if key.key_id == wanted:
            if not key.verifies(checkpoint.signature, checkpoint.payload.signed_bytes()):
                raise CheckpointError(f"the signature does not verify with key {wanted}: the checkpoint was altered")
            return key
    have = ", ".join(k.key_id for k in trusted) or "none"
    raise CheckpointError(f"signed by key {wanted}, which is not a trusted key (trusted: {have})")


def documents_in(text: str) -> list[SignedCheckpoint]:
    """Every checkpoint document in ``text``: a document's JSON (one line or pretty-printed),
    a JSON-lines file of them (``[witness] file``), ``burstbus log`` lines of
    ``log.checkpoint_signed`` events, or chat messages quoting one. In order, repeats dropped."""
    found: list[Any] = []
    try:
        found.extend(_walk(json.loads(text)))
    except ValueError:
        decoder = json.JSONDecoder()
        for line in text.splitlines():
            stripped = line.strip()
            if not stripped:
                continue
            try:
                found.extend(_walk(json.loads(stripped)))
                continue
            except ValueError:
                pass
            start = stripped.find("{" + _MARK)
            while start >= 0:
                try:
                    value, end = decoder.raw_decode(stripped, start)
                except ValueError:
                    break
                found.extend(_walk(value))
                start = stripped.find("{" + _MARK, end)
    seen: set[str] = set()
    out: list[SignedCheckpoint] = []
    for value in found:
        checkpoint = SignedCheckpoint.from_document(value)
        if checkpoint.text() not in seen:
            seen.add(checkpoint.text())
            out.append(checkpoint)
    return out


def _walk(value: Any) -> Iterator[Any]:
    if isinstance(value, Mapping):
        if "burstbus_checkpoint" in value:
            yield value
            return
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def trusted_or_named(checkpoints: Iterable[SignedCheckpoint], trusted: Sequence[PublicKey]) -> tuple[list[PublicKey], bool]:
    """The keys to check with: the trusted ones, else (none given) the keys the checkpoints
    name — ``True`` then, so the caller says that only the fingerprint proves whose they are."""
    if trusted:
        return list(trusted), False
    named: dict[str, PublicKey] = {}
    for checkpoint in checkpoints:
        key = checkpoint.named_key()
        named.setdefault(key.key_id, key)
    return list(named.values()), True
