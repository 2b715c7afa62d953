"""No approval code in the service log: slixmpp's loggers capped at INFO, stanzas withheld.

slixmpp logs every stanza it sends and receives at DEBUG, message bodies included, and a few of
its WARNING/ERROR lines quote a stanza. The pages the bot sends and what approvers type carry
approval codes, so a service run with ``-vv`` would write them to its log. This module is the one
place that keeps slixmpp's logging from doing so. It is separate from the connection because it
works on the logging system of the whole process (every ``slixmpp`` logger, plugins included),
not on one session.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from slixmpp.xmlstream import ET, ElementBase


class _StanzaWithheld(logging.Filter):
    """Keeps slixmpp's log lines but not the stanzas some of them quote ("Parse error: %r",
    "Tried to send stanza without a stream: %s", "Unable to parse stanza"): a message
    stanza's body can be an approval code (a page, or what an approver typed)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str):  # log.exception(exc): its text may quote a stanza
            record.msg = f"{type(record.msg).__name__} (text withheld: it may quote a stanza)"
        elif "<" in record.msg and ">" in record.msg:
            record.msg = f"[a log line quoting XML withheld ({len(record.msg)} characters)]"
        if isinstance(record.args, tuple):
            record.args = tuple(_withheld(a) for a in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {k: _withheld(v) for k, v in record.args.items()}
        return True


def _withheld(value: object) -> object:
    if isinstance(value, ElementBase | ET.Element):
        return f"[{type(value).__name__} stanza withheld]"
    if isinstance(value, str | bytes) and ("<" in value if isinstance(value, str) else b"<" in value):
        return f"[{len(value)} characters of XML withheld]"
    return value


_FILTER = _StanzaWithheld()


def quiet_slixmpp_logging() -> None:
    """slixmpp writes every stanza it sends and receives at DEBUG ("SEND: …", "RECV: …"),
    message bodies included — approval codes in the pages the bot sends and in what approvers
    type. A service run with ``-vv`` (debug) must still never have a code in its log, so
    slixmpp's loggers are capped at INFO here (stanza dumps are not available from this
    process, on purpose), and its few WARNING/ERROR lines that quote a stanza keep the line
    but not the stanza (:class:`_StanzaWithheld`). Loggers of plugins loaded later inherit the
    cap from ``slixmpp``; the filter is added to every slixmpp logger existing at the call
    (after the client registered its plugins), and the call is idempotent."""
    top = logging.getLogger("slixmpp")
    if top.level < logging.INFO:  # NOTSET (inherit the root's level) included
        top.setLevel(logging.INFO)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if (name == "slixmpp" or name.startswith("slixmpp.")) and isinstance(logger, logging.Logger):
            if logging.NOTSET < logger.level < logging.INFO:
                logger.setLevel(logging.INFO)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
