"""Golden tests against real FSC notices (``../shared/voevents``, skipped when absent): a request
built from a real notice's facts renders a packet whose identifiers, Packet_Type, notice level,
parameters, position, error, times and citations are the real one's.

The requests are built here from each real packet (what a pipeline would send: burst id,
instrument, type, qualifier, time, position, the params by name); the burst's earlier notices a
real packet cites are given as what the centre had issued before (their IVORNs, instruments).
Nothing of the real packets is copied into the project.
"""

from __future__ import annotations

from typing import Any

import pytest
from lxml import etree

from burstbus.events import parse_time
from burstbus.handlers.notices.decide import Author, Declined, Prior, decide
from burstbus.handlers.notices.instruments import load_instruments
from burstbus.handlers.notices.render import render_notice
from burstbus.handlers.notices.request import parse_notice_request
from burstbus.voevent.examine import examine
from tests.packets import SHARED_VOEVENTS

pytestmark = pytest.mark.skipif(not SHARED_VOEVENTS.is_dir(), reason="../shared/voevents is not here")

REAL = ("svom_eclairs_wakeup.xml", "svom_grm_trigger.xml", "svom_grm_trigger_no_coords.xml", "svom_mxt_initial.xml",
        "svom_retraction_multi_cite.xml")
INSTRUMENTS = load_instruments()
_V = "{http://www.ivoa.net/xml/VOEvent/v2.0}"


def _root(xml: bytes) -> Any:
    return etree.fromstring(xml)


def _text(root: Any, path: str) -> str | None:
    found = root.find(path)
    return None if found is None else (found.text or "").strip()


def request_from(root: Any) -> tuple[dict[str, Any], Author, str]:
    """What a pipeline would have asked for to get this notice, the author, and the stream."""
    ivorn = root.get("ivorn")
    stream, _, local = ivorn[len("ivo://"):].partition("#")
    burst, _, name = local.partition("_")
    kind, _, qualifier = name.partition("_")
    what = root.find("What")
    top = {p.get("name"): p.get("value") for p in what.findall("Param")}
    params = {p.get("name"): p.get("value") for g in what.findall("Group") if g.get("name") != "Svom_Identifiers"
              for p in g.findall("Param")}
    request: dict[str, Any] = {"burst_id": burst, "type": kind, "instrument": top["Instrument"], "params": params,
                               "authored": _text(root, "Who/Date"), "role": root.get("role")}
    if qualifier:
        request["qualifier"] = qualifier
    coords = root.find("WhereWhen/ObsDataLocation/ObservationLocation/AstroCoords")
    request["time"] = _text(coords, "Time/TimeInstant/ISOTime")
    if coords.find("Position2D") is not None:
        request.update(ra=float(_text(coords, "Position2D/Value2/C1") or 0), dec=float(_text(coords, "Position2D/Value2/C2") or 0))
        if coords.find("Position2D/Error2Radius") is not None:
            request["err"] = float(_text(coords, "Position2D/Error2Radius") or 0)
    description = root.find("Citations/Description")
    if description is not None:
        request["reason"] = description.text.strip()
    author = Author(_text(root, "Who/AuthorIVORN") or "", _text(root, "Who/Author/title") or "",
                    _text(root, "Who/Author/shortName") or "", _text(root, "Who/Author/contactName") or "",
                    _text(root, "Who/Author/contactEmail") or "")
    return request, author, stream


def earlier_notices(root: Any) -> list[Prior]:
    """The notices the real packet cites, as the centre would have issued them before it."""
    priors = []
    for i, cited in enumerate(root.findall("Citations/EventIVORN")):
        name = cited.text.strip().partition("#")[2].partition("_")[2]
        instrument = "GRM" if name.startswith("grm") else "ECLAIRs"
        priors.append(Prior(cited.text.strip(), name, instrument, False, i + 1))
    return priors


def what_params(root: Any) -> list[tuple[str | None, str, str | None, str | None, str | None]]:
    """(group, name, value, unit, ucd) of every What param, in order."""
    what = root.find("What")
    found = [(None, p.get("name"), p.get("value"), p.get("unit"), p.get("ucd")) for p in what.findall("Param")]
    for group in what.findall("Group"):
        found += [(group.get("name"), p.get("name"), p.get("value"), p.get("unit"), p.get("ucd")) for p in group.findall("Param")]
    return found


@pytest.mark.parametrize("name", REAL)
def test_a_request_built_from_a_real_notice_renders_that_notice(name: str) -> None:
    raw = (SHARED_VOEVENTS / name).read_bytes()
    real = _root(raw)
    request_value, author, stream = request_from(real)
    request = parse_notice_request(request_value, INSTRUMENTS)
    issued = decide(request.data, request_seq=100, recorded_at="2026-01-01T00:00:00.000000Z", prior=earlier_notices(real),
                    stream=stream, author=author, instruments=INSTRUMENTS)
    assert not isinstance(issued, Declined), issued
    ours_raw = render_notice(issued)
    ours, theirs = examine(ours_raw).summary, examine(raw).summary
    assert ours["ivorn"] == theirs["ivorn"]
    assert ours["role"] == theirs["role"]
    assert what_params(_root(ours_raw)) == what_params(real)  # Packet_Type, Pkt_Ser_Num, level, Burst_Id, every param
    assert ours["position"] == theirs["position"]  # ra, dec, error radius, time, UTC-ICRS-GEO
    assert ours["time"] == theirs["time"]
    assert parse_time(ours["authored"]) == parse_time(theirs["authored"])
    assert ours["citations"] == theirs["citations"]  # the same IVORNs, types and order
    assert ours["citation_description"] == theirs["citation_description"]
    assert (ours["author_ivorn"], _text(_root(ours_raw), "Who/Author/shortName")) == (theirs["author_ivorn"], author.short_name)
    real_how = real.find("How")
    if real_how is not None:
        assert _text(_root(ours_raw), "How/Description") == _text(real, "How/Description")
        assert _root(ours_raw).find("How/Reference").get("uri") == real_how.find("Reference").get("uri")
