"""The event log (SQLite by default) and the projections derived from it.

Open a log with :func:`burstbus.store.sqlite.SQLiteEventLog.open`; code that only needs the
interface depends on :class:`burstbus.store.base.EventLog`.
"""

from burstbus.store.base import EventLog, Head, LogClosed, LogError, ReadFilter, Verification

__all__ = ["EventLog", "Head", "LogClosed", "LogError", "ReadFilter", "Verification"]
