"""The trigger VOEvent: rendered from a jinja2 template, checked like any received packet.

The template (``handlers/triggers/templates/trigger.xml.j2``, or a telescope's own ``template``) gets
only plain values; the environment escapes every one of them for XML and refuses undefined
names, so a note typed in chat can neither break the document nor inject elements. The
result still goes through the project's own examination (:func:`check_trigger` here, and
the ingest when it is submitted) — a telescope must never receive a packet we would refuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from burstbus.voevent.examine import Examined, examine

TEMPLATES = Path(__file__).resolve().parent / "templates"
DEFAULT_TEMPLATE = "trigger.xml.j2"
ROLE = "utility"


@dataclass(frozen=True)
class TriggerFacts:
    """Everything a trigger VOEvent says, decided before rendering."""

    ivorn: str
    author_ivorn: str
    author_name: str
    authored: str  # Who/Date, ISO-8601 UTC
    telescope: str
    burst_id: str
    request_id: str
    requested_by: str
    approved_by: str
    note: str
    ra: float
    dec: float
    err: float | None
    event_time: str  # ISO-8601 UTC
    position_ivorn: str | None
    citations: Sequence[str]

    def context(self) -> dict[str, Any]:
        return {
            "role": ROLE,
            "ivorn": self.ivorn,
            "author_ivorn": self.author_ivorn,
            "author_name": self.author_name,
            "authored": _iso(self.authored),
            "telescope": self.telescope,
            "burst_id": self.burst_id,
            "request_id": self.request_id,
            "requested_by": self.requested_by,
            "approved_by": self.approved_by,
            "note": self.note,
            "ra": float(self.ra),
            "dec": float(self.dec),
            "err": None if self.err is None else float(self.err),
            "event_time": _iso(self.event_time),
            "position_ivorn": self.position_ivorn,
            "citations": list(self.citations),
        }


def _iso(moment: str) -> str:
    """The log's ``…Z`` times as ``xs:dateTime`` without zone (VOEvent times are UTC by the
    coordinate system; GCN writes them this way)."""
    return moment[:-1] if moment.endswith("Z") else moment


@lru_cache(maxsize=16)
def _environment(folder: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=True,  # XML: every value escaped, whatever the file is called
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render_trigger(facts: TriggerFacts, template: str = "") -> bytes:
    """The VOEvent bytes (UTF-8). ``template``: a path overriding the built-in one."""
    if template:
        path = Path(template).expanduser().resolve()
        env, name = _environment(str(path.parent)), path.name
    else:
        env, name = _environment(str(TEMPLATES)), DEFAULT_TEMPLATE
    return env.get_template(name).render(facts.context()).encode("utf-8")


def check_trigger(xml: bytes) -> Examined:
    """Examine the rendered packet as the ingest would (raises ``VOEventRejected``). CPU work:
    call it in a thread from the loop."""
    return examine(xml)
