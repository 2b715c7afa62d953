"""One accepted notice as chat messages see it, and the burst it belongs to.

Every chat bridge (XMPP rooms and pages, Slack channels and threads) says the same things about
a notice: burst id, instrument, position with a readable error, time, a link to the web page.
:class:`NoticeView` is that, built once from the ``voevent.accepted`` data (never re-parsing
XML); templates format it.

The burst id comes from the burst identifier's ``burst.identified`` decision, which runs beside
the bridges and usually lands within milliseconds: :func:`burst_of` waits for it, bounded, and
answers None rather than holding an alert back for ever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from burstbus.events import RecordedEvent, derived_event_id
from burstbus.handlers.bursts import CONSUMER as BURSTS_CONSUMER
from burstbus.handlers.bursts import IDENTIFIED
from burstbus.state import StateStore
from burstbus.store.base import EventLog

log = logging.getLogger(__name__)


def angle_text(degrees: float) -> str:
    """An error radius as people say it: ``1.25°``, ``6.0′``, ``3.6″``."""
    if degrees >= 1.0:
        return f"{degrees:.2f}°"
    if degrees * 60 >= 1.0:
        return f"{degrees * 60:.1f}′"
    return f"{degrees * 3600:.1f}″"


@dataclass(frozen=True)
class NoticeView:
    """What a template may use about one notice (``voevent.accepted`` data + its burst)."""

    ivorn: str
    role: str
    burst_id: str | None
    instrument: str | None
    mission: str | None
    packet_type: str | None
    ra: float | None
    dec: float | None
    #: Error radius in degrees (None if unknown).
    err: float | None
    #: Event time, fixed-width UTC (``2026-11-20T03:04:05.670000Z``), or None.
    time: str | None
    retraction: bool
    link: str
    seq: int
    event_id: str

    @property
    def has_position(self) -> bool:
        return self.ra is not None and self.dec is not None

    @property
    def ra_hms(self) -> str:
        if self.ra is None:
            return "?"
        # Rounded once, in hundredths of a second of time, so 59.999 s never shows as 60.00.
        total = round((self.ra % 360.0) / 15.0 * 360000) % (24 * 360000)
        h, rest = divmod(total, 360000)
        m, cs = divmod(rest, 6000)
        return f"{h:02d}h{m:02d}m{cs // 100:02d}.{cs % 100:02d}s"

    @property
    def dec_dms(self) -> str:
        if self.dec is None:
            return "?"
        sign = "-" if self.dec < 0 else "+"
        total = round(abs(self.dec) * 36000)  # tenths of an arcsecond, rounded once
        d, rest = divmod(total, 36000)
        m, ds = divmod(rest, 600)
        return f"{sign}{d:02d}°{m:02d}′{ds // 10:02d}.{ds % 10}″"

    @property
    def err_text(self) -> str:
        return "? (error unknown)" if self.err is None else angle_text(self.err)

    @property
    def time_text(self) -> str:
        if not self.time:
            return "time unknown"
        return self.time[:19].replace("T", " ") + " UTC"


def notice_view(record_data: Mapping[str, Any], *, burst_id: str | None, link_base: str, seq: int, event_id: str) -> NoticeView:
    position = record_data.get("position") or {}
    params = record_data.get("params") or {}
    ivorn = str(record_data.get("ivorn") or "")
    if burst_id:
        link = f"{link_base}/bursts/{quote(burst_id, safe='')}"
    else:
        link = f"{link_base}/apiv1/packet/xml/{quote(ivorn, safe='')}"

    def number(value: Any) -> float | None:
        try:
            return None if value is None else float(value)
        except (TypeError, ValueError):
            return None

    return NoticeView(
        ivorn=ivorn,
        role=str(record_data.get("role") or ""),
        burst_id=burst_id,
        instrument=record_data.get("instrument"),
        mission=record_data.get("mission"),
        packet_type=params.get("Packet_Type") or params.get("AlertType"),
        ra=number(position.get("ra")),
        dec=number(position.get("dec")),
        err=number(position.get("err")),
        time=record_data.get("time"),
        retraction=any(c.get("type") == "retraction" for c in record_data.get("citations") or ()),
        link=link,
        seq=seq,
        event_id=event_id,
    )


async def burst_of(
    event_log: EventLog, state: StateStore, record: RecordedEvent, *, roles: Sequence[str], wait: float
) -> str | None:
    """The burst the identifier decided for this notice, waiting up to ``wait`` seconds.

    Roles the identifier ignores (``[bursts] roles``) have no burst and are not waited for.
    """
    if record.data.get("role") not in roles:
        return None
    wanted = derived_event_id(IDENTIFIED, record.id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    delay = 0.002
    while True:
        found = await event_log.find(wanted)
        if found is None and await state.checkpoint(BURSTS_CONSUMER) >= record.seq:
            found = await event_log.find(wanted)  # decided: appended before its checkpoint moved
            if found is None:
                return None  # decided that it belongs to no burst
        if found is not None:
            return str(found.data.get("burst_id") or "") or None
        if loop.time() >= deadline:
            log.warning("no burst decision for %s after %.1fs; posting without a burst id", record.data.get("ivorn"), wait)
            return None
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


async def start_position(event_log: EventLog, state: StateStore, consumer: str) -> int:
    """A chat outbox's checkpoint; on its very first run the log's head, saved at once.

    Posting the whole archive into a room or channel the first time would help nobody.
    """
    known = await state.checkpoints()
    if consumer in known:
        return known[consumer]
    head = (await event_log.head()).seq
    await state.set_checkpoint(consumer, head)
    log.info("%s starts at log seq %d (first run)", consumer, head)
    return head
