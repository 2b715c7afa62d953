"""Where a signature sits in a packet, and which bytes it covers (pure: bytes in, offsets out).

Comet's scheme signs "all bytes from the opening ``<`` to the closing ``>`` of the element
being signed" — the root, ``<voe:VOEvent …>`` … ``</voe:VOEvent>`` — and carries the
armoured signature after it as an XML comment, ``-----`` written ``=====``::

    <?xml version="1.0" encoding="UTF-8"?>
    <voe:VOEvent …>…</voe:VOEvent><!--
    =====BEGIN PGP SIGNATURE=====

    iHUEABYKAB0WIQ…
    =====END PGP SIGNATURE=====

    -->

Why offsets and not a parse: a signature is over bytes, and re-serialising a tree (what
Comet's test branch does when it signs) changes them. The root's start is found by skipping
the prolog (declaration, processing instructions, comments, white space); its end by walking
back over what may follow a root (white space, comments, processing instructions). The
packet was already parsed by the examination, so it is well-formed: a comment cannot contain
``--``, so the ``<!--`` before a trailing ``-->`` is the one that opens it.

Only a comment *after* the root counts: a signature block inside the root is part of the
signed bytes, not a signature of them. Packets must be in an ASCII-compatible encoding
(UTF-8, as every VOEvent seen): in UTF-16 no signature is ever found (status ``none``).
"""

from __future__ import annotations

from dataclasses import dataclass

BEGIN = b"=====BEGIN PGP SIGNATURE====="
END = b"=====END PGP SIGNATURE====="
#: A detached signature is a few hundred bytes (an RSA-4096 one about 900): a bigger comment
#: is not a signature, and is never handed to gpg.
MAX_SIGNATURE_BYTES = 16_384
_SPACE = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"


class SignatureMalformed(ValueError):
    """A signature comment that cannot be checked (recorded as ``invalid`` with this reason)."""


@dataclass(frozen=True, slots=True)
class Located:
    """The signed range ``[start, end)`` of a packet and its signature, if it carries one.

    ``armour`` is the ASCII-armoured signature with ``-----`` restored, ready for gpg;
    ``comment`` the byte span of the comment that carried it."""

    start: int
    end: int
    armour: bytes | None = None
    comment: tuple[int, int] | None = None


def has_signature(raw: bytes) -> bool:
    """Cheap test: could this packet carry a signature at all (no scan, no gpg)?"""
    return BEGIN in raw


def root_span(raw: bytes) -> tuple[int, int]:
    """``(start, end)`` of the root element's bytes; :class:`SignatureMalformed` if not found."""
    start = _root_start(raw)
    end, _ = _tail(raw)
    if end <= start or raw[end - 1 : end] != b">":
        raise SignatureMalformed("the root element's end could not be located in the bytes")
    return start, end


def locate(raw: bytes) -> Located:
    """The signed range and the signature after the root (``armour`` None when unsigned)."""
    start = _root_start(raw)
    end, comments = _tail(raw)
    if end <= start or raw[end - 1 : end] != b">":
        raise SignatureMalformed("the root element's end could not be located in the bytes")
    signed = [(a, b) for a, b in comments if BEGIN in raw[a:b] or END in raw[a:b]]
    if not signed:
        return Located(start, end)
    if len(signed) > 1:
        raise SignatureMalformed(f"{len(signed)} signature comments follow the root element; the scheme allows one")
    a, b = signed[0]
    body = raw[a + 4 : b - 3].strip(_SPACE)
    if len(body) > MAX_SIGNATURE_BYTES:
        raise SignatureMalformed(f"the signature comment is {len(body):,} bytes (at most {MAX_SIGNATURE_BYTES:,})")
    if not (body.startswith(BEGIN) and body.endswith(END)):
        raise SignatureMalformed("the signature comment does not hold one =====BEGIN/END PGP SIGNATURE===== block")
    if not body.isascii():
        raise SignatureMalformed("the signature comment holds non-ASCII bytes (an armoured signature is ASCII)")
    return Located(start, end, body.replace(b"=====", b"-----") + b"\n", (a, b))


def signed_bytes(raw: bytes) -> bytes:
    """The bytes a signature covers: the root element, exactly as they are in ``raw``."""
    start, end = root_span(raw)
    return raw[start:end]


def with_signature(raw: bytes, armour: bytes) -> bytes:
    """``raw`` with ``armour`` (gpg's ``-----BEGIN PGP SIGNATURE-----`` block) inserted as a
    comment right after the root's end tag, as in Comet's example; every byte of ``raw``
    stays where it was, before or after the comment."""
    _, end = root_span(raw)
    text = armour.strip(_SPACE).replace(b"-----", b"=====")
    if not (text.startswith(BEGIN) and text.endswith(END)) or b"--" in text or not text.isascii():
        raise SignatureMalformed("gpg's output is not an armoured signature that fits in an XML comment")
    return raw[:end] + b"<!--\n" + text + b"\n\n-->" + raw[end:]


def without_signature(raw: bytes) -> bytes:
    """``raw`` with its signature comment taken out (the inverse of :func:`with_signature`);
    ``raw`` itself when it carries none or cannot be read."""
    if not has_signature(raw):
        return raw
    try:
        found = locate(raw)
    except SignatureMalformed:
        return raw
    if found.comment is None:
        return raw
    a, b = found.comment
    return raw[:a] + raw[b:]


def _root_start(raw: bytes) -> int:
    pos = len(_BOM) if raw.startswith(_BOM) else 0
    size = len(raw)
    while pos < size:
        lt = raw.find(b"<", pos)
        if lt < 0:
            break
        if raw.startswith(b"<?", lt):
            close = raw.find(b"?>", lt + 2)
            pos = size if close < 0 else close + 2
        elif raw.startswith(b"<!--", lt):
            close = raw.find(b"-->", lt + 4)
            pos = size if close < 0 else close + 3
        elif raw.startswith(b"<!", lt):
            break  # a DOCTYPE: the examination refuses those before we get here
        else:
            return lt
    raise SignatureMalformed("the root element's start could not be located in the bytes")


def _tail(raw: bytes) -> tuple[int, list[tuple[int, int]]]:
    """Walk back from the end over white space, comments and processing instructions: the
    offset just past the root's end tag, and the comments found (spans, last first)."""
    pos = len(raw)
    comments: list[tuple[int, int]] = []
    while pos > 0:
        while pos > 0 and raw[pos - 1] in _SPACE:
            pos -= 1
        if raw.endswith(b"-->", 0, pos):
            opened = raw.rfind(b"<!--", 0, pos - 3)
            if opened < 0:
                raise SignatureMalformed("a comment after the root element is not closed properly")
            comments.append((opened, pos))
            pos = opened
        elif raw.endswith(b"?>", 0, pos):
            opened = raw.rfind(b"<?", 0, pos - 2)
            if opened < 0:
                raise SignatureMalformed("a processing instruction after the root element could not be read")
            pos = opened
        else:
            break
    return pos, comments
