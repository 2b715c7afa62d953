"""summarize(): the whole summary, its WhereWhen decisions, and that it never raises."""

from __future__ import annotations

import copy
import random

import pytest

from burstbus.voevent import examine, parse_xml, summarize

from .builders import packet
from .summaries import KEYS, LIMIT, assert_json_clean, sep_deg, summary


def test_keys_and_basic_fields() -> None:
    s = summary(packet(citations=[("ivo://test.burstbus/unit#pkt-0", "followup")]))
    assert set(s) == KEYS
    assert s["ivorn"] == "ivo://test.burstbus/unit#pkt-1"
    assert s["stream"] == "test.burstbus/unit"
    assert s["local_id"] == "pkt-1"
    assert s["role"] == "observation"
    assert s["version"] == "2.0"
    assert s["author_ivorn"] == "ivo://test.burstbus/author"
    assert s["authored"] == "2020-06-01T12:00:00.000000Z"
    assert s["time"] == "2020-06-01T11:59:30.250000Z"
    assert s["params"] == {"Packet_Type": "61", "TrigID": "123456"}
    assert_json_clean(s)


def test_missing_role_defaults_to_observation() -> None:
    assert summary(packet(role=None))["role"] == "observation"


def test_timescale_element_overrides_system() -> None:
    raw = packet(system="UTC-ICRS-GEO", iso_time="2020-06-01T00:01:09.184").replace(
        b"</ISOTime>", b"</ISOTime>\n                <TimeScale>TT</TimeScale>"
    )
    assert summary(raw)["time"] == "2020-06-01T00:00:00.000000Z"


def test_error_radius_own_unit_attribute_wins() -> None:
    raw = packet(system="UTC-ICRS-GEO", err=6.0).replace(
        b"<Error2Radius>", b'<Error2Radius unit="arcmin">'
    )
    assert summary(raw, validate=False)["position"]["err"] == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"ra": 0.0, "dec": 0.0, "err": 0.0}, "GCN/LVK placeholder 0/0"),
        ({"ra": 0.0, "dec": 0.0, "err": 360.0}, "SNEWS placeholder"),
        ({"ra": -1.0, "dec": -1.0, "err": -1.0}, "IPN raw"),
        ({"ra": -999.0, "dec": -999.0, "err": 0.0}, "out of range"),
        ({"ra": 10.0, "dec": 95.0}, "dec out of range"),
        ({"ra": 10.0, "dec": 10.0, "err": 200.0}, "whole sky"),
        ({"ra": "NaN", "dec": 10.0}, "not finite"),
        (
            {
                "where_description": "The RA,Dec coordinates are of the type: unavailable/inappropriate."
            },
            "GCN says unavailable",
        ),
        ({"ra": None}, "no Position2D (LVK)"),
    ],
)
def test_no_position(kwargs: dict, why: str) -> None:
    s = summary(packet(**kwargs))
    assert s["position"] is None, why
    assert s["time"] == "2020-06-01T11:59:30.250000Z", why


@pytest.mark.parametrize("err", [0.0, -1.0, -0.0511])
def test_zero_or_negative_error_means_unknown(err: float) -> None:
    pos = summary(packet(err=err))["position"]
    assert pos is not None and pos["err"] is None


def test_coordinate_kind_from_gcn_description() -> None:
    pos = summary(
        packet(where_description="The RA,Dec coordinates are of the type: pointing_direction.")
    )["position"]
    assert pos["kind"] == "pointing_direction"
    pos = summary(
        packet(where_description="The RA,Dec coordinates are of the type: source_object.")
    )["position"]
    assert pos["kind"] == "source_object"


def test_no_wherewhen() -> None:
    s = summary(packet(wherewhen=False))
    assert s["time"] is None and s["position"] is None


def test_summarize_never_raises_on_mangled_trees() -> None:
    """Delete or garble random parts of a full packet: summarize still returns all keys."""
    base = parse_xml(
        packet(
            citations=[("ivo://a/b#c", "followup")],
            where_description="The RA,Dec coordinates are of the type: source_object.",
        ),
        LIMIT,
    )
    rng = random.Random(1234)
    junk = ["", " ", "nan", "inf", "-1e999", "1e999", "\x7f", "9999-99-99T99:99:99", "#", "ivo://"]
    for _ in range(400):
        root = copy.deepcopy(base)
        elements = [e for e in root.iter() if isinstance(e.tag, str)]
        for el in rng.sample(elements, 4):
            action = rng.randrange(4)
            if action == 0 and el.getparent() is not None:
                el.getparent().remove(el)
            elif action == 1:
                el.text = rng.choice(junk)
            elif action == 2:
                for key in list(el.attrib):
                    el.set(key, rng.choice(junk))
            else:
                el.tag = rng.choice(["Bogus", "Param", "Value2", "C1", "Who"])
        s = summarize(root)
        assert set(s) == KEYS
        assert_json_clean(s)


def test_packet_built_with_voevent_parse() -> None:
    """A packet written by voevent-parse (what many authors use) is accepted and read."""
    import datetime

    import voeventparse as vp

    v = vp.Voevent(stream="test.burstbus/vp", stream_id="42", role=vp.definitions.roles.test)
    vp.set_who(v, date=datetime.datetime(2021, 1, 2, 3, 4, 5), author_ivorn="test.burstbus/a")
    vp.set_author(v, title="unit test", shortName="UT")
    vp.add_where_when(
        v,
        coords=vp.Position2D(
            ra=10.5,
            dec=-20.25,
            err=0.1,
            units="deg",
            system=vp.definitions.sky_coord_system.utc_fk5_geo,
        ),
        obs_time=datetime.datetime(2021, 1, 2, 3, 0, 0, tzinfo=datetime.UTC),
        observatory_location=vp.definitions.observatory_location.geosurface,
    )
    v.What.append(vp.Param(name="TrigID", value="42"))
    raw = vp.dumps(v)
    s = examine(raw).summary
    assert s["ivorn"] == "ivo://test.burstbus/vp#42"
    assert s["role"] == "test"
    assert s["time"] == "2021-01-02T03:00:00.000000Z"
    assert s["authored"] == "2021-01-02T03:04:05.000000Z"
    assert s["params"] == {"TrigID": "42"}
    vp_pos = vp.get_event_position(vp.loads(raw))
    assert sep_deg(s["position"]["ra"], s["position"]["dec"], vp_pos.ra, vp_pos.dec) < 1 / 3600
