"""Data announcements and statuses as they arrive, judged once for every transport (pure)."""

from __future__ import annotations

import json

import pytest

from burstbus.handlers.orchestrator.messages import (
    InvalidAnnouncement,
    data_event,
    data_event_id,
    parse_data_announcement,
    parse_process_status,
)

GOOD = {"burst_id": "sb26112001", "obs_id": 7, "pass_id": "p1", "kind": "vhf.eclairs",
        "location": "file:///data/sb26112001/vhf_001.fits", "size": 2048, "checksum": "SHA256:" + "AB" * 32}


def body(**changes: object) -> bytes:
    value = {**GOOD, **changes}
    return json.dumps({k: v for k, v in value.items() if v is not None}).encode()


def test_a_valid_announcement_becomes_event_data() -> None:
    parsed = parse_data_announcement(body(occurred_at="2026-11-20T03:04:05+01:00", produced_by="req-1", version="2.1/b"))
    assert parsed.data == {"burst_id": "sb26112001", "obs_id": "7", "pass_id": "p1", "kind": "vhf.eclairs",
                           "location": "file:///data/sb26112001/vhf_001.fits", "size": 2048,
                           "checksum": "sha256:" + "ab" * 32, "produced_by": "req-1", "version": "2.1/b"}
    assert parsed.occurred_at == "2026-11-20T02:04:05.000000Z"
    minimal = parse_data_announcement(b'{"burst_id": "b", "kind": "Q1.TT_ECL", "location": "s3://bucket/k"}')
    assert minimal.data == {"burst_id": "b", "kind": "Q1.TT_ECL", "location": "s3://bucket/k"}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty message"),
        (b"{nope", "not JSON"),
        (b'{"burst_id": NaN}', "not JSON"),
        (b"[]", "expected a JSON object, got list"),
        (body(burst_id=None), "'burst_id' is required"),
        (body(kind=None), "'kind' is required"),
        (body(kind="vhf eclairs"), "'kind' must be letters"),
        (body(location=None), "'location' is required"),
        (body(location="/data/no-scheme.fits"), "'location' must be a URI"),
        (body(size=-1), "'size' must be a number of bytes"),
        (body(size="12"), "'size' must be a number of bytes"),
        (body(checksum="12345"), "'checksum' must be algorithm:hex"),
        (body(obs_id="a/b"), "must not contain '/'"),
        (body(kidn="x"), "unknown field(s) kidn"),
        (body(occurred_at="soon"), "'occurred_at' must be an ISO-8601 time"),
    ],
)
def test_a_bad_announcement_is_refused_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(InvalidAnnouncement) as caught:
        parse_data_announcement(payload)
    assert reason in caught.value.reason


def test_the_same_announcement_has_the_same_id_unless_it_says_otherwise() -> None:
    one = data_event(parse_data_announcement(body()), actor="nats:x", event_id=None)
    again = data_event(parse_data_announcement(body()), actor="http:1.2.3.4", event_id=None)
    other = data_event(parse_data_announcement(body(checksum="sha256:" + "cd" * 32)), actor="nats:x", event_id=None)
    assert one.id == again.id == data_event_id(one.data) != other.id
    assert one.stream == "sb26112001" and one.type == "data.available"


def test_a_status_may_name_its_request_and_version_but_not_idling() -> None:
    parsed = parse_process_status(b'{"process": "p", "status": "running", "request_id": "r-1", "version": "1.2"}')
    assert parsed.data == {"process": "p", "status": "running", "request_id": "r-1", "version": "1.2"}
    with pytest.raises(ValueError, match="'status' must be one of"):
        parse_process_status(b'{"process": "p", "status": "idling"}')
