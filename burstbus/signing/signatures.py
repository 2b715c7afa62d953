"""The ingest's view of signatures: check a packet, sign our own, decide (armour + gpg + policy).

Blocking methods (:meth:`Signatures.check`, :meth:`Signatures.sign`) run gpg: the ingest calls
them from its examination thread pool. An unsigned packet costs a substring search, no gpg.
"""

from __future__ import annotations

from pathlib import Path

from burstbus.config import ConfigError, resolve_secret

from . import armour
from .gpg import Keyring, KeyringError, SigningFailed
from .policy import Checked, SignaturePolicy, SignaturesSection, Verdict

__all__ = ["Checked", "KeyringError", "Signatures", "SigningFailed", "Verdict"]


class Signatures:
    """Checks signatures on received packets and signs the centre's own (``[signatures]``)."""

    def __init__(self, policy: SignaturePolicy, keyring: Keyring):
        self.policy = policy
        self.keyring = keyring

    @classmethod
    def open(cls, section: SignaturesSection, data_dir: Path) -> Signatures:
        """Blocking (runs gpg): call it off the event loop. Raises :class:`KeyringError`."""
        try:
            passphrase = resolve_secret(section.passphrase, "signatures.passphrase") if section.passphrase else None
        except ConfigError as exc:
            raise KeyringError(exc.key, exc.problem) from None
        return cls(SignaturePolicy.of(section), Keyring.open(section, data_dir, passphrase))

    def signs(self, via: str, peer: str) -> bool:
        return self.keyring.sign_with is not None and self.policy.signs(via, peer)

    def check(self, raw: bytes) -> Checked:
        """What the packet's signature shows (blocking when it carries one)."""
        if not armour.has_signature(raw):
            return Checked.unsigned()
        try:
            found = armour.locate(raw)
        except armour.SignatureMalformed as exc:
            return Checked("bad", detail=str(exc))
        if found.armour is None:
            return Checked.unsigned()
        return self.keyring.verify(raw[found.start : found.end], found.armour)

    def sign(self, raw: bytes) -> bytes:
        """``raw`` with our signature comment after its root (blocking). Raises :class:`SigningFailed`."""
        try:
            return armour.with_signature(raw, self.keyring.sign(armour.signed_bytes(raw)))
        except armour.SignatureMalformed as exc:
            raise SigningFailed(str(exc)) from None

    def decide(self, via: str, peer: str, ivorn: str, author: str | None, checked: Checked) -> Verdict:
        return self.policy.decide(via, peer, ivorn, author, checked)

    def close(self) -> None:
        self.keyring.close()
