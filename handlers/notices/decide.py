"""The notice a request becomes, given what the centre already issued for its burst (pure).

Why a decision before any packet: the IVORN's revision counter and the citations depend on
the burst's earlier notices, so they are decided once and recorded (``publication.issued``,
under one id per request) before the packet is rendered and submitted. A crash between the
decision and the submission repeats the submission from the recorded decision — the same
bytes, so the ingest finds the packet it may already hold — never a second decision with
another counter. The decision holds everything the packet says (author, parameters with their
units and UCDs, How), so rendering needs no configuration and re-renders identically even if
the configuration changed in between.

Rules:

* IVORN ``ivo://<stream>#<burst>_<type>[_<qualifier>]``, and ``_r<n>`` for the n-th notice of
  that name in the burst (n ≥ 2); ``Pkt_Ser_Num`` = n.
* Citations: every earlier notice of the burst, in the order they were issued.
  ``supersedes`` when this notice's position is better (smaller error; any position beats
  none) than that earlier notice's from the *same instrument* (a slewing notice supersedes
  the wake-up); ``followup`` otherwise (an MXT position follows the ECLAIRs ones up, as the
  FSC's do). A retraction cites every notice with ``retraction`` and carries its reason.
* A retraction needs something to retract; nothing follows a retraction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .instruments import Instrument
from .kinds import NoticeKind, kind_named


@dataclass(frozen=True)
class Author:
    """``Who`` of every notice, from ``[notices]`` at decision time."""

    ivorn: str
    title: str = ""
    short_name: str = ""
    contact_name: str = ""
    contact_email: str = ""

    def data(self) -> dict[str, str]:
        return {k: v for k, v in (("ivorn", self.ivorn), ("title", self.title), ("short_name", self.short_name),
                                  ("contact_name", self.contact_name), ("contact_email", self.contact_email)) if v}


@dataclass(frozen=True)
class Prior:
    """An earlier notice of the burst, as its ``publication.issued`` recorded it."""

    ivorn: str
    name: str  # the IVORN name part with qualifier: ``mxt-initial_qf1``
    instrument: str
    retraction: bool
    request_seq: int
    time: str | None = None
    ra: float | None = None
    dec: float | None = None
    err: float | None = None

    @staticmethod
    def of(data: Mapping[str, Any]) -> Prior:
        kind = kind_named(str(data.get("type") or ""))
        return Prior(
            ivorn=str(data["ivorn"]), name=str(data.get("name") or ""), instrument=str(data.get("instrument") or ""),
            retraction=bool(kind and kind.retraction), request_seq=int(data.get("request_seq") or 0),
            time=data.get("time"), ra=_float(data.get("ra")), dec=_float(data.get("dec")), err=_float(data.get("err")),
        )


@dataclass(frozen=True)
class Declined:
    """No notice for this request, and why (``publication.declined``)."""

    reason: str


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _better(err: float | None, has_position: bool, than: Prior) -> bool:
    """Is a position with error ``err`` better than ``than``'s? Any position beats none; a
    known error beats an unknown one; otherwise the smaller error."""
    if not has_position:
        return False
    if than.ra is None:
        return True
    if err is None:
        return False
    return than.err is None or err < than.err


def level_of(kind: NoticeKind, instrument: Instrument) -> str:
    return f"N{kind.level}{instrument.letter}"


def decide(
    request: Mapping[str, Any],
    *,
    request_seq: int,
    recorded_at: str,
    prior: Sequence[Prior],
    stream: str,
    author: Author,
    instruments: Mapping[str, Instrument],
) -> dict[str, Any] | Declined:
    """The ``publication.issued`` data for ``request`` (``publication.requested`` data), or why
    not. ``prior``: the burst's notices issued for earlier requests (seq below ``request_seq``),
    in their order; ``recorded_at``: when the request was recorded (``Who/Date`` by default)."""
    kind = kind_named(str(request.get("type") or ""))
    if kind is None:
        return Declined(f"unknown notice type {request.get('type')!r}")
    burst = str(request["burst_id"])
    earlier = [p for p in prior if p.request_seq < request_seq]
    retracted = next((p for p in earlier if p.retraction), None)
    if retracted is not None:
        return Declined(f"burst {burst} was retracted ({retracted.ivorn}): no notice follows a retraction")
    if kind.retraction and not earlier:
        return Declined(f"nothing to retract: no notice of burst {burst} was issued here")
    instrument_name = str(request.get("instrument") or (earlier[0].instrument if earlier else ""))
    instrument = instruments.get(instrument_name.casefold())
    if instrument is None:
        return Declined(f"instrument {instrument_name!r} has no instrument file (any more)")
    position = _position(request, kind, earlier)
    time = request.get("time") or (next((p.time for p in earlier if p.time), None) if kind.retraction else None)
    if time is None:
        return Declined("no event time: the request has none and no earlier notice gives one")
    qualifier = request.get("qualifier")
    name = f"{kind.name}_{qualifier}" if qualifier else kind.name
    revision = 1 + sum(1 for p in earlier if p.name == name)
    ivorn = f"ivo://{stream}#{burst}_{name}" + (f"_r{revision}" if revision > 1 else "")
    if kind.retraction:
        citations = [{"ivorn": p.ivorn, "type": "retraction"} for p in earlier]
    else:
        has_position = "ra" in position
        citations = [
            {"ivorn": p.ivorn,
             "type": "supersedes" if p.instrument == instrument.name and _better(position.get("err"), has_position, p) else "followup"}
            for p in earlier
        ]
    level = level_of(kind, instrument)
    given = request.get("params") or {}
    groups = [
        {"name": group, "params": [{"name": p.name, "value": given[p.name], **({"unit": p.unit} if p.unit else {}),
                                    **({"ucd": p.ucd} if p.ucd else {})} for p in params if p.name in given]}
        for group, params in instrument.groups
    ]
    issued: dict[str, Any] = {
        "request_id": request["request_id"], "request_seq": request_seq, "burst_id": burst,
        "type": kind.name, "name": name, "revision": revision, "ivorn": ivorn, "role": request.get("role") or "observation",
        "packet_type": kind.packet_type, "level": level, "instrument": instrument.name,
        "authored": request.get("authored") or recorded_at, "time": time, **position,
        "groups": [g for g in groups if g["params"]], "citations": citations,
        "author": author.data(),
    }
    if kind.retraction:
        issued["reason"] = request.get("reason") or "retracted by the science centre"
    else:
        issued["how"] = {"description": f"{level} notice, {instrument.how}",
                         **({"reference": instrument.reference} if instrument.reference else {})}
    return issued


def _position(request: Mapping[str, Any], kind: NoticeKind, earlier: Sequence[Prior]) -> dict[str, float]:
    """The request's position; a retraction without one repeats the burst's best."""
    if request.get("ra") is not None:
        found = {"ra": float(request["ra"]), "dec": float(request["dec"])}
        if request.get("err") is not None:
            found["err"] = float(request["err"])
        return found
    if not kind.retraction:
        return {}
    best: Prior | None = None
    for p in earlier:
        if best is None or _better(p.err, p.ra is not None, best):
            best = p if p.ra is not None else best
    if best is None or best.ra is None or best.dec is None:
        return {}
    return {"ra": best.ra, "dec": best.dec, **({"err": best.err} if best.err is not None else {})}
