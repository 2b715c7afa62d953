"""Where ``burstbus import`` finds packets: files, folders (recursively) and tarballs.

Tar members are read into memory, never extracted, so a hostile archive cannot write
outside anything. Folders contribute ``*.xml`` files; a tarball contributes every regular
member (voeventdb dumps name them by IVORN, not always with ``.xml``).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


@dataclass(frozen=True, slots=True)
class Packet:
    label: str  # file path, or archive.tar.gz::member
    raw: bytes


class SourceError(Exception):
    """A path that cannot be read at all (missing, unreadable, corrupt archive)."""


def is_tarball(path: Path) -> bool:
    return path.name.lower().endswith(TAR_SUFFIXES)


def count_packets(paths: list[Path]) -> int | None:
    """How many packets the paths hold (for a progress bar); None if a tarball makes it costly."""
    total = 0
    for path in paths:
        if path.is_dir():
            total += sum(1 for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".xml" and not is_tarball(p))
            if any(is_tarball(p) for p in path.rglob("*") if p.is_file()):
                return None
        elif is_tarball(path):
            return None
        else:
            total += 1
    return total


def iter_packets(paths: list[Path], max_bytes: int, problems: list[str] | None = None) -> Iterator[Packet]:
    """Every packet under ``paths`` in a stable order. Oversized entries are still yielded
    (truncated to ``max_bytes + 1``) so that the ingest records their refusal.

    ``problems``: where a path that cannot be read (missing, unreadable, a truncated or corrupt
    archive) is reported, and the import goes on with the rest — one broken tarball in a
    folder of dumps does not stop the others; the members read before the break are kept.
    Without it, the first such path raises :class:`SourceError`."""
    def failed(error: SourceError) -> None:
        if problems is None:
            raise error
        problems.append(str(error))

    for path in paths:
        if not path.exists():
            failed(SourceError(f"{path}: no such file or folder"))
            continue
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if not child.is_file():
                    continue
                try:
                    if is_tarball(child):
                        yield from _from_tarball(child, max_bytes)
                    elif child.suffix.lower() == ".xml":
                        yield _from_file(child, max_bytes)
                except SourceError as error:
                    failed(error)
            continue
        try:
            if is_tarball(path):
                yield from _from_tarball(path, max_bytes)
            else:
                yield _from_file(path, max_bytes)
        except SourceError as error:
            failed(error)


def _from_file(path: Path, max_bytes: int) -> Packet:
    try:
        with open(path, "rb") as handle:
            return Packet(str(path), handle.read(max_bytes + 1))
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror or exc}") from None


def _from_tarball(path: Path, max_bytes: int) -> Iterator[Packet]:
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                yield Packet(f"{path}::{member.name}", handle.read(max_bytes + 1))
    except tarfile.ReadError as exc:
        # tarfile's "r:*" lists each compression it tried, one line each: the operator needs the gist.
        first = str(exc).splitlines()[0].rstrip(":")
        if first == "file could not be opened successfully":
            first = "not a tar archive (plain, gzip, bzip2 or xz)"
        raise SourceError(f"{path}: cannot read archive: {first}") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise SourceError(f"{path}: cannot read archive: {exc}") from None
