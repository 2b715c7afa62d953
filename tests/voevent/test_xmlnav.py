"""xmlnav: namespace-blind steps through the tree that never raise."""

from __future__ import annotations

import pytest
from lxml import etree

from burstbus.voevent import parse_xml, summarize
from burstbus.voevent.xmlnav import child, children, local, number, path, text

from .builders import packet
from .summaries import LIMIT, summary

TREE = etree.fromstring(
    b'<r xmlns:s="urn:stc"><!-- c --><?pi x?><a>  one </a><s:a>two</s:a><b><c> </c></b>'
    b"<n>1.5</n><n>nan</n><n>inf</n><n>x</n></r>"
)


def test_local_names() -> None:
    assert local("{urn:stc}Position2D") == "Position2D"
    assert local("Position2D") == "Position2D"
    assert local(etree.Comment) == ""


def test_child_in_any_namespace_skipping_comments() -> None:
    first = child(TREE, "a")
    assert first is not None and text(first) == "one"
    assert [text(el) for el in children(TREE, "a")] == ["one", "two"]
    assert child(None, "a") is None and children(None, "a") == []
    assert child(TREE, "missing") is None


def test_path_and_text() -> None:
    assert path(TREE, "b", "c") is not None
    assert text(path(TREE, "b", "c")) is None  # blank
    assert path(TREE, "b", "missing", "c") is None
    assert path(None, "b") is None
    assert text(None) is None


def test_number_only_finite_floats() -> None:
    assert [number(el) for el in children(TREE, "n")] == [1.5, None, None, None]
    assert number(None) is None


@pytest.mark.parametrize("version", ["2.0", "1.1"])
def test_1_1_stc_namespaced_position(version: str) -> None:
    s = summary(packet(version=version, ra=314.7162, dec=-53.3930, err=0.0009))
    assert s["version"] == version
    assert s["position"]["err"] == 0.0009
    assert abs(s["position"]["dec"] - -53.3930) < 1e-4


def test_summarize_on_comment_and_pi_children() -> None:
    raw = packet().replace(b"<Who>", b"<!-- c --><?pi x?><Who>")
    root = parse_xml(raw, LIMIT)
    assert summarize(root)["author_ivorn"] == "ivo://test.burstbus/author"
    assert isinstance(root[0], etree._Comment)
