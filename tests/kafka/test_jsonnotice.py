"""JSON notices, pure: what is understood of LVK, Einstein Probe, IceCube and GUANO notices, and
what is refused (not UTF-8, not JSON, NaN, too deep, not an object, a known schema's wrong field)."""

from __future__ import annotations

import json

import pytest

from burstbus.bridges.kafka.jsonnotice import (
    MAX_DEPTH,
    NoticeRefused,
    examine_notice,
    looks_like_json,
)
from burstbus.bridges.kafka.messages import (
    KafkaMessage,
    NoticeEvent,
    ToIngest,
    TooLarge,
    notice_accepted,
    route,
)
from burstbus.catalogue import NOTICE_ACCEPTED, NOTICE_REJECTED
from burstbus.events import canonical_json
from tests.kafka.notices import einstein_probe, guano, icecube_lvk, lvk


def test_lvk_alert_facts_and_its_superevent_as_grace_id() -> None:
    notice = examine_notice(lvk(), "igwn.gwalert")
    assert notice.schema == "igwn.gwalert"
    assert notice.notice_id == "S261202ab-PRELIMINARY-2026-12-02T03:00:00.000000Z"
    facts = notice.facts
    assert facts["role"] == "observation" and facts["mission"] == "LVK" and facts["instrument"] == "H1,L1,V1"
    assert facts["time"] == "2026-12-02T02:59:30.123000Z" and facts["authored"] == "2026-12-02T03:00:00.000000Z"
    assert facts["params"] == {"GraceID": "S261202ab", "AlertType": "PRELIMINARY"}
    assert facts["lvk"]["far"] == pytest.approx(1.2e-10) and facts["lvk"]["significant"] is True
    assert facts["lvk"]["has_skymap"] is True and "position" not in facts


def test_lvk_retraction_and_mock_events() -> None:
    retraction = examine_notice(lvk(alert="RETRACTION"), "igwn.gwalert").facts
    assert retraction["retraction"] is True and "time" not in retraction
    assert examine_notice(lvk("MS261202x"), "igwn.gwalert").facts["role"] == "test"


def test_gcn_unified_schema_notices() -> None:
    ep = examine_notice(einstein_probe(), "gcn.notices.einstein_probe.wxt.alert")
    assert ep.schema == "gcn:notices/einstein_probe/wxt/alert"
    assert ep.facts["position"] == {"ra": 120.5, "dec": -20.25, "err": 0.05}
    assert ep.facts["mission"] == "EinsteinProbe" and ep.facts["instrument"] == "WXT"
    assert ep.facts["time"] == "2026-12-02T04:05:06.700000Z" and ep.facts["params"]["TrigID"] == "01709000001"
    cube = examine_notice(icecube_lvk(), "gcn.notices.icecube.lvk_nu_track_search")
    assert cube.facts["params"]["GraceID"] == "S261202ab" and cube.facts["mission"] == "IceCube"
    swift = examine_notice(guano(), "gcn.notices.swift.bat.guano")
    assert swift.facts["params"]["GraceID"] == "S261202ab" and swift.facts["position"]["err"] == 0.2
    assert swift.facts["mission"] == "Swift" and swift.facts["instrument"] == "BAT"


def test_an_unknown_schema_is_kept_with_its_digest_as_id() -> None:
    notice = examine_notice(b'{"something": "new"}', "gcn.notices.future.thing")
    assert notice.schema is None and notice.notice_id.startswith("sha256:") and notice.facts == {}


@pytest.mark.parametrize(("raw", "code", "words"), [
    (b"\xff\xfe{}", "json", "not UTF-8"),
    (b"{bad", "json", "not JSON"),
    (b'{"ra": NaN}', "json", "NaN"),
    (b'{"ra": Infinity}', "json", "Infinity"),
    (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "json", "nested deeper"),
    (b"[1, 2]", "schema", "expected a JSON object"),
    (b"   ", "json", "empty"),
    (lvk(superevent="not-an-id"), "schema", "superevent"),
    (json.dumps({"superevent_id": 5, "alert_type": "x"}).encode(), "schema", "'superevent_id' must be a string"),
    (lvk(alert="MAYBE"), "schema", "alert_type"),
    (lvk(created="yesterday"), "schema", "time_created"),
    (json.dumps({"$schema": "https://gcn.nasa.gov/schema/v4/gcn/notices/x/y/alert.schema.json", "ra": 1, "dec": 95}).encode(),
     "schema", "outside"),
    (json.dumps({"$schema": "https://gcn.nasa.gov/schema/v4/gcn/notices/x/y/alert.schema.json", "ra": "12h", "dec": 1}).encode(),
     "schema", "'ra' must be a number"),
])
def test_refusals(raw: bytes, code: str, words: str) -> None:
    with pytest.raises(NoticeRefused) as caught:
        examine_notice(raw, "igwn.gwalert" if b"superevent" in raw else "gcn.notices.x")
    assert caught.value.code == code and words in caught.value.reason


def test_deep_nesting_never_reaches_the_parser_recursion() -> None:
    with pytest.raises(NoticeRefused):
        examine_notice(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "x")


def test_looks_like_json() -> None:
    assert looks_like_json(b'  \n{"a": 1}') and looks_like_json(b"\xef\xbb\xbf[1]")
    assert not looks_like_json(b"<?xml version='1.0'?>") and not looks_like_json(b"garbage")


def message(value: bytes, topic: str = "igwn.gwalert", offset: int = 7) -> KafkaMessage:
    return KafkaMessage("gcn", topic, 0, offset, value, 1796200000000)


def test_events_keep_the_exact_bytes_and_carry_derived_ids() -> None:
    raw = lvk()
    event = notice_accepted(message(raw))
    assert event.type == NOTICE_ACCEPTED and event.data["json"].encode() == raw
    assert event.data["kafka"] == {"upstream": "gcn", "topic": "igwn.gwalert", "partition": 0, "offset": 7,
                                   "timestamp": "2026-12-02T08:26:40.000000Z"}
    canonical_json(event.data)  # storable as it is
    # the same bytes at another offset (a re-read, another cluster): the same event
    assert notice_accepted(message(raw, offset=99)).id == event.id
    refused = notice_accepted(message(b"{nope"))
    assert refused.type == NOTICE_REJECTED and refused.data["code"] == "json" and refused.data["excerpt"] == "{nope"
    assert notice_accepted(message(b"{nope")).id == refused.id  # a re-read records it once
    assert notice_accepted(message(b"{nope", offset=8)).id != refused.id  # another delivery is another refusal


def test_routing() -> None:
    assert isinstance(route(message(b"<?xml version='1.0'?><x/>"), max_bytes=1000), ToIngest)
    assert isinstance(route(message(b"not xml at all"), max_bytes=1000), ToIngest)  # the ingest says why not
    assert isinstance(route(message(lvk()), max_bytes=100_000), NoticeEvent)
    big = route(message(b"{" + b" " * 2000 + b"}"), max_bytes=1000)
    assert isinstance(big, TooLarge) and big.json
    submission = route(message(b"<x/>", topic="gcn.classic.voevent.X"), max_bytes=1000)
    assert isinstance(submission, ToIngest)
    assert submission.submission.via == "kafka" and submission.submission.peer == "gcn.classic.voevent.X"
    assert submission.submission.key and submission.submission.extra == {"kafka": message(b"<x/>", "gcn.classic.voevent.X").audit()}
