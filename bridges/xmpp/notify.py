"""The XMPP outbox: accepted notices → room summaries, pages and raw forwards, from a checkpoint.

Follows the burst identifier's decisions (``burst.identified`` / ``burst.none``, one per
accepted notice) from consumer ``bridge.xmpp.out`` in ``state.sqlite``, so each notice comes
with its burst id and none is posted before its burst is known. For each notice:

* a summary in every room (roles in ``room_roles``), a direct page to every on-duty JID
  (``page_roles``/``page_missions``/``page_xpath``), and the raw packet to every
  ``[[xmpp.forward]]`` JID whose roles and XPath select it.

Every message carries the notice's event id as its stanza id. A batch's checkpoint moves only
after the server acknowledged every message of it (XEP-0198), so nothing is missed across a
restart of burstbus or of the server; a batch cut off before the acknowledgement is sent
again, with the same ids — and, since the server may have taken (and the room shown) part of it
before the session or burstbus went down, such a batch first asks each room's archive (XEP-0313,
:mod:`.archive`) which of its messages the room already has from us, and posts only the others.
The first batch after a start and every batch after a failed attempt are asked about; a batch
that follows a confirmed one is not (it cannot have gone out). The first time the consumer runs it starts at the log's head
(posting the whole history into a room would help nobody).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from lxml import etree

from burstbus.bridges.xmpp.config import XmppSection
from burstbus.bridges.xmpp.delivery import NotConnected, SessionLost
from burstbus.bridges.xmpp.render import Templates
from burstbus.bridges.xmpp.stanzas import Outgoing
from burstbus.events import RecordedEvent, parse_time
from burstbus.notices import DECISIONS, NoticeView, decided_notices, is_voevent, notice_view
from burstbus.payload import xml_bytes
from burstbus.state import StateStore
from burstbus.store.base import EventLog
from burstbus.store.consumer import Batch, Follower, Start
from burstbus.voevent.parse import parse_xml

log = logging.getLogger(__name__)

#: How far before a batch's decisions a room's archive is searched for what it already has
#: (the decisions are recorded before anything is posted; this covers clock skew between us
#: and the XMPP server).
ARCHIVE_MARGIN = timedelta(minutes=5)

CONSUMER = "bridge.xmpp.out"
#: What interrupts a delivery and is retried from the checkpoint.
RETRYABLE = (NotConnected, SessionLost, TimeoutError, ConnectionError)


class Deliverer(Protocol):
    async def wait_ready(self, timeout: float | None = None) -> None: ...

    async def deliver(self, messages: Sequence[Outgoing]) -> None: ...

    def joined_rooms(self) -> set[str]: ...

    async def already_posted(self, room: str, ids: Collection[str], *, since: datetime) -> set[str]: ...


class Selection:
    """Which notices go where (pure): rooms, pages, forwards."""

    def __init__(self, section: XmppSection):
        self.section = section
        self.page_missions = {m.lower() for m in section.page_missions}
        self.page_xpath = etree.XPath(section.page_xpath) if section.page_xpath else None
        self.forwards = [(rule, etree.XPath(rule.xpath) if rule.xpath else None) for rule in section.forward]

    def rooms(self, data: Any) -> list[str]:
        return [r.jid for r in self.section.rooms] if data.get("role") in self.section.room_roles else []

    def pages(self, data: Any, root: Any) -> list[str]:
        s = self.section
        if not s.on_duty or data.get("role") not in s.page_roles:
            return []
        if self.page_missions and str(data.get("mission") or "").lower() not in self.page_missions:
            return []
        if self.page_xpath is not None and not _selects(self.page_xpath, root()):
            return []
        return list(s.on_duty)

    def forwards_to(self, data: Any, root: Any) -> list[str]:
        return [rule.jid for rule, xpath in self.forwards if data.get("role") in rule.roles and (xpath is None or _selects(xpath, root()))]

    @property
    def needs_xml(self) -> bool:
        return self.page_xpath is not None or any(x is not None for _, x in self.forwards)


def _selects(xpath: etree.XPath, element: Any) -> bool:
    if element is None:
        return False
    try:
        return bool(xpath(element))
    except etree.XPathError:
        return False


def plan(record: RecordedEvent, view: NoticeView, selection: Selection, templates: Templates) -> list[Outgoing]:
    """The messages one accepted notice produces (pure apart from parsing its XML)."""
    data = record.data
    parsed: list[Any] = []

    def root() -> Any:
        if not parsed:
            try:
                raw = xml_bytes(data)
                parsed.append(parse_xml(raw, max_bytes=len(raw) + 1))
            except Exception:  # accepted packets parse; never let one stop the outbox
                parsed.append(None)
        return parsed[0]

    out: list[Outgoing] = []
    rooms = selection.rooms(data)
    if rooms:
        text = templates.render("room", view)
        out += [Outgoing(room, "groupchat", text, record.id) for room in rooms]
    pages = selection.pages(data, root)
    if pages:
        text = templates.render("page", view)
        out += [Outgoing(jid, "chat", text, record.id) for jid in pages]
    # Forwards carry the raw VOEvent: a JSON notice (from Kafka) has none to forward.
    forwards = selection.forwards_to(data, root) if is_voevent(data) else []
    if forwards:
        text = templates.render("forward", view)
        raw = xml_bytes(data)
        out += [Outgoing(jid, "chat", text, record.id, raw) for jid in forwards]
    return out


class Notifier:
    """Follows the decisions and delivers notices over XMPP, checkpointing acknowledged batches."""

    def __init__(
        self,
        event_log: EventLog,
        state: StateStore,
        connection: Deliverer,
        section: XmppSection,
        templates: Templates,
        *,
        link_base: str,
        burst_roles: Sequence[str] = ("observation",),
        name: str = CONSUMER,
        retry_delay: float = 1.0,
    ):
        """``burst_roles`` is no longer needed (every notice has a decision); accepted while
        ``node.py`` passes it."""
        self.log = event_log
        self.state = state
        self.connection = connection
        self.section = section
        self.templates = templates
        self.selection = Selection(section)
        self.link_base = link_base.rstrip("/")
        self.name = name
        self.follower: Follower[RecordedEvent] = Follower(
            event_log, self._deliver, name=name, checkpoint=state.checkpoint(name), start=Start.HEAD, types=DECISIONS,
            batch_size=section.batch_size, retryable=lambda exc: isinstance(exc, RETRYABLE),
            retry_delay=retry_delay, max_retry_delay=max(retry_delay, 10.0),
        )
        #: Progress and trouble, for health and tests.
        self.delivered_total = 0
        self.skipped_total = 0
        #: Room messages not sent again because the room's archive already had them.
        self.already_posted_total = 0
        #: The next batch may have gone out before (first after a start, or after a failure).
        self._unsure = True

    @property
    def position(self) -> int:
        return self.follower.position or 0

    @property
    def caught_up(self) -> asyncio.Event:
        return self.follower.caught_up

    @property
    def failures(self) -> int:
        return self.follower.failures

    @property
    def last_error(self) -> str | None:
        return self.follower.last_error

    async def run(self) -> None:
        """Deliver forever; a batch that was not acknowledged is retried from the checkpoint."""
        await self.follower.run()

    async def _deliver(self, batch: Batch[RecordedEvent]) -> None:
        await self.connection.wait_ready()
        messages: list[Outgoing] = []
        for record, burst in await decided_notices(self.log, batch.records):
            view = notice_view(record.data, burst_id=burst, link_base=self.link_base, seq=record.seq, event_id=record.id)
            messages += plan(record, view, self.selection, self.templates)
        messages = self._joined_only(messages)
        try:
            if self._unsure:
                messages = await self._not_yet_posted(messages, batch.records)
            await self.connection.deliver(messages)
        except asyncio.CancelledError:
            self._unsure = True
            if messages:
                log.warning("XMPP outbox stopped before the server acknowledged %d message(s) after seq %s; on the "
                            "next start they are checked against the rooms' archives and sent again", len(messages), self.position)
            raise
        except BaseException:
            self._unsure = True
            raise
        self._unsure = False
        self.delivered_total += len(messages)

    async def _not_yet_posted(self, messages: list[Outgoing], records: Sequence[RecordedEvent]) -> list[Outgoing]:
        """``messages`` without the room messages each room's archive already has from us."""
        by_room: dict[str, set[str]] = {}
        for m in messages:
            if m.type == "groupchat":
                by_room.setdefault(m.to.lower(), set()).add(m.id)
        if not by_room:
            return messages
        since = min(parse_time(r.recorded_at) for r in records) - ARCHIVE_MARGIN
        posted = {room: await self.connection.already_posted(room, ids, since=since) for room, ids in by_room.items()}
        kept = [m for m in messages if not (m.type == "groupchat" and m.id in posted.get(m.to.lower(), ()))]
        skipped = len(messages) - len(kept)
        if skipped:
            self.already_posted_total += skipped
            log.warning("XMPP: %d room message(s) of a re-sent batch were already posted; not sent again", skipped)
        return kept

    def _joined_only(self, messages: list[Outgoing]) -> list[Outgoing]:
        """Room messages only to rooms we are in: a room that refused us (not a member, gone)
        would bounce them; its summaries are skipped, counted and logged, pages still go."""
        joined = self.connection.joined_rooms()
        kept = [m for m in messages if m.type != "groupchat" or m.to.lower() in joined]
        for m in messages:
            if m.type == "groupchat" and m.to.lower() not in joined:
                self.skipped_total += 1
                log.error("XMPP: not in room %s; notice %s not posted there", m.to, m.id)
        return kept

    def health(self) -> dict[str, object]:
        state = self.follower.health()
        return {
            "position": self.position,
            "caught_up": state["caught_up"],
            "delivered": self.delivered_total,
            "failures": self.failures,
            "skipped_room_messages": self.skipped_total,
            "already_posted": self.already_posted_total,
            "last_error": self.last_error,
            "retrying": state["retrying"],
        }
