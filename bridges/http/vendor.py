"""Vendor the Aladin Lite sky atlas (CDS) into ``static/vendor/aladin/`` at build time.

``python -m burstbus.bridges.http.vendor`` runs ``npm pack aladin-lite@VERSION`` in a temporary
directory, checks the tarball against the pinned integrity (npm's ``sha512-…``, the same
string ``npm view aladin-lite@VERSION dist.integrity`` prints), and copies its ``dist/`` files
and licence next to the pages' other static files. The pages then load the widget from their
own server: no CDN at run time; only the survey tiles come from CDS, when the browser can
reach it (the pages fall back to their SVG charts when it cannot, or when this was not run).

The folder is a build product (``.gitignore``): run this in the image build and before the
browser tests. ``--check`` only says whether the vendored copy is there and current.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "3.8.2"
INTEGRITY = "sha512-/VGtxSWZ4StdKgwjmzqNkUY/3iTaBZJ5F6bN+nAfcK1NEATcAb2CYJX4U8FElpwYMgKrypYQV5KniRzhVbH+nA=="
TARGET = Path(__file__).parent / "static" / "vendor" / "aladin"
#: The entry point the pages import (an ES module with its WebAssembly inlined).
ENTRY = "aladin.js"
STAMP = "VERSION.json"
#: Besides ``dist/``: the licence texts (GPL-3 / LGPL), which travel with the copy.
LICENCES = ("LICENSE", "COPYING", "COPYING.LESSER")


class VendorError(RuntimeError):
    """The copy could not be made; the message says why in one line."""


def integrity_of(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def installed(target: Path = TARGET) -> str | None:
    """The vendored version, or None when absent or incomplete."""
    try:
        stamp = json.loads((target / STAMP).read_text())
    except (OSError, ValueError):
        return None
    return str(stamp.get("version")) if (target / ENTRY).is_file() else None


def unpack(tarball: Path, target: Path, version: str = VERSION) -> list[str]:
    """Copy ``package/dist/*`` and the licences from an npm tarball into ``target``."""
    copied: list[str] = []
    staging = target.with_name(target.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive.getmembers():
            name = member.name.removeprefix("package/")
            wanted = name.startswith("dist/") or name in LICENCES
            if not member.isfile() or not wanted or ".." in Path(name).parts:
                continue
            out = staging / (name.removeprefix("dist/"))
            out.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            if source is None:
                continue
            with source, out.open("wb") as sink:
                shutil.copyfileobj(source, sink)
            copied.append(out.relative_to(staging).as_posix())
    if ENTRY not in copied:
        shutil.rmtree(staging, ignore_errors=True)
        raise VendorError(f"aladin-lite {version}: the package has no dist/{ENTRY}")
    # aiohttp's static files answer a client that accepts gzip with ``NAME.gz`` when it is
    # there: 2.4 MB of script (WebAssembly inlined) is 0.8 MB on a phone's connection.
    entry = staging / ENTRY
    (staging / (ENTRY + ".gz")).write_bytes(gzip.compress(entry.read_bytes(), 9, mtime=0))
    copied.append(ENTRY + ".gz")
    (staging / STAMP).write_text(json.dumps({"package": "aladin-lite", "version": version,
                                             "integrity": integrity_of(tarball.read_bytes()),
                                             "files": sorted(copied)}, indent=1) + "\n")  # fmt: skip
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return sorted(copied)


def vendor(target: Path = TARGET, version: str = VERSION, integrity: str | None = INTEGRITY,
           npm: str = "npm") -> list[str]:  # fmt: skip
    """Fetch the package with ``npm pack`` and unpack it into ``target``."""
    binary = shutil.which(npm)
    if binary is None:
        raise VendorError(f"{npm!r} is not on PATH (install Node.js and npm to vendor aladin-lite)")
    with tempfile.TemporaryDirectory(prefix="aladin-") as tmp:
        done = subprocess.run([binary, "pack", f"aladin-lite@{version}", "--silent"], cwd=tmp, capture_output=True,
                              text=True, timeout=300, check=False)  # fmt: skip
        tarballs = sorted(Path(tmp).glob("aladin-lite-*.tgz"))
        if done.returncode != 0 or not tarballs:
            reason = (done.stderr or done.stdout).strip().splitlines()
            raise VendorError(f"npm pack aladin-lite@{version} failed: {reason[-1] if reason else done.returncode}")
        data = tarballs[0].read_bytes()
        if integrity is not None and integrity_of(data) != integrity:
            raise VendorError(f"aladin-lite {version}: integrity {integrity_of(data)} is not the pinned {integrity}")
        return unpack(tarballs[0], target, version)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m burstbus.bridges.http.vendor", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only say whether the pinned version is vendored")
    parser.add_argument("--target", type=Path, default=TARGET, help=f"where to put it (default {TARGET})")
    args = parser.parse_args(argv)
    have = installed(args.target)
    if args.check:
        print(f"aladin-lite {have} in {args.target}" if have else f"aladin-lite is not vendored in {args.target}")
        return 0 if have == VERSION else 1
    if have == VERSION:
        print(f"aladin-lite {VERSION} already in {args.target}")
        return 0
    try:
        files = vendor(args.target)
    except (VendorError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"vendor: {exc}", file=sys.stderr)
        return 1
    print(f"aladin-lite {VERSION}: {len(files)} files in {args.target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
