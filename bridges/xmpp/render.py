"""Notice texts for chat, from jinja2 templates the operator can override.

Built-in templates are ``bridges/xmpp/templates/{room,page,forward}.j2``; a file of the same
name in ``[xmpp] templates_dir`` replaces one. Each template gets ``n``, a :class:`NoticeView`
of the accepted notice (burst id, instrument, position with sexagesimal forms and a readable
error, time, link to the burst's web page). Text, not HTML: no autoescaping.

An override that fails to compile stops the start (:func:`load_templates`); one that fails
while rendering a notice is logged and that notice uses the built-in template, so a typo in
an operator's template never silences alerts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

log = logging.getLogger(__name__)

BUILTIN = Path(__file__).with_name("templates")
NAMES = ("room", "page", "forward")


@dataclass(frozen=True)
class NoticeView:
    """What a template may use about one notice (``voevent.accepted`` data + its burst)."""

    ivorn: str
    role: str
    burst_id: str | None
    instrument: str | None
    mission: str | None
    packet_type: str | None
    ra: float | None
    dec: float | None
    #: Error radius in degrees (None if unknown).
    err: float | None
    #: Event time, fixed-width UTC (``2026-11-20T03:04:05.670000Z``), or None.
    time: str | None
    retraction: bool
    link: str
    seq: int
    event_id: str

    @property
    def has_position(self) -> bool:
        return self.ra is not None and self.dec is not None

    @property
    def ra_hms(self) -> str:
        if self.ra is None:
            return "?"
        # Rounded once, in hundredths of a second of time, so 59.999 s never shows as 60.00.
        total = round((self.ra % 360.0) / 15.0 * 360000) % (24 * 360000)
        h, rest = divmod(total, 360000)
        m, cs = divmod(rest, 6000)
        return f"{h:02d}h{m:02d}m{cs // 100:02d}.{cs % 100:02d}s"

    @property
    def dec_dms(self) -> str:
        if self.dec is None:
            return "?"
        sign = "-" if self.dec < 0 else "+"
        total = round(abs(self.dec) * 36000)  # tenths of an arcsecond, rounded once
        d, rest = divmod(total, 36000)
        m, ds = divmod(rest, 600)
        return f"{sign}{d:02d}°{m:02d}′{ds // 10:02d}.{ds % 10}″"

    @property
    def err_text(self) -> str:
        if self.err is None:
            return "? (error unknown)"
        if self.err >= 1.0:
            return f"{self.err:.2f}°"
        if self.err * 60 >= 1.0:
            return f"{self.err * 60:.1f}′"
        return f"{self.err * 3600:.1f}″"

    @property
    def time_text(self) -> str:
        if not self.time:
            return "time unknown"
        return self.time[:19].replace("T", " ") + " UTC"


def notice_view(record_data: Mapping[str, Any], *, burst_id: str | None, link_base: str, seq: int, event_id: str) -> NoticeView:
    position = record_data.get("position") or {}
    params = record_data.get("params") or {}
    ivorn = str(record_data.get("ivorn") or "")
    if burst_id:
        link = f"{link_base}/bursts/{quote(burst_id, safe='')}"
    else:
        link = f"{link_base}/apiv1/packet/xml/{quote(ivorn, safe='')}"

    def number(value: Any) -> float | None:
        try:
            return None if value is None else float(value)
        except (TypeError, ValueError):
            return None

    return NoticeView(
        ivorn=ivorn,
        role=str(record_data.get("role") or ""),
        burst_id=burst_id,
        instrument=record_data.get("instrument"),
        mission=record_data.get("mission"),
        packet_type=params.get("Packet_Type") or params.get("AlertType"),
        ra=number(position.get("ra")),
        dec=number(position.get("dec")),
        err=number(position.get("err")),
        time=record_data.get("time"),
        retraction=any(c.get("type") == "retraction" for c in record_data.get("citations") or ()),
        link=link,
        seq=seq,
        event_id=event_id,
    )


class Templates:
    """The three notice templates (override directory first, then the built-ins)."""

    def __init__(self, override: Path | None = None):
        loaders: list[jinja2.BaseLoader] = []
        if override is not None:
            loaders.append(jinja2.FileSystemLoader(str(override)))
        loaders.append(jinja2.FileSystemLoader(str(BUILTIN)))
        options: dict[str, Any] = {"autoescape": False, "keep_trailing_newline": False, "undefined": jinja2.StrictUndefined}
        self.env = jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), **options)
        self.builtin = jinja2.Environment(loader=jinja2.FileSystemLoader(str(BUILTIN)), **options)
        # Compile now: a broken override stops the start with its file name and line.
        self.templates = {name: self.env.get_template(f"{name}.j2") for name in NAMES}

    def render(self, name: str, view: NoticeView) -> str:
        try:
            text = self.templates[name].render(n=view)
        except Exception:
            log.exception("XMPP template %s.j2 failed for %s; using the built-in one", name, view.ivorn)
            text = self.builtin.get_template(f"{name}.j2").render(n=view)
        return "\n".join(line.rstrip() for line in text.strip().splitlines())


def load_templates(override: Path | None) -> Templates:
    """Templates for ``[xmpp] templates_dir``; raises ConfigError on a broken override."""
    from burstbus.config import ConfigError

    try:
        return Templates(override)
    except jinja2.TemplateError as exc:
        where = f"{getattr(exc, 'filename', None) or ''}:{getattr(exc, 'lineno', None) or ''}"
        raise ConfigError("xmpp.templates_dir", f"template error {where} {exc}") from None
