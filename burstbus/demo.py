"""``burstbus demo``: a scripted night of alerts, so a newcomer sees every page and message fill.

Each round plays one SVOM burst and one Swift burst the way they unfold on duty: the first
ECLAIRs notice (large error), GRM, then MXT with a small error citing the first notice, a
retraction-free Swift BAT/XRT pair sharing a TrigID, and the SVOM burst's data arriving on
the ground (VHF packets: ECLAIRs, attitude, GRM, MXT per observation, VT), which the
orchestrator turns into pipeline runs for the demo worker (``burstbus/demo_worker.py``).
Every packet goes through the ordinary ingest (``via = "local"``, schema check included) and
every data announcement through the same validation as ``burstbus.in.data``, so what the demo
shows is what production would record.

The packets are rendered from :data:`NOTICE_TEMPLATE` with autoescaping, positions drawn from
a seeded generator: two runs with the same ``--seed`` play the same night (with new IVORNs,
so a second run adds bursts instead of being refused as duplicates).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jinja2

from burstbus.catalogue import VOEVENT_ACCEPTED
from burstbus.handlers.orchestrator.messages import data_event, parse_data_announcement
from burstbus.ingest import Ingest
from burstbus.store.base import EventLog, ReadFilter

NOTICE_TEMPLATE = """<?xml version='1.0' encoding='UTF-8'?>
<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" version="2.0" role="{{ role }}" ivorn="{{ ivorn }}">
  <Who>
    <AuthorIVORN>{{ author }}</AuthorIVORN>
    <Date>{{ authored }}</Date>
    <Author><shortName>burstbus demo</shortName></Author>
  </Who>
  <What>
{%- for name, value in params %}
    <Param name="{{ name }}" value="{{ value }}"/>
{%- endfor %}
  </What>
  <WhereWhen>
    <ObsDataLocation>
      <ObservatoryLocation id="GEOLEO"/>
      <ObservationLocation>
        <AstroCoordSystem id="UTC-ICRS-GEO"/>
        <AstroCoords coord_system_id="UTC-ICRS-GEO">
          <Time unit="s"><TimeInstant><ISOTime>{{ time }}</ISOTime></TimeInstant></Time>
{%- if ra is not none %}
          <Position2D unit="deg">
            <Name1>RA</Name1><Name2>Dec</Name2>
            <Value2><C1>{{ "%.4f"|format(ra) }}</C1><C2>{{ "%.4f"|format(dec) }}</C2></Value2>
            <Error2Radius>{{ "%.4f"|format(err) }}</Error2Radius>
          </Position2D>
{%- endif %}
        </AstroCoords>
      </ObservationLocation>
    </ObsDataLocation>
  </WhereWhen>
{%- if cites %}
  <Citations>
{%- for target in cites %}
    <EventIVORN cite="followup">{{ target }}</EventIVORN>
{%- endfor %}
    <Description>refined localisation</Description>
  </Citations>
{%- endif %}
  <Description>burstbus demo packet: {{ description }}</Description>
