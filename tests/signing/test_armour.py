"""Where the signature sits and which bytes it covers (burstbus/signing/armour.py), and the
policy's decisions (burstbus/signing/policy.py): pure, no gpg."""

from __future__ import annotations

import re
from typing import Any

import pytest

from burstbus.config import ConfigError, load_config
from burstbus.signing import armour
from burstbus.signing.policy import Checked, SignaturePolicy, SignatureRule
from tests.packets import voevent

FAKE = b"-----BEGIN PGP SIGNATURE-----\n\niHUEABYIAB0WIQ\n=abcd\n-----END PGP SIGNATURE-----\n"
GOOD = "A" * 40
OTHER = "B" * 40


def test_the_signed_range_is_the_root_element_exactly() -> None:
    raw = b"\xef\xbb\xbf<?xml version='1.0'?>\n<!-- not signed -->\n<?pi x?>" + voevent()[voevent().index(b"<voe:"):] + b"\n"
    start, end = armour.root_span(raw)
    assert raw[start:].startswith(b"<voe:VOEvent") and raw[:end].endswith(b"</voe:VOEvent>")


def test_signing_inserts_one_comment_after_the_root_and_keeps_every_byte() -> None:
    raw = voevent().rstrip() + b"\n"
    signed = armour.with_signature(raw, FAKE)
    assert b"</voe:VOEvent><!--\n=====BEGIN PGP SIGNATURE=====" in signed and signed.endswith(b"=====\n\n-->\n")
    assert b"-----" not in signed
    assert armour.without_signature(signed) == raw
    assert armour.signed_bytes(signed) == armour.signed_bytes(raw)
    found = armour.locate(signed)
    assert found.armour == FAKE and signed[found.start : found.end] == armour.signed_bytes(raw)


def test_a_signature_block_inside_the_root_is_signed_text_not_a_signature() -> None:
    raw = voevent(description="=====BEGIN PGP SIGNATURE===== x =====END PGP SIGNATURE=====")
    assert armour.has_signature(raw) and armour.locate(raw).armour is None


@pytest.mark.parametrize("comment,problem", [
    (b"<!--\n=====BEGIN PGP SIGNATURE=====\n" + b"A" * 20_000 + b"\n=====END PGP SIGNATURE=====\n-->", "bytes (at most"),
    (b"<!-- =====BEGIN PGP SIGNATURE===== no end -->", "does not hold one"),
    (b"<!--\n=====BEGIN PGP SIGNATURE=====\n\xc3\xa9\n=====END PGP SIGNATURE=====\n-->", "non-ASCII"),
    (b"<!--\n=====BEGIN PGP SIGNATURE=====\nx\n=====END PGP SIGNATURE=====\n-->"
     b"<!--\n=====BEGIN PGP SIGNATURE=====\ny\n=====END PGP SIGNATURE=====\n-->", "2 signature comments"),
], ids=["huge", "no-end", "non-ascii", "two"])
def test_a_malformed_signature_comment_is_a_clear_problem(comment: bytes, problem: str) -> None:
    raw = voevent() + comment
    with pytest.raises(armour.SignatureMalformed, match=re.escape(problem)):
        armour.locate(raw)
    assert armour.without_signature(raw) == raw


def policy(*rules: dict[str, Any]) -> SignaturePolicy:
    return SignaturePolicy([SignatureRule(**r) for r in rules])


def good(fpr: str = GOOD) -> Checked:
    return Checked("good", fingerprint=fpr, fingerprints=(fpr,), signer="A <a@x>")


TRIGGERS = {"name": "trigger senders", "action": "require", "sources": ["xmpp:*"], "keys": [GOOD]}
GCN = {"name": "gcn", "action": "verify", "ivorns": ["ivo://nasa.gsfc.gcn"], "keys": [" ".join(GOOD[i:i + 4] for i in range(0, 40, 4))]}


def test_require_refuses_anything_but_a_valid_signature_by_its_keys() -> None:
    rules = policy(TRIGGERS)
    assert rules.decide("xmpp", "a@b", "ivo://x.example/a#1", None, good()).refusal is None
    for checked, status, words in [
        (Checked.unsigned(), "none", "not signed"),
        (Checked("bad", detail="the signature does not match the bytes"), "invalid", "does not match"),
        (Checked("unknown_key", key_id="1234"), "untrusted", "not in the keyring"),
        (good(OTHER), "untrusted", f"key {OTHER} is not among the keys of rule 'trigger senders'"),
    ]:
        verdict = rules.decide("xmpp", "a@b", "ivo://x.example/a#1", None, checked)
        assert verdict.status == status and verdict.refusal is not None, verdict
        assert "signature rule 'trigger senders' requires a valid signature by one of its keys" in verdict.refusal
        assert words in verdict.refusal
    # another source: recorded, never refused
    verdict = rules.decide("vtp", "192.0.2.7", "ivo://x.example/a#1", None, Checked.unsigned())
    assert verdict.refusal is None and verdict.facts == {"status": "none"}


def test_verify_records_whether_the_key_is_trusted_and_never_refuses() -> None:
    rules = policy(GCN)
    assert rules.decide("kafka", "t", "ivo://nasa.gsfc.gcn/SWIFT#1", None, good()).facts["status"] == "valid"
    verdict = rules.decide("kafka", "t", "ivo://NASA.gsfc.gcn/SWIFT#1", None, good(OTHER))
    assert (verdict.status, verdict.refusal, verdict.facts["rules"]) == ("untrusted", None, ["gcn"])
    # an authority covers nothing longer
    assert rules.decide("kafka", "t", "ivo://nasa.gsfc.gcn.evil/x#1", None, good(OTHER)).status == "valid"


def test_every_matching_rule_applies_and_authors_select_too() -> None:
    rules = policy({"name": "open", "sources": ["*"]},
                   {"name": "tarot author", "action": "require", "authors": ["ivo://tarot.example/"], "keys": [GOOD]})
    verdict = rules.decide("vtp", "192.0.2.7", "ivo://x.example/a#1", "ivo://tarot.example/robot", good(OTHER))
    assert verdict.refusal is not None and "tarot author" in verdict.refusal
    assert rules.decide("vtp", "192.0.2.7", "ivo://x.example/a#1", None, good(OTHER)).facts["rules"] == ["open"]


@pytest.mark.parametrize("section,key", [
    ({"rules": [{"name": "r", "sources": ["*"]}]}, "signatures.enabled"),
    ({"enabled": True, "rules": [{"name": "r"}]}, "signatures.rules[0]"),
    ({"enabled": True, "rules": [{"name": "r", "sources": ["*"], "keys": ["0C1979FB"]}]}, "signatures.rules[0].keys[0]"),
    ({"enabled": True, "rules": [{"name": "r", "ivorns": ["gcn"]}]}, "signatures.rules[0].ivorns[0]"),
    ({"enabled": True, "rules": [{"name": "r", "sources": ["smtp"]}]}, "signatures.rules[0].sources[0]"),
    ({"enabled": True, "rules": [{"name": "r", "sources": ["*"], "action": "maybe"}]}, "signatures.rules[0].action"),
    ({"enabled": True, "sign_with": "not hex"}, "signatures.sign_with"),
])
def test_a_bad_signatures_section_is_refused_with_its_key(section: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ={}, overrides={"signatures": section})
    assert caught.value.key == key, caught.value
