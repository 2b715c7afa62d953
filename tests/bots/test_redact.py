"""The redaction rules on their own: a code in any spelling and position becomes ``[code]``;
ordinary words, telescope names, burst ids and angles stay readable."""

from __future__ import annotations

import pytest

from burstbus.bots.parse import fold, normalise, normalise_code
from burstbus.bots.redact import SCAN_LIMIT, read_code_args, redact_text
from burstbus.ratelimit import RateLimiter
from tests.bots.leaks import fullwidth, leaks_in_text, spellings

CODE = "K7QXM2PD"
LETTERS_ONLY = "KQXMPDRT"  # about 8% of codes have no digit: only the real-code check sees them


def telescope(word: str) -> bool:
    return word.strip(",.").casefold() in ("tarot", "colibri")


@pytest.mark.parametrize("name", sorted(spellings(CODE)))
def test_every_spelling_folds_to_the_code_and_is_redacted(name: str) -> None:
    typed = spellings(CODE)[name]
    assert normalise_code(typed) == CODE, name
    for line in (f"approve {typed}", f"approve TAROT {typed}", f"deny 2345-6789 not {typed}, sorry",
                 f"help {typed}", f"{typed}", f"note: code={typed}!", f"({typed})"):
        out = redact_text(normalise(line))
        assert "[code]" in out and not leaks_in_text(out, CODE), (name, line, out)


def test_greek_and_cyrillic_look_alikes_and_fullwidth() -> None:
    assert fold("Κ7ΘΧ") == "K7ΘX"  # Θ is no code symbol: stays what it is
    assert normalise_code("К7QХ-М2РD") == CODE  # Cyrillic К Х М Р
    assert normalise_code("Κ7QΧ Μ2ΡD") == CODE  # Greek Κ Χ Μ Ρ
    assert normalise_code(fullwidth("k7qx-m2pd")) == CODE
    assert normalise_code("K7QX\u2060M2PD\u200e") == CODE  # invisible joiners, direction marks
    assert normalise("ａｐｐｒｏｖｅ") == "approve"
    assert normalise("12″") == "12″"  # NFKC would turn it into two primes


def test_a_real_code_is_found_whatever_the_grouping_even_without_digits() -> None:
    real = {LETTERS_ONLY}.__contains__
    for line in ("approve KQXMPDRT", "deny KQXM PDRT", "KQ XM PD RT please", "kqxmpdrt", "KQX-MPD-RT",
                 "it was KQXMPDRT.", "xKQXMPDRTx"):
        out = redact_text(line, real)
        assert LETTERS_ONLY.lower() not in out.lower().replace(" ", "").replace("-", ""), (line, out)
    # Without the check, a word of code letters is just a word.
    assert redact_text("KQXMPDRT") == "KQXMPDRT"


def test_ordinary_text_stays_readable() -> None:
    for line in ("bad weather", "TAROT", "trigger TAROT sb25120112 after the slew", "burst S190518bb",
                 "swift-655729 and GRB 250101A", "near 12h34m56s -12d30m00s 30'", "near 188.73 -12.5 2",
                 "too cloudy, dome closed until 03:40", "2026-11-20T03:05:00Z", "wait 2345 6789 seconds",
                 "the ABCD EFGH", "bursts 5", "ivo://org.svom/fsc#sb25120112_1", "bad 4 temp"):
        assert redact_text(line) == line, line


def test_shapes_without_a_check() -> None:
    assert redact_text("approve 2345-ABCD TAROT") == "approve [code] TAROT"  # dashed, mixed
    assert redact_text("deny ABCD-EFGH") == "deny [code]"  # dashed: how a code is shown
    assert redact_text("A2 B3 C4 D5 ok") == "[code] ok"  # pieces adding up to 8
    assert redact_text("id 3fa2b9c7") == "id [code]"  # hex that looks like a code: gone unless kept
    assert redact_text("id 3fa2b9c7", keep=lambda w: w == "3fa2b9c7") == "id 3fa2b9c7"
    assert redact_text("two  spaces\nkept K7QX-M2PD  end") == "two  spaces\nkept [code]  end"


def test_beyond_the_scan_limit_every_possible_code_goes() -> None:
    text = "x " * (SCAN_LIMIT // 2) + "hello KQXMPDRT world"
    out = redact_text(text)  # only hashed, never recorded: fail closed (a neighbour may go too)
    assert "KQXMPDRT" not in out and out.endswith("[code]") and "hello" in out


def test_code_arguments_are_read_in_any_order() -> None:
    found = read_code_args(["TAROT", "K7QX", "M2PD"], telescope)
    assert (found.code, found.telescope, found.rest, found.found) == ("K7QXM2PD", "TAROT", [], True)
    assert read_code_args(["code", "k7qx-m2pd", "for", "tarot"], telescope).telescope == "tarot"
    denied = read_code_args(["K7QX", "M2PD", "because", "bad", "weather"], telescope)
    assert (denied.code, denied.rest, denied.shown) == ("K7QXM2PD", ["because", "bad", "weather"], ["[code]"])
    missing = read_code_args(["TAROT", "K7QXM2P", "weather"], telescope)  # one symbol short: no code
    assert not missing.found and missing.shown == ["TAROT", "[code]"]


def test_rate_limiter_answers_once_then_drops_for_a_window() -> None:
    now = [0.0]
    limiter = RateLimiter(listed=4, unlisted=2, period=10.0, clock=lambda: now[0])
    assert [limiter.check("m@x", trusted=False) for _ in range(6)] == ["ok", "ok", "refuse", "drop", "drop", "drop"]
    assert [limiter.check("a@x", trusted=True) for _ in range(5)] == ["ok"] * 4 + ["refuse"]
    now[0] = 10.0  # the window is over and the bucket full again
    assert [limiter.check("m@x", trusted=False) for _ in range(3)] == ["ok", "ok", "refuse"]
    assert (limiter.refused_total, limiter.dropped_total) == (3, 3)
    assert limiter.health()["limited_now"] == ["m@x"]  # a@x's window ended at 10 s
