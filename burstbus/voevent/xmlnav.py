"""Namespace-blind, never-raising steps through a parsed VOEvent tree.

Why this exists: the same element sits in different namespaces depending on the packet
(VOEvent 2.0 puts STC elements in its own namespace, 1.1 in STC's, some authors in none), and
any element may be missing or empty in a real packet. Every reader of the tree (the summary,
its positions, params and citations) walks it by local name through these helpers, so a
missing step gives ``None`` or ``[]`` instead of an exception, and no reader repeats the
namespace handling.
"""

from __future__ import annotations

import math

from lxml import etree

__all__ = ["child", "children", "local", "number", "path", "text"]


def local(tag: object) -> str:
    """Local name of a tag ('' for comments and processing instructions)."""
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def child(el: etree._Element | None, name: str) -> etree._Element | None:
    """First child of ``el`` with local name ``name``, in any namespace (1.1 uses STC's)."""
    if el is None:
        return None
    for c in el:
        tag = c.tag
        if isinstance(tag, str) and (tag == name or tag.endswith("}" + name)):
            return c
    return None


def children(el: etree._Element | None, name: str) -> list[etree._Element]:
    """All children of ``el`` with local name ``name``, in document order."""
    if el is None:
        return []
    return [c for c in el if isinstance(c.tag, str) and local(c.tag) == name]


def path(el: etree._Element | None, *names: str) -> etree._Element | None:
    """Follow :func:`child` down ``names``; None as soon as one step is missing."""
    for name in names:
        el = child(el, name)
        if el is None:
            return None
    return el


def text(el: etree._Element | None) -> str | None:
    """Stripped text of an element, None if absent or blank."""
    if el is None or el.text is None:
        return None
    stripped = el.text.strip()
    return stripped or None


def number(el: etree._Element | None) -> float | None:
    """The element's text as a finite float, None if absent, not a number, NaN or infinite."""
    value_text = text(el)
    if value_text is None:
        return None
    try:
        value = float(value_text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
