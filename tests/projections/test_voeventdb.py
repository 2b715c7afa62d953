"""The voeventdb projection, driven through a real SQLite log and the projection runner."""

from __future__ import annotations

import math
import random
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from burstbus.events import Event, derived_event_id
from burstbus.payload import xml_bytes, xml_fields
from burstbus.store.projections.runner import ProjectionRunner
from burstbus.store.projections.voeventdb import VOEventDBProjection, zone_of
from burstbus.store.read.voeventdb import (
    Cone,
    Filters,
    cone_search,
    count,
    list_ivorns,
    packet_seq,
    role_counts,
    stream_counts,
    synopsis,
)
from burstbus.store.sqlite import SQLiteEventLog

SWIFT = "nasa.gsfc.gcn/SWIFT"
FERMI = "nasa.gsfc.gcn/Fermi"


def packet(ivorn: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<voe:VOEvent ivorn="{ivorn}" role="observation" version="2.0"/>\n'.encode()


def accepted(
    ivorn: str,
    *,
    position: tuple[float, float] | None = None,
    err: float | None = 0.05,
    role: str = "observation",
    authored: str | None = "2024-05-01T12:00:00.000000Z",
    citations: Sequence[tuple[str, str]] = (),
    description: str | None = None,
    raw: bytes | None = None,
    event_id: str | None = None,
) -> Event:
    """A ``voevent.accepted`` event shaped as the ingest writes it."""
    stream = ivorn.split("#")[0][len("ivo://") :]
    raw = packet(ivorn) if raw is None else raw
    data: dict[str, Any] = {
        "ivorn": ivorn,
        "stream": stream,
        "local_id": ivorn.split("#")[-1],
        "role": role,
        "version": "2.0",
        "author_ivorn": "ivo://nasa.gsfc.tan/gcn",
        "authored": authored,
        "citations": [{"ivorn": ref, "type": kind} for ref, kind in citations],
        "position": None,
        "time": "2024-05-01T11:59:00.000000Z",
        "params": {"Packet_Type": "61"},
        "instrument": "BAT",
        "mission": "Swift",
        "sha256": "ab" * 32,
        "size": len(raw),
        "via": "vtp",
        "peer": "127.0.0.1",
        **xml_fields(raw),
    }
    if description is not None:
        data["citation_description"] = description
    if position is not None:
        ra, dec = position
        data["position"] = {
            "ra": ra,
            "dec": dec,
            "err": err,
            "time": "2024-05-01T11:59:00Z",
            "system": "UTC-ICRS-GEO",
        }
    return Event(
        type="voevent.accepted",
        data=data,
        stream=stream,
        actor="vtp:127.0.0.1",
        id=event_id or derived_event_id("voevent.accepted", ivorn),
    )


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[SQLiteEventLog]:
    log_ = await SQLiteEventLog.open(tmp_path / "log.sqlite", synchronous="NORMAL")
    yield log_
    await log_.close()


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[ProjectionRunner]:
    runner_ = await ProjectionRunner.open(tmp_path / "projections.sqlite", [VOEventDBProjection()])
    yield runner_
    await runner_.close()


def read(tmp_path: Path) -> sqlite3.Connection:
    """A plain read connection to the projections file, as the HTTP API would open."""
    return sqlite3.connect(tmp_path / "projections.sqlite")


async def test_rows_citations_and_positions(
    tmp_path: Path, log: SQLiteEventLog, runner: ProjectionRunner
) -> None:
    non_utf8 = b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<voe:VOEvent ivorn="ivo://x/y#latin" caf\xe9/>'
    await log.append(
        [
            accepted(f"ivo://{SWIFT}#BAT_GRB_Pos_1", position=(359.99, -12.5), err=0.05),
            Event(type="voevent.rejected", data={"reason": "schema", "via": "vtp", "peer": "x"}),
            Event(type="process.status", data={"process": "p", "status": "running"}),
            accepted(
                f"ivo://{SWIFT}#XRT_Position_1",
                position=(-0.5, 90.0),
                err=None,
                authored="2024-05-01T14:00:00+02:00",
                citations=[
                    (f"ivo://{SWIFT}#BAT_GRB_Pos_1", "supersedes"),
                    ("ivo://elsewhere/x#1", "followup"),
                ],
                description="XRT refines BAT",
            ),
            accepted("ivo://x/y#latin", raw=non_utf8, authored=None, role="test"),
        ]
    )
    assert await runner.catch_up(log) == 5
    conn = read(tmp_path)
    rows = conn.execute(
        "SELECT id, ivorn, stream, role, version, author_ivorn, author_datetime, received, instrument, "
        "mission, via, sha256, size, seq FROM voevent ORDER BY id"
    ).fetchall()
    assert [r[0] for r in rows] == [1, 4, 5]  # ids are the log seqs; other event types ignored
    first = rows[0]
    assert first[1:7] == (
        f"ivo://{SWIFT}#BAT_GRB_Pos_1",
        SWIFT,
        "observation",
        "2.0",
        "ivo://nasa.gsfc.tan/gcn",
        "2024-05-01T12:00:00.000000Z",
    )
    recorded = (await log.get(1)).recorded_at  # type: ignore[union-attr]
    assert first[7] == recorded
    assert first[8:] == (
        "BAT",
        "Swift",
        "vtp",
        "ab" * 32,
        len(packet(f"ivo://{SWIFT}#BAT_GRB_Pos_1")),
        1,
    )
    assert rows[1][6] == "2024-05-01T12:00:00.000000Z"  # authored normalised to UTC
    assert rows[2][3] == "test" and rows[2][6] is None

    async def packet_xml(ivorn: str) -> bytes | None:
        seq = packet_seq(conn, ivorn)
        return None if seq is None else xml_bytes((await log.get(seq)).data)  # type: ignore[union-attr]

    assert await packet_xml(f"ivo://{SWIFT}#BAT_GRB_Pos_1") == packet(f"ivo://{SWIFT}#BAT_GRB_Pos_1")
    assert await packet_xml("ivo://x/y#latin") == non_utf8  # exact bytes, even when not UTF-8
    assert await packet_xml("ivo://nobody#1") is None

    assert conn.execute(
        "SELECT voevent_id, ref_ivorn, cite_type, description FROM cite ORDER BY id"
    ).fetchall() == [
        (4, f"ivo://{SWIFT}#BAT_GRB_Pos_1", "supersedes", "XRT refines BAT"),
        (4, "ivo://elsewhere/x#1", "followup", "XRT refines BAT"),
    ]
    coords = conn.execute(
        "SELECT voevent_id, ra, dec, error, time, zone, cx, cy, cz FROM coord ORDER BY voevent_id"
    ).fetchall()
    assert [c[:6] for c in coords] == [
        (1, 359.99, -12.5, 0.05, "2024-05-01T11:59:00.000000Z", zone_of(-12.5)),
        (
            4,
            359.5,
            90.0,
            None,
            "2024-05-01T11:59:00.000000Z",
            zone_of(90.0),
        ),  # RA wrapped into [0, 360)
    ]
    for _, ra, dec, *_, cx, cy, cz in coords:
        assert math.isclose(cx * cx + cy * cy + cz * cz, 1.0)
        assert math.isclose(cz, math.sin(math.radians(dec)))
        assert (
            math.isclose(math.atan2(cy, cx) % (2 * math.pi), math.radians(ra), abs_tol=1e-9)
            or dec == 90.0
        )

    summary = synopsis(conn, f"ivo://{SWIFT}#BAT_GRB_Pos_1")
    assert summary is not None
    assert summary.voevent.id == 1 and summary.coords[0].ra == 359.99
    assert summary.cited_by == (f"ivo://{SWIFT}#XRT_Position_1",)
    cites = synopsis(conn, f"ivo://{SWIFT}#XRT_Position_1")
    assert cites is not None and cites.refs[0].cite_type == "supersedes"
    assert synopsis(conn, "ivo://nobody#1") is None
    conn.close()


async def test_an_ivorn_seen_twice_keeps_the_first(
    tmp_path: Path, log: SQLiteEventLog, runner: ProjectionRunner
) -> None:
    ivorn = f"ivo://{SWIFT}#BAT_GRB_Pos_2"
    await log.append(
        [
            accepted(ivorn, position=(10.0, 10.0), citations=[("ivo://a/b#1", "followup")]),
            accepted(
                ivorn,
                position=(20.0, 20.0),
                citations=[("ivo://a/b#2", "followup")],
                event_id="dup-same-batch",
            ),
        ]
    )
    await runner.catch_up(log)
    await log.append(
        [
            accepted(
                ivorn,
                position=(30.0, 30.0),
                citations=[("ivo://a/b#3", "followup")],
                event_id="dup-later",
            )
        ]
    )
    await runner.catch_up(log)
    conn = read(tmp_path)
    assert conn.execute("SELECT id, ivorn FROM voevent").fetchall() == [(1, ivorn)]
    assert conn.execute("SELECT voevent_id, ref_ivorn FROM cite").fetchall() == [(1, "ivo://a/b#1")]
    assert conn.execute("SELECT voevent_id, ra, dec FROM coord").fetchall() == [(1, 10.0, 10.0)]
    conn.close()


async def test_odd_data_is_kept_as_far_as_it_makes_sense(
    tmp_path: Path, log: SQLiteEventLog, runner: ProjectionRunner
) -> None:
    """The ingest validates, but a projection must never stall the runner on odd data."""
    odd: list[dict[str, Any]] = [
        {"position": {"ra": None, "dec": 10.0}},  # (NaN cannot reach the log: canonical JSON)
        {"position": {"ra": 10.0, "dec": 95.0}},
        {"position": {"ra": "12.5", "dec": "-3", "err": "n/a", "time": "not a time"}},
        {"position": {"dec": 10.0}},
        {"position": "somewhere"},
        {"citations": ["ivo://bare/string#1", {"ivorn": ""}, {"ivorn": "ivo://ok/x#1", "type": 3}]},
        {"authored": "last tuesday", "stream": None},
    ]
    events = []
    for i, change in enumerate(odd):
        event = accepted(f"ivo://odd/s#{i}")
        events.append(
            Event(type=event.type, data={**event.data, **change}, stream="odd", id=event.id)
        )
    missing = dict(accepted("ivo://odd/s#noxml").data)
    del missing["xml"]
    events.append(Event(type="voevent.accepted", data=missing, id="noxml"))
    events.append(Event(type="voevent.accepted", data={"role": "observation"}, id="noivorn"))
    await log.append(events)
    await runner.catch_up(log)
    conn = read(tmp_path)
    assert count(conn) == len(odd) + 1  # everything with an IVORN
    assert conn.execute("SELECT voevent_id, ra, dec, error, time FROM coord").fetchall() == [
        (3, 12.5, -3.0, None, None)
    ]
    assert conn.execute("SELECT ref_ivorn, cite_type FROM cite").fetchall() == [
        ("ivo://ok/x#1", None)
    ]
    assert conn.execute("SELECT stream, author_datetime FROM voevent WHERE id = 7").fetchone() == (
        "odd/s",
        None,
    )
    assert packet_seq(conn, "ivo://odd/s#noxml") == 8
    conn.close()


def angular_distance(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Haversine, in degrees: an independent reference for the cone search."""
    p1, p2 = math.radians(dec1), math.radians(dec2)
    dp, dl = p2 - p1, math.radians(ra2 - ra1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


def sky_points(rng: random.Random, n: int) -> list[tuple[float, float]]:
    """Uniform on the sphere, plus crowds at the RA 0/360 seam and around both poles."""
    points = [(rng.uniform(0, 360), math.degrees(math.asin(rng.uniform(-1, 1)))) for _ in range(n)]
    points += [
        (rng.choice([rng.uniform(0, 2), rng.uniform(358, 360)]), rng.uniform(-30, 30))
        for _ in range(n // 4)
    ]
    points += [
        (rng.uniform(0, 360), rng.choice([1, -1]) * rng.uniform(86, 90)) for _ in range(n // 4)
    ]
    points += [(0.0, 0.0), (359.999999, 0.0), (123.0, 90.0), (321.0, -90.0)]
    return points


CONES = [
    (0.0, 0.0, 1.0),
    (0.3, 10.0, 1.0),
    (359.8, -20.0, 1.0),
    (359.99, 0.0, 2.5),
    (180.0, 89.5, 1.0),
    (10.0, 90.0, 1.0),
    (200.0, -89.2, 1.0),
    (45.0, -90.0, 5.0),
    (90.0, 88.0, 3.0),
    (271.0, 45.0, 10.0),
    (0.0, 60.0, 40.0),
    (123.0, -5.0, 120.0),
    (17.0, 3.0, 180.0),
    (-10.0, 5.0, 1.5),  # RA given outside [0, 360)
    (725.0, 5.0, 1.5),
]


async def test_cone_search_agrees_with_brute_force(
    tmp_path: Path, log: SQLiteEventLog, runner: ProjectionRunner
) -> None:
    rng = random.Random(20240501)
    points = sky_points(rng, 2000)
    await log.append([accepted(f"ivo://{SWIFT}#P{i}", position=p) for i, p in enumerate(points)])
    await log.append([accepted(f"ivo://{SWIFT}#nopos{i}") for i in range(20)])
    await runner.catch_up(log)
    conn = read(tmp_path)
    cones = CONES + [
        (rng.uniform(0, 360), rng.uniform(-90, 90), rng.choice([0.5, 1.0, 3.0])) for _ in range(60)
    ]
    cones += [
        (ra + rng.uniform(-0.5, 0.5), dec, 1.0) for ra, dec in rng.sample(points, 30)
    ]  # centred on crowds
    nonempty = 0
    for ra, dec, radius in cones:
        expected = {
            f"ivo://{SWIFT}#P{i}": angular_distance(ra, dec, pra, pdec)
            for i, (pra, pdec) in enumerate(points)
            if angular_distance(ra, dec, pra, pdec) <= radius
        }
        got = cone_search(conn, ra, dec, radius)
        got_ids = {match.ivorn for match in got}
        # Only points within a hair of the rim may differ between the two formulas.
        for ivorn in got_ids ^ set(expected):
            i = int(ivorn.rsplit("P", 1)[1])
            assert abs(angular_distance(ra, dec, *points[i]) - radius) < 1e-9, (
                ra,
                dec,
                radius,
                ivorn,
            )
        for match in got:
            assert math.isclose(match.distance, angular_distance(ra, dec, match.ra, match.dec), abs_tol=1e-9)
        distances = [match.distance for match in got]
        assert distances == sorted(distances)
        assert count(conn, cone=(ra, dec, radius)) == len(got)
        assert set(list_ivorns(conn, Filters(cone=(ra, dec, radius)))) == got_ids
        nonempty += bool(got)
    assert nonempty > len(cones) // 2
    assert [match.ivorn for match in cone_search(conn, 0.0, 0.0, 180.0, limit=3)] == [
        match.ivorn for match in cone_search(conn, 0.0, 0.0, 180.0)[:3]
    ]
    assert len(cone_search(conn, 0.0, 0.0, 180.0)) == len(
        points
    )  # the whole sky, but no position-less notice
    conn.close()


def test_cone_bounds_hold_at_the_seam_and_the_poles() -> None:
    assert Cone(0.2, 0.0, 1.0).ra_ranges()[0][1] == 360.0  # split at the seam
    assert len(Cone(359.5, 0.0, 1.0).ra_ranges()) == 2
    assert Cone(10.0, 89.5, 1.0).ra_ranges() == [(0.0, 360.0)]
    assert Cone(10.0, -89.5, 1.0).ra_ranges() == [(0.0, 360.0)]
    assert Cone(10.0, 0.0, 1.0).ra_ranges()[0][0] < 9.0
    with pytest.raises(ValueError, match="declination"):
        Cone(10.0, 91.0, 1.0)
    with pytest.raises(ValueError, match="negative"):
        Cone(10.0, 0.0, -1.0)
    with pytest.raises(ValueError, match="finite"):
        Cone(float("nan"), 0.0, 1.0)


async def test_incremental_equals_rebuild(tmp_path: Path, log: SQLiteEventLog) -> None:
    rng = random.Random(7)
    path = tmp_path / "projections.sqlite"
    runner = await ProjectionRunner.open(path, [VOEventDBProjection()])
    made = 0
    for batch in range(6):
        events: list[Event] = []
        for _ in range(rng.randint(1, 40)):
            made += 1
            refs = (
                [
                    (
                        f"ivo://{SWIFT}#N{rng.randrange(made)}",
                        rng.choice(["followup", "supersedes", "retraction"]),
                    )
                ]
                if made > 1 and rng.random() < 0.4
                else []
            )
            position = (rng.uniform(0, 360), rng.uniform(-90, 90)) if rng.random() < 0.8 else None
            events.append(accepted(f"ivo://{SWIFT}#N{made}", position=position, citations=refs))
        if batch == 3:  # a repeated IVORN under another event id must stay ignored in both
            events.append(accepted(f"ivo://{SWIFT}#N1", position=(1.0, 1.0), event_id="repeat-N1"))
        events.append(Event(type="process.status", data={"process": "p", "status": "queued"}))
        await log.append(events)
        await runner.catch_up(log, batch_size=rng.choice([3, 7, 50]))
        if batch == 2:  # the runner restarts in the middle
            await runner.close()
            runner = await ProjectionRunner.open(path, [VOEventDBProjection()])
    incremental = await runner.dump()
    assert len(incremental["voeventdb"]["voevent"]) == made
    assert incremental["voeventdb"]["cite"] and incremental["voeventdb"]["coord"]
    await runner.rebuild(log)
    assert await runner.dump() == incremental
    await runner.close()
    # And a fresh file built in one pass agrees too.
    fresh = await ProjectionRunner.open(tmp_path / "fresh.sqlite", [VOEventDBProjection()])
    await fresh.catch_up(log)
    assert await fresh.dump() == incremental
    await fresh.close()


@pytest.fixture
async def catalogue(
    tmp_path: Path, log: SQLiteEventLog, runner: ProjectionRunner
) -> AsyncIterator[sqlite3.Connection]:
    """A small archive whose every filter answer is known by hand."""
    await log.append(
        [
            accepted(
                f"ivo://{SWIFT}#BAT_GRB_Pos_100",
                position=(10.0, 20.0),
                authored="2015-10-09T21:34:19.000000Z",
            ),  # 1
            accepted(
                f"ivo://{SWIFT}#XRT_Position_100",
                position=(10.01, 20.01),
                authored="2015-10-10T00:00:00.000000Z",
                citations=[(f"ivo://{SWIFT}#BAT_GRB_Pos_100", "followup")],
            ),  # 2  # fmt: skip
            accepted(
                f"ivo://{FERMI}#GBM_Alert_7",
                position=(359.9, -30.0),
                authored="2015-11-01T00:00:00.000000Z",
            ),  # 3
            accepted(
                f"ivo://{FERMI}#GBM_Fin_Pos_7",
                position=(0.1, -30.0),
                authored="2016-01-01T00:00:00.000000Z",
                citations=[
                    (f"ivo://{FERMI}#GBM_Alert_7", "supersedes"),
                    ("ivo://not/here#1", "followup"),
                ],
            ),  # 4  # fmt: skip
            accepted(f"ivo://{SWIFT}#BAT_GRB_Pos_101_test", role="test", authored=None),  # 5
            accepted(
                "ivo://org.svom/ECLAIRs#sb24050101_%_x",
                role="utility",
                position=(200.0, 89.9),
                authored="2024-05-01T00:00:00.000000Z",
                citations=[(f"ivo://{SWIFT}#BAT_GRB_Pos_100", "followup")],
            ),  # 6  # fmt: skip
        ]
    )
    await runner.catch_up(log)
    conn = read(tmp_path)
    yield conn
    conn.close()


def ids(conn: sqlite3.Connection, ivorns: list[str]) -> list[int]:
    return [
        conn.execute("SELECT id FROM voevent WHERE ivorn = ?", (i,)).fetchone()[0] for i in ivorns
    ]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, [1, 2, 3, 4, 5, 6]),
        ({"authored_since": "2015-10-10"}, [2, 3, 4, 6]),
        ({"authored_until": "2015-10"}, []),
        ({"authored_since": "2015-10", "authored_until": "2015-10-31T23:59:59"}, [1, 2]),
        ({"authored_since": "2015-10-09T23:34:19+02:00"}, [1, 2, 3, 4, 6]),
        ({"cone": (10.0, 20.0, 0.1)}, [1, 2]),
        ({"cone": "[0, -30, 0.5]"}, [3, 4]),  # across RA 0/360, as 4pisky's JSON string
        ({"cone": (20.0, 89.5, 1.0)}, [6]),  # over the pole
        ({"dec_gt": 0}, [1, 2, 6]),
        ({"dec_lt": 0}, [3, 4]),
        ({"dec_gt": -31, "dec_lt": 20.005}, [1, 3, 4]),
        ({"coord": False}, [5]),
        ({"coord": "true"}, [1, 2, 3, 4, 6]),
        ({"ivorn_contains": "BAT_GRB"}, [1, 5]),
        ({"ivorn_contains": ("BAT", "test")}, [5]),  # repeated: AND
        ({"ivorn_contains": "%"}, [6]),  # literal, not a wildcard
        ({"ivorn_contains": "bat_grb"}, []),  # case-sensitive, as 4pisky on Postgres
        ({"ivorn_prefix": f"ivo://{FERMI}"}, [3, 4]),
        ({"ivorn_prefix": (f"ivo://{FERMI}#GBM_Fin", "ivo://org.svom")}, [4, 6]),  # repeated: OR
        ({"ivorn_prefix": "ivo://%"}, []),
        ({"role": "test"}, [5]),
        ({"role": ("test", "utility")}, [5, 6]),
        ({"stream": SWIFT}, [1, 2, 5]),
        ({"stream": (FERMI, "org.svom/ECLAIRs")}, [3, 4, 6]),
        ({"ref_exact": f"ivo://{SWIFT}#BAT_GRB_Pos_100"}, [2, 6]),
        ({"ref_exact": (f"ivo://{FERMI}#GBM_Alert_7", "ivo://none#0")}, [4]),
        ({"ref_contains": "not/here"}, [4]),
        ({"ref_any": True}, [2, 4, 6]),
        ({"ref_any": "False"}, [1, 3, 5]),
        ({"cited": True}, [1, 3]),
        ({"cited": False}, [2, 4, 5, 6]),
        ({"cited": False, "stream": SWIFT, "ref_any": True}, [2]),
        ({"ivorn_contains": "' OR 1=1 --"}, []),
    ],
)
def test_filters(
    catalogue: sqlite3.Connection, filters: dict[str, Any], expected: list[int]
) -> None:
    found = list_ivorns(catalogue, Filters(**filters))
    assert ids(catalogue, found) == expected
    assert count(catalogue, **filters) == len(expected)


def test_order_limit_offset(catalogue: sqlite3.Connection) -> None:
    conn = catalogue
    assert ids(conn, list_ivorns(conn, order="-id", limit=2)) == [6, 5]
    assert ids(conn, list_ivorns(conn, order="id", limit=2, offset=2)) == [3, 4]
    assert list_ivorns(conn, order="ivorn") == sorted(list_ivorns(conn))
    assert list_ivorns(conn, order="-ivorn") == sorted(list_ivorns(conn), reverse=True)
    assert ids(conn, list_ivorns(conn, Filters(role="observation"), order="-author_datetime")) == [
        4,
        3,
        2,
        1,
    ]
    assert ids(conn, list_ivorns(conn, order="author_datetime"))[1:] == [
        1,
        2,
        3,
        4,
        6,
    ]  # no date sorts first
    with pytest.raises(ValueError, match="order"):
        list_ivorns(conn, order="received; DROP TABLE voevent")
    with pytest.raises(ValueError, match="limit"):
        list_ivorns(conn, limit=-1)


def test_counts(catalogue: sqlite3.Connection) -> None:
    assert stream_counts(catalogue) == {SWIFT: 3, FERMI: 2, "org.svom/ECLAIRs": 1}
    assert role_counts(catalogue) == {"observation": 4, "test": 1, "utility": 1}
    assert role_counts(catalogue, Filters(stream=SWIFT)) == {"observation": 2, "test": 1}


def test_filters_from_a_query_string() -> None:
    filters = Filters.from_query(
        [
            ("role", "test"),
            ("role", "utility"),
            ("cone", "[1, 2, 3]"),
            ("ref_any", "TRUE"),
            ("limit", "10"),
            ("dec_gt", "-5.5"),
        ]
    )
    assert filters.role == ("test", "utility")
    assert filters.cone == Cone(1.0, 2.0, 3.0)
    assert filters.ref_any is True and filters.dec_gt == -5.5
    with pytest.raises(ValueError, match="unknown filter"):
        Filters.from_query([("rol", "test")])


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"role": "observer"}, "role"),
        ({"cone": "[1, 2]"}, "cone"),
        ({"cone": "not json"}, "cone"),
        ({"cone": (1, 95, 1)}, "declination"),
        ({"dec_gt": "north"}, "dec_gt"),
        ({"dec_lt": 91}, "dec_lt"),
        ({"authored_since": "yesterday"}, "authored_since"),
        ({"cited": "maybe"}, "cited"),
    ],
)
def test_invalid_filters_are_refused_with_a_reason(filters: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Filters(**filters)
