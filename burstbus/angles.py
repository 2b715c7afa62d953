"""What people type as sky positions: decimal, sexagesimal and unit-suffixed angles, and cones.

The one reader of typed positions, shared by the chat bot (``near 12:34:56 -12:30:00 30'``)
and the web pages' cone filter (``12h30m00s +45d00m00s 5arcmin``, ``187.5 45 0.1deg``), so a
position a Burst Advocate copies from one into the other means the same thing, and a position
outside the sky (RA 400°, Dec 95°) is refused with the same sentence everywhere instead of
being wrapped in one place and refused in another. Lenient about form (phone minus signs,
``12,5`` decimal commas, ``″`` or ``"``), strict about meaning.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

#: Dashes and minus signs phones and word processors put where a ``-`` was meant.
_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-"))

class AngleError(ValueError):
    """An angle that cannot be read; the message is one sentence for the user."""


_NUMBER = r"\d+(?:\.\d*)?|\.\d+"
_DECIMAL = re.compile(rf"^([+-]?)({_NUMBER})(deg|d|°|h)?$")
_SEXAGESIMAL = re.compile(
    rf"^([+-]?)(\d+)(h|d|°|:)(\d+(?:\.\d*)?)(?:(m|′|'|:)(?:({_NUMBER})(s|″|\"|'')?)?)?$"
)
_UNIT = re.compile(rf"^({_NUMBER})(deg|d|°|arcmin|amin|m|′|'|arcsec|asec|s|″|\"|'')?$")


def _number_text(text: str) -> str:
    """``12,5`` (a European keyboard) → ``12.5``; spaces around signs/units dropped."""
    text = text.strip().replace(" ", "")
    if re.fullmatch(r"[+-]?\d+,\d+", text):
        text = text.replace(",", ".")
    return text


def parse_angle(text: str, *, hours: bool) -> float:
    """An angle in degrees from decimal or sexagesimal text.

    ``hours=True`` (right ascension): ``12:34:56.7`` and ``12h34m56s`` are hours; a plain
    number or ``188.7d`` is degrees. ``hours=False`` (declination): ``-12:34:56``,
    ``-12d34m56s``, ``−12°34′56″`` and plain numbers are degrees.
    """
    value = _number_text(text)
    match = _DECIMAL.match(value)
    if match:
        sign, number, unit = match.groups()
        degrees = float(number) * (15.0 if unit == "h" else 1.0)
        if unit == "h" and not hours:
            raise AngleError(f"{text!r}: hours are for right ascension, not declination")
        return -degrees if sign == "-" else degrees
    match = _SEXAGESIMAL.match(value)
    if not match:
        raise AngleError(
            f"cannot read {text!r} as an angle (try 188.73, 12:34:56.7 or 12h34m56s for RA, "
            "-12.5 or -12d30m00s for Dec)"
        )
    sign, whole, first, minutes, second_sep, seconds, _ = match.groups()
    if first == "h" and not hours:
        raise AngleError(f"{text!r}: hours are for right ascension, not declination")
    if first in ("d", "°") and second_sep == ":":
        second_sep = None  # 12d34:56 is odd but unambiguous
    minute_value = float(minutes)
    second_value = float(seconds) if seconds else 0.0
    if minute_value >= 60 or second_value >= 60:
        raise AngleError(f"{text!r}: minutes and seconds must be below 60")
    in_hours = first == "h" or (first == ":" and hours)
    value_abs = int(whole) + minute_value / 60.0 + second_value / 3600.0
    degrees = value_abs * (15.0 if in_hours else 1.0)
    return -degrees if sign == "-" else degrees


def parse_ra(text: str) -> float:
    ra = parse_angle(text, hours=True)
    if not (0.0 <= ra < 360.0) or not math.isfinite(ra):
        raise AngleError(f"right ascension {text!r} is outside 0–360° (0–24h)")
    return ra


def parse_dec(text: str) -> float:
    dec = parse_angle(text, hours=False)
    if not -90.0 <= dec <= 90.0:
        raise AngleError(f"declination {text!r} is outside −90…+90°")
    return dec


def parse_radius(text: str, *, maximum: float) -> float:
    """A cone radius: degrees by default; ``30'``/``30m``/``30arcmin``, ``10"``/``10s``/``10arcsec``."""
    value = _number_text(text)
    match = _UNIT.match(value)
    if not match:
        raise AngleError(f"cannot read {text!r} as a radius (degrees, or 30' / 30arcmin / 10\")")
    number, unit = float(match.group(1)), match.group(2)
    if unit in ("arcmin", "amin", "m", "′", "'"):
        number /= 60.0
    elif unit in ("arcsec", "asec", "s", "″", '"', "''"):
        number /= 3600.0
    if not 0.0 < number <= maximum:
        raise AngleError(f"the radius must be above 0 and at most {maximum:g}° (got {text!r})")
    return number


def plain(text: str) -> str:
    """Typed text → what the parsers read: compatibility forms folded (NFKC, except the double
    prime, which NFKC would split into two primes), dashes → ``-``, any space → one space."""
    if not text.isascii():
        text = "\u2033".join(unicodedata.normalize("NFKC", part) for part in text.split("\u2033"))
        text = text.translate(_DASHES)
        text = "".join(" " if (ch.isspace() or unicodedata.category(ch) == "Zs") else ch for ch in text)
    return " ".join(text.split())


def position_words(text: str) -> list[str] | None:
    """RA, DEC and an optional RADIUS as separate words from what was typed: ``1 2 3``,
    ``1, 2, 3``, ``1,2,3``, or sexagesimal with spaces (``12 34 56 -12 30 00 [R]``); None
    when it is not two or three of them."""
    text = re.sub(r",\s+", " ", plain(text)).strip()
    words = text.split(" ")
    if len(words) == 1 and text.count(",") >= 1:
        words = text.split(",")
    if len(words) in (6, 7):
        words = [":".join(words[0:3]), ":".join(words[3:6]), *words[6:]]
    words = [w.rstrip(",;") for w in words if w.strip(",;")]
    return words if len(words) in (2, 3) else None


@dataclass(frozen=True, slots=True)
class TypedCone:
    """A cone read from text (degrees)."""

    ra: float
    dec: float
    radius: float


def parse_cone(text: str, *, default_radius: float | None, maximum: float) -> TypedCone:
    """``RA DEC [RADIUS]`` in any of the forms above; without a radius, ``default_radius``
    (None: a radius is required). Raises :class:`AngleError` with one sentence."""
    words = position_words(text)
    if words is None or (len(words) == 2 and default_radius is None):
        needed = "RA DEC RADIUS" if default_radius is None else "RA DEC [RADIUS]"
        raise AngleError(
            f"cannot read {text.strip()[:80]!r} as {needed} (e.g. 187.5 45 0.1deg, or 12h30m00s +45d00m00s 5arcmin)"
        )
    ra, dec = parse_ra(words[0]), parse_dec(words[1])
    radius = parse_radius(words[2], maximum=maximum) if len(words) > 2 else float(default_radius or 0.0)
    return TypedCone(ra, dec, radius)
