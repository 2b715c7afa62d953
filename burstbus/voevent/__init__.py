"""The pure VOEvent examination layer: safe parsing, schema checks, one summary per packet.

Why a separate package: every transport (VTP, NATS, XMPP, HTTP) must accept and refuse the
same packets for the same reasons, and projections must never parse XML again. Nothing here
does I/O or touches an event loop; :func:`examine` is CPU-bound and meant to run in a thread
pool.
"""

from .errors import CODES, VOEventRejected
from .examine import DEFAULT_MAX_BYTES, ROLES, Examined, check_ivorn, examine
from .extract import SELECTED_PARAMS, summarize, warm_up
from .parse import parse_xml
from .schema import validate, voevent_version

__all__ = [
    "CODES",
    "DEFAULT_MAX_BYTES",
    "ROLES",
    "SELECTED_PARAMS",
    "Examined",
    "VOEventRejected",
    "check_ivorn",
    "examine",
    "parse_xml",
    "summarize",
    "validate",
    "voevent_version",
    "warm_up",
]
