"""The single gate every received VOEvent goes through, whatever the transport.

Why this exists: VTP, NATS, XMPP and HTTP must accept and refuse exactly the same packets for
exactly the same reasons, and the log must hold, next to the raw bytes, one interpretation of
them. :func:`examine` is that gate: pure (no I/O, no event loop), CPU-bound, safe to call from
a thread pool (the lead's async wrapper does), and it either returns an :class:`Examined` or
raises :class:`VOEventRejected` with a reason for the NAK and a code for the
``voevent.rejected`` event.

Order of checks (cheapest and most dangerous first): size, safe parse (no DOCTYPE/entities),
root element/namespace/version, IVORN, role, schema, then :func:`summarize`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from .errors import VOEventRejected
from .extract import summarize
from .parse import parse_xml
from .schema import validate, voevent_version

__all__ = ["DEFAULT_MAX_BYTES", "ROLES", "Examined", "check_ivorn", "examine"]

#: 1 MiB: ten times the largest real VOEvent seen (9.4 KB), far below anything harmful.
DEFAULT_MAX_BYTES = 1_048_576

ROLES: frozenset[str] = frozenset({"observation", "prediction", "utility", "test"})

#: ivo://authority/path#localid — authority: no '/', '#', '?' or whitespace; local id non-empty.
_IVORN_RE = re.compile(r"ivo://[^/#?\s]+/[^#?\s]*#\S+")


@dataclass(frozen=True)
class Examined:
    """An accepted packet: its tree, its summary (JSON-ready) and the SHA-256 of its bytes.

    ``tolerated`` lists the known harmless schema deviations that were let through
    (see :mod:`burstbus.voevent.schema`); usually empty.
    """

    root: etree._Element
    summary: dict[str, Any]
    sha256: str
    tolerated: tuple[str, ...] = field(default=())


def check_ivorn(ivorn: str | None) -> str:
    """Return the IVORN if it is ``ivo://authority/path#localid``, else raise (code "ivorn")."""
    if ivorn is None or not ivorn.strip():
        raise VOEventRejected("the VOEvent has no ivorn attribute", "ivorn")
    if ivorn != ivorn.strip():
        raise VOEventRejected(f"IVORN has leading/trailing whitespace: {ivorn!r}", "ivorn")
    if not ivorn.startswith("ivo://"):
        raise VOEventRejected(f"IVORN does not start with ivo://: {ivorn!r}", "ivorn")
    if "#" not in ivorn or not ivorn.partition("#")[2].strip():
        raise VOEventRejected(f"IVORN has no local id (#...): {ivorn!r}", "ivorn")
    if not _IVORN_RE.fullmatch(ivorn):
        raise VOEventRejected(
            f"IVORN is not ivo://authority/path#localid (no spaces): {ivorn!r}", "ivorn"
        )
    return ivorn


def examine(raw: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Examined:
    """Check a received packet and summarise it; raise :class:`VOEventRejected` if refused.

    Pure and synchronous: call it in a worker thread from asyncio code.
    """
    root = parse_xml(raw, max_bytes)
    voevent_version(root)
    check_ivorn(root.get("ivorn"))
    role = root.get("role")
    if role is not None and role not in ROLES:
        raise VOEventRejected(
            f"unknown role {role!r} (expected observation, prediction, utility or test)",
            "role",
        )
    tolerated = validate(root)
    return Examined(
        root=root,
        summary=summarize(root),
        sha256=hashlib.sha256(raw).hexdigest(),
        tolerated=tolerated,
    )
