"""How the exact bytes of a received packet travel inside an event's JSON data.

Event data is JSON, and JSON holds text, not bytes. Nearly every VOEvent is UTF-8, so its
bytes go in ``xml`` as text (readable in ``burstbus log``); anything that is not valid UTF-8
goes in ``xml_base64`` instead. Either way :func:`xml_bytes` gives back the exact bytes.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any


def xml_fields(raw: bytes) -> dict[str, str]:
    """The data fields carrying ``raw`` exactly: ``{"xml": text}`` or ``{"xml_base64": ...}``."""
    try:
        return {"xml": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"xml_base64": base64.b64encode(raw).decode("ascii")}


def xml_bytes(data: Mapping[str, Any]) -> bytes:
    """The exact received bytes from event data written by :func:`xml_fields`."""
    if "xml" in data:
        return str(data["xml"]).encode("utf-8")
    if "xml_base64" in data:
        return base64.b64decode(data["xml_base64"])
    raise KeyError("event data carries no XML")
