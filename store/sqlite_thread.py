"""Run a whole function on an aiosqlite connection's own thread: one thread hop per batch.

aiosqlite's public API hops to its worker thread once per statement (~80-90 µs each here).
The log writer and the projection runner do several statements per batch (BEGIN, read the
head, dedupe, INSERT, COMMIT), so they hand aiosqlite one function that does them all.
aiosqlite exposes exactly that as ``Connection._execute(fn)``; this module is the single
place that touches it, and ``tests/store`` exercises it, so an aiosqlite change shows up as
one failing test rather than as scattered breakage.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

T = TypeVar("T")


class DatabaseUnusable(Exception):
    """A database beside the log (state, projections) that cannot be opened or set up: not an
    SQLite file, damaged, unreadable. Says which file, SQLite's words, and what to do about it;
    the CLI prints it as one line instead of a traceback."""

    def __init__(self, what: str, path: Path, exc: BaseException, remedy: str):
        super().__init__(f"opening the {what} at {path} failed: {type(exc).__name__}: {exc} ({remedy})")
        self.path = path


async def open_database(
    path: Path, what: str, remedy: str, set_up: Callable[[sqlite3.Connection], T], *, synchronous: str,
) -> tuple[aiosqlite.Connection, T]:
    """:func:`connect`, then ``set_up`` (schema, pragmas) on the connection's thread. A file
    that is not a usable database closes the connection (else its thread keeps the interpreter
    alive) and raises :class:`DatabaseUnusable` naming ``what`` and the ``remedy``."""
    db: aiosqlite.Connection | None = None
    try:
        db = await connect(path, synchronous=synchronous)
        result = await run_on_connection(db, set_up)
    except sqlite3.Error as exc:
        if db is not None:
            await db.close()
        raise DatabaseUnusable(what, path, exc, remedy) from exc
    return db, result


async def run_on_connection(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Call ``fn(sqlite3_connection)`` on the connection's thread and await its result."""

    def call() -> T:
        return fn(conn._conn)  # the raw sqlite3 connection, only touched on its own thread

    result: Any = await conn._execute(call)
    return result


async def connect(path: Path | str, *, synchronous: str = "FULL", readonly: bool = False) -> aiosqlite.Connection:
    """Open a WAL-mode connection in autocommit mode (transactions are explicit BEGINs)."""
    if readonly:
        conn = await aiosqlite.connect(f"file:{Path(path).as_posix()}?mode=ro", uri=True, isolation_level=None)
    else:
        conn = await aiosqlite.connect(str(path), isolation_level=None)
    try:
        await conn.execute("PRAGMA busy_timeout = 30000")
        if not readonly:
            await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute(f"PRAGMA synchronous = {synchronous}")
    except BaseException:
        # Not a database, or unreadable: close it, or its thread keeps the interpreter alive.
        await conn.close()
        raise
    return conn
