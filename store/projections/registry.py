"""The read models burstbus maintains, by name (what ``burstbus rebuild NAME`` accepts)."""

from __future__ import annotations

from burstbus.store.projections.base import Projection
from burstbus.store.projections.bursts import BurstsProjection
from burstbus.store.projections.jsonnotices import JsonNoticesProjection
from burstbus.store.projections.processes import ProcessesProjection
from burstbus.store.projections.triggers import TriggersProjection
from burstbus.store.projections.voeventdb import VOEventDBProjection


def all_projections() -> list[Projection]:
    """Fresh instances of every projection, in a fixed order."""
    return [VOEventDBProjection(), ProcessesProjection(), BurstsProjection(), TriggersProjection(), JsonNoticesProjection()]
