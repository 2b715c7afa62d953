"""What people type on phones is read as they meant it, or refused with a reason."""

from __future__ import annotations

import pytest

from burstbus.bots.parse import (
    AngleError,
    normalise,
    normalise_code,
    parse_command,
    parse_dec,
    parse_ra,
    parse_radius,
    split_words,
    suggest,
)


def test_phone_punctuation_and_spaces_become_plain() -> None:
    assert normalise("Trigger\u00a0TAROT  sb1 \u201cbright one\u201d") == 'Trigger TAROT sb1 "bright one"'
    assert normalise("deny K7QX\u2013M2PD it\u2019s cloudy") == "deny K7QX-M2PD it's cloudy"
    assert normalise("near 1 \u221212.5 \u2014") == "near 1 -12.5 -"
    assert normalise("  /bursts\u2003 3 ") == "bursts 3"
    assert normalise("!status\u200b") == "status"


def test_command_names_ignore_case_and_words_keep_quotes() -> None:
    parsed = parse_command("Trigger TAROT sb26112001 \u201cafter the slew\u201d, please")
    assert parsed is not None
    assert parsed.name == "trigger"
    assert parsed.args == ["TAROT", "sb26112001", "after the slew,", "please"]
    assert parse_command("   ") is None


def test_split_words_is_lenient() -> None:
    assert split_words("a 'b c' d") == ["a", "b c", "d"]
    assert split_words("it's fine") == ["it's", "fine"]  # an apostrophe inside a word is literal
    assert split_words('note "unclosed quote here') == ["note", "unclosed quote here"]
    assert split_words("30' 10\"") == ["30'", '10"']


@pytest.mark.parametrize(
    ("typed", "degrees"),
    [
        ("188.73", 188.73),
        ("12h34m56s", (12 + 34 / 60 + 56 / 3600) * 15),
        ("12:34:56.7", (12 + 34 / 60 + 56.7 / 3600) * 15),
        ("12h34.5m", (12 + 34.5 / 60) * 15),
        ("188d30m", 188.5),
        ("188,5", 188.5),
        ("12.5h", 187.5),
    ],
)
def test_right_ascension(typed: str, degrees: float) -> None:
    assert parse_ra(typed) == pytest.approx(degrees, abs=1e-9)


@pytest.mark.parametrize(
    ("typed", "degrees"),
    [
        ("-12.5", -12.5),
        ("\u221212.5", -12.5),
        ("\u221212\u00b030\u203200\u2033", -12.5),
        ("-12:30:00", -12.5),
        ("+12d34m", 12 + 34 / 60),
        ("-0:30", -0.5),
        ("45", 45.0),
    ],
)
def test_declination(typed: str, degrees: float) -> None:
    assert parse_dec(normalise(typed)) == pytest.approx(degrees, abs=1e-9)


@pytest.mark.parametrize("typed", ["25h", "abc", "12:61:00", "360", "-1"])
def test_bad_right_ascension_is_refused_with_a_reason(typed: str) -> None:
    with pytest.raises(AngleError) as info:
        parse_ra(typed)
    assert typed in str(info.value)


@pytest.mark.parametrize("typed", ["91", "-90.5", "12h", "north"])
def test_bad_declination_is_refused(typed: str) -> None:
    with pytest.raises(AngleError):
        parse_dec(typed)


def test_radius_units() -> None:
    assert parse_radius("2", maximum=30) == 2.0
    assert parse_radius("30'", maximum=30) == pytest.approx(0.5)
    assert parse_radius("30arcmin", maximum=30) == pytest.approx(0.5)
    assert parse_radius('36"', maximum=30) == pytest.approx(0.01)
    assert parse_radius("1.5deg", maximum=30) == 1.5
    for bad in ("0", "31", "-1", "big"):
        with pytest.raises(AngleError):
            parse_radius(bad, maximum=30)


def test_did_you_mean() -> None:
    names = ["bursts", "burst", "approve", "status", "near"]
    assert suggest("aprove", names) == "approve"
    assert suggest("STATSU", names) == "status"
    assert suggest("xyzzy", names) is None


def test_codes_are_typed_any_way_and_never_ambiguous() -> None:
    assert normalise_code("k7qx-m2pd") == "K7QXM2PD"
    assert normalise_code(" K7QX M2PD ") == "K7QXM2PD"
    assert normalise_code("K7QX0M2P") is None  # 0 (and O, 1, I, L, U) never occur in a code
    assert normalise_code("K7QXM2P") is None
