"""VOEvents arriving over XMPP (a BA forwarding a notice, a telescope reporting an upload).

A VOEvent sent to the bot — in the ``urn:burstbus:voevent:0`` payload or as a message body
that is the XML document — from a bare JID listed in ``[xmpp] voevent_senders`` goes through
the same ingest as VTP (``via="xmpp"``, ``peer`` = the sender's server-stamped bare JID). The
sender gets an ACK/NAK-like answer. Anyone else is refused with the reason, and the refusal
is a ``voevent.rejected`` event (code ``unauthorized``) like every other refusal.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from burstbus.bridges.xmpp.intake import Intake
from burstbus.ingest import Ingest

log = logging.getLogger(__name__)

UNAUTHORIZED = "unauthorized"


class VOEventIntake:
    def __init__(self, ingest: Ingest, senders: Iterable[str]):
        self.ingest = ingest
        self.senders = {s.strip().lower() for s in senders}

    async def __call__(self, verdict: Intake) -> str:
        sender = (verdict.sender or "").lower()
        raw = verdict.payload or b""
        if sender not in self.senders:
            reason = f"{sender} is not allowed to submit VOEvents to this bot (xmpp.voevent_senders)"
            refused = await self.ingest.refuse(raw, via="xmpp", peer=sender, reason=reason, code=UNAUTHORIZED)
            log.info("refused a VOEvent over XMPP from %s (log seq %d)", sender, refused.seq)
            return f"NAK: refused. {reason}."
        result = await self.ingest.submit(raw, via="xmpp", peer=sender)
        if result.outcome == "accepted":
            return f"ACK: accepted {result.ivorn} (log seq {result.seq})."
        if result.outcome == "duplicate":
            return f"ACK: already have {result.ivorn} (log seq {result.seq}); nothing added."
        return f"NAK ({result.code}): {result.reason}"
