"""Notice texts for chat, from jinja2 templates the operator can override.

Built-in templates are ``bridges/xmpp/templates/{room,page,forward}.j2``; a file of the same
name in ``[xmpp] templates_dir`` replaces one. Each template gets ``n``, a
:class:`burstbus.notices.NoticeView`
of the accepted notice (burst id, instrument, position with sexagesimal forms and a readable
error, time, link to the burst's web page). Text, not HTML: no autoescaping.

An override that fails to compile stops the start (:func:`load_templates`); one that fails
while rendering a notice is logged and that notice uses the built-in template, so a typo in
an operator's template never silences alerts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jinja2

from burstbus.config import ConfigError
from burstbus.notices import NoticeView

log = logging.getLogger(__name__)

BUILTIN = Path(__file__).with_name("templates")
NAMES = ("room", "page", "forward")


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
    try:
        return Templates(override)
    except jinja2.TemplateError as exc:
        where = f"{getattr(exc, 'filename', None) or ''}:{getattr(exc, 'lineno', None) or ''}"
        raise ConfigError("xmpp.templates_dir", f"template error {where} {exc}") from None
