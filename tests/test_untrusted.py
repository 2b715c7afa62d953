"""JSON from senders: every way it can be bad is one ValueError with a reason, never a crash."""

from __future__ import annotations

import pytest

from burstbus.untrusted import UntrustedJson, parse_json


@pytest.mark.parametrize(("raw", "reason"), [
    (b"[" * 5000 + b"]" * 5000, "nested more than 32 levels deep"),      # RecursionError inside json
    (b'{"a":' * 40 + b"1" + b"}" * 40, "nested more than 32 levels deep"),
    (b"[" + b"9" * 5000 + b"]", "an integer of 5000 digits"),           # quadratic int() otherwise
    (b"{\"x\": NaN}", "not JSON: NaN is not a finite number"),
    (b'{"x": -Infinity}', "-Infinity is not a finite number"),
    (b'{"x": 1', "not JSON: Expecting ',' delimiter at line 1 column 8"),
    (b"\xff\xfe{}", "not UTF-8 text"),
    (b"x" * 2000, "2000 bytes exceeds the limit of 1000"),
])
def test_bad_json_is_refused_with_its_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(UntrustedJson, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_json(raw, max_bytes=1000 if len(raw) == 2000 else None)


def test_good_json_within_the_limits_is_its_value() -> None:
    assert parse_json('{"burst_id": "sb1", "ra": 1.5e2, "n": [1, 2, {"deep": [3]}], "big": 18446744073709551615}') == {
        "burst_id": "sb1", "ra": 150.0, "n": [1, 2, {"deep": [3]}], "big": 18446744073709551615}
    assert isinstance(UntrustedJson("x"), ValueError)  # callers that catch ValueError keep working
