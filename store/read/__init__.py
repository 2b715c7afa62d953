"""The read side of the projections: what every front end (HTTP API, web pages, bot) reads.

Beside the projections that write these tables, so a schema change and its readers change
together, and below every front end (the store imports no bridge or bot).

* :mod:`.rows`: typed rows (frozen dataclasses) and the one tolerant decoding of stored JSON;
  the archive's too (a synopsis, a cone search's matches, the counted IVORN lists);
* :mod:`.where`: the filters the API and the pages share, as one WHERE builder, and the
  fixed ``ORDER BY`` tables;
* :mod:`.bursts`: one burst with its notices, processes and triggers in the one order;
* :mod:`.lists`: filtered pages, counts, and the trigger workflow's small reads;
* :mod:`.archive`: the notices pages' list of the archive; :mod:`.voeventdb`: the archive's
  4pisky queries (filters, cone search, synopsis, counts) behind ``/apiv1``.

The functions take a read-only ``sqlite3.Connection`` and run on
:class:`~burstbus.store.reader.ProjectionReader`'s threads (one read transaction per call);
its :class:`~burstbus.store.reader.ReadModelError` is the store-level error every front end
maps (HTTP 503, a polite bot answer).
"""

from burstbus.store.read.rows import (
    BurstRow,
    BurstView,
    CiteRow,
    ConeHit,
    ConeMatch,
    CoordRow,
    IvornCount,
    NoticeRow,
    Page,
    ProcessRow,
    Synopsis,
    TriggerRow,
    VOEventRow,
    json_list,
    json_object,
)
from burstbus.store.read.where import BurstFilter, ProcessFilter, TriggerFilter, Where

__all__ = [
    "BurstFilter", "BurstRow", "BurstView", "CiteRow", "ConeHit", "ConeMatch", "CoordRow", "IvornCount", "NoticeRow",
    "Page", "ProcessFilter", "ProcessRow", "Synopsis", "TriggerFilter", "TriggerRow", "VOEventRow", "Where",
    "json_list", "json_object",
]  # fmt: skip
