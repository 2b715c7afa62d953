"""summarize(): the facts burstbus keeps, for every coordinate system and oddity seen."""

from __future__ import annotations

import copy
import json
import random

import astropy.units as u
import pytest
from astropy.coordinates import FK5, ICRS, Galactic, SkyCoord
from astropy.time import Time
from lxml import etree

from burstbus.voevent import examine, parse_xml, summarize

from .builders import packet

LIMIT = 1_048_576
MAS = 1.0 / 3_600_000.0

KEYS = {
    "ivorn",
    "stream",
    "local_id",
    "role",
    "version",
    "author_ivorn",
    "authored",
    "time",
    "position",
    "citations",
    "citation_description",
    "params",
    "instrument",
    "mission",
}


def summary(raw: bytes, *, validate: bool = True) -> dict:
    """Summary via examine() (schema-valid packets) or straight from the tree."""
    if validate:
        return examine(raw).summary
    return summarize(parse_xml(raw, LIMIT))


def sep_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    a = SkyCoord(ra1 * u.deg, dec1 * u.deg)
    b = SkyCoord(ra2 * u.deg, dec2 * u.deg)
    return float(a.separation(b).deg)


def assert_json_clean(s: dict) -> None:
    text = json.dumps(s, allow_nan=False, sort_keys=True)
    assert json.loads(text) == s


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


def test_fk5_position_is_rotated_to_icrs() -> None:
    s = summary(packet(ra=123.456, dec=-45.678, err=0.05))
    pos = s["position"]
    want = SkyCoord(123.456 * u.deg, -45.678 * u.deg, frame=FK5(equinox="J2000")).icrs
    assert sep_deg(pos["ra"], pos["dec"], want.ra.deg, want.dec.deg) < 0.1 * MAS
    assert pos["err"] == 0.05
    assert pos["system"] == "UTC-FK5-GEO"
    assert pos["time"] == s["time"]
    # FK5 and ICRS differ by tens of milliarcseconds, not more
    assert 1 * MAS < sep_deg(pos["ra"], pos["dec"], 123.456, -45.678) < 100 * MAS


def test_icrs_position_is_kept_as_is() -> None:
    pos = summary(packet(system="UTC-ICRS-GEO", ra=204.8665, dec=45.1204))["position"]
    assert (pos["ra"], pos["dec"]) == (204.8665, 45.1204)


@pytest.mark.parametrize("version", ["2.0", "1.1"])
def test_1_1_stc_namespaced_position(version: str) -> None:
    s = summary(packet(version=version, ra=314.7162, dec=-53.3930, err=0.0009))
    assert s["version"] == version
    assert s["position"]["err"] == 0.0009
    assert abs(s["position"]["dec"] - -53.3930) < 1e-4


def test_galactic_coordinates_are_converted() -> None:
    # Not valid VOEvent 2.0 (the schema enumerates systems), but summarize handles it.
    raw = packet(system="UTC-GALACTIC-GEO", ra=0.0001, dec=0.0, err=0.5)
    pos = summary(raw, validate=False)["position"]
    want = SkyCoord(l=0.0001 * u.deg, b=0.0 * u.deg, frame=Galactic()).icrs
    assert sep_deg(pos["ra"], pos["dec"], want.ra.deg, want.dec.deg) < 0.1 * MAS
    assert abs(pos["ra"] - 266.405) < 0.01 and abs(pos["dec"] - -28.936) < 0.01  # Sgr A*


def test_galactic_via_gal_token_and_another_point() -> None:
    pos = summary(packet(system="UTC-GAL-TOPO", ra=121.17, dec=-21.57), validate=False)["position"]
    want = SkyCoord(l=121.17 * u.deg, b=-21.57 * u.deg, frame=Galactic()).transform_to(ICRS())
    assert sep_deg(pos["ra"], pos["dec"], want.ra.deg, want.dec.deg) < 0.1 * MAS


def test_unsupported_frame_gives_no_position_but_keeps_time() -> None:
    s = summary(packet(system="UTC-FK4-GEO"), validate=False)
    assert s["position"] is None
    assert s["time"] == "2020-06-01T11:59:30.250000Z"


@pytest.mark.parametrize(
    ("unit", "coords", "err", "want_err"),
    [
        ("deg", (10.0, 20.0), 0.5, 0.5),
        ("arcmin", (600.0, 1200.0), 3.0, 0.05),
        ("arcsec", (36000.0, 72000.0), 1.8, 0.0005),
        ("deg-deg", (10.0, 20.0), 0.5, 0.5),
    ],
)
def test_position_units(
    unit: str, coords: tuple[float, float], err: float, want_err: float
) -> None:
    pos = summary(packet(system="UTC-ICRS-GEO", unit=unit, ra=coords[0], dec=coords[1], err=err))[
        "position"
    ]
    assert pos["ra"] == pytest.approx(10.0)
    assert pos["dec"] == pytest.approx(20.0)
    assert pos["err"] == pytest.approx(want_err)