</voe:VOEvent>
"""

#: The SVOM packets' IVORN stream: how a later run finds how many rounds were played before.
DEMO_SVOM_STREAM = "burstbus.demo/svom"

_template = jinja2.Environment(autoescape=True, keep_trailing_newline=True).from_string(NOTICE_TEMPLATE)


@dataclass(frozen=True)
class Step:
    """One thing that happens: a packet to ingest, or data to announce."""

    what: str  # "voevent" or "data"
    payload: bytes
    label: str


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-4] + "Z"


def _notice(ivorn: str, author: str, moment: datetime, params: dict[str, str], *, ra: float | None = None,
            dec: float | None = None, err: float | None = None, cites: tuple[str, ...] = (),
            description: str, role: str = "observation") -> bytes:
    return _template.render(
        ivorn=ivorn, author=author, role=role, authored=_time(moment + timedelta(seconds=20)), time=_time(moment),
        params=list(params.items()), ra=ra, dec=dec, err=err, cites=cites, description=description,
    ).encode("utf-8")


def _data(kind: str, burst_id: str, obs_id: str, n: int = 0) -> Step:
    """A data set arriving on the ground, announced as a service would on ``burstbus.in.data``."""
    body: dict[str, Any] = {"burst_id": burst_id, "obs_id": obs_id, "pass_id": "1", "kind": kind,
                            "location": f"file:///demo/vhf/{burst_id}/{kind}-{obs_id}-{n}.dat", "size": 4096 + n}
    return Step("data", json.dumps(body).encode(), f"data {kind} ({burst_id} obs {obs_id})")


def scenario(round_no: int, now: datetime, rng: random.Random) -> list[Step]:
    """One round: an SVOM burst and a Swift burst, with their pipelines, in the order of a night."""
    stamp = now.strftime("%y%m%d")
    svom_burst = f"sb{stamp}{round_no % 100:02d}"
    tag = now.strftime("%Y%m%dT%H%M%S") + f"-{round_no}"
    trigger = now - timedelta(minutes=2)
    ra, dec = rng.uniform(0, 360), rng.uniform(-70, 70)
    svom = f"ivo://{DEMO_SVOM_STREAM}#"
    eclairs = f"{svom}{tag}-eclairs"
    mxt = f"{svom}{tag}-mxt"
    swift_trig = str(1_300_000 + round_no)
    sra, sdec = rng.uniform(0, 360), rng.uniform(-70, 70)
    bat = f"ivo://nasa.gsfc.gcn/SWIFT#BAT_GRB_Pos_{swift_trig}-{tag}"
    xrt = f"ivo://nasa.gsfc.gcn/SWIFT#XRT_Position_{swift_trig}-{tag}"
    obs = f"{round_no:04d}"
    return [
        Step("voevent", _notice(eclairs, "ivo://org.svom/FSC", trigger,
                                {"Packet_Type": "202", "Instrument": "ECLAIRs", "Burst_Id": svom_burst, "Notice_Level": "N1"},
                                ra=ra, dec=dec, err=rng.uniform(0.08, 0.2), description="ECLAIRs trigger"),
             f"SVOM/ECLAIRs alert {svom_burst}"),
        _data("vhf.eclairs", svom_burst, obs),
        Step("voevent", _notice(f"{svom}{tag}-grm", "ivo://org.svom/FSC", trigger + timedelta(seconds=1),
                                {"Packet_Type": "201", "Instrument": "GRM", "Burst_Id": svom_burst},
                                description="GRM trigger (no position)"),
             f"SVOM/GRM notice {svom_burst}"),
        Step("voevent", _notice(bat, "ivo://nasa.gsfc.tan/gcn", trigger + timedelta(seconds=30),
                                {"Packet_Type": "61", "TrigID": swift_trig, "Instrument": "BAT"},
                                ra=sra, dec=sdec, err=0.05, description="Swift-BAT GRB position"),
             f"Swift/BAT trigger {swift_trig}"),
        _data("vhf.attitude", svom_burst, obs),
        _data("vhf.grm", svom_burst, obs),
        Step("voevent", _notice(mxt, "ivo://org.svom/FSC", trigger + timedelta(seconds=90),
                                {"Packet_Type": "209", "Instrument": "MXT", "Burst_Id": svom_burst},
                                ra=ra + rng.uniform(-0.05, 0.05), dec=dec + rng.uniform(-0.05, 0.05), err=0.003,
                                cites=(eclairs,), description="MXT refined position"),
             f"SVOM/MXT position {svom_burst}"),
        _data("vhf.mxt", svom_burst, obs),
        Step("voevent", _notice(xrt, "ivo://nasa.gsfc.tan/gcn", trigger + timedelta(seconds=110),
                                {"Packet_Type": "67", "TrigID": swift_trig, "Instrument": "XRT"},
                                ra=sra + 0.01, dec=sdec - 0.01, err=0.0015, cites=(bat,),
                                description="Swift-XRT position"),
             f"Swift/XRT position {swift_trig}"),
        _data("vhf.vt", svom_burst, obs),
    ]


def rounds(seed: int, first: int = 0, start: datetime | None = None) -> Iterator[list[Step]]:
    """Endless rounds from round ``first``; each happens a minute after the previous one.

    Round numbers make the burst ids (``sbYYMMDDNN``, Swift TrigID), so a run that continues
    an earlier one starts after its rounds and opens new bursts instead of joining old ones.
    """
    rng = random.Random(seed)
    start = start or datetime.now(UTC)
    n = first
    while True:
        yield scenario(n, start + timedelta(minutes=n - first), rng)
        n += 1


async def rounds_played(log: EventLog) -> int:
    """How many rounds earlier demo runs started in this log (one ECLAIRs alert each)."""
    played, after = 0, 0
    wanted = ReadFilter.of([VOEVENT_ACCEPTED], stream=DEMO_SVOM_STREAM)
    while batch := await log.read(after, wanted, limit=1000):
        played += sum(1 for record in batch if str(record.data.get("ivorn", "")).endswith("-eclairs"))
        after = batch[-1].seq
    return played


async def play(step: Step, ingest: Ingest, log: EventLog) -> str:
    """Record one step through the same paths production uses; returns what happened."""
    if step.what == "voevent":
        result = await ingest.submit(step.payload, via="local", peer="demo")
        return f"{step.label}: {result.outcome}"
    announced = parse_data_announcement(step.payload)
    await log.append([data_event(announced, actor="local:demo", event_id=None)])
    return f"{step.label}: recorded"


async def feed(ingest: Ingest, log: EventLog, *, interval: float, rounds_: int, seed: int,
               say: Any = print) -> None:
    """Play ``rounds_`` rounds (0: forever), one step every ``interval`` seconds."""
    first = await rounds_played(log)
    for n, steps in enumerate(rounds(seed, first), start=1):
        for step in steps:
            say(await play(step, ingest, log))
            if interval:
                await asyncio.sleep(interval)
        if rounds_ and n >= rounds_:
            return
