"""What a projection is: a pure function from log records to rows in its own tables.

A projection never does I/O of its own and never reads the clock: everything it writes comes
from the records it is given, so replaying the same log always gives the same rows (that is
what ``burstbus rebuild`` and the rebuild-equals-incremental test rely on).

``apply`` runs inside the runner's transaction, on the database thread, with a plain
``sqlite3.Connection``; the runner writes the projection's checkpoint in that same
transaction, so a batch is applied exactly once even across crashes.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from burstbus.events import RecordedEvent


def run_ddl(conn: sqlite3.Connection, script: str) -> None:
    """Execute a multi-statement DDL script *inside* the current transaction.

    ``sqlite3.Connection.executescript`` commits first, which would break the runner's
    "rows and checkpoint in one transaction" guarantee; this runs statement by statement.
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            if statement.strip():
                conn.execute(statement)
            statement = ""
    if statement.strip():
        conn.execute(statement)


class Projection(ABC):
    """A read model maintained from the log."""

    #: Unique name, used by ``burstbus rebuild NAME`` and for the checkpoint row.
    name: ClassVar[str]
    #: Bump when the tables or the mapping change: the runner then rebuilds it from the log.
    version: ClassVar[int] = 1
    #: Tables (and virtual tables) this projection owns, in creation order.
    tables: ClassVar[tuple[str, ...]]
    #: The event types it reads; the runner hands it nothing else.
    event_types: ClassVar[frozenset[str]]

    @abstractmethod
    def create(self, conn: sqlite3.Connection) -> None:
        """Create the tables and indexes (idempotent: ``IF NOT EXISTS``), with :func:`run_ddl`."""

    @abstractmethod
    def apply(self, conn: sqlite3.Connection, records: Sequence[RecordedEvent]) -> None:
        """Apply records (already filtered to ``event_types``, in seq order)."""

    def drop(self, conn: sqlite3.Connection) -> None:
        """Drop every table this projection owns (reverse order, for dependent tables)."""
        for table in reversed(self.tables):
            conn.execute(f"DROP TABLE IF EXISTS {table}")

    def dump(self, conn: sqlite3.Connection) -> dict[str, list[tuple[object, ...]]]:
        """Every row of every owned table, in a stable order (for equality checks)."""
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in self.tables
            if not table.endswith("_rtree_node") and not table.endswith("_rtree_parent")
        }
