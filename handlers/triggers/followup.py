"""What a telescope's packet citing a trigger says: which step, and where the data are (pure).

Partner telescopes answer a trigger with VOEvents that cite the trigger packet's IVORN
(``Citations/EventIVORN``) and say what happened in a Param (``[triggers] followup_param``,
default ``Status``): acknowledged, observation started, observation finished, data uploaded.
Their wording differs, so the value is read loosely (case, spaces, hyphens; the synonyms in
:data:`STATUS_WORDS`). A data upload names where the data are: a ``Data_Location`` (or
``Data_URL``) Param, else the packet's ``How/Reference`` URI.

A packet that cites a trigger but says no step we know is archived like any packet and
changes nothing (the linker logs it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from burstbus.catalogue import ACKNOWLEDGED, DATA_UPLOADED, FOLLOWUP_STEPS, OBSERVED, OBSERVING
from burstbus.voevent.parse import parse_xml

#: A status word (lower case, ``_`` for spaces and hyphens) → the step it reports.
STATUS_WORDS: dict[str, str] = {
    **dict.fromkeys(("acknowledged", "acknowledge", "ack", "received", "accepted", "scheduled", "queued"), ACKNOWLEDGED),
    **dict.fromkeys(("observing", "observation_started", "started", "exposing", "in_progress"), OBSERVING),
    **dict.fromkeys(("observed", "observation_finished", "observation_completed", "finished", "completed", "done"),
                    OBSERVED),
    **dict.fromkeys(("data_uploaded", "uploaded", "data_available", "data_ready", "archived"), DATA_UPLOADED),
}
DATA_LOCATION_PARAMS = ("Data_Location", "DataLocation", "Data_URL", "DataURL", "Data_Url")
_TYPE_OF = dict(FOLLOWUP_STEPS)
_SEPARATORS = re.compile(r"[\s-]+")
MAX_PACKET = 1 << 22


@dataclass(frozen=True)
class Reply:
    """A step a telescope reports: its state, the event type recording it, the words it used."""

    state: str
    event_type: str
    status: str
    data_location: str | None = None


def step_of(status: str) -> str | None:
    """The step a status word means (None: not one we know)."""
    return STATUS_WORDS.get(_SEPARATORS.sub("_", status.strip().lower()))


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def read_reply(xml: bytes, param: str = "Status") -> Reply | None:
    """The step ``xml`` reports in its ``param`` Param, or None (unparsable, no such Param, an
    unknown word)."""
    try:
        root = parse_xml(xml, MAX_PACKET)
    except Exception:
        return None
    status: str | None = None
    location: str | None = None
    for element in root.iter():
        if _local(element.tag) != "Param":
            continue
        name, value = element.get("name") or "", (element.get("value") or "").strip()
        if status is None and name == param and value:
            status = value
        elif location is None and name in DATA_LOCATION_PARAMS and value:
            location = value
    if status is None:
        return None
    state = step_of(status)
    if state is None:
        return None
    if state == DATA_UPLOADED and location is None:
        how = next((e for e in root if _local(e.tag) == "How"), None)
        if how is not None:
            reference = next((e for e in how if _local(e.tag) == "Reference" and e.get("uri")), None)
            location = reference.get("uri") if reference is not None else None
    return Reply(state, _TYPE_OF[state], status[:100], location[:2048] if location else None)
