"""``burstbus backup``, ``restore``, ``export`` and the import of an export: the operator's copies.

* ``backup DEST``: a consistent online copy of the data directory's databases while the
  service runs and appends (SQLite's backup API, derived files first and the log last:
  :mod:`burstbus.store.backup`), checked (the copied chain is verified) and described in
  ``DEST/backup.json``. On the JetStream backend the log is the stream: its snapshot is
  ``nats stream backup``'s job (said, and written into the manifest); the local files are
  still copied.
* ``restore SRC``: the copies back into the data directory, refused while a service runs
  there, and refused over a log that holds events unless ``--force`` (which moves the old
  files aside, never deletes them). The backup's chain is verified before anything is copied.
* ``export``: the log (or a part of it, ``--since``/``--until``) as gzip-compressed JSON lines
  carrying the hash chain (:mod:`burstbus.store.export`); ``import`` of such a file writes the
  records exactly as they were — same seqs, times and hashes — after checking every one, and
  refuses a changed byte naming its seq.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from burstbus import __version__
from burstbus.config import Config
from burstbus.events import normalise_time, utc_now
from burstbus.service import Core, ServiceRunning, data_dir_lock, open_log, service_running
from burstbus.store.backup import FILES, backup_files, copy_database
from burstbus.store.base import LogError
from burstbus.store.export import export_log, is_export, read_export
from burstbus.store.sqlite import SQLiteEventLog

EXIT_OK, EXIT_NO = 0, 1
MANIFEST = "backup.json"
#: Records written per transaction when importing an export (after the whole file checked).
IMPORT_CHUNK = 2000

Command = Callable[[Config, argparse.Namespace], Coroutine[Any, Any, int]]


def add_parsers(commands: Any) -> dict[str, Command]:
    """Add this module's subcommands to the CLI's parser; their handlers by name."""
    p = commands.add_parser("backup", help="a consistent copy of the data directory, online (the service may run)")
    p.add_argument("dest", type=Path, metavar="DEST", help="a new or empty directory")
    p = commands.add_parser("restore", help="put a backup back into the data directory (no service may run there)")
    p.add_argument("src", type=Path, metavar="SRC", help="a directory made by burstbus backup")
    p.add_argument("--force", action="store_true", help="move an existing log aside (never deleted) and restore over it")
    p = commands.add_parser("export", help="the log as gzip-compressed JSON lines with its hash chain")
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="where (default: standard output)")
    p.add_argument("--since", help="only records recorded after this ISO-8601 time")
    p.add_argument("--until", help="only records recorded at or before this ISO-8601 time")
    return {"backup": cmd_backup, "restore": cmd_restore, "export": cmd_export}


async def _verified_head(path: Path) -> dict[str, Any]:
    """Open a copied log, walk its chain, and say where it ends."""
    copy = await SQLiteEventLog.open(path)
    try:
        verification = await copy.verify()
        head = await copy.head()
    finally:
        await copy.close()
    if not verification.ok:
        raise LogError(f"the copy at {path} does not verify: {verification}")
    return {"head_seq": head.seq, "head_hash": head.hash, "verified": True}


async def cmd_backup(config: Config, args: argparse.Namespace) -> int:
    dest: Path = args.dest
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        print(f"burstbus backup: {dest} exists and is not an empty directory", file=sys.stderr)
        return EXIT_NO
    if not (config.data_dir / "log.sqlite").is_file() and config.log.backend == "sqlite":
        print(f"burstbus backup: no log in {config.data_dir} (nothing to back up)", file=sys.stderr)
        return EXIT_NO
    dest.mkdir(parents=True, exist_ok=True)
    with_log = config.log.backend == "sqlite"
    files = await asyncio.to_thread(backup_files, config.data_dir, dest, with_log=with_log)
    manifest: dict[str, Any] = {"burstbus_backup": 1, "created_at": utc_now(), "version": __version__,
                                "source": str(config.data_dir.resolve()), "backend": config.log.backend, "files": files}
    if with_log:
        manifest["log"] = await _verified_head(dest / "log.sqlite")
        where = f"log seq 1..{manifest['log']['head_seq']} (verified)"
    else:
        note = (f"the log is the JetStream stream {config.log.stream}: snapshot it with "
                f"`nats stream backup {config.log.stream} DIR` (restore: `nats stream restore`), or export it "
                "with `burstbus export`; here: the local state and projections only")
        manifest["log"] = {"note": note}
        where = note
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"backup in {dest}: {', '.join(files)}; {where}")
    return EXIT_OK


async def cmd_restore(config: Config, args: argparse.Namespace) -> int:
    src: Path = args.src
    manifest_path = src / MANIFEST
    if not manifest_path.is_file():
        print(f"burstbus restore: {src} is not a burstbus backup (no {MANIFEST})", file=sys.stderr)
        return EXIT_NO
    manifest = json.loads(manifest_path.read_text())
    files = [name for name in FILES if name in manifest.get("files", [])]
    if "log.sqlite" in files:
        checked = await _verified_head(src / "log.sqlite")  # before anything is touched
        if checked["head_hash"] != manifest["log"]["head_hash"]:
            raise LogError(f"the backup's log ends at seq {checked['head_seq']}, not where its manifest says")
    data_dir = config.data_dir
    if service_running(data_dir):
        raise ServiceRunning(f"a burstbus service runs on {data_dir}")
    data_dir.mkdir(parents=True, exist_ok=True)
    with data_dir_lock(data_dir):
        present = [name for name in files if (data_dir / name).exists()]
        if present and not args.force:
            print(f"burstbus restore: {data_dir} already holds {', '.join(present)}; --force moves them aside", file=sys.stderr)
            return EXIT_NO
        if present:
            aside = data_dir / f"before-restore-{utc_now().replace(':', '').replace('-', '')}"
            aside.mkdir()
            for name in present:
                for suffix in ("", "-wal", "-shm"):
                    if (data_dir / (name + suffix)).exists():
                        shutil.move(str(data_dir / (name + suffix)), aside / (name + suffix))
            print(f"moved the old {', '.join(present)} to {aside}")
        for name in files:
            await asyncio.to_thread(copy_database, src / name, data_dir / name)
    print(f"restored {', '.join(files)} from {src} into {data_dir}")
    return EXIT_OK


async def cmd_export(config: Config, args: argparse.Namespace) -> int:
    event_log = await open_log(config)
    try:
        after = await event_log.seq_at(normalise_time(args.since)) if args.since else 0
        until = await event_log.seq_at(normalise_time(args.until)) if args.until else None
        if args.output is None:
            header = await export_log(event_log, sys.stdout.buffer, after=after, until=until)
        else:
            with args.output.open("wb") as out:
                header = await export_log(event_log, out, after=after, until=until)
    finally:
        await event_log.close()
    print(f"exported {header.count} records (seq {header.from_seq}..{header.to_seq}, head hash {header.head_hash[:16]}…)",
          file=sys.stderr)
    return EXIT_OK


def exports_among(paths: list[Path]) -> list[Path] | None:
    """The paths if every one is a log export (``import`` then restores records), else None."""
    return paths if paths and all(p.is_file() and is_export(p) for p in paths) else None


async def import_exports(config: Config, paths: list[Path]) -> int:
    """Write exported records into this log, exactly; every record checked before any is written."""
    if config.log.backend != "sqlite":
        print("burstbus import: an export is imported into a SQLite log (restore a JetStream stream with nats)", file=sys.stderr)
        return EXIT_NO
    if service_running(config.data_dir):
        raise ServiceRunning(f"a burstbus service runs on {config.data_dir}: it would append between the records")
    for path in paths:  # a first pass: the whole file checks, or nothing is written
        header, records = read_export(path)
        for _ in records:
            pass
    event_log = await SQLiteEventLog.open(config.log_path, synchronous=config.log.synchronous)
    try:
        for path in paths:
            header, records = read_export(path)
            chunk = []
            for record in records:
                chunk.append(record)
                if len(chunk) >= IMPORT_CHUNK:
                    await event_log.restore(chunk)
                    chunk = []
            if chunk:
                await event_log.restore(chunk)
            print(f"{path}: {header.count} records imported (seq {header.from_seq}..{header.to_seq}), hashes as exported")
    finally:
        await event_log.close()
    core = await Core.open(config)  # the projections follow what was imported
    try:
        await core.catch_up()
    finally:
        await core.close()
    return EXIT_OK
