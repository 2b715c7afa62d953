"""frames: coordinate-system ids, units, and the rotation of a position to ICRS."""

from __future__ import annotations

import astropy.units as u
import pytest
from astropy.coordinates import FK5, ICRS, Galactic, SkyCoord

from burstbus.voevent.frames import angle_factor, matrix, parse_system, to_icrs

from .builders import packet
from .summaries import MAS, sep_deg, summary


@pytest.mark.parametrize(
    ("system_id", "want"),
    [
        ("UTC-FK5-GEO", ("UTC", "FK5", True)),
        ("FK5-UTC-GEO", ("UTC", "FK5", True)),  # GCN Fermi 1.1: tokens swapped
        ("TDB-ICRS-BARY", ("TDB", "ICRS", True)),
        ("utc galactic_ii topo", ("UTC", "GALACTIC", True)),
        ("UTC-FK4-GEO", ("UTC", None, False)),
        ("UTC-GEOD-TOPO", ("UTC", None, False)),
        (None, (None, None, True)),
    ],
)
def test_parse_system(system_id: str | None, want: tuple) -> None:
    assert parse_system(system_id) == want


@pytest.mark.parametrize(
    ("unit", "index", "want"),
    [
        (None, 0, 1.0),
        ("  ", 1, 1.0),
        ("deg", 1, 1.0),
        ("arcmin", 0, 1.0 / 60.0),
        ("deg-arcsec", 1, 1.0 / 3600.0),
        ("Rad", 0, pytest.approx(57.29577951308232)),
        ("furlong", 0, None),
    ],
)
def test_angle_factor(unit: str | None, index: int, want: float | None) -> None:
    assert angle_factor(unit, index) == want


def test_icrs_is_not_rotated_only_wrapped() -> None:
    assert matrix("ICRS") is None
    assert to_icrs("ICRS", 370.0, 10.0) == (10.0, 10.0)


@pytest.mark.parametrize("frame", ["FK5", "GALACTIC", "ECLIPTIC"])
def test_matrices_are_rotations(frame: str) -> None:
    m = matrix(frame)
    assert m is not None
    for i in range(3):
        for j in range(3):
            dot = sum(m[i][k] * m[j][k] for k in range(3))
            assert dot == pytest.approx(1.0 if i == j else 0.0, abs=1e-12)


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


def test_ecliptic_coordinates_are_converted() -> None:
    from astropy.coordinates import BarycentricMeanEcliptic

    pos = summary(packet(system="TT-ECLIPTIC-BARY", ra=250.0, dec=5.0), validate=False)["position"]
    want = SkyCoord(
        lon=250.0 * u.deg, lat=5.0 * u.deg, frame=BarycentricMeanEcliptic(equinox="J2000")
    ).icrs
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


def test_unknown_unit_gives_no_position() -> None:
    assert summary(packet(unit="furlong"))["position"] is None