def test_error_radius_own_unit_attribute_wins() -> None:
    raw = packet(system="UTC-ICRS-GEO", err=6.0).replace(
        b"<Error2Radius>", b'<Error2Radius unit="arcmin">'
    )
    assert summary(raw, validate=False)["position"]["err"] == pytest.approx(0.1)


def test_unknown_unit_gives_no_position() -> None:
    assert summary(packet(unit="furlong"))["position"] is None


def test_tt_time_is_converted_to_utc() -> None:
    s = summary(packet(system="TT-ICRS-TOPO", iso_time="2020-06-01T00:01:09.184"))
    assert s["time"] == "2020-06-01T00:00:00.000000Z"  # TT - UTC = 32.184 + 37 s in 2020
    assert s["position"]["time"] == s["time"]


def test_gps_time_is_converted_to_utc() -> None:
    s = summary(packet(system="GPS-ICRS-GEO", iso_time="2020-06-01T00:00:18"))
    assert s["time"] == "2020-06-01T00:00:00.000000Z"  # GPS - UTC = 18 s since 2017


def test_tdb_time_matches_astropy() -> None:
    s = summary(packet(system="TDB-ICRS-BARY", iso_time="2016-10-22T22:21:17"))
    want = Time("2016-10-22T22:21:17", scale="tdb").utc.to_datetime()
    assert s["time"] == want.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_timescale_element_overrides_system() -> None:
    raw = packet(system="UTC-ICRS-GEO", iso_time="2020-06-01T00:01:09.184").replace(
        b"</ISOTime>", b"</ISOTime>\n                <TimeScale>TT</TimeScale>"
    )
    assert summary(raw)["time"] == "2020-06-01T00:00:00.000000Z"


@pytest.mark.parametrize(
    ("iso", "want"),
    [
        ("2026-02-25T09:36:39.104000", "2026-02-25T09:36:39.104000Z"),
        ("2026-02-25T09:36:39Z", "2026-02-25T09:36:39.000000Z"),
        ("2026-02-25T10:17:26+00:00", "2026-02-25T10:17:26.000000Z"),
        ("2026-02-25T12:17:26+02:00", "2026-02-25T10:17:26.000000Z"),
        ("2026-02-25T09:36:39.1234567", "2026-02-25T09:36:39.123456Z"),
        ("2016-12-31T23:59:60.5", "2016-12-31T23:59:59.999999Z"),
        ("2026-01--9130T00:00:00.00", None),  # real GCN LAT packet
        ("2024-01-12T569:03:04.96", None),  # real GCN GECAM packet
        ("yesterday", None),
    ],
)
def test_time_formats(iso: str, want: str | None) -> None:
    s = summary(packet(iso_time=iso), validate=False)
    assert s["time"] == want
    if s["position"] is not None:
        assert s["position"]["time"] == want


@pytest.mark.parametrize(
    ("date", "want"),
    [
        ("2015-06-16T23:29:11", "2015-06-16T23:29:11.000000Z"),
        ("2026-02-25T10:17:26+00:00", "2026-02-25T10:17:26.000000Z"),
        ("2024-08-01T09:07:13.799Z", "2024-08-01T09:07:13.799000Z"),
        ("2026-13-45T99:00:00", None),
        (None, None),
    ],
)
def test_authored(date: str | None, want: str | None) -> None:
    assert summary(packet(who_date=date), validate=False)["authored"] == want


def test_citations_skip_empty_and_keep_description() -> None:
    raw = packet(
        citations=[
            ("ivo://org.svom/fsc#sb1_eclairs-wakeup", "followup"),
            ("", "followup"),  # ANTARES sends an empty one
            ("ivo://gwnet/LVC#S1-1-Preliminary", "supersedes"),
            ("ivo://gwnet/LVC#S1-2-Initial", "retraction"),
        ],
        citation_description="This is the XRT Position for the original BAT trigger.",
    )
    s = summary(raw)
    assert s["citations"] == [
        {"ivorn": "ivo://org.svom/fsc#sb1_eclairs-wakeup", "type": "followup"},
        {"ivorn": "ivo://gwnet/LVC#S1-1-Preliminary", "type": "supersedes"},
        {"ivorn": "ivo://gwnet/LVC#S1-2-Initial", "type": "retraction"},
    ]
    assert s["citation_description"].startswith("This is the XRT Position")


