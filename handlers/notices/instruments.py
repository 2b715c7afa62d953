"""Per-instrument notice content from operator files: who the instrument is in a packet, and
the parameters a request may fill (their group, unit, UCD, order).

Why files: the FSC adds a field to a notice far more often than a notice type; an operator
edits ``<instrument>.toml`` (the built-ins are in ``handlers/notices/instruments/``, a file of
the same instrument in ``[notices] instruments_dir`` replaces one, a new file adds an
instrument) and restarts, with no code change. A bad file stops the start with the file and
the key that is wrong, like any configuration error.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUILTIN = Path(__file__).resolve().parent / "instruments"

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_LETTER = re.compile(r"^[a-z]$")
_UCD = re.compile(r"^[A-Za-z0-9.;_-]{1,100}$")
_UNIT = re.compile(r"^[^\s<>&\"]{1,40}$")


class InstrumentFileError(ValueError):
    """A bad instrument file: ``where`` names the file and key."""

    def __init__(self, where: str, problem: str):
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


@dataclass(frozen=True)
class ParamSpec:
    """One parameter an instrument's notices may carry."""

    name: str
    group: str
    unit: str | None = None
    ucd: str | None = None


@dataclass(frozen=True)
class Instrument:
    """An instrument as its notices present it."""

    name: str
    #: The notice level's letter (``e`` for ECLAIRs: N1e).
    letter: str
    #: ``How/Description`` after the level: ``N1e notice, data from ECLAIRs``.
    how: str
    reference: str | None
    #: Groups in order, each with its params in order.
    groups: tuple[tuple[str, tuple[ParamSpec, ...]], ...]

    def param(self, name: str) -> ParamSpec | None:
        return next((p for _, params in self.groups for p in params if p.name == name), None)

    def param_names(self) -> list[str]:
        return [p.name for _, params in self.groups for p in params]


def _text(table: Mapping[str, Any], key: str, where: str, pattern: re.Pattern[str] | None = None,
          required: bool = True) -> str | None:
    value = table.get(key)
    if value is None:
        if required:
            raise InstrumentFileError(f"{where}.{key}", "is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise InstrumentFileError(f"{where}.{key}", f"must be non-empty text, not {value!r}")
    if pattern is not None and not pattern.match(value):
        raise InstrumentFileError(f"{where}.{key}", f"is not allowed here: {value!r}")
    return value


def parse_instrument(table: Mapping[str, Any], where: str) -> Instrument:
    """One instrument file's contents (a TOML table), checked."""
    known = {"instrument", "letter", "how", "reference", "groups"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise InstrumentFileError(f"{where}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(known))})")
    name = _text(table, "instrument", where, _NAME)
    letter = _text(table, "letter", where, _LETTER)
    how = _text(table, "how", where)
    reference = _text(table, "reference", where, required=False)
    if reference is not None and not reference.startswith(("http://", "https://")):
        raise InstrumentFileError(f"{where}.reference", f"must be an http(s) URL, not {reference!r}")
    groups_raw = table.get("groups") or []
    if not isinstance(groups_raw, list):
        raise InstrumentFileError(f"{where}.groups", "must be an array of tables ([[groups]])")
    groups: list[tuple[str, tuple[ParamSpec, ...]]] = []
    seen: set[str] = set()
    for i, group in enumerate(groups_raw):
        at = f"{where}.groups[{i}]"
        if not isinstance(group, dict):
            raise InstrumentFileError(at, "must be a table")
        bad = sorted(set(group) - {"name", "params"})
        if bad:
            raise InstrumentFileError(f"{at}.{bad[0]}", "unknown key (known: name, params)")
        group_name = _text(group, "name", at, _NAME)
        assert group_name is not None
        params: list[ParamSpec] = []
        for j, param in enumerate(group.get("params") or []):
            pat = f"{at}.params[{j}]"
            if not isinstance(param, dict):
                raise InstrumentFileError(pat, "must be a table {name = …, unit = …, ucd = …}")
            bad = sorted(set(param) - {"name", "unit", "ucd"})
            if bad:
                raise InstrumentFileError(f"{pat}.{bad[0]}", "unknown key (known: name, unit, ucd)")
            param_name = _text(param, "name", pat, _NAME)
            assert param_name is not None
            if param_name in seen:
                raise InstrumentFileError(f"{pat}.name", f"{param_name!r} is declared twice")
            seen.add(param_name)
            params.append(ParamSpec(param_name, group_name, _text(param, "unit", pat, _UNIT, required=False),
                                    _text(param, "ucd", pat, _UCD, required=False)))
        groups.append((group_name, tuple(params)))
    assert name is not None and letter is not None and how is not None
    return Instrument(name, letter, how, reference, tuple(groups))


def _load_file(path: Path) -> Instrument:
    try:
        with open(path, "rb") as handle:
            table = tomllib.load(handle)
    except OSError as exc:
        raise InstrumentFileError(str(path), f"cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InstrumentFileError(str(path), f"not valid TOML: {exc}") from None
    return parse_instrument(table, str(path))


def load_instruments(override: Path | None = None) -> dict[str, Instrument]:
    """Instrument (case-folded name) → its definition: the built-in files, then ``override``'s
    ``*.toml`` (same instrument: replaced; another: added)."""
    found: dict[str, Instrument] = {}
    folders = [BUILTIN] + ([override] if override is not None else [])
    for folder in folders:
        if not folder.is_dir():
            raise InstrumentFileError(str(folder), "is not a directory")
        for path in sorted(folder.glob("*.toml")):
            instrument = _load_file(path)
            found[instrument.name.casefold()] = instrument
    return found
