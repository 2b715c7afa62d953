"""Root/namespace/version checks, schema validation, 1.1 translation, tolerated quirks."""

from __future__ import annotations

import threading

import pytest
from lxml import etree

from burstbus.voevent import VOEventRejected, examine, parse_xml, validate, voevent_version
from burstbus.voevent.schema import STC_1_30_NS, V1_1_NS

from .builders import line_of, packet

LIMIT = 1_048_576


def reject(raw: bytes) -> VOEventRejected:
    with pytest.raises(VOEventRejected) as info:
        examine(raw)
    return info.value


def test_shipped_schema_is_local_and_imports_nothing() -> None:
    from importlib import resources

    xsd = resources.files("burstbus.voevent").joinpath("schema/VOEvent-v2.0.xsd").read_bytes()
    tree = etree.fromstring(xsd)
    ns = {"xs": "http://www.w3.org/2001/XMLSchema"}
    assert tree.xpath("//xs:import | //xs:include | //xs:redefine", namespaces=ns) == []
    assert tree.get("targetNamespace") == "http://www.ivoa.net/xml/VOEvent/v2.0"


def test_valid_2_0_and_1_1() -> None:
    assert validate(parse_xml(packet(), LIMIT)) == ()
    root11 = parse_xml(packet(version="1.1"), LIMIT)
    assert voevent_version(root11) == "1.1"
    assert validate(root11) == ()


def test_1_1_translation_leaves_the_packet_untouched() -> None:
    raw = packet(version="1.1")
    root = parse_xml(raw, LIMIT)
    before = etree.tostring(root)
    validate(root)
    assert etree.tostring(root) == before
    assert etree.QName(root).namespace == V1_1_NS
    assert root.find(f".//{{{STC_1_30_NS}}}AstroCoordSystem") is not None


def test_1_1_with_gcn_style_swapped_system_id_is_valid() -> None:
    # GCN's Fermi 1.1 packets: id="FK5-UTC-GEO", the STClib name in xlink:href
    raw = packet(version="1.1").replace(b'id="UTC-FK5-GEO"', b'id="FK5-UTC-GEO"')
    raw = raw.replace(b'coord_system_id="UTC-FK5-GEO"', b'coord_system_id="FK5-UTC-GEO"')
    raw = raw.replace(b"<C1>", b'<C1 pos_unit="deg">')
    assert b"CoordSys#UTC-FK5-GEO/" in raw
    examined = examine(raw)
    assert examined.summary["position"]["system"] == "FK5-UTC-GEO"


def test_invalid_1_1_is_refused_with_its_line() -> None:
    raw = packet(version="1.1", what_extra="\n    <Bogus/>")
    exc = reject(raw)
    assert exc.code == "schema"
    assert exc.reason.startswith("schema (VOEvent 1.1 checked in its 2.0 form): line ")
    assert f"line {line_of(raw, '<Bogus')}:" in exc.reason
    assert "Bogus" in exc.reason


def test_1_1_system_not_in_stclib_is_refused() -> None:
    raw = packet(version="1.1", system="UTC-GALACTIC-GEO")
    assert reject(raw).code == "schema"


def test_schema_error_reports_first_error_with_line() -> None:
    raw = packet(what_extra="\n    <Bogus/>\n    <AlsoBogus/>")
    exc = reject(raw)
    assert exc.code == "schema"
    line = line_of(raw, "<Bogus/>")
    assert exc.reason.startswith(f"schema: line {line}: Element 'Bogus'"), exc.reason


def test_schema_error_in_wherewhen() -> None:
    raw = packet(ra="not-a-number")
    exc = reject(raw)
    assert exc.code == "schema"
    assert f"line {line_of(raw, '<C1>')}:" in exc.reason
    assert "C1" in exc.reason


def test_bad_cite_type_is_a_schema_error() -> None:
    raw = packet(citations=[("ivo://a/b#c", "likes")])
    assert reject(raw).code == "schema"


def test_galactic_system_is_not_valid_2_0() -> None:
    # The 2.0 schema enumerates the coordinate systems; Galactic is not one of them.
    exc = reject(packet(system="UTC-GALACTIC-GEO"))
    assert exc.code == "schema"
    assert "AstroCoordSystem" in exc.reason


def test_no_namespace_is_refused_and_says_none() -> None:
    raw = packet().replace(b"voe:VOEvent", b"VOEvent")
    exc = reject(raw)
    assert exc.code == "version"
    assert "found: none" in exc.reason


def test_other_namespace_is_named() -> None:
    raw = packet().replace(b"http://www.ivoa.net/xml/VOEvent/v2.0", b"urn:not-voevent")
    exc = reject(raw)
    assert exc.code == "version"
    assert "urn:not-voevent" in exc.reason


def test_root_must_be_voevent() -> None:
    exc = reject(b'<voe:Other xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0"/>')
    assert exc.code == "version"
    assert "<Other>" in exc.reason


def test_version_attribute_must_match_namespace() -> None:
    raw = packet().replace(b'version="2.0"', b'version="1.1"')
    assert reject(raw).code == "version"
    raw = packet().replace(b' version="2.0"', b"")
    assert reject(raw).code == "version"


def test_gecam_datatype_and_antares_bool_and_ipn_text_are_tolerated() -> None:
    raw = packet(
        what_extra=(
            '\n    <Param name="EVENT_TIME" datatype="float" value="1.5"/>'
            '\n    <Param name="isRealAlert" dataType="bool" value="true"/>'
            '\n    <Group name="Trigger_ID"><Param name="A" value="1"/>\n      //'
            '<Param name="B" value="0"/>\n    </Group>'
        )
    )
    examined = examine(raw)
    notes = " | ".join(examined.tolerated)
    assert "'datatype'" in notes
    assert "dataType='bool'" in notes
    assert "stray text inside Group" in notes
    assert examined.summary["params"]["TrigID"] == "123456"


def test_quirk_plus_real_error_reports_the_strict_error() -> None:
    raw = packet(what_extra='\n    <Param name="X" datatype="float" value="1"/>\n    <Bogus/>')
    exc = reject(raw)
    assert exc.code == "schema"
    assert f"line {line_of(raw, 'datatype')}:" in exc.reason  # strict check's first error


def test_valid_packets_have_nothing_tolerated() -> None:
    assert examine(packet()).tolerated == ()


def test_validation_from_many_threads_keeps_errors_apart() -> None:
    """Each thread gets its own XMLSchema; errors never leak between concurrent calls."""
    good = packet()
    bad = {i: packet(what_extra=f"\n    <Bogus{i}/>") for i in range(8)}
    failures: list[str] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        barrier.wait()
        for _ in range(150):
            try:
                examine(good)
            except VOEventRejected as exc:  # pragma: no cover - would be the bug
                failures.append(f"good packet refused: {exc.reason}")
            try:
                examine(bad[i])
                failures.append("bad packet accepted")  # pragma: no cover
            except VOEventRejected as exc:
                if f"Bogus{i}'" not in exc.reason:
                    failures.append(f"thread {i} got someone else's error: {exc.reason}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
