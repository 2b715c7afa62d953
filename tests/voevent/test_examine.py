"""examine(): the order of checks, IVORN and role rules, and what an accepted packet gives."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from burstbus.voevent import Examined, VOEventRejected, check_ivorn, examine

from .builders import packet


def reject(raw: bytes, **kwargs) -> VOEventRejected:
    with pytest.raises(VOEventRejected) as info:
        examine(raw, **kwargs)
    return info.value


def test_accepted_packet() -> None:
    raw = packet()
    examined = examine(raw)
    assert isinstance(examined, Examined)
    assert examined.sha256 == hashlib.sha256(raw).hexdigest()
    assert examined.root.get("ivorn") == "ivo://test.burstbus/unit#pkt-1"
    assert examined.summary["ivorn"] == "ivo://test.burstbus/unit#pkt-1"
    with pytest.raises(dataclasses.FrozenInstanceError):
        examined.sha256 = "x"  # type: ignore[misc]


def test_missing_ivorn() -> None:
    exc = reject(packet(ivorn=None))
    assert exc.code == "ivorn"
    assert "no ivorn" in exc.reason


@pytest.mark.parametrize(
    ("ivorn", "fragment"),
    [
        ("ivo://nasa.gsfc.gcn/gcn", "IVORN has no local id (#...)"),
        ("ivo://nasa.gsfc.gcn/gcn#", "IVORN has no local id (#...)"),
        ("http://nasa.gsfc.gcn/gcn#1", "does not start with ivo://"),
        ("ivo://#local", "not ivo://authority/path#localid"),
        ("ivo://authority-only#local", "not ivo://authority/path#localid"),
        ("ivo://a/b#has space", "not ivo://authority/path#localid"),
        ("", "no ivorn"),
    ],
)
def test_bad_ivorns(ivorn: str, fragment: str) -> None:
    exc = reject(packet(ivorn=ivorn))
    assert exc.code == "ivorn"
    assert fragment in exc.reason


@pytest.mark.parametrize(
    "ivorn",
    [
        "ivo://nasa.gsfc.gcn/SWIFT#BAT_GRB_Pos_532871-729",
        "ivo://nasa.gsfc.gcn/Fermi#LAT_Initial_Pos_2026-01--9130T00:00:00.00_793795104_0-086",
        "ivo://voevent.4pisky.org/ASASSN#2016-09-25.47_2016fvf_PTSS-16nqb_PS16ejf",
        "ivo://au.edu.swin/utmost/Test_FRB202002012027#x",
    ],
)
def test_good_ivorns(ivorn: str) -> None:
    assert check_ivorn(ivorn) == ivorn


def test_bad_role() -> None:
    exc = reject(packet(role="foo"))
    assert exc.code == "role"
    assert exc.reason.startswith("unknown role 'foo'")


@pytest.mark.parametrize("role", ["observation", "prediction", "utility", "test"])
def test_all_roles(role: str) -> None:
    assert examine(packet(role=role)).summary["role"] == role


def test_order_size_before_parse() -> None:
    assert reject(b"not xml" * 10, max_bytes=20).code == "too_large"


def test_order_namespace_before_ivorn() -> None:
    raw = packet(ivorn=None).replace(b"http://www.ivoa.net/xml/VOEvent/v2.0", b"urn:x")
    assert reject(raw).code == "version"


def test_order_ivorn_before_role_before_schema() -> None:
    raw = packet(ivorn="ivo://a/b", role="foo", what_extra="<Bogus/>")
    assert reject(raw).code == "ivorn"
    raw = packet(role="foo", what_extra="<Bogus/>")
    assert reject(raw).code == "role"
    raw = packet(what_extra="<Bogus/>")
    assert reject(raw).code == "schema"


def test_1_1_packet_accepted() -> None:
    examined = examine(packet(version="1.1"))
    assert examined.summary["version"] == "1.1"
    assert examined.summary["position"] is not None


def test_1_1_without_local_id_is_refused_like_gcn_kill_socket() -> None:
    raw = packet(version="1.1", ivorn="ivo://nasa.gsfc.gcn/gcn", wherewhen=False)
    assert reject(raw).code == "ivorn"
