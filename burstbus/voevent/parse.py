"""Turn untrusted bytes into an lxml tree without letting the bytes do anything else.

Packets arrive from the Internet (VTP authors, upstream brokers, NATS, XMPP, HTTP). XML has
features that turn a parser into a weapon: entity expansion (the "billion laughs" memory bomb),
external entities and DTDs (XXE: reading ``file:///etc/passwd`` or fetching URLs), and huge
trees. A VOEvent never needs any of them, so this module refuses them outright:

* the size limit is checked before any parsing;
* the parser never resolves entities, never loads a DTD, never touches the network and has
  a resolver that answers every external lookup with an empty document;
* any DOCTYPE at all is refused (VOEvents never carry one), both by a cheap look at the
  prolog before parsing (so an entity bomb is refused as such, not as a parse error) and by
  checking the parsed document's ``docinfo`` afterwards (covers UTF-16 and other encodings).

lxml parser objects serialise their users with a lock, so each thread (the lead runs
:func:`parse_xml` in a thread pool) gets its own parser through :class:`threading.local`.
"""

from __future__ import annotations

import threading

from lxml import etree

from .errors import VOEventRejected

__all__ = ["parse_xml"]

_DOCTYPE_MARKERS = (
    b"<!DOCTYPE",
    b"<!ENTITY",
    "<!DOCTYPE".encode("utf-16-le"),
    "<!DOCTYPE".encode("utf-16-be"),
    "<!ENTITY".encode("utf-16-le"),
    "<!ENTITY".encode("utf-16-be"),
)


class _RefuseExternal(etree.Resolver):
    """Answer every external lookup (DTD, entity, XInclude) with an empty document."""

    def resolve(self, system_url, public_id, context):
        return self.resolve_empty(context)


_local = threading.local()


def _parser() -> etree.XMLParser:
    """Return this thread's hardened parser (created on first use)."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_blank_text=False,
            remove_comments=False,
            remove_pis=False,
            recover=False,
            collect_ids=False,
        )
        parser.resolvers.add(_RefuseExternal())
        _local.parser = parser
    return parser


def _prolog_has_doctype(raw: bytes) -> bool:
    """True if a ``<!DOCTYPE`` appears before the root element (ASCII-compatible encodings).

    Skips the XML declaration, processing instructions and comments, so a DOCTYPE
    mentioned inside a comment or in element text is not mistaken for one.
    """
    pos = 0
    end = len(raw)
    while pos < end:
        lt = raw.find(b"<", pos)
        if lt < 0:
            return False
        if raw.startswith(b"<?", lt):
            close = raw.find(b"?>", lt + 2)
            if close < 0:
                return False
            pos = close + 2
        elif raw.startswith(b"<!--", lt):
            close = raw.find(b"-->", lt + 4)
            if close < 0:
                return False
            pos = close + 3
        else:
            return raw.startswith(b"<!DOCTYPE", lt)
    return False


def _doctype_rejection() -> VOEventRejected:
    return VOEventRejected("DOCTYPE/entity declarations are not allowed", "doctype")


def parse_xml(raw: bytes, max_bytes: int) -> etree._Element:
    """Parse ``raw`` safely and return the root element, or raise :class:`VOEventRejected`.

    Codes: ``empty``, ``too_large``, ``doctype``, ``not_xml``. No network or file access
    happens, whatever the bytes say.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise TypeError(f"parse_xml needs bytes, not {type(raw).__name__}")
    raw = bytes(raw)
    if len(raw) > max_bytes:
        raise VOEventRejected(f"too large: {len(raw):,} bytes > limit {max_bytes:,}", "too_large")
    if not raw.strip():
        raise VOEventRejected(f"empty packet ({len(raw):,} bytes, no XML)", "empty")
    if _prolog_has_doctype(raw.lstrip(b"\xef\xbb\xbf \t\r\n")):
        raise _doctype_rejection()
    try:
        root = etree.fromstring(raw, _parser())
    except etree.XMLSyntaxError as exc:
        # A DTD in an encoding the prolog scan cannot read (UTF-16...) may fail here first,
        # e.g. libxml2's own entity-amplification guard; name it for what it is.
        if any(marker in raw for marker in _DOCTYPE_MARKERS):
            raise _doctype_rejection() from None
        raise VOEventRejected(f"not XML: {_syntax_message(exc)}", "not_xml") from None
    except ValueError as exc:  # e.g. "can only parse strings" / unicode with declaration
        raise VOEventRejected(f"not XML: {exc}", "not_xml") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise _doctype_rejection()
    return root


def _syntax_message(exc: etree.XMLSyntaxError) -> str:
    """lxml's message, which already ends with ", line L, column C"; add it if missing."""
    msg = (exc.msg or str(exc) or "syntax error").strip()
    if exc.lineno and f"line {exc.lineno}" not in msg:
        msg = f"{msg} (line {exc.lineno})"
    return msg
