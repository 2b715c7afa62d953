"""One accepted notice as chat messages see it, and the burst it belongs to.

Every chat bridge (XMPP rooms and pages, Slack channels and threads) says the same things about
a notice: burst id, instrument, position with a readable error, time, a link to the web page.
:class:`NoticeView` is that, built once from the ``voevent.accepted`` data (never re-parsing
XML); templates format it.

The burst id comes from the burst identifier's decision about the notice: every accepted notice
gets exactly one, ``burst.identified`` or ``burst.none``, under one derived event id
(:func:`decision_id`). Chat outboxes follow those decisions rather than the notices
(:data:`DECISIONS`, :func:`decided_notices`), so a notice is posted as soon as its burst is
known and never before, with no waiting and no polling.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from burstbus.catalogue import BURST_IDENTIFIED, BURST_NONE, NOTICE_TYPES, VOEVENT_ACCEPTED
from burstbus.events import RecordedEvent, derived_event_id
from burstbus.store.base import EventLog

log = logging.getLogger(__name__)

ACCEPTED = VOEVENT_ACCEPTED
IDENTIFIED = BURST_IDENTIFIED
NO_BURST = BURST_NONE
#: The identifier's decisions, one per accepted notice: what chat outboxes follow.
DECISIONS = (IDENTIFIED, NO_BURST)
#: What a notice is accepted as: a VOEvent (``voevent.accepted``) or a JSON notice from Kafka
#: (``notice.accepted``: the same summary fields, its bytes in ``json``).
NOTICES = NOTICE_TYPES


def notice_key(data: Mapping[str, Any]) -> str:
    """A notice's identity among notices: a VOEvent's IVORN; a JSON notice's topic and own id
    (``igwn.gwalert#S241125n-PRELIMINARY-…``: never an ``ivo://`` IVORN, so never confused)."""
    ivorn = data.get("ivorn")
    if ivorn:
        return str(ivorn)
    return f"{data.get('topic') or 'json'}#{data.get('notice_id') or data.get('sha256') or ''}"


def is_voevent(data: Mapping[str, Any]) -> bool:
    """True when the notice is a VOEvent (its XML is in the data), False for a JSON notice."""
    return "xml" in data or "xml_base64" in data


def decision_id(notice_event_id: str) -> str:
    """The event id of the decision about a notice, whichever it is: one decision per notice.

    (Derived as ``burst.identified`` ids always were, so logs written before ``burst.none``
    existed keep their ids.)"""
    return derived_event_id(IDENTIFIED, notice_event_id)


def angle_text(degrees: float) -> str:
    """An error radius as people say it: ``1.25°``, ``6.0′``, ``3.6″``."""
    if degrees >= 1.0:
        return f"{degrees:.2f}°"
    if degrees * 60 >= 1.0:
        return f"{degrees * 60:.1f}′"
    return f"{degrees * 3600:.1f}″"


def error_text(err: float | None) -> str:
    """`` ±6.0′`` after a position, or nothing when the error is unknown."""
    return "" if err is None else f" ±{angle_text(err)}"


def position_text(ra: float | None, dec: float | None, err: float | None) -> str:
    """``RA 123.4560° Dec -12.3400° ±6.0′`` (what pages, answers and trigger summaries say)."""
    if ra is None or dec is None:
        return "no position"
    return f"RA {ra:.4f}° Dec {dec:+.4f}°{error_text(err)}"


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
    ivorn = notice_key(record_data)
    if burst_id:
        link = f"{link_base}/bursts/{quote(burst_id, safe='')}"
    elif is_voevent(record_data):
        link = f"{link_base}/apiv1/packet/xml/{quote(ivorn, safe='')}"
    else:
        link = f"{link_base}/api/notices/json/{seq}"

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
        retraction=any(c.get("type") == "retraction" for c in record_data.get("citations") or ())
        or record_data.get("retraction") is True,  # a JSON notice says so itself (LVK RETRACTION)
        link=link,
        seq=seq,
        event_id=event_id,
    )


async def decided_notices(event_log: EventLog, decisions: Sequence[RecordedEvent]) -> list[tuple[RecordedEvent, str | None]]:
    """The notice each decision is about, with its burst id (None for ``burst.none``), in
    the decisions' order. A decision whose notice is not in the log (never expected) is
    logged and left out."""
    out: list[tuple[RecordedEvent, str | None]] = []
    for decision in decisions:
        if decision.type not in DECISIONS:
            continue
        notice = await event_log.get(int(decision.data.get("accepted_seq") or 0))
        if notice is None or notice.type not in NOTICES or decision.id != decision_id(notice.id):
            log.error("decision %s (seq %d) names no accepted notice; skipped", decision.id, decision.seq)
            continue
        burst = str(decision.data.get("burst_id") or "") or None if decision.type == IDENTIFIED else None
        out.append((notice, burst))
    return out
