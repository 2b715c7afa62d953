"""Delivery of an approved trigger: through the log first, then to the telescope's channels.

Why through the log: the trigger VOEvent is submitted through the ingest as ``local:triggers``,
the only source the authority rule (:mod:`burstbus.authority`) lets publish in a trigger
stream, so it is schema-checked, archived, and broadcast to VTP subscribers like any notice;
only then is it sent to the telescope's JIDs and NATS subject. Its IVORN (request id plus a
random part) was chosen at approval and recorded in ``trigger.approved``, so re-delivery after
a crash re-uses the same accepted packet, and nobody could know it earlier. A packet under that
IVORN that the workflow did not submit is never sent: the request ends ``trigger.failed`` and
the requester and approvers are told.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from burstbus.authority import TRIGGER_PEER, TRIGGER_SOURCE, TRIGGER_VIA
from burstbus.catalogue import FAILED, TRIGGER_DELIVERED, TRIGGER_FAILED, TRIGGER_SENT
from burstbus.chat import Messenger, Page
from burstbus.events import Event, format_time
from burstbus.ingest import Ingest, accepted_event_id
from burstbus.payload import xml_bytes
from burstbus.store.base import EventLog
from burstbus.store.read import bursts as read_burst
from burstbus.voevent.parse import parse_xml

from . import texts
from .config import Telescope, TriggersSection
from .outcome import Outcome
from .request import Request, Requests, delivery_id
from .voevent import TriggerFacts, render_trigger

log = logging.getLogger(__name__)

#: Who records ``trigger.sent``/``failed``/``expired`` (no person: the workflow itself).
SYSTEM_ACTOR = "system:triggers"
#: ``publish(subject, payload, headers)`` — the ``nats.publish`` port, or None when NATS is off.
Publish = Callable[[str, bytes, dict[str, str]], Awaitable[object]]
#: Runs ``fn(sqlite3.Connection, *args)`` on a read-only projections connection.
Reader = Callable[..., Awaitable[Any]]


class ForeignPacket(Exception):
    """A packet under a trigger IVORN that the workflow did not submit: never delivered."""


def trigger_stream(section: TriggersSection, telescope: str) -> str:
    scope = section.telescope(telescope)
    return scope.stream(section.authority) if scope else f"ivo://{section.authority}/trigger"


class Delivery:
    """Render (or find), submit, send on every channel, record ``sent`` or ``failed``."""

    def __init__(self, log_: EventLog, requests: Requests, ingest: Ingest, read: Reader, section: TriggersSection, *,
                 clock: Callable[[], Any], publish: Publish | None = None, messenger: Messenger | None = None):
        self.log = log_
        self.requests = requests
        self.ingest = ingest
        self.read = read
        self.section = section
        self.clock = clock
        self.publish = publish
        self.messenger = messenger

    def now(self) -> str:
        return format_time(self.clock())

    async def deliver(self, request: Request, approver: str) -> Outcome:
        """Deliver an approved request (the caller holds its lock and loaded it from the log)."""
        scope = self.section.telescope(request.telescope)
        stream = trigger_stream(self.section, request.telescope)
        # Requests approved before the IVORN was recorded in trigger.approved used the request id.
        ivorn = request.voevent_ivorn or f"{stream}#{request.request_id}"
        try:
            xml = await self._packet(request, approver, ivorn, scope)
        except ForeignPacket as exc:
            log.error("trigger %s NOT delivered: %s", request.request_id, exc)
            return await self._record_failure(request, str(exc), None, {})
        except Exception as exc:
            log.exception("trigger %s could not be rendered", request.request_id)
            return await self._record_failure(request, f"the trigger VOEvent could not be rendered: {exc}", None, {})
        result = await self.ingest.submit(xml, via=TRIGGER_VIA, peer=TRIGGER_PEER)
        if not result.acknowledged:
            return await self._record_failure(request, f"the trigger VOEvent was refused by the ingest: {result.reason}", None, {})
        if result.outcome == "duplicate":  # a packet under our IVORN was there first: is it ours?
            try:
                await self._existing_own_packet(request, ivorn)
            except ForeignPacket as exc:
                log.error("trigger %s NOT delivered: %s", request.request_id, exc)
                return await self._record_failure(request, str(exc), None, {})
        accepted = await self.log.get(result.seq)
        if accepted is not None:  # what the log keeps and VTP sends: signed by the ingest ([signatures] sign_with)
            xml = xml_bytes(accepted.data)
        channels: dict[str, Any] = {"vtp": {"ivorn": ivorn, "stream": stream, "seq": result.seq}}
        problems: list[str] = []
        if scope and scope.jids:
            channels["xmpp"] = await self._to_jids(scope, xml, texts.delivery_summary(request, approver, ivorn), problems)
        if scope and scope.nats_subject:
            if await self._to_nats(scope, request, ivorn, xml, problems):
                channels["nats"] = scope.nats_subject
        if problems:
            return await self._record_failure(request, "; ".join(problems), ivorn, channels)
        appended = await self.log.append([Event(
            type=TRIGGER_SENT, id=delivery_id(request.request_id), stream=request.burst_id, actor=SYSTEM_ACTOR,
            occurred_at=self.now(), data=request.common() | {"voevent_ivorn": ivorn, "channels": channels},
        )])
        if not appended[0].new:  # another process recorded the delivery first
            return already_delivered(await self.requests.load(request))
        log.info("trigger %s sent: %s", request.request_id, ivorn)
        pages = [] if approver == request.requested_by else [Page(request.requested_by, texts.sent_page(approver, request, ivorn))]
        return Outcome(True, texts.sent(request, channels, ivorn), pages=pages, request_id=request.request_id)

    async def _to_jids(self, scope: Telescope, xml: bytes, summary: str, problems: list[str]) -> list[str]:
        delivered: list[str] = []
        for jid in scope.jids:
            if self.messenger is None:
                problems.append(f"XMPP to {jid}: the XMPP bridge is not running")
                continue
            try:
                async with asyncio.timeout(self.section.delivery_timeout):
                    await self.messenger.send_voevent(jid, xml, summary)
                delivered.append(jid)
            except Exception as exc:
                problems.append(f"XMPP to {jid}: {type(exc).__name__}: {exc}")
        return delivered

    async def _to_nats(self, scope: Telescope, request: Request, ivorn: str, xml: bytes, problems: list[str]) -> bool:
        if self.publish is None:
            problems.append(f"NATS {scope.nats_subject}: NATS is off")
            return False
        headers = {
            "Nats-Msg-Id": f"trigger:{request.request_id}", "Burstbus-Type": "trigger",
            "Burstbus-Trigger-Request": request.request_id, "Burstbus-Ivorn": ivorn,
        }
        try:
            async with asyncio.timeout(self.section.delivery_timeout):
                await self.publish(scope.nats_subject, xml, headers)
            return True
        except Exception as exc:
            problems.append(f"NATS {scope.nats_subject}: {type(exc).__name__}: {exc}")
            return False

    async def _packet(self, request: Request, approver: str, ivorn: str, scope: Telescope | None) -> bytes:
        """The trigger VOEvent: the one already accepted under this IVORN (re-delivery after a
        crash), else freshly rendered (and examined by the ingest before anything is sent)."""
        existing = await self._existing_own_packet(request, ivorn)
        if existing is not None:
            return existing
        citations = await self.read(read_burst.notice_ivorns, request.burst_id)
        params = request.params
        now = self.now()
        facts = TriggerFacts(
            ivorn=ivorn, author_ivorn=f"ivo://{self.section.authority}/burstbus", author_name=self.section.author_name,
            authored=now, telescope=request.telescope, burst_id=request.burst_id, request_id=request.request_id,
            requested_by=request.requested_by, approved_by=approver, note=request.note,
            ra=float(params["ra"]), dec=float(params["dec"]), err=None if params.get("err") is None else float(params["err"]),
            event_time=str(params.get("event_time") or now), position_ivorn=params.get("position_ivorn"),
            citations=citations,
        )
        return render_trigger(facts, scope.template if scope else "")

    async def _existing_own_packet(self, request: Request, ivorn: str) -> bytes | None:
        """The packet already accepted under ``ivorn`` if the workflow submitted it for this
        request; None if there is none; :class:`ForeignPacket` if somebody else's is there."""
        existing = await self.log.find(accepted_event_id(ivorn))
        if existing is None:
            return None
        if existing.actor != TRIGGER_SOURCE or request_id_param(existing.data) != request.request_id:
            raise ForeignPacket(
                f"a packet this workflow did not submit holds the trigger IVORN {ivorn} "
                f"(log seq {existing.seq}, from {existing.actor}); it was not sent to {request.telescope}"
            )
        return xml_bytes(existing.data)

    async def _record_failure(self, request: Request, reason: str, ivorn: str | None, channels: Mapping[str, Any]) -> Outcome:
        log.warning("trigger %s failed: %s", request.request_id, reason)
        await self.log.append([Event(
            type=TRIGGER_FAILED, id=delivery_id(request.request_id), stream=request.burst_id, actor=SYSTEM_ACTOR,
            occurred_at=self.now(), data=request.common() | {"reason": reason, "voevent_ivorn": ivorn, "channels": dict(channels)},
        )])
        told = [request.requested_by, *request.approvers]
        pages = [Page(jid, texts.delivery_failed_page(request, reason)) for jid in dict.fromkeys(told) if jid != request.decided_by]
        return Outcome(False, texts.delivery_failed(reason), reason=reason, pages=pages, request_id=request.request_id)


def already_delivered(request: Request) -> Outcome:
    """The answer when a delivery finds the request past ``approved`` (done by someone else)."""
    delivered = request.state in TRIGGER_DELIVERED and request.state != FAILED  # sent, and what the telescope said since
    return Outcome(delivered, f"Already {request.state}.", request_id=request.request_id)


def request_id_param(data: Mapping[str, Any]) -> str | None:
    """The ``RequestId`` Param of a stored trigger packet (the XML, parsed safely)."""
    try:
        root = parse_xml(xml_bytes(data), 1 << 22)
    except Exception:
        return None
    for param in root.iter("Param"):
        if param.get("name") == "RequestId":
            return param.get("value")
    return None
