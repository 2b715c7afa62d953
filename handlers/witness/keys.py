"""The centre's Ed25519 key: created once, kept private, its public half given to everyone.

* The private key is a PEM file (PKCS#8, unencrypted: the service must sign unattended), created
  with mode 0600 and refused when group or others may read it (as ssh refuses a key it finds
  too open): whoever reads it can sign checkpoints in the centre's name.
* The public key travels as the raw 32 bytes in base64 (in every checkpoint, and what
  ``burstbus witness key`` prints) or as PEM (``SubjectPublicKeyInfo``, what ``openssl`` reads).
* A key's id is the first 16 hex digits of SHA-256 of its raw public bytes: a checkpoint names
  the key that signed it, so a verifier holding several keys (a rotation) picks the right one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class WitnessKeyError(Exception):
    """A key that cannot be created, read or used; the message says which file and why."""


def key_id_of(raw_public: bytes) -> str:
    return hashlib.sha256(raw_public).hexdigest()[:16]


@dataclass(frozen=True)
class PublicKey:
    """A public key a verifier trusts (or a checkpoint names)."""

    key: Ed25519PublicKey

    @property
    def raw(self) -> bytes:
        return self.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def base64(self) -> str:
        return base64.b64encode(self.raw).decode("ascii")

    @property
    def key_id(self) -> str:
        return key_id_of(self.raw)

    @property
    def pem(self) -> str:
        return self.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")

    def verifies(self, signature: bytes, message: bytes) -> bool:
        try:
            self.key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    @classmethod
    def from_base64(cls, text: str) -> PublicKey:
        try:
            raw = base64.b64decode(text.strip(), validate=True)
            return cls(Ed25519PublicKey.from_public_bytes(raw))
        except (binascii.Error, ValueError) as exc:
            raise WitnessKeyError(f"not an Ed25519 public key in base64 (32 bytes): {exc}") from None

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        """A public key as given on the command line or in ``trusted_keys``: a PEM file's path,
        PEM text, or the raw key in base64."""
        value = text.strip()
        if "-----BEGIN" in value:
            return cls._from_pem(value.encode("ascii"), "the PEM text")
        path = Path(value).expanduser()
        if path.is_file():
            data = path.read_bytes()
            if b"-----BEGIN" in data:
                return cls._from_pem(data, str(path))
            return cls.from_base64(data.decode("ascii", "replace"))
        return cls.from_base64(value)

    @classmethod
    def _from_pem(cls, data: bytes, where: str) -> PublicKey:
        try:
            loaded = serialization.load_pem_public_key(data)
        except ValueError:
            try:  # a private key's file: its public half
                return SigningKey(_load_private_pem(data, where)).public
            except WitnessKeyError:
                raise WitnessKeyError(f"{where} holds no Ed25519 public key") from None
        if not isinstance(loaded, Ed25519PublicKey):
            raise WitnessKeyError(f"{where} holds a {type(loaded).__name__}, not an Ed25519 public key")
        return cls(loaded)


@dataclass(frozen=True)
class SigningKey:
    """The centre's private key (never printed, never logged)."""

    key: Ed25519PrivateKey

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.key.public_key())

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)


def _load_private_pem(data: bytes, where: str) -> Ed25519PrivateKey:
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise WitnessKeyError(f"{where} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise WitnessKeyError(f"{where} holds a {type(loaded).__name__}, not an Ed25519 key")
    return loaded


def load_signing_key(path: Path) -> SigningKey:
    """The private key in ``path``; refused when missing, too open, or not an Ed25519 key."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise WitnessKeyError(f"{path} does not exist (create it: burstbus witness keygen --key-file {path})") from None
    except OSError as exc:
        raise WitnessKeyError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise WitnessKeyError(f"{path} is not a file")
    if info.st_mode & 0o077:
        raise WitnessKeyError(f"{path} may be read by others (mode {stat.S_IMODE(info.st_mode):04o}): "
                        f"whoever reads it signs in the centre's name; chmod 600 {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WitnessKeyError(f"cannot read {path}: {exc.strerror or exc}") from None
    return SigningKey(_load_private_pem(data, str(path)))


def generate_key_file(path: Path) -> SigningKey:
    """A new key written to ``path`` (created 0600, never over an existing file) and its
    public half beside it (``<path>.pub``, PEM, world-readable: it is meant to be given away)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise WitnessKeyError(f"{path} exists: a key is never overwritten (move it away first, and keep its "
                        "public key among [witness] trusted_keys so older checkpoints still verify)") from None
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)  # whatever the umask
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    signing = SigningKey(key)
    public_path = path.with_name(path.name + ".pub")
    public_path.write_text(signing.public.pem)
    return signing
