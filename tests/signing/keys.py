"""Real GnuPG homes for the signature tests: an independent author, the centre, an outsider.

Keys are made with the ``gpg`` command line (``--batch --passphrase '' --quick-gen-key``), each
in its own temporary GNUPGHOME; every gpg-agent started there is killed at the end."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

BEGIN, END = b"-----BEGIN PGP SIGNATURE-----", b"-----END PGP SIGNATURE-----"


@dataclass(frozen=True)
class Home:
    path: Path

    def gpg(self, *args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["gpg", "--homedir", str(self.path), "--batch", "--no-tty", *args], input=input,
                              capture_output=True, check=check, timeout=60,
                              env={**os.environ, "GNUPGHOME": str(self.path)})

    def new_key(self, uid: str, *, passphrase: str = "") -> str:
        self.gpg("--passphrase", passphrase, "--pinentry-mode", "loopback", "--quick-gen-key", uid, "ed25519", "sign", "never")
        listing = self.gpg("--with-colons", "--fingerprint", uid).stdout.decode()
        return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))

    def export(self, fingerprint: str) -> bytes:
        return self.gpg("--armor", "--export", fingerprint).stdout

    def export_secret(self, fingerprint: str, passphrase: str = "") -> bytes:
        return self.gpg("--passphrase", passphrase, "--pinentry-mode", "loopback", "--armor",
                        "--export-secret-keys", fingerprint).stdout

    def import_(self, key: bytes) -> None:
        self.gpg("--import", input=key)

    def detach_sign(self, data: bytes, fingerprint: str) -> bytes:
        return self.gpg("--local-user", fingerprint, "--armor", "--detach-sign", input=data).stdout

    def kill_agents(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.path), "--kill", "all"], capture_output=True, timeout=30,
                       env={**os.environ, "GNUPGHOME": str(self.path)}, check=False)


def home(path: Path) -> Home:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Home(path)


def signed_by_hand(raw: bytes, armour: bytes) -> bytes:
    """What an author following Comet's documentation writes, independently of burstbus: the
    signature comment right after ``</voe:VOEvent>`` with ``-----`` written ``=====``."""
    close = raw.rindex(b"</voe:VOEvent>") + len(b"</voe:VOEvent>")
    comment = b"<!--\n" + armour.replace(b"-----", b"=====") + b"\n-->"
    return raw[:close] + comment + raw[close:]


def root_bytes(raw: bytes) -> bytes:
    """The root element's bytes, found independently of burstbus's own code (``<voe:VOEvent``
    to ``</voe:VOEvent>``, as Comet's test branch does)."""
    start = raw.index(b"<voe:VOEvent")
    return raw[start : raw.rindex(b"</voe:VOEvent>") + len(b"</voe:VOEvent>")]


def armour_in(raw: bytes) -> bytes:
    """The armoured signature carried in the comment, ``-----`` restored."""
    begin = raw.index(b"=====BEGIN PGP SIGNATURE=====")
    end = raw.index(b"=====END PGP SIGNATURE=====") + len(b"=====END PGP SIGNATURE=====")
    return raw[begin:end].replace(b"=====", b"-----") + b"\n"
