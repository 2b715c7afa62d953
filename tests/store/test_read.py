"""The read side (store/read/): typed rows, the one order of a burst's parts, one tolerant
decoding of stored JSON for every caller (API, pages, bot), and the shared WHERE builder."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from burstbus.bots import render
from burstbus.bridges.http import queries as api_queries
from burstbus.bridges.http import ui_queries
from burstbus.store.projections.registry import all_projections
from burstbus.store.read import BurstFilter, ProcessFilter, TriggerFilter, json_list, json_object
from burstbus.store.read import bursts as read_burst
from burstbus.store.read import lists as read_lists
from burstbus.store.read.rows import BurstRow, BurstView, NoticeRow, ProcessRow, TriggerRow

BURST = "sb26120101"


def _insert(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    conn.execute(f"INSERT INTO {table} ({','.join(row)}) VALUES ({','.join('?' * len(row))})", list(row.values()))


def _burst(burst_id: str, instruments: str, last: str = "2026-12-01T03:00:00Z") -> dict[str, Any]:
    return {"burst_id": burst_id, "first_notice_at": "2026-12-01T01:00:00Z", "last_notice_at": last,
            "event_time": "2026-12-01T00:59:00Z", "ra": 10.5, "dec": -5.25, "err": 0.1,
            "best_ivorn": f"ivo://x#{burst_id}-2", "notice_count": 3, "instruments": instruments,
            "retracted": 0, "first_seq": 1, "last_seq": 9}  # fmt: skip


def _notice(ivorn: str, seq: int, at: str) -> dict[str, Any]:
    return {"ivorn": ivorn, "burst_id": BURST, "seq": seq, "rule": "cites", "notice_at": at,
            "instrument": "SVOM/ECLAIRs", "ra": 10.5, "dec": -5.25, "err": 0.1, "retraction": 0}  # fmt: skip


def _process(process: str, obs: str | None, pas: str | None, updated: str) -> dict[str, Any]:
    return {"id": f"{process}/{BURST}/{obs or '-'}/{pas or '-'}", "date": "2026-12-01", "process": process,
            "burst_id": BURST, "obs_id": obs, "pass_id": pas, "pipeline": "p1", "status": "running",
            "attempts": 1, "last_log": None, "first_seen": "2026-12-01T01:00:00Z", "updated_at": updated,
            "retry_requested": None, "last_seq": 5}  # fmt: skip


def _trigger(request_id: str, at: str, params: str) -> dict[str, Any]:
    return {"request_id": request_id, "telescope": "colibri", "burst_id": BURST, "state": "requested",
            "requested_by": "alice@fsc.example", "requested_at": at, "note": None, "params": params,
            "two_person": 1, "expires_at": "2026-12-01T09:00:00Z", "first_seq": 3, "last_seq": 3}  # fmt: skip


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:")
    for projection in all_projections():
        projection.create(db)
    _insert(db, "bursts", _burst(BURST, '["SVOM/ECLAIRs", "Swift/BAT"]'))
    _insert(db, "bursts", _burst("sb-bad", "{not json", last="2026-12-01T04:00:00Z"))
    _insert(db, "bursts", _burst("sb-object", '{"a": 1}', last="2026-12-01T02:00:00Z"))
    # Notices: log order (seq) differs from their own time; two share a time.
    _insert(db, "burst_notices", _notice("ivo://x#late", 7, "2026-12-01T01:00:00Z"))
    _insert(db, "burst_notices", _notice("ivo://x#first", 3, "2026-12-01T02:00:00Z"))
    _insert(db, "burst_notices", _notice("ivo://x#second", 5, "2026-12-01T02:00:00Z"))
    _insert(db, "processes", _process("zeta", "obs1", "1", "2026-12-01T05:00:00Z"))
    _insert(db, "processes", _process("alpha", "obs2", "1", "2026-12-01T01:00:00Z"))
    _insert(db, "processes", _process("alpha", "obs1", "2", "2026-12-01T04:00:00Z"))
    _insert(db, "processes", _process("alpha", "obs1", "1", "2026-12-01T03:00:00Z"))
    _insert(db, "processes", _process("alpha", None, None, "2026-12-01T02:00:00Z"))
    _insert(db, "triggers", _trigger("a" * 32, "2026-12-01T03:00:00Z", '{"exposure": 60}'))
    _insert(db, "triggers", _trigger("c" * 32, "2026-12-01T05:00:00Z", "not json"))
    _insert(db, "triggers", _trigger("b" * 32, "2026-12-01T04:00:00Z", "[1, 2]"))
    db.commit()
    yield db
    db.close()


# -- typed rows ----------------------------------------------------------------------------


def test_a_burst_reads_as_frozen_typed_rows(conn: sqlite3.Connection) -> None:
    view = read_burst.burst_view(conn, BURST)
    assert isinstance(view, BurstView)
    assert isinstance(view.burst, BurstRow) and view.burst.instruments == ("SVOM/ECLAIRs", "Swift/BAT")
    assert view.burst.retracted is False and view.burst.first_seq == 1 and view.burst.last_seq == 9
    assert all(isinstance(n, NoticeRow) and n.retraction is False for n in view.notices)
    assert all(isinstance(p, ProcessRow) for p in view.processes)
    assert all(isinstance(t, TriggerRow) and t.two_person is True for t in view.triggers)
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.burst.burst_id = "other"  # type: ignore[misc]
    assert read_burst.burst_view(conn, "no-such-burst") is None


def test_columns_of_the_rows_are_the_tables_columns(conn: sqlite3.Connection) -> None:
    """A column added to a projection must be added to its row (and vice versa)."""
    for table, row in (("bursts", BurstRow), ("processes", ProcessRow), ("triggers", TriggerRow)):
        columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        assert columns == [f.name for f in dataclasses.fields(row)], table
    notice_columns = {r[1] for r in conn.execute("PRAGMA table_info(burst_notices)")} - {"burst_id"}
    assert notice_columns <= {f.name for f in dataclasses.fields(NoticeRow)}


def test_resolve_burst_id_exact_then_case_insensitive(conn: sqlite3.Connection) -> None:
    assert read_burst.resolve_burst_id(conn, BURST) == BURST
    assert read_burst.resolve_burst_id(conn, BURST.upper()) == BURST
    assert read_burst.resolve_burst_id(conn, "nothing") is None


# -- the one order -------------------------------------------------------------------------

NOTICE_ORDER = ["ivo://x#late", "ivo://x#first", "ivo://x#second"]  # by time, then seq
PROCESS_ORDER = ["alpha/sb26120101/-/-", "alpha/sb26120101/obs1/1", "alpha/sb26120101/obs1/2",
                 "alpha/sb26120101/obs2/1", "zeta/sb26120101/obs1/1"]  # fmt: skip
TRIGGER_ORDER = ["c" * 32, "b" * 32, "a" * 32]  # newest request first


def test_one_order_for_a_bursts_parts(conn: sqlite3.Connection) -> None:
    view = read_burst.burst_view(conn, BURST)
    assert view is not None
    assert [n.ivorn for n in view.notices] == NOTICE_ORDER
    assert read_burst.notice_ivorns(conn, BURST) == NOTICE_ORDER
    assert [p.id for p in view.processes] == PROCESS_ORDER
    assert [t.request_id for t in view.triggers] == TRIGGER_ORDER


def test_every_caller_shows_a_burst_in_the_same_order(conn: sqlite3.Connection) -> None:
    api = api_queries.burst_detail(conn, BURST)
    page = ui_queries.burst(conn, BURST)
    assert api is not None and page is not None
    assert [n["ivorn"] for n in api["notices"]] == [n["ivorn"] for n in page["timeline"]] == NOTICE_ORDER
    assert [p["id"] for p in api["processes"]] == [p["id"] for p in page["processes"]] == PROCESS_ORDER
    assert [t["request_id"] for t in api["triggers"]] == [t["request_id"] for t in page["triggers"]] == TRIGGER_ORDER
    # The bot: its processes list and "latest notices" follow the same rows.
    text = render.processes_list(BURST, read_burst.processes(conn, BURST), "link")
    assert text.index("alpha") < text.index("zeta")
    view = read_burst.burst_view(conn, BURST)
    assert view is not None
    summary = render.burst_summary(view, "link")
    assert summary.index("x#late") < summary.index("x#first") < summary.index("x#second")


def test_missing_parts_of_the_read_model_read_as_empty(conn: sqlite3.Connection) -> None:
    for table in ("voevent", "processes", "triggers"):
        conn.execute(f"DROP TABLE {table}")
    view = read_burst.burst_view(conn, BURST)
    assert view is not None and view.processes == () and view.triggers == ()
    assert [n.ivorn for n in view.notices] == NOTICE_ORDER and view.notices[0].role is None


# -- bad stored JSON: one fallback for every caller ----------------------------------------


@pytest.mark.parametrize(("text", "expected"), [(None, ()), ("", ()), ("{not json", ()), ('{"a": 1}', ()),
                                                ("3", ()), ('["A", "B"]', ("A", "B"))])  # fmt: skip
def test_json_list(text: str | None, expected: tuple[str, ...]) -> None:
    assert json_list(text) == expected


@pytest.mark.parametrize(("text", "expected"), [(None, {}), ("", {}), ("not json", {}), ("[1, 2]", {}),
                                                ('"x"', {}), ('{"a": 1}', {"a": 1})])  # fmt: skip
def test_json_object(text: str | None, expected: dict[str, Any]) -> None:
    assert json_object(text) == expected


def test_bad_json_reads_the_same_for_store_api_pages_and_bot(conn: sqlite3.Connection) -> None:
    # The store: empty instruments, empty params.
    for burst_id in ("sb-bad", "sb-object"):
        row = read_burst.burst(conn, burst_id)
        assert row is not None and row.instruments == ()
    triggers = {t.request_id: t.params for t in read_burst.triggers(conn, BURST)}
    assert triggers == {"a" * 32: {"exposure": 60}, "b" * 32: {}, "c" * 32: {}}
    # The JSON API, one burst and the lists.
    detail = api_queries.burst_detail(conn, "sb-bad")
    assert detail is not None and detail["instruments"] == []
    listed, _ = api_queries.bursts(conn, {}, 10, 0)
    assert {b["burst_id"]: b["instruments"] for b in listed}["sb-bad"] == []
    api_triggers, total = api_queries.triggers(conn, {}, 10, 0)
    assert total == 3 and {t["request_id"]: t["params"] for t in api_triggers} == triggers
    # The pages.
    page = ui_queries.burst(conn, "sb-bad")
    assert page is not None and page["burst"]["instruments"] == []
    rows = ui_queries.bursts(conn, ui_queries.BurstQuery())["rows"]
    assert {b["burst_id"]: b["instruments"] for b in rows}["sb-bad"] == []
    burst_page = ui_queries.burst(conn, BURST)
    assert burst_page is not None and {t["request_id"]: t["params"] for t in burst_page["triggers"]} == triggers
    # The bot.
    bad = read_burst.burst_view(conn, "sb-bad")
    assert bad is not None and "from ?" in render.burst_summary(bad, "link")
    assert "?" in render.burst_line(bad.burst)
    assert {t.request_id: t.params for t in read_lists.recent_triggers(conn, 10)} == triggers


def test_instrument_filter_skips_bad_json_instead_of_failing(conn: sqlite3.Connection) -> None:
    page = read_lists.bursts(conn, BurstFilter(instrument=("Swift/BAT",)))
    assert [b.burst_id for b in page.rows] == [BURST] and page.total == 1


# -- the WHERE builder ---------------------------------------------------------------------


def test_process_filter_exact_and_contains(conn: sqlite3.Connection) -> None:
    exact = read_lists.processes(conn, ProcessFilter(process=("alph",)))
    assert exact.total == 0
    contains = read_lists.processes(conn, ProcessFilter(process_contains="lph", obs_id=("obs1",)), order="process")
    assert [p.id for p in contains.rows] == ["alpha/sb26120101/obs1/2", "alpha/sb26120101/obs1/1"]  # updated desc
    ranged = read_lists.processes(conn, ProcessFilter(since="2026-12-01T03:00:00Z", until="2026-12-01T04:00:00Z"))
    assert {p.id for p in ranged.rows} == {"alpha/sb26120101/obs1/1", "alpha/sb26120101/obs1/2"}
    assert read_lists.process_counts(conn, ProcessFilter(pipeline_contains="p")) == {"running": 5}


def test_values_are_bound_never_spliced(conn: sqlite3.Connection) -> None:
    hostile = "x'); DROP TABLE bursts; --"
    assert read_lists.bursts(conn, BurstFilter(burst_id=(hostile,), burst_id_contains=hostile)).total == 0
    assert read_lists.triggers(conn, TriggerFilter(requested_by=(hostile,))).total == 0
    assert read_burst.burst(conn, BURST) is not None
    where = BurstFilter(since="2026-12-01", burst_id=("a", "b"), retracted=False, has_position=True).where()
    assert where.sql() == ("last_notice_at >= ? AND burst_id IN (?,?) AND retracted = ? AND ra IS NOT NULL")
    assert where.params == ["2026-12-01", "a", "b", 0]


def test_pages_and_totals(conn: sqlite3.Connection) -> None:
    page = read_lists.bursts(conn, BurstFilter(), limit=2, offset=1)
    assert [b.burst_id for b in page.rows] == [BURST, "sb-object"] and page.total == 3
    newest = read_lists.triggers(conn, TriggerFilter(state=("requested",)), limit=1)
    assert [t.request_id for t in newest.rows] == ["c" * 32] and newest.total == 3
    conn.execute("DROP TABLE triggers")
    assert read_lists.triggers(conn, TriggerFilter()).total == 0


def test_a_burst_is_found_by_its_other_names_too() -> None:
    """A notice that joined another mission's burst (rule coincidence) gives that burst its own
    id as an alias: what a BA types (the SVOM id) finds the burst it became part of."""
    from burstbus.events import RecordedEvent
    from burstbus.store.projections.bursts import BurstsProjection

    db = sqlite3.connect(":memory:")
    projection = BurstsProjection()
    projection.create(db)

    def decision(seq: int, ivorn: str, burst: str, alias: str | None = None) -> RecordedEvent:
        data: dict[str, Any] = {"burst_id": burst, "ivorn": ivorn, "rule": "coincidence" if alias else "param:TrigID",
                                "notice": {"notice_at": "2026-12-01T03:00:00Z"}}
        if alias:
            data["alias"] = alias
        return RecordedEvent(seq, f"id-{seq}", "burst.identified", burst, "handler.bursts", "2026-12-01T03:00:00Z",
                             "2026-12-01T03:00:00Z", data, "", "")

    projection.apply(db, [decision(1, "ivo://nasa.gsfc.gcn/Fermi#1", "fermi-792135758"),
                          decision(2, "ivo://org.svom/fsc#sb26120102_eclairs-wakeup", "fermi-792135758", "sb26120102"),
                          decision(3, "ivo://org.svom/fsc#sb26120102_slewing", "fermi-792135758", "sb26120102")])
    assert read_burst.resolve_burst_id(db, "sb26120102") == "fermi-792135758"
    assert read_burst.resolve_burst_id(db, "SB26120102") == "fermi-792135758"
    assert read_burst.resolve_burst_id(db, "fermi-792135758") == "fermi-792135758"
    assert read_burst.resolve_burst_id(db, "sb26120103") is None
    assert db.execute("SELECT count(*) FROM burst_aliases").fetchone()[0] == 1