def test_no_citations() -> None:
    s = summary(packet())
    assert s["citations"] == [] and s["citation_description"] is None


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


def test_params_nested_in_groups_and_value_elements() -> None:
    raw = packet(
        params=[("Packet_Type", "209"), ("Instrument", "MXT")],
        groups=[
            ("Svom_Identifiers", [("Notice_Level", "N2m"), ("Burst_Id", "sb26022501")]),
            ("Other", [("Packet_Type", "999")]),  # top level wins
        ],
        what_extra='\n    <Param name="GraceID"><Value>S230527ch</Value></Param>'
        '\n    <Param name="Not_Selected" value="x"/>',
    )
    assert summary(raw)["params"] == {
        "Packet_Type": "209",
        "Instrument": "MXT",
        "GraceID": "S230527ch",
        "Notice_Level": "N2m",
        "Burst_Id": "sb26022501",
    }


def test_missing_role_defaults_to_observation() -> None:
    assert summary(packet(role=None))["role"] == "observation"


@pytest.mark.parametrize(
    ("ivorn", "params", "instrument", "mission"),
    [
        ("ivo://nasa.gsfc.gcn/SWIFT#BAT_GRB_Pos_532871-729", {}, "Swift/BAT", "SWIFT"),
        ("ivo://nasa.gsfc.gcn/SWIFT#XRT_Pos_644259-941", {}, "Swift/XRT", "SWIFT"),
        ("ivo://nasa.gsfc.gcn/SWIFT#UVOT_Pos_1121751-809", {}, "Swift/UVOT", "SWIFT"),
        ("ivo://nasa.gsfc.gcn/SWIFT#Point_Dir_2017-11-28", {}, "Swift", "SWIFT"),
        ("ivo://nasa.gsfc.gcn/Fermi#GBM_Flt_Pos_2026-02-07", {}, "Fermi/GBM", "Fermi"),
        ("ivo://nasa.gsfc.gcn/Fermi#LAT_Offline_Pos_2026", {}, "Fermi/LAT", "Fermi"),
        ("ivo://nasa.gsfc.gcn/INTEGRAL#Wakeup_Pos_010042-0-941", {}, "INTEGRAL", "INTEGRAL"),
        ("ivo://nasa.gsfc.gcn/INTEGRAL#SPIACS_006625-0-443", {}, "INTEGRAL/SPI-ACS", "INTEGRAL"),
        (
            "ivo://org.svom/fsc#sb26021102_eclairs-wakeup",
            {"Instrument": "ECLAIRs"},
            "SVOM/ECLAIRs",
            "SVOM",
        ),
        ("ivo://org.svom/fsc#sb26020401_grm-trigger", {}, "SVOM/GRM", "SVOM"),
        ("ivo://org.svom/fsc#sb26022501_mxt-initial_qf1", {}, "SVOM/MXT", "SVOM"),
        ("ivo://org.svom/fsc#sb26022501_slewing", {}, "SVOM", "SVOM"),
        ("ivo://gwnet/LVC#S230527ch-1-Preliminary", {}, "LVK", "LVK"),
        ("ivo://nasa.gsfc.gcn/GECAM#FLT_Event_2024", {}, "GECAM", "GECAM"),
        ("ivo://nasa.gsfc.gcn/AMON#ICECUBE_GOLD_Event2022", {}, "IceCube", "AMON"),
        ("ivo://gaia.cam.uk/alerts#Gaia16aac", {}, "gaia.cam.uk/alerts", "alerts"),
    ],
)
def test_instrument_and_mission(ivorn: str, params: dict, instrument: str, mission: str) -> None:
    s = summary(packet(ivorn=ivorn, params=list(params.items())))
    assert (s["instrument"], s["mission"]) == (instrument, mission)


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


def test_summarize_on_comment_and_pi_children() -> None:
    raw = packet().replace(b"<Who>", b"<!-- c --><?pi x?><Who>")
    root = parse_xml(raw, LIMIT)
    assert summarize(root)["author_ivorn"] == "ivo://test.burstbus/author"
    assert isinstance(root[0], etree._Comment)


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


def test_ecliptic_coordinates_are_converted() -> None:
    from astropy.coordinates import BarycentricMeanEcliptic

    pos = summary(packet(system="TT-ECLIPTIC-BARY", ra=250.0, dec=5.0), validate=False)["position"]
    want = SkyCoord(
        lon=250.0 * u.deg, lat=5.0 * u.deg, frame=BarycentricMeanEcliptic(equinox="J2000")
    ).icrs
    assert sep_deg(pos["ra"], pos["dec"], want.ra.deg, want.dec.deg) < 0.1 * MAS
