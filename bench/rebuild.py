"""Rebuild speed of the projections and cone-search latency of voeventdb, at scale.

Builds (or reuses) a log of N synthetic ``voevent.accepted`` events — ~1.7 KB VOEvent packets
with a position, citations on follow-ups — then times a full ``rebuild`` of every projection
the registry lists, and 1,000 random 1-degree cone searches on the result. Prints a markdown
table against the targets (rebuild ≥ 100,000 events/s, issue 20), where the rebuild's time went,
and the same rebuild at 1/100 and 1/10 of the events (growth; their logs beside ``--dir``).

    python bench/rebuild.py                      # 1,000,000 events in a temporary directory
    python bench/rebuild.py --events 200000 --dir bench/out/rebuild   # keeps the log for next time
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from burstbus.events import Event, RecordedEvent, derived_event_id, format_time
from burstbus.payload import xml_fields
from burstbus.store.projections.base import Projection
from burstbus.store.projections.runner import ProjectionRunner
from burstbus.store.projections.voeventdb import VOEventDBProjection
from burstbus.store.read.voeventdb import cone_search
from burstbus.store.sqlite import SQLiteEventLog

REBUILD_TARGET = 100_000  # events/s, all projections (issue 20; issue 2 asked 50,000)
CONE_P99_TARGET = 20.0  # ms, 1-degree cone over the whole archive

PACKET = """<?xml version="1.0" encoding="UTF-8"?>
<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" version="2.0" role="observation" ivorn="{ivorn}">
  <Who>
    <AuthorIVORN>ivo://{authority}/bench</AuthorIVORN>
    <Date>{authored}</Date>
    <Author><shortName>{mission} ({instrument})</shortName></Author>
  </Who>
  <What>
    <Param name="Packet_Type" value="{packet_type}"/>
    <Param name="TrigID" value="{trigger}" ucd="meta.id"/>
    <Param name="Burst_TJD" value="{tjd}" unit="days" ucd="time"/>
    <Param name="Burst_SOD" value="{sod:.2f}" unit="sec" ucd="time"/>
    <Param name="Burst_Inten" value="{counts}" unit="cts" ucd="phot.count"/>
    <Param name="Integ_Time" value="{integ:.3f}" unit="sec" ucd="time.interval"/>
    <Param name="Rate_Signif" value="{signif:.2f}" unit="sigma" ucd="stat.snr"/>
  </What>
  <WhereWhen>
    <ObsDataLocation>
      <ObservatoryLocation id="GEOLUN"/>
      <ObservationLocation>
        <AstroCoordSystem id="UTC-ICRS-GEO"/>
        <AstroCoords coord_system_id="UTC-ICRS-GEO">
          <Time unit="s"><TimeInstant><ISOTime>{event_time}</ISOTime></TimeInstant></Time>
          <Position2D unit="deg">
            <Name1>RA</Name1><Name2>Dec</Name2>
            <Value2><C1>{ra:.4f}</C1><C2>{dec:.4f}</C2></Value2>
            <Error2Radius>{err:.4f}</Error2Radius>
          </Position2D>
        </AstroCoords>
      </ObservationLocation>
    </ObsDataLocation>
  </WhereWhen>
  <How><Description>{mission} {instrument} position notice (synthetic)</Description></How>
  <Why importance="0.9"><Inference probability="0.9"><Concept>process.variation.burst</Concept></Inference></Why>
{citations}</voe:VOEvent>
"""

CITATIONS = """  <Citations>
    <EventIVORN cite="followup">{ref}</EventIVORN>
    <Description>A refined position for the same trigger</Description>
  </Citations>
