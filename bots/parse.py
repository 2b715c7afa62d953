"""Pure parsing of what people type on phones: normalisation, words, angles, codes.

Phones "help": they turn quotes into curly quotes, ``--`` into dashes, a minus into U+2212,
capitalise the first word, insert no-break spaces. A Burst Advocate at 3 a.m. must not have
to fight that, so everything here is lenient about form and strict about meaning: an angle
is either read exactly or refused with a sentence saying what was expected.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

# The one reader of typed positions (the bot's ``near``, the notices page's cone): re-exported.
from burstbus.angles import AngleError as AngleError
from burstbus.angles import parse_angle as parse_angle
from burstbus.angles import parse_dec as parse_dec
from burstbus.angles import parse_ra as parse_ra
from burstbus.angles import parse_radius as parse_radius
from burstbus.handlers.triggers.codes import CODE_ALPHABET, CODE_LENGTH

_QUOTES = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2039": "'", "\u203a": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u00ab": '"', "\u00bb": '"',
}
_DASHES = dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-")
#: Zero-width and direction marks, soft hyphen, variation selectors: phones and copy-paste
#: insert them, and they would split a word (or a code) without being seen.
_INVISIBLE = dict.fromkeys(
    "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e"
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufe0e\ufe0f",
    "",
)
_TABLE = str.maketrans({**_QUOTES, **_DASHES, **_INVISIBLE})


def _nfkc(text: str) -> str:
    """NFKC (fullwidth ``ａｐｐｒｏｖｅ`` → ``approve``, ``²`` → ``2``) except the double
    prime, which NFKC would split into two primes that :func:`parse_angle` does not read."""
    if text.isascii():
        return text
    return "\u2033".join(unicodedata.normalize("NFKC", part) for part in text.split("\u2033"))


def normalise(text: str) -> str:
    """Phone text → plain text: compatibility forms folded (NFKC: fullwidth letters and
    digits from CJK keyboards), curly quotes → ``"``/``'``, dashes and minus signs → ``-``,
    any Unicode space → one space, invisible characters dropped, a leading ``/`` or ``!``
    (IRC/Slack habit) removed. Primes (′ ″) and degree signs are kept for :func:`parse_angle`."""
    text = _nfkc(text).translate(_TABLE)
    text = "".join(" " if (ch.isspace() or unicodedata.category(ch) == "Zs") else ch for ch in text)
    text = " ".join(text.split())
    if text[:1] in ("/", "!"):
        text = text[1:].lstrip()
    return text


def split_words(text: str) -> list[str]:
    """Words separated by spaces; ``"…"`` or ``'…'`` at the start of a word groups spaces.

    Lenient where shlex is strict: a quote inside a word (``it's``, ``5'``) is literal, and an
    unclosed quote runs to the end of the text instead of being an error.
    """
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == " ":
            i += 1
            continue
        if text[i] in "\"'":
            quote = text[i]
            end = text.find(quote, i + 1)
            if end == -1:
                words.append(text[i + 1 :])
                break
            after = text.find(" ", end + 1)
            after = n if after == -1 else after
            words.append(text[i + 1 : end] + text[end + 1 : after])  # "slew", → slew,
            i = after
            continue
        end = text.find(" ", i)
        end = n if end == -1 else end
        words.append(text[i:end])
        i = end
    return words


@dataclass(frozen=True)
class Parsed:
    """A command line: the command name (lower case), its words, and the raw rest of the line."""

    name: str
    args: list[str]
    rest: str


def parse_command(text: str) -> Parsed | None:
    """Split a normalised line into command and arguments (None for an empty line)."""
    line = normalise(text)
    if not line:
        return None
    head, _, rest = line.partition(" ")
    return Parsed(head.casefold(), split_words(rest), rest.strip())


def suggest(word: str, names: Iterable[str]) -> str | None:
    """The closest command name to a mistyped one, if any is close (difflib)."""
    found = difflib.get_close_matches(word.casefold(), list(names), n=1, cutoff=0.6)
    return found[0] if found else None


# -- approval codes --------------------------------------------------------------------------

_CODE_SHAPE = re.compile(rf"^[{CODE_ALPHABET}]{{{CODE_LENGTH}}}$")

#: Cyrillic and Greek capitals (after upper-casing) that look like a code letter or digit:
#: a phone with a Russian or Greek keyboard layout types them for the Latin ones, and both a
#: code typed that way and the redaction of one must see the Latin symbol. Deliberately small:
#: only look-alikes of the code alphabet (``З`` for 3, ``Б`` for 6 included).
CONFUSABLES = str.maketrans({
    # Cyrillic
    "\u0410": "A", "\u0412": "B", "\u0421": "C", "\u0415": "E", "\u041d": "H", "\u0408": "J",
    "\u041a": "K", "\u041c": "M", "\u0420": "P", "\u051a": "Q", "\u0405": "S", "\u0422": "T",
    "\u0425": "X", "\u04ae": "Y", "\u0423": "Y", "\u051c": "W", "\u050c": "G", "\u0474": "V",
    "\u0417": "3", "\u0411": "6",
    # Greek
    "\u0391": "A", "\u0392": "B", "\u0395": "E", "\u0397": "H", "\u039a": "K", "\u039c": "M",
    "\u039d": "N", "\u03a1": "P", "\u03a4": "T", "\u03a7": "X", "\u03a5": "Y", "\u0396": "Z",
    "\u03f9": "C",
})


def fold(text: str) -> str:
    """Text → the form codes are compared in: :func:`normalise`'s character folding (NFKC,
    dashes, invisible characters), combining marks dropped, upper case, Cyrillic/Greek
    look-alikes → Latin (:data:`CONFUSABLES`). Not for display: a Russian note would come
    out as nonsense; it only decides what is (part of) a code."""
    text = _nfkc(text).translate(_TABLE)
    if not text.isascii():
        text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Mn", "Me"))
    return text.upper().translate(CONFUSABLES)


def normalise_code(text: str) -> str | None:
    """What was typed → the canonical code, or None if it cannot be one.

    Case, dashes (any kind), spaces, fullwidth forms and Cyrillic/Greek look-alike letters
    do not matter (:func:`fold`); ``0``/``O`` and ``1``/``I``/``L`` cannot occur, so nothing
    needs guessing."""
    code = re.sub(r"[\s-]", "", fold(text))
    return code if _CODE_SHAPE.match(code) else None


def looks_like_code(word: str) -> bool:
    return normalise_code(word) is not None
