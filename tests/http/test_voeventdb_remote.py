"""``voeventdb.remote`` (the PyPI client, unchanged) against a running burstbus.

Every answer is compared with an oracle computed in Python from plain SQL reads of the
projection's tables (``SELECT ... FROM voevent / cite / coord``), not from the query helpers
the server uses, so a wrong WHERE clause cannot agree with itself.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import voeventdb.remote.apiv1 as apiv1
from astropy import units as u
from astropy.coordinates import Angle, SkyCoord
from voeventdb.remote.apiv1 import FilterKeys, OrderValues

from burstbus.events import parse_time
from tests.http.conftest import LATIN1_IVORN, ODD_IVORN, SVOM, SWIFT, Archive

pytestmark = pytest.mark.asyncio(loop_scope="package")


@dataclass
class Row:
    id: int
    ivorn: str
    stream: str
    role: str | None
    authored: str | None
    refs: list[str] = field(default_factory=list)
    position: tuple[float, float] | None = None


def read_rows(path: Any) -> list[Row]:
    """The projection, read with plain SQL."""
    conn = sqlite3.connect(path)
    try:
        rows = {
            vid: Row(vid, ivorn, stream, role, authored)
            for vid, ivorn, stream, role, authored in conn.execute(
                "SELECT id, ivorn, stream, role, author_datetime FROM voevent"
            )
        }
        for vid, ref in conn.execute("SELECT voevent_id, ref_ivorn FROM cite ORDER BY id"):
            rows[vid].refs.append(ref)
        for vid, ra, dec in conn.execute("SELECT voevent_id, ra, dec FROM coord"):
            rows[vid].position = (ra, dec)
    finally:
        conn.close()
    return sorted(rows.values(), key=lambda r: r.id)


def separation(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in degrees (haversine)."""
    ra1, dec1, ra2, dec2 = map(math.radians, (*a, *b))
    h = math.sin((dec2 - dec1) / 2) ** 2 + math.cos(dec1) * math.cos(dec2) * math.sin((ra2 - ra1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


def _values(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _bound(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value)
    if len(text) == 7:  # YYYY-MM
        text += "-01"
    return parse_time(text)


def matches(row: Row, rows: list[Row], filters: dict[str, Any]) -> bool:
    """4pisky's filter semantics, written out plainly."""
    cited = {ref for r in rows for ref in r.refs}
    for key, value in filters.items():
        values = _values(value)
        if key == "authored_since":
            if row.authored is None or parse_time(row.authored) < _bound(value):
                return False
        elif key == "authored_until":
            if row.authored is None or parse_time(row.authored) > _bound(value):
                return False
        elif key == "cited":
            if (row.ivorn in cited) != (str(value).lower() == "true"):
                return False
        elif key == "coord":
            if (row.position is not None) != (str(value).lower() == "true"):
                return False
        elif key == "ref_any":
            if bool(row.refs) != (str(value).lower() == "true"):
                return False
        elif key == "cone":
            ra, dec, radius = value
            if row.position is None or separation(row.position, (ra, dec)) > radius:
                return False
        elif key == "dec_gt":
            if row.position is None or not row.position[1] > float(value):
                return False
        elif key == "dec_lt":
            if row.position is None or not row.position[1] < float(value):
                return False
        elif key == "ivorn_contains":
            if not all(v in row.ivorn for v in values):
                return False
        elif key == "ivorn_prefix":
            if not any(row.ivorn.startswith(v) for v in values):
                return False
        elif key == "ref_contains":
            if not any(v in ref for v in values for ref in row.refs):
                return False
        elif key == "ref_exact":
            if not any(v == ref for v in values for ref in row.refs):
                return False
        elif key == "role":
            if row.role not in values:
                return False
        elif key == "stream":
            if row.stream not in values:
                return False
        else:
            raise AssertionError(f"the oracle does not know {key}")
    return True


def ordered(rows: list[Row], order: str | None) -> list[Row]:
    by_id = sorted(rows, key=lambda r: r.id)
    if order in (None, "id"):
        return by_id
    if order == "-id":
        return by_id[::-1]
    if order == "ivorn":
        return sorted(by_id, key=lambda r: r.ivorn)
    if order == "-ivorn":
        return sorted(by_id, key=lambda r: r.ivorn, reverse=True)
    # author_datetime, ties by id ascending; SQLite puts NULL first ascending, last descending.
    key: Callable[[Row], Any] = lambda r: (r.authored is not None, r.authored or "")  # noqa: E731
    return sorted(by_id, key=key, reverse=order.startswith("-"))


ORDERS = (None, OrderValues.id, OrderValues.id_desc, OrderValues.ivorn, OrderValues.ivorn_desc,
          OrderValues.author_datetime, OrderValues.author_datetime_desc)  # fmt: skip

# Every 4pisky filter, alone, repeated and combined (values as voeventdb.remote takes them).
FILTER_CASES: list[dict[str, Any]] = [
    {},
    {FilterKeys.authored_since: "2026-01"},
    {FilterKeys.authored_since: "2026-01-15T08:00:00"},
    {FilterKeys.authored_since: datetime(2026, 1, 15, 8, 0, 0, tzinfo=UTC)},
    {FilterKeys.authored_until: "2025-12-31"},
    {FilterKeys.authored_until: "2026-01-15T10:00:00+02:00"},
    {FilterKeys.authored_since: "2026-01-01", FilterKeys.authored_until: "2026-01-31T23:59:59"},
    {FilterKeys.cited: "true"},
    {FilterKeys.cited: "false"},
    {FilterKeys.cited: "True"},
    {FilterKeys.cone: (10.0, 20.0, 1.0)},
    {FilterKeys.cone: (0.0, 0.0, 1.0)},  # straddles RA 0/360
    {FilterKeys.cone: (359.0, -0.5, 1.5)},
    {FilterKeys.cone: (0.0, 90.0, 1.0)},  # contains the north pole
    {FilterKeys.cone: (90.0, -89.5, 1.0)},  # the south pole
    {FilterKeys.cone: (123.0, -45.0, 0.05)},
    {FilterKeys.cone: (SkyCoord(45.0 * u.deg, 45.0 * u.deg), Angle(30 * u.arcmin))},
    {FilterKeys.cone: "[300, 60, 180]"},
    {FilterKeys.coord: "true"},
    {FilterKeys.coord: "false"},
    {FilterKeys.dec_greater_than: "0"},
    {FilterKeys.dec_greater_than: -45.0},
    {FilterKeys.dec_less_than: "-45.123"},
    {FilterKeys.dec_greater_than: "-10", FilterKeys.dec_less_than: "10"},
    {FilterKeys.ivorn_contains: "BAT_GRB_Pos"},
    {FilterKeys.ivorn_contains: ["eclairs", "sb2611200"]},  # AND
    {FilterKeys.ivorn_contains: "%25_"},  # literal text, not a LIKE pattern
    {FilterKeys.ivorn_contains: "'2';--"},
    {FilterKeys.ivorn_contains: "é"},
    {FilterKeys.ivorn_prefix: SWIFT},
    {FilterKeys.ivorn_prefix: [SWIFT + "#XRT", SVOM]},  # OR
    {FilterKeys.ivorn_prefix: ODD_IVORN[:-3]},
    {FilterKeys.ref_any: "true"},
    {FilterKeys.ref_any: "false"},
    {FilterKeys.ref_contains: "BAT_GRB_Pos"},
    {FilterKeys.ref_contains: ["never", "wakeup"]},  # OR
    {FilterKeys.ref_exact: SWIFT + "#BAT_GRB_Pos_700000-0"},
    {FilterKeys.ref_exact: [SVOM + "#sb26112001_eclairs-wakeup", "ivo://elsewhere.example/never#seen"]},
    {FilterKeys.role: "observation"},
    {FilterKeys.role: "prediction"},
    {FilterKeys.role: "utility"},
    {FilterKeys.role: "test"},
    {FilterKeys.role: ["utility", "test"]},
    {FilterKeys.stream: "nasa.gsfc.gcn/SWIFT"},
    {FilterKeys.stream: ["org.svom/fsc", "test.example/stream1"]},
    {FilterKeys.stream: "no.such/stream"},
    {FilterKeys.role: "observation", FilterKeys.coord: "true", FilterKeys.dec_greater_than: "0",
     FilterKeys.authored_since: "2026-01"},  # fmt: skip
    {FilterKeys.ivorn_prefix: SWIFT, FilterKeys.cited: "true", FilterKeys.cone: (10.0, 20.0, 5.0)},
]


def oracle_filters(filters: dict[str, Any]) -> dict[str, Any]:
    """The filter values as plain numbers/strings for :func:`matches`."""
    plain = dict(filters)
    cone = plain.get("cone")
    if isinstance(cone, str):
        plain["cone"] = tuple(float(x) for x in cone.strip("[]").split(","))
    elif cone is not None and len(cone) == 2:
        position, radius = cone
        plain["cone"] = (position.ra.deg, position.dec.deg, radius.deg)
    return plain


def case_id(filters: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in filters.items()) or "no-filter"


@pytest.mark.parametrize("filters", FILTER_CASES, ids=[case_id(f) for f in FILTER_CASES])
async def test_count_list_and_maps_match_sql(archive: Archive, filters: dict[str, Any]) -> None:
    rows = read_rows(archive.projections_path)
    plain = oracle_filters(filters)
    expected = [r for r in rows if matches(r, rows, plain)]
    host = archive.url

    got_count = await asyncio.to_thread(apiv1.count, filters, host=host)
    assert got_count == len(expected)

    # Paged by the client (pagesize 4 forces several limit/offset requests), in every order.
    for order in ORDERS:
        got = await asyncio.to_thread(apiv1.list_ivorn, filters, order=order, pagesize=4, n_max=0, host=host)
        assert got == [r.ivorn for r in ordered(expected, order)], order

    cited = Counter(ref for r in rows for ref in r.refs)
    nrefs = await asyncio.to_thread(apiv1.list_ivorn_nrefs, filters, pagesize=5, n_max=0, host=host)
    assert nrefs == [[r.ivorn, len(r.refs)] for r in expected]
    ncites = await asyncio.to_thread(apiv1.list_ivorn_ncites, filters, order="ivorn", n_max=0, host=host)
    assert ncites == [[r.ivorn, cited[r.ivorn]] for r in ordered(expected, "ivorn")]

    roles = await asyncio.to_thread(apiv1.map_role_count, filters, host=host)
    assert roles == dict(Counter(r.role for r in expected))
    streams = await asyncio.to_thread(apiv1.map_stream_count, filters, host=host)
    assert streams == dict(Counter(r.stream for r in expected))
    nested = await asyncio.to_thread(apiv1.map_stream_role_count, filters, host=host)
    want: dict[str, dict[str, int]] = {}
    for r in expected:
        want.setdefault(r.stream, Counter())[str(r.role)] += 1  # type: ignore[index]
    assert nested == {k: dict(v) for k, v in want.items()}
    months = await asyncio.to_thread(apiv1.map_authored_month_count, filters, host=host)
    assert months == dict(Counter(r.authored[:7] if r.authored else "null" for r in expected))


async def test_the_corpus_exercises_every_filter(archive: Archive) -> None:
    """Guard against vacuous comparisons: most cases select some but not all notices."""
    rows = read_rows(archive.projections_path)
    sizes = [sum(matches(r, rows, oracle_filters(f)) for r in rows) for f in FILTER_CASES[1:]]
    assert sum(0 < n < len(rows) for n in sizes) >= len(sizes) - 2
    assert {r.role for r in rows} == {"observation", "prediction", "utility", "test"}
    assert any(r.authored is None for r in rows)


async def test_packet_xml_gives_the_exact_bytes(archive: Archive) -> None:
    for ivorn, raw in archive.submitted.items():
        if ivorn == LATIN1_IVORN:
            continue  # the client re-encodes text as UTF-8 (see the next test)
        got = await asyncio.to_thread(apiv1.packet_xml, ivorn, host=archive.url)
        assert got == raw, ivorn


async def test_packet_xml_serves_the_packets_own_charset(archive: Archive) -> None:
    from urllib.parse import quote_plus

    status, body, response = await archive.get("/apiv1/packet/xml/" + quote_plus(LATIN1_IVORN))
    assert status == 200
    assert body == archive.submitted[LATIN1_IVORN]
    assert response.headers["Content-Type"] == "text/xml; charset=iso-8859-1"
    text = (await asyncio.to_thread(apiv1.packet_xml, LATIN1_IVORN, host=archive.url)).decode("utf-8")
    assert "caf\u00e9 latin-1" in text
    status, _, response = await archive.get("/apiv1/packet/xml/" + quote_plus(ODD_IVORN))
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"


async def test_ivorn_in_path_with_quote_or_quote_plus(archive: Archive) -> None:
    from urllib.parse import quote, quote_plus

    for encode in (quote_plus, lambda s: quote(s, safe="")):
        status, body, _ = await archive.get("/apiv1/packet/xml/" + encode(ODD_IVORN))
        assert status == 200 and body == archive.submitted[ODD_IVORN]


async def test_packet_synopsis_matches_sql(archive: Archive) -> None:
    conn = sqlite3.connect(archive.projections_path)
    try:
        for ivorn in archive.submitted:
            got = await asyncio.to_thread(apiv1.packet_synopsis, ivorn, host=archive.url)
            vid, stream, role, version, author, authored, received = conn.execute(
                "SELECT id, stream, role, version, author_ivorn, author_datetime, received FROM voevent WHERE ivorn = ?",
                (ivorn,),
            ).fetchone()
            voevent = got["voevent"]
            assert (voevent["ivorn"], voevent["stream"], voevent["role"], voevent["version"], voevent["author_ivorn"]) == (
                ivorn, stream, role, version, author)  # fmt: skip
            assert "id" not in voevent and "xml" not in voevent
            assert (parse_time(voevent["author_datetime"]) if voevent["author_datetime"] else None) == (
                parse_time(authored) if authored else None)  # fmt: skip
            assert parse_time(voevent["received"]) == parse_time(received)
            refs = conn.execute("SELECT ref_ivorn, cite_type, description FROM cite WHERE voevent_id = ? ORDER BY id", (vid,))
            assert got["refs"] == [dict(zip(("ref_ivorn", "cite_type", "description"), r, strict=True)) for r in refs]
            coords = conn.execute("SELECT ra, dec, error FROM coord WHERE voevent_id = ?", (vid,)).fetchall()
            assert [(c["ra"], c["dec"], c["error"]) for c in got["coords"]] == coords
            assert isinstance(got["relevant_urls"], list)
    finally:
        conn.close()


async def test_synopsis_parses_with_the_clients_helper(archive: Archive) -> None:
    from voeventdb.remote.helpers import Synopsis

    ivorn = SWIFT + "#XRT_Position_700000-0"
    synopsis = Synopsis(await asyncio.to_thread(apiv1.packet_synopsis, ivorn, host=archive.url))
    assert synopsis.ivorn == ivorn and synopsis.role == "observation"
    assert synopsis.author_datetime == datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
    assert len(synopsis.sky_events) == 1
    assert synopsis.sky_events[0].position.separation(SkyCoord(10.0, 20.0, unit="deg")).deg < 0.01
    assert synopsis.references[0]["ref_ivorn"] == SWIFT + "#BAT_GRB_Pos_700000-0"
    got = await asyncio.to_thread(apiv1.packet_synopsis, ivorn, host=archive.url)
    assert got["relevant_urls"] == [
        "http://www.swift.ac.uk/search/summary.php?obsid=700000",
        "http://gcn.gsfc.nasa.gov/other/700000.swift",
    ]


async def test_citation_network_walks_both_ways(archive: Archive) -> None:
    from voeventdb.remote.apiv1.convenience import citation_network_map

    network = await asyncio.to_thread(_network, citation_network_map, SWIFT + "#BAT_GRB_Pos_700000-0", archive.url)
    assert network[SWIFT + "#BAT_GRB_Pos_700000-0"] == {SWIFT + "#XRT_Position_700000-0", ODD_IVORN}


def _network(fn: Callable[..., Any], ivorn: str, host: str) -> Any:
    import voeventdb.remote

    saved = voeventdb.remote.default_host
    voeventdb.remote.default_host = host  # the convenience helper takes no host argument
    try:
        return fn(ivorn, max_recursion_levels=2)
    finally:
        voeventdb.remote.default_host = saved


async def test_envelope_is_4piskys(archive: Archive) -> None:
    status, body, _ = await archive.get("/apiv1/count?role=test&role=utility&limit=3")
    assert status == 200
    assert set(body) == {"endpoint", "querystring", "result", "url"}
    assert body["endpoint"] == "/apiv1/count"
    assert body["querystring"] == {"role": ["test", "utility"], "limit": ["3"]}
    assert body["url"] == archive.url + "/apiv1/count?role=test&role=utility&limit=3"
    assert isinstance(body["result"], int)

    status, body, _ = await archive.get("/apiv1/list/ivorn?order=-id")
    assert set(body) == {"endpoint", "querystring", "result", "url", "limit"}
    assert body["endpoint"] == "/apiv1/list/ivorn" and body["limit"] == 100

    status, body, _ = await archive.get("/apiv1/packet/synopsis/" + "ivo%3A%2F%2Forg.svom%2Ffsc%23sb26112000_grm-alert")
    assert status == 200
    assert body["endpoint"] == "/apiv1/packet/synopsis/<path:url_encoded_ivorn>"
    assert set(body["result"]) >= {"voevent", "refs", "coords", "relevant_urls"}

    status, body, _ = await archive.get("/apiv1/")
    assert status == 200 and "/apiv1/count" in body["endpoints"]


async def test_limit_offset_and_order_by_hand(archive: Archive) -> None:
    rows = read_rows(archive.projections_path)
    _, body, _ = await archive.get("/apiv1/list/ivorn?order=-author_datetime&limit=5&offset=3")
    assert body["result"] == [r.ivorn for r in ordered(rows, "-author_datetime")][3:8]
    _, body, _ = await archive.get("/apiv1/list/ivorn?limit=0")
    assert body["result"] == [] and body["limit"] == 0
    _, body, _ = await archive.get(f"/apiv1/list/ivorn?offset={len(rows) + 10}")
    assert body["result"] == []
    _, body, _ = await archive.get("/apiv1/list/ivorn?limit=10000")
    assert len(body["result"]) == len(rows)
