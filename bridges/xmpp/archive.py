"""What a room already has: the room's message archive (XEP-0313), asked before a re-send.

Why: the outbox sends a batch again when it cannot be sure the server took it (the session
ended before the XEP-0198 acknowledgement, burstbus stopped or crashed in between). A room
that did receive the first copy would then show the notice twice, at 3 a.m., to people who
act on it. Most MUC services archive their rooms (Prosody's ``mod_muc_mam``, Openfire's
Monitoring plugin, ejabberd), so before such a re-send the outbox asks each room which of the
batch's stanza ids it already holds *from us* and sends only the others.

Only messages from the bot's own occupant JID count (``room/our nick``, which the MUC service
stamps and no other occupant can take), so a member cannot suppress a notice by posting a
message with its id. A room without an archive, or a query that fails or times out, answers
"none of them": the batch is sent whole — a repeat is better than a miss.

The query is pure protocol over slixmpp's ``xep_0313`` plugin; the decision of *when* to ask
(only for a batch that may have gone out before) is the outbox's (``notify.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from datetime import datetime
from typing import Any

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

log = logging.getLogger(__name__)

#: Archive results looked at per room and query (newest messages since ``since``).
MAX_RESULTS = 500


def _ours(stanza: Any, room: str, nick: str) -> bool:
    sender = slixmpp.JID(str(stanza["from"]))
    return sender.bare.lower() == room.lower() and sender.resource == nick


async def archived_ids(client: slixmpp.ClientXMPP, room: str, nick: str, ids: Collection[str],
                       *, since: datetime, timeout: float) -> set[str]:
    """The ids among ``ids`` of messages the room archived from ``room/nick`` since ``since``.

    Empty when the room keeps no archive or does not answer in ``timeout`` seconds (logged)."""
    wanted = set(ids)
    if not wanted:
        return set()
    found: set[str] = set()
    seen = 0
    try:
        async with asyncio.timeout(timeout):
            async for result in client.plugin["xep_0313"].iterate(
                jid=slixmpp.JID(room), start=since, rsm={"max": 100}, total=MAX_RESULTS,
            ):
                seen += 1
                stanza = result["mam_result"]["forwarded"]["stanza"]
                if str(stanza["id"]) in wanted and _ours(stanza, room, nick):
                    found.add(str(stanza["id"]))
                    if found == wanted:
                        break
    except (IqError, IqTimeout, TimeoutError) as exc:
        what = exc.iq["error"]["condition"] if isinstance(exc, IqError) else "no answer"
        log.warning("XMPP room %s: archive not available (%s); the batch is sent whole", room, what)
        return set()
    log.info("XMPP room %s: %d of %d message(s) already posted (archive: %d since %s)",
             room, len(found), len(wanted), seen, since.isoformat())
    return found
