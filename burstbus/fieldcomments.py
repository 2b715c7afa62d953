"""What each configuration key means, read from the ``#:`` comments above its field.

Why a module of its own: the meaning is written once, beside the field, and read twice: by
:mod:`burstbus.configdoc` for the reference page, and by :mod:`burstbus.config` to say, in an
error about a key's value, what that key is (``silence_after`` wants seconds, not ``"30s"``).
"""

from __future__ import annotations

import inspect
import re

__all__ = ["field_comments", "meaning"]

_FIELD = re.compile(r"^(\s+)([a-z_][a-z0-9_]*)\s*:")


def field_comments(cls: type) -> dict[str, str]:
    """Field name → the ``#:`` comment lines above it in the class body (joined).

    A comment above a run of fields with no blank line between them (``tls_ca``, ``tls_cert``,
    ``tls_key`` under one "TLS: …" comment) describes each field of the run."""
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    found: dict[str, str] = {}
    pending: list[str] = []
    comment = ""
    body_indent: str | None = None
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith("#:"):
            if not pending:
                comment = ""
            pending.append(stripped[2:].strip())
            continue
        match = _FIELD.match(line)
        if match and (body_indent is None or match.group(1) == body_indent):
            body_indent = match.group(1)
            if pending:
                comment, pending = " ".join(pending), []
            if comment:
                found[match.group(2)] = comment
            continue
        if not stripped or not stripped.startswith("#"):
            if not stripped or (body_indent is not None and line.startswith(body_indent) and not line.startswith(body_indent + " ")):
                comment = ""
            pending = []
    return found


def meaning(cls: type, name: str, limit: int = 200) -> str | None:
    """The comment above ``cls``'s field ``name``, cut at a word near ``limit`` characters;
    None when the field has none. (Whole, not a first sentence: the comments are terse, and
    "SQLite. FULL: …" would be cut to "SQLite".)"""
    comment = field_comments(cls).get(name)
    if not comment:
        return None
    if len(comment) <= limit:
        return comment
    return comment[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " …"
