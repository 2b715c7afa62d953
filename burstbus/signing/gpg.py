"""GnuPG on burstbus's own keyring: verify a detached signature over bytes, make one (blocking I/O).

Why GnuPG through ``python-gnupg`` (and not Sequoia): ``gpg`` is what Debian ships and what
VOEvent authors already sign with (Comet's scheme was written against it), the acceptance
test is literally ``gpg --verify``, and operators manage the keyring with the ``gpg`` they
know (``gpg --homedir DIR --import``). ``pysequoia`` is not on the package registry here. The
price is a process per call (a few milliseconds): only packets that carry a signature, and
our own notices and triggers, pay it; an unsigned packet never reaches gpg.

Every call runs in the ingest's thread pool, never on the event loop, and:

* uses ``--homedir`` = the configured keyring directory, never ``~/.gnupg``;
* is ``--batch`` with ``--pinentry-mode loopback``: a passphrase goes on a pipe, and a key
  that needs one we do not have fails at once instead of waiting for a pinentry nobody sees;
* trusts nothing by gpg's web of trust (``--trust-model always``): which keys count is the
  policy's decision (:mod:`.policy`), by fingerprint; gpg only says whether the bytes match;
* never fetches a key (``--no-auto-key-retrieve``): a signature by an unknown key is
  ``untrusted``, whatever a keyserver would say;
* is killed after ``[signatures] timeout`` seconds (the packet is then ``invalid``).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import gnupg

from .policy import Checked, SignaturesSection, fingerprint

log = logging.getLogger(__name__)

#: Options on every gpg call (see the module docs).
GPG_OPTIONS = (
    "--pinentry-mode", "loopback", "--trust-model", "always", "--no-auto-key-retrieve",
    "--no-auto-key-locate", "--keyid-format", "long", "--no-greeting", "--no-permission-warning",
)
#: The oldest GnuPG with loopback pinentry and fingerprints in its status lines.
MIN_VERSION = (2, 1)


class KeyringError(Exception):
    """The keyring cannot be used with this configuration: ``setting`` names the key to change."""

    def __init__(self, setting: str, problem: str):
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


class SigningFailed(Exception):
    """gpg did not produce a signature (the packet is refused rather than sent unsigned)."""


class _GPG(gnupg.GPG):  # type: ignore[misc]
    """python-gnupg with a deadline per call: the process is killed when it passes."""

    call_timeout = 10.0

    def _collect_output(self, process: Any, result: Any, writer: Any = None, stdin: Any = None) -> Any:
        def kill() -> None:
            result.timed_out = True
            try:
                process.kill()
            except OSError:
                pass

        result.timed_out = False
        timer = threading.Timer(self.call_timeout, kill)
        timer.daemon = True
        timer.start()
        try:
            return super()._collect_output(process, result, writer, stdin)
        finally:
            timer.cancel()


class Keyring:
    """One GnuPG home: verifies signatures over bytes, signs with the configured key."""

    def __init__(self, gpg: _GPG, home: Path, *, sign_with: str | None, passphrase: str | None, gpgconf: str | None):
        self._gpg = gpg
        self.home = home
        self.sign_with = sign_with
        self._passphrase = passphrase
        self._gpgconf = gpgconf
        self._agent_used = False
        #: Every fingerprint of the signing key (primary and subkeys): a signature by anything else is refused.
        self._own: frozenset[str] = frozenset()

    @classmethod
    def open(cls, section: SignaturesSection, data_dir: Path, passphrase: str | None = None) -> Keyring:
        """Check gpg, the keyring directory and the signing key now (at start), so a missing
        program or key is one line naming the setting, not a failure at the first trigger."""
        binary = shutil.which(section.gpg)
        if binary is None:
            raise KeyringError("signatures.gpg", f"{section.gpg!r} was not found: install GnuPG (Debian: apt-get install gpg) "
                                                 "or set signatures.gpg to its path")
        home = section.home(data_dir)
        try:
            if not home.is_dir():
                home.mkdir(parents=True, mode=0o700)
        except OSError as exc:
            raise KeyringError("signatures.keyring", f"cannot create {home}: {exc.strerror or exc}") from None
        try:
            gpg = _GPG(gpgbinary=binary, gnupghome=str(home), options=list(GPG_OPTIONS), encoding="utf-8")
        except (OSError, ValueError) as exc:
            raise KeyringError("signatures.gpg", f"{binary} cannot run on {home}: {exc}") from None
        gpg.call_timeout = section.timeout
        if gpg.version is None or tuple(gpg.version[:2]) < MIN_VERSION:
            raise KeyringError("signatures.gpg", f"{binary} is GnuPG {gpg.version}; burstbus needs 2.1 or later")
        gpgconf = shutil.which("gpgconf", path=str(Path(binary).parent)) or shutil.which("gpgconf")
        keyring = cls(gpg, home, sign_with=None, passphrase=passphrase or None, gpgconf=gpgconf)
        if section.sign_with:
            wanted = fingerprint(section.sign_with)
            mine = [known for key in gpg.list_keys(secret=True) if wanted in (known := keyring._fingerprints_of(key))]
            if not mine:
                raise KeyringError("signatures.sign_with", f"no secret key {wanted} in the keyring {home} "
                                                           f"(import it: gpg --homedir {home} --import KEY.asc)")
            keyring.sign_with = wanted
            keyring._own = frozenset(mine[0])
            try:
                keyring.sign(b"burstbus: can this key sign?")
            except SigningFailed as exc:
                keyring.close()
                raise KeyringError("signatures.passphrase" if "passphrase" in str(exc).lower() else "signatures.sign_with",
                                   f"gpg cannot sign with {wanted}: {exc}") from None
        return keyring

    @staticmethod
    def _fingerprints_of(key: dict[str, Any]) -> set[str]:
        found = {str(key.get("fingerprint") or "").upper()}
        found.update(str(sub[2] or "").upper() for sub in key.get("subkeys", ()) if len(sub) > 2)
        return found

    def verify(self, data: bytes, armour: bytes) -> Checked:
        """What gpg says of the detached ``armour`` over ``data`` (never raises for a bad signature)."""
        with tempfile.NamedTemporaryFile(prefix="burstbus-sig-", suffix=".asc") as sig:
            sig.write(armour)
            sig.flush()
            try:
                result = self._gpg.verify_data(sig.name, data)
            except (OSError, ValueError) as exc:
                return Checked("bad", detail=f"gpg could not check it: {exc}")
        if getattr(result, "timed_out", False):
            return Checked("bad", detail=f"gpg did not answer within {self._gpg.call_timeout:g} s")
        return classify(result)

    def sign(self, data: bytes) -> bytes:
        """A detached, ASCII-armoured signature of ``data`` by the configured key."""
        if self.sign_with is None:
            raise SigningFailed("no signing key is configured ([signatures] sign_with)")
        self._agent_used = True  # gpg 2 signs through gpg-agent, which it starts in our home
        # --local-user, not python-gnupg's --default-key alone: gpg ignores an unusable default
        # key and signs with the first secret key it has.
        result = self._gpg.sign(data, keyid=self.sign_with, passphrase=self._passphrase, detach=True, binary=False,
                                extra_args=["--local-user", self.sign_with])
        if getattr(result, "timed_out", False):
            raise SigningFailed(f"gpg did not answer within {self._gpg.call_timeout:g} s")
        armour = bytes(result.data or b"")
        if not armour.startswith(b"-----BEGIN PGP SIGNATURE-----"):
            lines = (result.stderr or "").strip().splitlines()
            problem = result.status or next((line for line in reversed(lines) if not line.startswith("[GNUPG:]")), "")
            raise SigningFailed(str(problem or "gpg produced no signature"))
        made_by = str(result.fingerprint or "").upper()
        if made_by not in self._own:
            raise SigningFailed(f"gpg signed with {made_by or 'an unknown key'}, not with {self.sign_with}")
        return armour

    def close(self) -> None:
        """Stop the gpg-agent that signing started in our home (verifying needs none)."""
        if not self._agent_used or self._gpgconf is None:
            return
        try:
            subprocess.run([self._gpgconf, "--homedir", str(self.home), "--kill", "gpg-agent"], timeout=10,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                           env={**os.environ, "GNUPGHOME": str(self.home)})
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("could not stop the gpg-agent of %s: %s", self.home, exc)
        self._agent_used = False


def classify(result: Any) -> Checked:
    """A python-gnupg verify result → :class:`Checked` (the trust decision is not made here)."""
    stderr = str(getattr(result, "stderr", "") or "")
    signatures = stderr.count("[GNUPG:] NEWSIG")
    if signatures > 1:
        return Checked("bad", detail=f"the block holds {signatures} signatures; the scheme carries one")
    status = str(result.status or "")
    created = _iso(getattr(result, "sig_timestamp", None) or getattr(result, "timestamp", None))
    if result.valid and result.fingerprint and not result.key_status:
        primary = str(getattr(result, "pubkey_fingerprint", None) or result.fingerprint).upper()
        return Checked("good", fingerprint=primary, fingerprints=tuple(dict.fromkeys((primary, str(result.fingerprint).upper()))),
                       key_id=result.key_id, signer=result.username, created=created)
    if result.key_status:  # made with an expired or revoked key
        return Checked("bad", fingerprint=_upper(getattr(result, "pubkey_fingerprint", None) or result.fingerprint),
                       key_id=result.key_id, signer=result.username, created=created, detail=str(result.key_status))
    if status == "no public key" or "[GNUPG:] NO_PUBKEY" in stderr:
        return Checked("unknown_key", fingerprint=_upper(result.fingerprint), key_id=result.key_id, created=created,
                       detail=f"signed with key {result.fingerprint or result.key_id}, which is not in the keyring")
    if status == "signature bad":
        return Checked("bad", key_id=result.key_id, signer=result.username, detail="the signature does not match the bytes")
    if status in ("", "signature expected but not found") or "[GNUPG:] NODATA" in stderr:
        return Checked("bad", detail="the comment does not hold a readable OpenPGP signature")
    return Checked("bad", key_id=result.key_id, detail=status)


def _upper(value: Any) -> str | None:
    return str(value).upper() if value else None


def _iso(timestamp: Any) -> str | None:
    """gpg's signature time (seconds since 1970, or ISO 8601 ``19700101T000000``) as UTC ISO text."""
    if not timestamp:
        return None
    from datetime import UTC, datetime

    text = str(timestamp)
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return datetime.strptime(text, "%Y%m%dT%H%M%S").strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError):
        return None