"""

#: (stream, mission, instrument, notice name, packet type, typical error radius in degrees)
SOURCES = [
    ("nasa.gsfc.gcn/SWIFT", "Swift", "BAT", "BAT_GRB_Pos", 61, 0.05),
    ("nasa.gsfc.gcn/SWIFT", "Swift", "XRT", "XRT_Position", 67, 0.001),
    ("nasa.gsfc.gcn/Fermi", "Fermi", "GBM", "GBM_Flt_Pos", 111, 8.0),
    ("nasa.gsfc.gcn/Fermi", "Fermi", "GBM", "GBM_Gnd_Pos", 112, 3.0),
    ("org.svom/ECLAIRs", "SVOM", "ECLAIRs", "ECL_Slew_Pos", 202, 0.15),
    ("org.svom/MXT", "SVOM", "MXT", "MXT_Initial_Pos", 204, 0.02),
]
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def synthetic_event(i: int, rng: random.Random) -> Event:
    """The i-th synthetic notice: every third one follows up the previous trigger's notice."""
    stream, mission, instrument, name, packet_type, err0 = SOURCES[i % len(SOURCES)]
    trigger = 100_000 + i // 3
    ivorn = f"ivo://{stream}#{name}_{trigger}-{i}"
    authority = stream.split("/")[0]
    when = EPOCH + timedelta(seconds=i * 30, microseconds=rng.randrange(1_000_000))
    ra, dec = rng.uniform(0.0, 360.0), math.degrees(math.asin(rng.uniform(-1.0, 1.0)))
    err = err0 * rng.uniform(0.5, 1.5)
    refs = []
    if i % 3 and i > 0:
        prev = SOURCES[(i - 1) % len(SOURCES)]
        refs = [{"ivorn": f"ivo://{prev[0]}#{prev[3]}_{trigger}-{i - 1}", "type": "followup"}]
    authored = format_time(when + timedelta(seconds=5))
    event_time = format_time(when)
    raw = PACKET.format(
        ivorn=ivorn,
        authority=authority,
        authored=authored,
        mission=mission,
        instrument=instrument,
        packet_type=packet_type,
        trigger=trigger,
        tjd=20310 + i // 2880,
        sod=(i * 30) % 86400 + rng.random(),
        counts=rng.randrange(100, 100_000),
        integ=rng.choice([0.064, 0.256, 1.024, 4.096]),
        signif=rng.uniform(5, 50),
        event_time=event_time,
        ra=ra,
        dec=dec,
        err=err,
        citations=CITATIONS.format(ref=refs[0]["ivorn"]) if refs else "",
    ).encode()
    data = {
        "ivorn": ivorn,
        "stream": stream,
        "local_id": ivorn.split("#", 1)[1],
        "role": "observation",
        "version": "2.0",
        "author_ivorn": f"ivo://{authority}/bench",
        "authored": authored,
        "citations": refs,
        "position": {
            "ra": round(ra, 4),
            "dec": round(dec, 4),
            "err": round(err, 4),
            "time": event_time,
            "system": "UTC-ICRS-GEO",
        },
        "time": event_time,
        "params": {"Packet_Type": str(packet_type), "TrigID": str(trigger)},
        "instrument": instrument,
        "mission": mission,
        **xml_fields(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "size": len(raw),
        "via": "vtp",
        "peer": "127.0.0.1",
    }
    if refs:
        data["citation_description"] = "A refined position for the same trigger"
    return Event(type="voevent.accepted", data=data, stream=stream, actor="vtp:127.0.0.1",
                 id=derived_event_id("voevent.accepted", ivorn), occurred_at=format_time(when))  # fmt: skip


async def build_log(path: Path, events: int, batch: int, seed: int) -> SQLiteEventLog:
    """Open the log at ``path``, appending synthetic events until it holds ``events``."""
    log = await SQLiteEventLog.open(
        path, synchronous="NORMAL"
    )  # setup only: speed over power-cut safety
    have = (await log.head()).seq
    if have >= events:
        print(f"log: reusing {path} ({have:,} events)")
        return log
    print(f"log: appending {events - have:,} events to {path} ({have:,} already there)", flush=True)
    started = time.perf_counter()
    for start in range(have, events, batch):
        rng = random.Random(
            seed * 1_000_003 + start
        )  # resumable: batch k is the same whenever it is made
        await log.append(
            [synthetic_event(i, rng) for i in range(start, min(start + batch, events))]
        )
        done = min(start + batch, events)
        if done % (batch * 40) == 0 or done == events:
            rate = (done - have) / (time.perf_counter() - started)
            print(f"  {done:,} / {events:,} ({rate:,.0f} events/s)", flush=True)
    return log


def projections() -> list[Projection]:
    """Every projection the registry lists (just voeventdb when there is no registry yet)."""
    try:
        from burstbus.store.projections.registry import all_projections
    except ImportError:
        return [VOEventDBProjection()]
    return all_projections()


def time_applies(chosen: Sequence[Projection]) -> dict[str, float]:
    """Wrap each projection's ``apply`` to add up its own time (the rest is read + commit)."""
    spent = {p.name: 0.0 for p in chosen}
    for projection in chosen:
        inner = projection.apply

        def timed(
            conn: sqlite3.Connection,
            records: Sequence[RecordedEvent],
            _inner=inner,
            _name=projection.name,
        ) -> None:
            t = time.perf_counter()
            _inner(conn, records)
            spent[_name] += time.perf_counter() - t

        projection.apply = timed  # type: ignore[method-assign]
    return spent


async def time_log_read(log: SQLiteEventLog, batch: int) -> float:
    """Seconds to read the whole log in the runner's batches, doing nothing with it."""
    started = time.perf_counter()
    position = 0
    while records := await log.read(position, None, batch):
        position = records[-1].seq
    return time.perf_counter() - started


def time_cones(path: Path, count: int, radius: float, seed: int) -> tuple[list[float], float]:
    """Latencies (ms) of ``count`` random cone searches, and the mean number of hits."""
    rng = random.Random(seed)
    conn = sqlite3.connect(f"file:{path.as_posix()}?mode=ro", uri=True)
    cone_search(conn, 0.0, 0.0, radius)  # warm the statement cache
    latencies, hits = [], 0
    for _ in range(count):
        ra, dec = rng.uniform(0.0, 360.0), math.degrees(math.asin(rng.uniform(-1.0, 1.0)))
        started = time.perf_counter()
        hits += len(cone_search(conn, ra, dec, radius))
        latencies.append((time.perf_counter() - started) * 1000.0)
    conn.close()
    return latencies, hits / count


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100.0 * len(ordered)) - 1))]


