"""Approval codes: unambiguous on a phone, bound to one action, guarded against guessing."""

from __future__ import annotations

from burstbus.handlers.triggers.codes import (
    CODE_ALPHABET,
    WrongCodes,
    code_hash,
    format_code,
    new_code,
    params_digest,
)


def test_codes_are_random_and_never_ambiguous() -> None:
    assert format_code("K7QXM2PD") == "K7QX-M2PD"
    codes = {new_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == 8 and set(c) <= set(CODE_ALPHABET) for c in codes)
    assert not set(CODE_ALPHABET) & set("01OILU")


def test_a_code_hash_is_bound_to_its_key_and_its_one_action() -> None:
    key = b"k" * 32
    digest = params_digest({"ra": 1.0, "dec": 2.0}, "note")
    base = code_hash(key, "K7QXM2PD", "r1", "TAROT", "sb1", digest)
    assert base == code_hash(key, "K7QXM2PD", "r1", "TAROT", "sb1", digest)
    assert base != code_hash(b"x" * 32, "K7QXM2PD", "r1", "TAROT", "sb1", digest)
    assert base != code_hash(key, "K7QXM2PE", "r1", "TAROT", "sb1", digest)
    assert base != code_hash(key, "K7QXM2PD", "r2", "TAROT", "sb1", digest)
    assert base != code_hash(key, "K7QXM2PD", "r1", "COLIBRI", "sb1", digest)
    assert base != code_hash(key, "K7QXM2PD", "r1", "TAROT", "sb2", digest)
    other = params_digest({"ra": 1.0, "dec": 2.5}, "note")
    assert base != code_hash(key, "K7QXM2PD", "r1", "TAROT", "sb1", other)
    assert params_digest({"ra": 1.0, "dec": 2.0}, "other note") != digest


def test_wrong_codes_block_a_person_for_the_window_only() -> None:
    now = [0.0]
    guard = WrongCodes(limit=3, window=60.0, clock=lambda: now[0])
    for _ in range(3):
        assert not guard.blocked("alice@fsc.example")
        guard.failed("alice@fsc.example")
    assert guard.blocked("alice@fsc.example")
    assert not guard.blocked("bob@fsc.example")  # per person
    now[0] = 61.0
    assert not guard.blocked("alice@fsc.example")
