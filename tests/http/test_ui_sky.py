"""The pure parts of the web pages: sky charts, relative links, filter validation."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from lxml import etree

from burstbus.bridges.http import sky
from burstbus.bridges.http import ui_queries as q
from burstbus.bridges.http.ui import query_string, relative_root


def _numbers(path: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)", path)]


def test_small_circle_is_at_the_radius_everywhere() -> None:
    for ra, dec, radius in [(10, 20, 5), (359.5, 0, 10), (100, 89, 15), (200, -70, 40), (0, 0, 0.0001)]:
        points = sky.small_circle(ra, dec, radius, 72)
        assert len(points) == 72
        for pra, pdec in points:
            assert sky.separation(ra, dec, pra, pdec) == pytest.approx(radius, abs=1e-9)
            assert 0 <= pra < 360 and -90 <= pdec <= 90


def test_mollweide_known_points() -> None:
    # Centre of the map, the poles, the edges of the equator.
    assert sky.allsky_xy(180.0, 0.0) == pytest.approx((0.0, 0.0))
    assert sky.allsky_xy(0.0, 90.0)[1] == pytest.approx(math.sqrt(2))
    assert sky.allsky_xy(0.0, -90.0)[1] == pytest.approx(-math.sqrt(2))
    # 180 degrees east of the central meridian is the left edge (x = -2*sqrt(2)).
    assert sky.mollweide(180.0, 0.0) == pytest.approx((-2 * math.sqrt(2), 0.0))
    # RA increases to the left: RA 190 has a smaller x than RA 170.
    assert sky.allsky_xy(190.0, 10.0)[0] < sky.allsky_xy(170.0, 10.0)[0]
    # The projection is equal-area: the auxiliary angle solves its equation.
    for dec in (-80.0, -33.3, 0.0, 12.0, 60.0, 89.9):
        theta = sky._mollweide_theta(dec)
        assert 2 * theta + math.sin(2 * theta) == pytest.approx(math.pi * math.sin(math.radians(dec)), abs=1e-9)


def test_allsky_svg_is_well_formed_and_escapes_labels() -> None:
    markers = [sky.Marker(359.0, 5.0, 12.0, "wide <GBM> & co"), sky.Marker(123.4, -45.0, 0.2, "best", best=True)]
    svg = sky.allsky_svg(markers, title="GRB <x>")
    root = etree.fromstring(svg.encode())
    assert root.tag.endswith("svg")
    assert "wide &lt;GBM&gt; &amp; co" in svg and "GRB &lt;x&gt;" in svg
    errs = [e for e in root.iter() if (e.get("class") or "").startswith("sky-err")]
    assert len(errs) == 2 and errs[-1].get("class") == "sky-err best"  # the best drawn last, on top


def test_circle_over_the_seam_is_drawn_on_both_edges() -> None:
    svg = sky.allsky_svg([sky.Marker(359.0, 0.0, 10.0, "seam")])
    path = re.search(r'class="sky-err" d="([^"]+)"', svg)
    assert path is not None
    shapes = path.group(1).count("M")
    assert shapes == 2  # one copy beyond each edge, both clipped to the map
    # A circle away from the seam is one shape.
    svg = sky.allsky_svg([sky.Marker(180.0, 0.0, 10.0, "middle")])
    assert re.search(r'class="sky-err" d="([^"]+)"', svg).group(1).count("M") == 1  # type: ignore[union-attr]


def test_circle_around_a_pole_is_a_cap_and_a_huge_one_is_the_complement() -> None:
    svg = sky.allsky_svg([sky.Marker(100.0, 80.0, 15.0, "cap")])
    d = re.search(r'class="sky-err" d="([^"]+)"', svg).group(1)  # type: ignore[union-attr]
    ys = [y for _, y in _numbers(d)]
    top = min(ys)  # SVG y grows downwards: the cap reaches the top of the map (the pole)
    outline = re.search(r'class="sky-outline" d="([^"]+)"', svg).group(1)  # type: ignore[union-attr]
    assert top == pytest.approx(min(y for _, y in _numbers(outline)), abs=0.01)
    svg = sky.allsky_svg([sky.Marker(50.0, 10.0, 120.0, "huge")])
    d = re.search(r'class="sky-err" d="([^"]+)"', svg).group(1)  # type: ignore[union-attr]
    assert d.count("M") == 2 and 'fill-rule="evenodd"' in svg


def test_gnomonic_and_inset() -> None:
    assert sky.gnomonic(10.0, 20.0, 10.0, 20.0) == pytest.approx((0.0, 0.0))
    xi, eta = sky.gnomonic(10.1, 20.0, 10.0, 20.0)  # type: ignore[misc]
    assert xi > 0 and abs(eta) < 0.01  # east is +xi
    assert sky.gnomonic(190.0, -20.0, 10.0, 20.0) is None  # the far side
    assert sky.inset_svg(sky.Marker(1, 2, None)) is None
    assert sky.inset_svg(sky.Marker(1, 2, 20.0)) is None
    svg = sky.inset_svg(sky.Marker(123.41, -45.01, 0.0005, "best", True), [sky.Marker(123.4, -45.0, 0.2, "wide")])
    assert svg is not None
    etree.fromstring(svg.encode())
    assert 'class="sky-err best"' in svg
    assert re.search(r'<text class="sky-label"[^>]*>\d+&quot;</text>', svg)  # a scale bar in arcseconds
    assert sky.angle_text(0.5) == "30'" and sky.angle_text(2.0) == "2°" and sky.angle_text(1 / 3600) == '1"'


def test_sexagesimal() -> None:
    assert sky.ra_hms(0.0) == "00:00:00.0"
    assert sky.ra_hms(123.41) == "08:13:38.4"
    assert sky.ra_hms(359.99999) == "00:00:00.0"  # rounds into the next day, not 24h
    assert sky.dec_dms(-45.01) == "-45:00:36"
    assert sky.dec_dms(-0.5) == "-00:30:00"
    assert sky.dec_dms(89.99999) == "+90:00:00"


def test_relative_root() -> None:
    assert relative_root("", "/") == "./"
    assert relative_root("", "/notices") == "./"
    assert relative_root("/b", "/b/bursts/x") == "../"
    assert relative_root("/a/b", "/a/b/") == "./"


def test_query_string_keeps_filters_and_drops_fragment() -> None:
    items = [("role", "test"), ("offset", "50"), ("fragment", "results"), ("ra", "")]
    assert query_string(items, offset=100) == "?role=test&offset=100"
    assert query_string(items, offset=None) == "?role=test"


def test_notice_query_validation() -> None:
    query = q.NoticeQuery.from_items([("ra", "10"), ("dec", "-5"), ("radius", "2"), ("role", "test"), ("fragment", "results")])
    assert query.filters.cone == q.vdb.Cone(10.0, -5.0, 2.0)
    assert query.filters.role == ("test",)
    with pytest.raises(q.FilterError) as caught:
        q.NoticeQuery.from_items([("ra", "10"), ("dec", "-95"), ("radius", "2")])
    assert caught.value.key == "dec"
    with pytest.raises(q.FilterError) as caught:
        q.NoticeQuery.from_items([("ra", "10"), ("dec", "5"), ("radius", "-2")])
    assert caught.value.key == "radius"
    assert q.NoticeQuery.from_items([("ra", ""), ("role", "")]).filters == q.vdb.Filters()
    # A whole day for "until".
    assert q.NoticeQuery.from_items([("authored_until", "2026-11-20")]).filters.authored_until == "2026-11-20T23:59:59.999999Z"


def test_process_and_log_query_validation() -> None:
    query = q.ProcessQuery.from_items([("status", "failed"), ("status", "queued"), ("status", "failed"), ("date", "2026-11-20")])
    assert query.status == ("failed", "queued")
    where = query.filters().where()  # the read side's one WHERE builder (store/read/where.py)
    assert where.sql() == "date = ? AND status IN (?,?)"
    assert where.params == ["2026-11-20", "failed", "queued"]
    with pytest.raises(q.FilterError):
        q.ProcessQuery.from_items([("burst_id", "x" * 1000)])
    log_query = q.LogQuery.from_items([("type", "voevent.accepted, trigger.sent"), ("type", "ba.command")])
    assert log_query.types == ("voevent.accepted", "trigger.sent", "ba.command")
    with pytest.raises(q.FilterError):
        q.LogQuery.from_items([("type", "a;b")])


# -- issue 16: typed cones, relative times, sort keys, the vendored sky view -----------------


def test_typed_cones_are_read_as_the_bot_reads_them() -> None:
    from burstbus import angles
    from burstbus.bots import parse

    assert parse.parse_ra is angles.parse_ra and parse.AngleError is angles.AngleError  # one parser
    for text, expected in [("12h30m00s +45d00m00s 5arcmin", (187.5, 45.0, 5 / 60)),
                           ("187.5 45 0.1deg", (187.5, 45.0, 0.1)),
                           ("12:30:00 -45:00:00 30'", (187.5, -45.0, 0.5)),
                           ("12 30 00 \u221245 00 00 10\"", (187.5, -45.0, 10 / 3600)),
                           ("187,5 45", (187.5, 45.0, 1.0))]:  # fmt: skip
        cone = angles.parse_cone(text, default_radius=1.0, maximum=180.0)
        assert (cone.ra, cone.dec) == pytest.approx(expected[:2]) and cone.radius == pytest.approx(expected[2]), text
    query = q.NoticeQuery.from_items([("cone", "12h30m00s +45d00m00s 5arcmin")])
    assert query.filters.cone == q.vdb.Cone(187.5, 45.0, 5 / 60)
    query = q.NoticeQuery.from_items([("ra", "12:30:00"), ("dec", "+45d"), ("radius", "30'")])
    assert query.filters.cone == q.vdb.Cone(187.5, 45.0, 0.5)
    for items, key in [([("cone", "400 0 1")], "cone"), ([("ra", "400"), ("dec", "0"), ("radius", "1")], "ra"),
                       ([("ra", "1"), ("dec", "-91"), ("radius", "1")], "dec")]:  # fmt: skip
        with pytest.raises(q.FilterError) as caught:
            q.NoticeQuery.from_items(items)
        assert caught.value.key == key and "outside" in str(caught.value)


def test_sort_keys_are_checked() -> None:
    assert q.NoticeQuery.from_items([]).sort == "-time"
    assert q.NoticeQuery.from_items([("sort", "ra")]).sort == "ra"
    for bad in ("RA", "ra desc", "v.id", "-"):
        with pytest.raises(q.FilterError) as caught:
            q.NoticeQuery.from_items([("sort", bad)])
        assert caught.value.key == "sort"
    assert q.BurstQuery.from_items([]).sort == "-trigger"
    with pytest.raises(q.FilterError):
        q.BurstQuery.from_items([("sort", "random()")])
    assert q.LogQuery.from_items([]).limit == q.LOG_ROWS == 50


def test_relative_time() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 20, 3, 16, 30, tzinfo=UTC)
    assert q.relative_time("2026-11-20T03:04:05.670000Z", now) == "12 min ago"
    assert q.relative_time("2026-11-20T03:16:00Z", now) == "just now"
    assert q.relative_time("2026-11-20T00:10:00Z", now) == "3 h 06 min ago"
    assert q.relative_time("2026-11-19T12:00:00Z", now) == "15 h ago"
    assert q.relative_time("2026-11-10T00:00:00Z", now) == "10 d ago"
    assert q.relative_time("2026-11-20T03:30:00Z", now) == "in 13 min"
    assert q.relative_time("yesterday", now) == "" and q.relative_time(None, now) == ""


def test_sky_view_markers_are_inert_json() -> None:
    text = sky.view_markers([sky.Marker(1.0, 2.0, 0.5, "</script><b>&"), sky.Marker(3.0, 4.0, None, "x", best=True)])
    assert "<" not in text and ">" not in text and "&" not in text
    import json

    assert json.loads(text) == [{"ra": 1.0, "dec": 2.0, "err": 0.5, "label": "</script><b>&", "best": False},
                                {"ra": 3.0, "dec": 4.0, "err": None, "label": "x", "best": True}]  # fmt: skip


def test_vendor_unpacks_only_the_dist_files(tmp_path: Any) -> None:
    import io
    import tarfile

    from burstbus.bridges.http import vendor

    tarball = tmp_path / "aladin-lite-9.9.9.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        for name, data in [("package/dist/aladin.js", b"export default {};"), ("package/LICENSE", b"GPL"),
                           ("package/package.json", b"{}"), ("package/../evil.js", b"x")]:  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    target = tmp_path / "static" / "vendor" / "aladin"
    assert vendor.installed(target) is None
    assert vendor.unpack(tarball, target, "9.9.9") == ["LICENSE", "aladin.js", "aladin.js.gz"]
    import gzip

    assert gzip.decompress((target / "aladin.js.gz").read_bytes()) == b"export default {};"  # served to gzip clients
    assert vendor.installed(target) == "9.9.9"
    assert not (tmp_path / "static" / "vendor" / "evil.js").exists() and not (target / "package.json").exists()
    assert vendor.main(["--check", "--target", str(target)]) == 1  # not the pinned version
    with tarfile.open(tmp_path / "empty.tgz", "w:gz"):
        pass
    with pytest.raises(vendor.VendorError, match="no dist/aladin.js"):
        vendor.unpack(tmp_path / "empty.tgz", tmp_path / "other")
    assert vendor.integrity_of(b"") == "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="
