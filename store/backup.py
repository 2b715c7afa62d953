"""Consistent copies of the SQLite files while the service runs: SQLite's online backup API.

Why the backup API and not ``cp``: a file copy of a database being written (and of its WAL)
can tear a transaction in half; the backup API copies one consistent snapshot, in one step,
under a read transaction — in WAL mode the writer goes on appending meanwhile.

Order matters between the files. The log is the truth; the projections and ``state.sqlite``
(outbox checkpoints, handler state) are derived from it and must never be *ahead* of the log
they are restored with, or an outbox would skip events appended after the restore. So
:func:`backup_files` copies the derived files first and the log last: whatever they saw, the
log copy has.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from burstbus.store.base import LogError

#: The files of a data directory, in the order they are copied (derived first, the log last).
FILES = ("state.sqlite", "projections.sqlite", "log.sqlite")


def copy_database(source: Path, dest: Path) -> None:
    """One consistent snapshot of ``source`` into ``dest`` (created; must not exist). Blocking:
    run it in a thread."""
    if dest.exists():
        raise LogError(f"{dest} exists already; a backup never overwrites")
    src = sqlite3.connect(f"file:{source.as_posix()}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)  # all pages in one step: one read transaction, one snapshot
            dst.execute("PRAGMA journal_mode = WAL")
        finally:
            dst.close()
    except sqlite3.Error as exc:
        dest.unlink(missing_ok=True)
        raise LogError(f"copying {source} failed: {exc}") from exc
    finally:
        src.close()


def backup_files(data_dir: Path, dest: Path, *, with_log: bool = True) -> list[str]:
    """Copy the data directory's databases into ``dest`` (derived ones first); the names copied."""
    copied = []
    for name in FILES:
        if name == "log.sqlite" and not with_log:
            continue
        source = data_dir / name
        if source.is_file():
            copy_database(source, dest / name)
            copied.append(name)
    return copied
