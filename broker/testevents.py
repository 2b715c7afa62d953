"""Periodic test events, as Comet's ``--broadcast-test-interval``: proof to subscribers that the
stream is alive end to end, not just the TCP connection.

Log first, like everything else: each test packet goes through the ingest (``via="local"``)
and reaches subscribers through the broadcaster's normal path, so the log shows exactly
which test events were sent and when. Building the packet is a pure function.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

from burstbus.ingest import Ingest

log = logging.getLogger(__name__)


def build_test_event(local_ivo: str, moment: datetime) -> bytes:
    """A schema-valid VOEvent 2.0 with ``role="test"`` and a unique IVORN under ``local_ivo``."""
    stamp = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    ivorn = f"{local_ivo}#TestEvent-{stamp}"
    text = (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        '<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" '
        f'ivorn={quoteattr(ivorn)} role="test" version="2.0">\n'
        f"  <Who><AuthorIVORN>{escape(local_ivo)}</AuthorIVORN><Date>{stamp}</Date></Who>\n"
        "  <What><Description>burstbus broker test event</Description></What>\n"
        "  <Description>A periodic test packet: the broadcast stream is alive.</Description>\n"
        "</voe:VOEvent>\n"
    )
    return text.encode("utf-8")


async def send_test_events(ingest: Ingest, local_ivo: str, interval: float) -> None:
    """Every ``interval`` seconds, put a test event into the log (runs until cancelled)."""
    while True:
        await asyncio.sleep(interval)
        result = await ingest.submit(build_test_event(local_ivo, datetime.now(UTC)), via="local", peer="test-events")
        if not result.acknowledged:  # a bug, not an input problem: say so loudly
            log.error("test event refused: %s", result.reason)
