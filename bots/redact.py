"""Approval codes never reach the log: whatever could be a code in a text becomes ``[code]``.

A code is single-use and short-lived, but the log is permanent and served (``GET /api/log``),
so a code typed anywhere — any argument of ``approve``, a ``deny`` reason, a trigger note,
``help K7QXM2PD``, a mistyped ``aprove`` — must be gone before the event is appended, however
it was spelt (dashes, spaces, case, fullwidth, Cyrillic/Greek look-alikes: :func:`fold`).

Two rules, both on the folded text, each replacing whole words:

* **A real code** (:class:`KnownCodes`): any run of consecutive words whose folded,
  separator-stripped concatenation contains 8 symbols that are the code of a recent request
  (``k7qx m2pd``, ``K7 QX M2 PD``) — checked by recomputing the request's keyed hash, so it
  also catches codes without digits, which no shape rule can tell from a word.
* **The shape of a code**, for codes we cannot check (expired long ago, mistyped by one
  symbol): a word holding 8 or more code symbols in a row mixing letters and digits, the
  dashed ``XXXX-XXXX``, or 2–4 short pieces (words or parts of a word) of 2–4 code symbols
  that add up to 8 mixing letters and digits. Burst ids (``sb25120112``: 0 and 1 are not
  code symbols), telescope names, words and angles (``12h34m56s``) stay readable.

Beyond :data:`SCAN_LIMIT` characters (text that is only hashed, never recorded) every
possible window counts as a code: no hash work for a flood, and nothing to brute-force.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from burstbus.bots.parse import (
    AngleError,
    fold,
    normalise_code,
    parse_dec,
    parse_ra,
    parse_radius,
)
from burstbus.catalogue import TRIGGER_REQUESTED
from burstbus.handlers.triggers.codes import CODE_ALPHABET, CODE_LENGTH
from burstbus.handlers.triggers.request import Request
from burstbus.handlers.triggers.workflow import TriggerWorkflow
from burstbus.store.base import ReadFilter

CODE_MARK = "[code]"
#: Words around a code that are never part of one (``approve code K7QX-M2PD for TAROT``).
KEYWORDS = frozenset({"code", "codes", "for", "on", "the", "please", "pls", "telescope", "request"})
#: Characters of a text checked against the codes of recent requests; the rest is only hashed.
SCAN_LIMIT = 600

IsCode = Callable[[str], bool]

_SYMBOLS = frozenset(CODE_ALPHABET)
_DIGITS = frozenset("23456789")
_RUN = re.compile(rf"[{CODE_ALPHABET}]{{{CODE_LENGTH},}}")
_NOT_ALNUM = re.compile(r"[^0-9A-Z]+")
_DASHED = re.compile(rf"[^0-9A-Z]*[{CODE_ALPHABET}]{{4}}[-_./:·][{CODE_ALPHABET}]{{4}}[^0-9A-Z]*")
_HEX_ID = re.compile(r"[0-9a-fA-F]{4,32}")


def never(_: str) -> bool:
    return False


def mixes(symbols: str) -> bool:
    """Letters and digits together: how a random code almost always looks (≈92%)."""
    digits = sum(1 for c in symbols if c in _DIGITS)
    return 0 < digits < len(symbols)


def is_keyword(word: str) -> bool:
    return word.strip(",.;:!?").casefold() in KEYWORDS


def _is_angle(word: str) -> bool:
    for parse in (parse_ra, parse_dec):
        try:
            parse(word)
            return True
        except AngleError:
            pass
    try:
        parse_radius(word, maximum=360.0)
        return True
    except AngleError:
        return False


def _is_mark(word: str) -> bool:
    return word.startswith(CODE_MARK)


def _mark(words: Sequence[str], is_code: IsCode, keep: Callable[[str], bool]) -> list[bool]:
    """Which words are (part of) a code. ``keep``: words exempt from the shape rules (telescope
    names, keywords, a request id) — never from the real-code rule."""
    marked = [_is_mark(w) for w in words]
    folded = [fold(w) for w in words]
    # 1. real codes: windows over the concatenation of every word's code-ish symbols.
    chars: list[str] = []
    owner: list[int] = []
    tail = -1
    offset = 0
    for i, f in enumerate(folded):
        if tail < 0 and offset >= SCAN_LIMIT:
            tail = len(chars)
        offset += len(words[i]) + 1
        if marked[i]:
            chars.append("!")  # an existing [code] breaks windows
            owner.append(i)
            continue
        for ch in f:
            if "0" <= ch <= "9" or "A" <= ch <= "Z":
                chars.append(ch)
                owner.append(i)
    joined = "".join(chars)
    for run in _RUN.finditer(joined):
        for start in range(run.start(), run.end() - CODE_LENGTH + 1):
            window = joined[start : start + CODE_LENGTH]
            if (0 <= tail <= start) or is_code(window):
                for j in range(start, start + CODE_LENGTH):
                    marked[owner[j]] = True
    # 2. shapes, per word and across short pieces.
    pieces: list[tuple[str, int]] = []  # ("", -1) breaks a sequence of pieces
    for i, f in enumerate(folded):
        if marked[i] or keep(words[i]) or (any(c.isdigit() for c in f) and _is_angle(words[i])):
            pieces.append(("", -1))
            continue
        parts = [p for p in _NOT_ALNUM.split(f) if p]
        if _DASHED.fullmatch(f) or any(mixes(m.group()) for p in parts for m in _RUN.finditer(p)):
            marked[i] = True
            pieces.append(("", -1))
            continue
        pieces.extend((p, i) for p in parts)
    for start in range(len(pieces)):
        total, members = 0, []
        for piece, i in pieces[start : start + 4]:
            if not 2 <= len(piece) <= 4 or not set(piece) <= _SYMBOLS:
                break
            total += len(piece)
            members.append((piece, i))
            if total >= CODE_LENGTH:
                break
        if total == CODE_LENGTH and len(members) >= 2 and mixes("".join(p for p, _ in members)):
            for _, i in members:
                marked[i] = True
    return marked


def redact_words(words: Sequence[str], is_code: IsCode = never, keep: Callable[[str], bool] = is_keyword) -> list[str]:
    """``words`` with every (part of a) code replaced; consecutive ones become one ``[code]``."""
    out: list[str] = []
    for word, hit in zip(words, _mark(words, is_code, keep), strict=True):
        if not hit:
            out.append(word)
        elif not (out and _is_mark(out[-1])):
            out.append(word if _is_mark(word) else CODE_MARK)
    return out


def redact_text(text: str, is_code: IsCode = never, keep: Callable[[str], bool] = is_keyword) -> str:
    """Free text (a reason, a note, a log line, a traceback) with codes replaced; the spacing
    between the words that remain is kept."""
    if not text:
        return text
    tokens = re.split(r"(\s+)", text)
    words, gaps = tokens[0::2], tokens[1::2]
    hits = _mark(words, is_code, keep)
    out: list[str] = []
    for i, word in enumerate(words):
        gap = gaps[i - 1] if i else ""
        if hits[i] and out and _is_mark(out[-1]):
            continue
        out.append(gap)
        out.append(word if not hits[i] or _is_mark(word) else CODE_MARK)
    return "".join(out)


# -- code-taking commands (rule a) --------------------------------------------------------


@dataclass(frozen=True)
class CodeArgs:
    """``approve``/``deny`` arguments read the lenient way: keywords skipped, a telescope name
    before or after the code, the code in 1–4 pieces (``k7qx m2pd``)."""

    #: The typed code (its pieces joined), or everything that could have been one.
    code: str
    telescope: str | None
    #: After the code: ``deny``'s reason words (``approve``: words it cannot place).
    rest: list[str]
    #: The arguments as the log keeps them: telescope names and keywords, ``[code]`` for the
    #: rest up to the end of the code (the reason is redacted by the text rule).
    shown: list[str]
    found: bool


def read_code_args(args: Sequence[str], is_telescope: Callable[[str], bool]) -> CodeArgs:
    def plain(word: str) -> bool:
        return is_telescope(word) or is_keyword(word)

    telescope: str | None = None
    i = 0
    while i < len(args) and plain(args[i]):
        telescope = args[i] if is_telescope(args[i]) else telescope
        i += 1
    span = next((k for k in range(1, 5) if i + k <= len(args) and normalise_code("".join(args[i : i + k]))), None)
    if span is None:  # no code where it should be: anything that is not a name could be one
        code = "".join(a for a in args[i:] if not plain(a))
        for a in args[i:]:
            telescope = a if is_telescope(a) and telescope is None else telescope
        shown = redact_words([a if plain(a) else CODE_MARK for a in args])
        return CodeArgs(code, telescope, [], shown, False)
    end = i + span
    rest = list(args[end:])
    while rest and plain(rest[0]):  # approve CODE TAROT, deny CODE for TAROT …
        telescope = rest[0] if is_telescope(rest[0]) else telescope
        end += 1
        rest = rest[1:]
    shown = redact_words([a if plain(a) else CODE_MARK for a in args[:end]])
    return CodeArgs("".join(args[i : i + span]), telescope, rest, shown, True)


def is_request_id(word: str) -> bool:
    """A request id as shown to the requester (8 hex digits, or the full 32)."""
    return bool(_HEX_ID.fullmatch(word))


# -- the codes of recent requests ---------------------------------------------------------


class KnownCodes:
    """Is this 8-symbol candidate the code of a recent request? Recomputes each request's keyed
    hash (:meth:`Request.matches`) — the log keeps no code, so nothing cheaper exists.

    :meth:`refresh` reads only the ``trigger.requested`` events appended since the last call
    (one indexed read, usually empty), so the check itself is synchronous and can run right
    before an append, and in an exception handler. The horizon is :meth:`TriggerWorkflow.find_by_code`'s:
    what ``approve`` would still recognise.
    """

    def __init__(self, workflow: TriggerWorkflow):
        self.workflow = workflow
        #: request id → (recorded_at, request)
        self._requests: dict[str, tuple[str, Request]] = {}
        self._after = 0
        self._memo: dict[str, bool] = {}

    def _horizon(self) -> str:
        return self.workflow.requests.horizon()

    async def refresh(self) -> None:
        since = self._horizon()
        records = await self.workflow.log.read(self._after, ReadFilter.of(types=[TRIGGER_REQUESTED], since=since))
        for record in records:
            self._after = max(self._after, record.seq)
            try:
                request = Request.of(record)
            except (KeyError, TypeError, ValueError):
                continue
            self._requests[request.request_id] = (record.recorded_at, request)
            self._memo.clear()
        stale = [rid for rid, (at, _) in self._requests.items() if at < since]
        for rid in stale:
            del self._requests[rid]
        if stale:
            self._memo.clear()

    def __call__(self, candidate: str) -> bool:
        found = self._memo.get(candidate)
        if found is None:
            key = self.workflow.key
            found = any(request.matches(key, candidate) for _, request in self._requests.values())
            if len(self._memo) > 10_000:
                self._memo.clear()
            self._memo[candidate] = found
        return found
