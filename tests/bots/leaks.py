"""Helpers for the "codes never in the log" tests: the ways a code gets typed, and a grep of
every file of a data directory (and of a captured log) for any of them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

#: Latin code letters → a Cyrillic look-alike (what a Russian keyboard layout types).
CYRILLIC = str.maketrans({"A": "А", "B": "В", "C": "С", "E": "Е", "H": "Н", "K": "К", "M": "М",
                          "P": "Р", "T": "Т", "X": "Х", "Y": "Ү", "3": "З"})


def fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def spellings(code: str) -> dict[str, str]:
    """Every way the tests type ``code`` (canonical, 8 symbols)."""
    a, b = code[:4], code[4:]
    return {
        "canonical": code,
        "dashed": f"{a}-{b}",
        "lower": code.lower(),
        "lower dashed": f"{a}-{b}".lower(),
        "split": f"{a} {b}",
        "split lower": f"{a} {b}".lower(),
        "en dash": f"{a}\u2013{b}",
        "em dash": f"{a}\u2014{b}",
        "minus": f"{a}\u2212{b}",
        "nbsp": f"{a}\u00a0{b}",
        "zero width": f"{a}\u200b{b}",
        "fullwidth": fullwidth(code),
        "cyrillic": code.translate(CYRILLIC),
        "pairs": " ".join(code[i : i + 2] for i in range(0, 8, 2)),
    }


def needles(code: str) -> set[str]:
    """What must not be found: each spelling, as text and as JSON would escape it."""
    found: set[str] = set()
    for typed in spellings(code).values():
        found.add(typed)
        found.add(json.dumps(typed)[1:-1])  # \\u escapes (projection JSON)
    return found


def leaks_in_text(text: str, code: str) -> list[str]:
    lowered = text.lower()
    return sorted(n for n in needles(code) if n.lower() in lowered)


def leaks_in_files(paths: Iterable[Path], code: str) -> dict[str, list[str]]:
    """{file: [needles found]} over the bytes of every file (SQLite pages, WAL frames …)."""
    hits: dict[str, list[str]] = {}
    for path in paths:
        if not path.is_file():
            continue
        data = path.read_bytes().lower()
        found = sorted(n for n in needles(code) if n.lower().encode("utf-8") in data)
        if found:
            hits[path.name] = found
    return hits


def data_files(data_dir: Path) -> list[Path]:
    """Every file burstbus keeps: log.sqlite, state.sqlite, projections.sqlite and their -wal/-shm."""
    files = sorted(p for p in data_dir.rglob("*") if p.is_file())
    names = {p.name for p in files}
    assert {"log.sqlite", "state.sqlite", "projections.sqlite"} <= names, names
    return files
