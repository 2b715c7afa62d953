"""times: every time burstbus keeps, in whatever scale, as one UTC string."""

from __future__ import annotations

import pytest
from astropy.time import Time

from burstbus.voevent.times import TIME_SCALES, iso_utc

from .builders import packet
from .summaries import summary


@pytest.mark.parametrize(
    ("iso", "scale", "want"),
    [
        ("2020-06-01T00:01:09.184", "TT", "2020-06-01T00:00:00.000000Z"),
        ("2020-06-01T00:01:09.184", "TDT", "2020-06-01T00:00:00.000000Z"),
        ("2020-06-01T00:00:37", "TAI", "2020-06-01T00:00:00.000000Z"),
        ("2020-06-01T00:00:18", "GPS", "2020-06-01T00:00:00.000000Z"),
        ("2020-06-01T00:00:00", "UT1", None),  # would need IERS tables from the network
        ("2020-06-01T00:00:00", "BOGUS", None),
        (None, "UTC", None),
        ("", "TT", None),
    ],
)
def test_iso_utc_scales(iso: str | None, scale: str, want: str | None) -> None:
    assert iso_utc(iso, scale) == want


def test_time_scales_cover_the_astropy_ones() -> None:
    assert {"UTC", "TT", "TAI", "TDB", "TCG", "TCB", "GPS"} <= TIME_SCALES


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
