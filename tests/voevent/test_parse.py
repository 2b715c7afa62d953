"""Hostile and broken input: what parse_xml/examine refuse, and how they say it."""

from __future__ import annotations

import pickle

import pytest
from lxml import etree

from burstbus.voevent import CODES, VOEventRejected, examine, parse_xml

from .builders import packet

LIMIT = 1_048_576

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>
"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE voe:VOEvent [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" version="2.0"
  ivorn="ivo://evil/x#1" role="test"><Who><AuthorIVORN>&xxe;</AuthorIVORN></Who></voe:VOEvent>
"""


def rejected(raw: bytes, max_bytes: int = LIMIT) -> VOEventRejected:
    with pytest.raises(VOEventRejected) as info:
        examine(raw, max_bytes=max_bytes)
    exc = info.value
    assert exc.code in CODES
    assert exc.reason and str(exc) == exc.reason
    return exc


def test_valid_packet_parses() -> None:
    root = parse_xml(packet(), LIMIT)
    assert etree.QName(root).localname == "VOEvent"


def test_billion_laughs_is_refused_as_doctype() -> None:
    exc = rejected(BILLION_LAUGHS)
    assert exc.code == "doctype"
    assert exc.reason == "DOCTYPE/entity declarations are not allowed"


def test_xxe_is_refused_and_nothing_is_read() -> None:
    exc = rejected(XXE)
    assert exc.code == "doctype"
    assert "root:" not in exc.reason


def test_plain_doctype_on_a_valid_packet_is_refused() -> None:
    raw = packet().replace(b"?>\n", b"?>\n<!DOCTYPE voe:VOEvent>\n", 1)
    assert rejected(raw).code == "doctype"


def test_external_dtd_is_refused() -> None:
    raw = packet().replace(
        b"?>\n", b'?>\n<!DOCTYPE voe:VOEvent SYSTEM "http://127.0.0.1:9/evil.dtd">\n', 1
    )
    assert rejected(raw).code == "doctype"


def test_doctype_in_utf16_is_refused() -> None:
    text = packet().decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    text = text.replace("?>\n", "?>\n<!DOCTYPE voe:VOEvent>\n", 1)
    assert rejected(text.encode("utf-16")).code == "doctype"


def test_doctype_after_comments_and_pis_is_found() -> None:
    raw = packet().replace(b"?>\n", b"?>\n<!-- hi --><?pi x?>\n<!DOCTYPE voe:VOEvent>\n", 1)
    assert rejected(raw).code == "doctype"


def test_doctype_words_inside_a_comment_are_not_a_doctype() -> None:
    raw = packet().replace(b"<Who>", b"<!-- <!DOCTYPE x> <!ENTITY y 'z'> --><Who>", 1)
    assert examine(raw).summary["ivorn"] == "ivo://test.burstbus/unit#pkt-1"


def test_xinclude_is_not_processed() -> None:
    raw = packet(
        what_extra='\n    <xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
        'href="file:///etc/passwd" parse="text"/>'
    )
    root = parse_xml(raw, LIMIT)
    assert b"root:" not in etree.tostring(root)
    assert rejected(raw).code == "schema"


def test_truncated_xml_says_not_xml_with_line() -> None:
    raw = packet()[:-40]
    exc = rejected(raw)
    assert exc.code == "not_xml"
    assert exc.reason.startswith("not XML: ")
    assert "line" in exc.reason


def test_binary_garbage_is_not_xml() -> None:
    exc = rejected(bytes(range(256)) * 4)
    assert exc.code == "not_xml"


def test_unbalanced_tags_are_not_xml() -> None:
    exc = rejected(b"<a>\n<b>\n</a>")
    assert exc.code == "not_xml"
    assert "line 3" in exc.reason


@pytest.mark.parametrize("raw", [b"", b"   \n\t  "])
def test_empty_is_refused(raw: bytes) -> None:
    exc = rejected(raw)
    assert exc.code == "empty"


def test_oversize_is_refused_before_parsing() -> None:
    raw = b"\x00" * 2_000_000  # garbage: would be not_xml if it were parsed
    exc = rejected(raw)
    assert exc.code == "too_large"
    assert exc.reason == "too large: 2,000,000 bytes > limit 1,048,576"


def test_size_limit_is_inclusive() -> None:
    raw = packet()
    assert examine(raw, max_bytes=len(raw)).sha256
    assert rejected(raw, max_bytes=len(raw) - 1).code == "too_large"


def test_str_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        parse_xml(packet().decode(), LIMIT)  # type: ignore[arg-type]


def test_bytearray_and_memoryview_are_accepted() -> None:
    raw = packet()
    assert examine(bytearray(raw)).summary["local_id"] == "pkt-1"
    assert examine(memoryview(raw)).summary["local_id"] == "pkt-1"


def test_rejection_pickles_and_repr() -> None:
    exc = VOEventRejected("unknown role 'foo'", "role")
    back = pickle.loads(pickle.dumps(exc))
    assert (back.reason, back.code) == (exc.reason, exc.code)
    assert "role" in repr(exc)
    with pytest.raises(ValueError):
        VOEventRejected("x", "no-such-code")