@dataclass
class Measured:
    """One rebuild of every projection over a log of ``total`` events, and its cone searches."""

    total: int
    read_s: float
    rebuild_s: float
    spent: dict[str, float]
    latencies: list[float]
    mean_hits: float
    names: list[str]

    @property
    def rate(self) -> float:
        return self.total / self.rebuild_s


async def measure(workdir: Path, args: argparse.Namespace, events: int) -> Measured:
    """Build (or reuse) a log of ``events`` in ``workdir``, time a full rebuild and the cones."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = await build_log(workdir / "log.sqlite", events, args.batch, args.seed)
    total = (await log.head()).seq
    read_s = await time_log_read(log, 5000)
    print(f"log read alone: {read_s:.1f} s ({total / read_s:,.0f} events/s)", flush=True)
    db_path = workdir / "projections.sqlite"
    if not args.in_place:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    chosen = projections()
    runner = await ProjectionRunner.open(db_path, chosen)
    spent = time_applies(chosen)
    print(f"rebuilding {', '.join(p.name for p in chosen)} from {total:,} events ...", flush=True)
    started = time.perf_counter()
    await runner.rebuild(log)  # drops every table (a no-op on a fresh file), then replays
    rebuild_s = time.perf_counter() - started
    await runner.close()
    await log.close()
    latencies, mean_hits = time_cones(db_path, args.cones, args.radius, args.seed)
    return Measured(total, read_s, rebuild_s, spent, latencies, mean_hits, [p.name for p in chosen])


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="events in the log (default 1,000,000)"
    )
    parser.add_argument(
        "--dir",
        type=Path,
        help="working directory; an existing log there is reused (default: a temporary one); "
        "the smaller logs of the growth rows go beside it, in DIR-<events>",
    )
    parser.add_argument(
        "--batch", type=int, default=5000, help="events per append while building the log"
    )
    parser.add_argument("--cones", type=int, default=1000, help="cone searches to time")
    parser.add_argument("--radius", type=float, default=1.0, help="cone radius, degrees")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="rebuild over the existing projections file (includes dropping the old tables)",
    )
    parser.add_argument(
        "--no-growth", action="store_true", help="only --events, not also 1/100 and 1/10 of it"
    )
    args = parser.parse_args(argv)

    temporary = args.dir is None
    base = Path(tempfile.mkdtemp(prefix="burstbus-bench-")) if temporary else args.dir
    sizes = [args.events] if args.no_growth else sorted({max(1, args.events // 100), max(1, args.events // 10), args.events})
    results: list[Measured] = []
    try:
        for events in sizes:
            where = base if events == args.events else base.with_name(f"{base.name}-{events}")
            results.append(await measure(where, args, events))
    finally:
        if temporary:
            shutil.rmtree(base, ignore_errors=True)
            for events in sizes:
                shutil.rmtree(base.with_name(f"{base.name}-{events}"), ignore_errors=True)

    m = results[-1]
    rate, total, rebuild_s, read_s = m.rate, m.total, m.rebuild_s, m.read_s
    p50, p99 = percentile(m.latencies, 50), percentile(m.latencies, 99)
    ok = {True: "yes", False: "**no**"}
    print()
    print(
        f"## bench/rebuild.py: {total:,} events, {len(m.names)} projections, {args.cones} cones of {args.radius:g} deg"
    )
    print()
    print("| figure | target | measured | met |")
    print("|---|---|---|---|")
    print(
        f"| full rebuild, all projections | ≥ {REBUILD_TARGET:,} events/s | {rate:,.0f} events/s ({rebuild_s:.1f} s) | {ok[rate >= REBUILD_TARGET]} |"
    )
    print(f"| cone search {args.radius:g}°, p50 | — | {p50:.2f} ms | |")
    print(
        f"| cone search {args.radius:g}°, p99 | ≤ {CONE_P99_TARGET:g} ms | {p99:.2f} ms | {ok[p99 <= CONE_P99_TARGET]} |"
    )
    print()
    print("Where the rebuild's time went:")
    print()
    print("| part | seconds | µs/event |")
    print("|---|---|---|")
    print(f"| log read alone (measured separately) | {read_s:.1f} | {read_s / total * 1e6:.1f} |")
    for name, seconds in m.spent.items():
        print(f"| `{name}.apply` | {seconds:.1f} | {seconds / total * 1e6:.1f} |")
    rest = rebuild_s - sum(m.spent.values())
    print(
        f"| everything else (read, decode, commit, checkpoint) | {rest:.1f} | {rest / total * 1e6:.1f} |"
    )
    print(
        f"\ncone hits: {m.mean_hits:.1f} on average; max latency {max(m.latencies):.2f} ms, mean {statistics.fmean(m.latencies):.2f} ms"
    )
    if len(results) > 1:
        print()
        print("Growth (the same rebuild at 1/100, 1/10 and all of the load):")
        print()
        print("| events | load | rebuild events/s | µs/event | log read alone µs/event | cone p99 ms |")
        print("|---|---|---|---|---|---|")
        for r in results:
            print(
                f"| {r.total:,} | ×{r.total * 100 // total if total else 0:g} | {r.rate:,.0f} | {r.rebuild_s / r.total * 1e6:.1f} "
                f"| {r.read_s / r.total * 1e6:.1f} | {percentile(r.latencies, 99):.2f} |"
            )
    return 0 if rate >= REBUILD_TARGET and p99 <= CONE_P99_TARGET else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
