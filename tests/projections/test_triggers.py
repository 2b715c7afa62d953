"""The triggers projection: rows as the workflow leaves them; rebuild equals incremental."""

from __future__ import annotations

import json
import sqlite3

from burstbus.store.projections.registry import all_projections
from burstbus.store.projections.runner import ProjectionRunner
from tests.bots.conftest import ALICE, BOB, BURST, CAROL, DAVE, TAROT_JID, World


async def test_rows_and_rebuild_equals_incremental(world: World) -> None:
    # sent, denied, expired, failed, and one still waiting
    _, sent = await world.request(ALICE, f"trigger TAROT {BURST} first")
    await world.say(CAROL, f"approve {sent}")
    await world.sync()  # incremental: applied in several batches
    _, denied = await world.request(ALICE, f"trigger TAROT {BURST} second")
    await world.say(BOB, f"deny {denied} clouds")
    _, expired = await world.request(ALICE, f"trigger COLIBRI {BURST} third")
    world.clock.advance(11)
    await world.say(DAVE, f"approve {expired}")
    world.clock.advance(-11)
    await world.sync()
    world.messenger.unreachable.add(TAROT_JID)
    _, failed = await world.request(ALICE, f"trigger TAROT {BURST} fourth")
    await world.say(DAVE, f"approve {failed}")
    await world.request(ALICE, f"trigger TAROT {BURST} fifth")
    await world.sync()

    conn = sqlite3.connect(world.config.projections_path)
    try:
        rows = conn.execute(
            "SELECT note, state, telescope, requested_by, approved_by, denied_by, reason, voevent_ivorn IS NOT NULL, "
            "two_person, params FROM triggers ORDER BY first_seq"
        ).fetchall()
    finally:
        conn.close()
    assert [r[:6] for r in rows] == [
        ("first", "sent", "TAROT", ALICE, CAROL, None),
        ("second", "denied", "TAROT", ALICE, None, BOB),
        ("third", "expired", "COLIBRI", ALICE, None, None),
        ("fourth", "failed", "TAROT", ALICE, DAVE, None),
        ("fifth", "requested", "TAROT", ALICE, None, None),
    ]
    assert rows[1][6] == "clouds" and rows[3][6].startswith("XMPP to tarot@robots.example")
    assert [r[7] for r in rows] == [1, 0, 0, 1, 0]
    assert [r[8] for r in rows] == [1, 1, 0, 1, 1]
    assert json.loads(rows[0][9])["position_ivorn"].endswith(f"#{BURST}_2")

    incremental = await world.core.projections.dump()
    await world.core.projections.rebuild(world.core.log, ["triggers"])
    assert await world.core.projections.dump() == incremental
    fresh = await ProjectionRunner.open(world.config.data_dir / "fresh.sqlite", all_projections())
    try:
        await fresh.catch_up(world.core.log)
        assert (await fresh.dump())["triggers"] == incremental["triggers"]
    finally:
        await fresh.close()
