"""Notice requests judged, decided and rendered (pure): what a subscriber sees in the packets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from burstbus.handlers.notices.config import NoticesSection, check_notices
from burstbus.handlers.notices.decide import Author, Declined, Prior, decide
from burstbus.handlers.notices.instruments import InstrumentFileError, load_instruments
from burstbus.handlers.notices.render import render_notice
from burstbus.handlers.notices.request import (
    InvalidNoticeRequest,
    parse_notice_json,
    parse_notice_request,
)
from burstbus.voevent.examine import examine
from tests.handlers.notices.requests import BURST, MXT, RETRACTION, SEQUENCE, SLEWING, WAKEUP

INSTRUMENTS = load_instruments()
AUTHOR = Author("ivo://fsc.example/notices", "FSC test centre", "FSC", "Duty BA", "duty@fsc.example")
STREAM = "fsc.example/notices"


def issue_sequence(requests: tuple[dict[str, Any], ...] = SEQUENCE) -> list[dict[str, Any]]:
    """Decide each request after the ones before it, as the publisher does from the log."""
    issued: list[dict[str, Any]] = []
    for seq, value in enumerate(requests, start=10):
        request = parse_notice_request(value, INSTRUMENTS)
        outcome = decide(request.data, request_seq=seq, recorded_at="2026-11-20T05:00:00.000000Z",
                         prior=[Prior.of(d) for d in issued], stream=STREAM, author=AUTHOR, instruments=INSTRUMENTS)
        assert not isinstance(outcome, Declined), outcome
        issued.append(outcome)
    return issued


def params(xml: bytes) -> dict[str, str]:
    root = etree.fromstring(xml)
    return {p.get("name"): p.get("value") for p in root.iter("Param")}


def test_an_alert_sequence_renders_schema_valid_packets_with_svom_identifiers_and_citations() -> None:
    wakeup, slewing, mxt, retraction = issue_sequence()
    ivorns = [d["ivorn"] for d in (wakeup, slewing, mxt, retraction)]
    assert ivorns == [f"ivo://{STREAM}#{BURST}_eclairs-wakeup", f"ivo://{STREAM}#{BURST}_slewing",
                      f"ivo://{STREAM}#{BURST}_mxt-initial_qf2", f"ivo://{STREAM}#{BURST}_retraction"]
    facts = [examine(render_notice(d)).summary for d in (wakeup, slewing, mxt, retraction)]  # the ingest's own check
    assert [f["params"]["Packet_Type"] for f in facts] == ["202", "204", "209", "219"]
    assert [f["params"]["Notice_Level"] for f in facts] == ["N1e", "N1e", "N2m", "N3e"]
    assert all(f["params"]["Burst_Id"] == BURST and f["role"] == "observation" for f in facts)
    assert facts[0]["citations"] == []
    # a better position from the same instrument supersedes; another instrument follows up
    assert facts[1]["citations"] == [{"ivorn": ivorns[0], "type": "supersedes"}]
    assert facts[2]["citations"] == [{"ivorn": ivorns[0], "type": "followup"}, {"ivorn": ivorns[1], "type": "followup"}]
    # a retraction cites every notice of the burst, says why, and repeats the best position
    assert facts[3]["citations"] == [{"ivorn": i, "type": "retraction"} for i in ivorns[:3]]
    assert facts[3]["citation_description"] == RETRACTION["reason"]
    assert (facts[3]["position"]["ra"], facts[3]["position"]["err"]) == (MXT["ra"], MXT["err"])
    assert facts[3]["time"] == facts[0]["time"] == "2026-11-20T03:04:05.670000Z"
    assert facts[0]["position"] == {"ra": 123.4567, "dec": -12.3456, "err": 0.15, "time": facts[0]["time"],
                                    "system": "UTC-ICRS-GEO", "kind": None}
    assert facts[0]["authored"] == "2026-11-20T03:05:00.000000Z" and facts[0]["author_ivorn"] == AUTHOR.ivorn
    wake = params(render_notice(wakeup))
    assert wake["SNR"] == "9.8" and wake["Timescale"] == "20.48" and wake["Instrument"] == "ECLAIRs"
    assert params(render_notice(mxt))["Within_ECLAIRs_R90"] == "True"  # SVOM's spelling of a boolean


def test_the_same_decision_renders_the_same_bytes() -> None:
    first = issue_sequence()
    again = issue_sequence()
    assert [render_notice(d) for d in first] == [render_notice(d) for d in again]
    # what the decision holds is enough: through JSON (the log) and back, the same bytes
    assert render_notice(json.loads(json.dumps(first[2]))) == render_notice(first[2])
    assert b"voevent-parse" not in render_notice(first[0])  # no library version in the packet


def test_a_repeated_type_gets_a_revision_counter_and_supersedes_when_better() -> None:
    better = {**WAKEUP, "err": 0.05, "request_id": "again"}
    worse = {**WAKEUP, "err": 0.5, "request_id": "third"}
    first, second, third = issue_sequence((WAKEUP, better, worse))
    assert (first["ivorn"].endswith("_eclairs-wakeup"), second["ivorn"].endswith("_eclairs-wakeup_r2"),
            third["ivorn"].endswith("_eclairs-wakeup_r3")) == (True, True, True)
    assert params(render_notice(second))["Pkt_Ser_Num"] == "2"
    assert second["citations"] == [{"ivorn": first["ivorn"], "type": "supersedes"}]
    assert third["citations"] == [{"ivorn": first["ivorn"], "type": "followup"}, {"ivorn": second["ivorn"], "type": "followup"}]


def test_a_grm_trigger_without_position_has_time_only() -> None:
    [grm] = issue_sequence(({"burst_id": "sb26112056", "instrument": "GRM", "type": "grm-trigger",
                             "time": "2026-11-20T06:00:00Z", "params": {"Triggered_GRDs": "011", "SNR": 7.2}},))
    summary = examine(render_notice(grm)).summary
    assert summary["position"] is None and summary["time"] == "2026-11-20T06:00:00.000000Z"
    assert summary["params"]["Packet_Type"] == "201" and summary["params"]["Notice_Level"] == "N1g"
    assert b"<ISOTime>2026-11-20T06:00:00</ISOTime>" in render_notice(grm)


def test_nothing_to_retract_and_nothing_after_a_retraction_are_declined() -> None:
    request = parse_notice_request(RETRACTION, INSTRUMENTS)
    alone = decide(request.data, request_seq=5, recorded_at="2026-11-20T05:00:00.000000Z", prior=[], stream=STREAM,
                   author=AUTHOR, instruments=INSTRUMENTS)
    assert isinstance(alone, Declined) and "nothing to retract" in alone.reason
    issued = issue_sequence((WAKEUP, RETRACTION))
    late = parse_notice_request(SLEWING, INSTRUMENTS)
    after = decide(late.data, request_seq=99, recorded_at="2026-11-20T05:00:00.000000Z",
                   prior=[Prior.of(d) for d in issued], stream=STREAM, author=AUTHOR, instruments=INSTRUMENTS)
    assert isinstance(after, Declined) and "retracted" in after.reason
    # only notices of requests before this one count (another node may have decided later ones)
    before = decide(late.data, request_seq=10, recorded_at="2026-11-20T05:00:00.000000Z",
                    prior=[Prior.of(d) for d in issued], stream=STREAM, author=AUTHOR, instruments=INSTRUMENTS)
    assert not isinstance(before, Declined) and before["citations"] == []


@pytest.mark.parametrize(("change", "reason"), [
    ({"type": "eclairs-sneeze"}, "unknown notice type 'eclairs-sneeze'"),
    ({"instrument": "MXT"}, "a eclairs-wakeup notice comes from ECLAIRs, not MXT"),
    ({"instrument": "XRT"}, "unknown instrument 'XRT'"),
    ({"time": None}, "'time' is required"),
    ({"time": "yesterday"}, "'time' must be an ISO-8601 time"),
    ({"ra": 400.0}, "'ra' = 400.0 is outside [0, 360)"),
    ({"dec": None}, "'ra' and 'dec' come together"),
    ({"err": -1}, "'err' = -1.0 is outside [0, 180]"),
    ({"params": {"Colour": "blue"}}, "ECLAIRs notices have no parameter 'Colour'"),
    ({"params": {"SNR": [1, 2]}}, "parameter 'SNR' must be text, a number or a boolean"),
    ({"burst_id": "sb 1"}, "'burst_id' must be letters, digits"),
    ({"qualifier": "QF 1"}, "'qualifier' must be 1-16 lower-case letters and digits"),
    ({"role": "utility"}, "'role' must be one of observation, test"),
    ({"colour": "blue"}, "unknown field(s) colour"),
])
def test_bad_requests_are_refused_with_a_reason(change: dict[str, Any], reason: str) -> None:
    value = {k: v for k, v in {**WAKEUP, **change}.items() if v is not None}
    with pytest.raises(InvalidNoticeRequest) as refused:
        parse_notice_request(value, INSTRUMENTS)
    assert reason in refused.value.reason


def test_bytes_that_are_no_request_are_refused_with_a_reason() -> None:
    for raw, reason in ((b"", "empty message"), (b"[1]", "expected a JSON object"), (b"{", "not JSON"),
                        (b'{"ra": NaN}', "not JSON"), (b"\xff", "not UTF-8")):
        with pytest.raises(InvalidNoticeRequest, match=reason.replace("(", r"\(")):
            parse_notice_json(raw, INSTRUMENTS)
    with pytest.raises(InvalidNoticeRequest, match="exceeds the limit"):
        parse_notice_json(b" " * 10 + json.dumps(WAKEUP).encode(), INSTRUMENTS, max_bytes=50)


def test_a_request_id_is_the_senders_or_the_contents() -> None:
    same = parse_notice_request(WAKEUP, INSTRUMENTS)
    assert same.request_id == parse_notice_request(dict(WAKEUP), INSTRUMENTS).request_id
    assert same.request_id.startswith("sha256:") and same.event_id == parse_notice_request(WAKEUP, INSTRUMENTS).event_id
    assert parse_notice_request({**WAKEUP, "err": 0.1}, INSTRUMENTS).request_id != same.request_id
    own = parse_notice_request({**WAKEUP, "request_id": "eclairs-pipeline:4711"}, INSTRUMENTS)
    assert own.request_id == "eclairs-pipeline:4711" and own.digest == same.digest


def test_an_operator_adds_a_parameter_with_a_file_and_no_code(tmp_path: Path) -> None:
    builtin = (Path(load_instruments.__code__.co_filename).parent / "instruments" / "ECLAIRs.toml").read_text()
    (tmp_path / "ECLAIRs.toml").write_text(builtin.replace(
        '{ name = "Trigger_Type", ucd = "instr.param" },',
        '{ name = "Trigger_Type", ucd = "instr.param" },\n  { name = "Hardness_Ratio", ucd = "phot.color" },'))
    instruments = load_instruments(tmp_path)
    request = parse_notice_request({**WAKEUP, "params": {"Hardness_Ratio": 0.42, "SNR": 9.8}}, instruments)
    outcome = decide(request.data, request_seq=1, recorded_at="2026-11-20T05:00:00.000000Z", prior=[], stream=STREAM,
                     author=AUTHOR, instruments=instruments)
    assert not isinstance(outcome, Declined)
    assert b'<Param name="Hardness_Ratio" value="0.42" ucd="phot.color"/>' in render_notice(outcome)
    check_notices(NoticesSection(instruments_dir=tmp_path))


def test_a_bad_instrument_file_names_the_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "VT.toml").write_text('instrument = "VT"\nletter = "v"\nhow = "x"\n[[groups]]\nname = "D"\n'
                                      'params = [{ name = "SNR", colour = "red" }]\n')
    with pytest.raises(InstrumentFileError, match=r"VT.toml.groups\[0\].params\[0\].colour: unknown key"):
        load_instruments(tmp_path)
