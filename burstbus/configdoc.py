"""The configuration reference, generated from the section classes themselves.

Why generated: a hand-written reference drifts (half of the keys were documented nowhere).
Every section is a frozen dataclass whose fields carry their meaning in ``#:`` comments (the
convention Sphinx's autodoc reads), their choices and bounds in ``metadata``; this module
turns exactly that into ``docs/configuration.md``, and a test fails when the file and the code
disagree. Regenerate with::

    python -m burstbus.configdoc > docs/configuration.md

Sections come from the core (``Config``'s own fields) and from every registered package
(:func:`burstbus.config.registered_packages`), so a new package's keys appear here with no
edit to this module.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from burstbus.config import _CORE_SECTIONS, ENV_PREFIX, Config, registered_packages
from burstbus.fieldcomments import field_comments


def _doc_of(cls: type) -> str:
    """The first paragraph of a class docstring, on one line."""
    doc = inspect.getdoc(cls) or ""
    if doc == inspect.getdoc(object) or doc.startswith(f"{cls.__name__}("):  # dataclass's generated doc
        return ""
    return " ".join(doc.split("\n\n", 1)[0].split())


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return f"{_type_name(options[0])} (optional)"
    if origin is tuple:
        return f"list of {_type_name(typing.get_args(hint)[0])}"
    if origin in (dict, Mapping) or hint is dict:
        return "table of strings"
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return "table"
    return {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}.get(hint, str(hint))


def _toml(value: Any) -> str:
    """A default as it would be written in the TOML file."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return '""' if str(value) == "" else f'"{value}"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if dataclasses.is_dataclass(value):
        return "(table)"
    return str(value)


def _default(spec: dataclasses.Field[Any]) -> str:
    if spec.default is not dataclasses.MISSING:
        return _toml(spec.default)
    if spec.default_factory is not dataclasses.MISSING:
        return _toml(spec.default_factory())
    return "required"


def _limits(meta: Mapping[str, Any]) -> str:
    parts = []
    if meta.get("choices"):
        parts.append("one of " + ", ".join(f"`{c}`" for c in meta["choices"]))
    if "minimum" in meta:
        parts.append(f"at least {meta['minimum']}")
    if "maximum" in meta:
        parts.append(f"at most {meta['maximum']}")
    return "; ".join(parts)


def _cell(text: str) -> str:
    """One table cell: reStructuredText's double backticks as Markdown's, no pipes or newlines."""
    return text.replace("``", "`").replace("|", "\\|").replace("\n", " ")


def _rows(cls: type, path: str, env: str | None) -> Iterator[tuple[str, str, str, str, str]]:
    """(key, type, default, environment variable, meaning) for each field; nested tables after."""
    comments = field_comments(cls)
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        hint = hints[spec.name]
        meaning = comments.get(spec.name, "")
        limits = _limits(spec.metadata)
        if limits:
            meaning = f"{meaning} ({limits})" if meaning else limits.capitalize()
        item = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple and typing.get_args(hint) else None
        nested = isinstance(item, type) and dataclasses.is_dataclass(item)
        variable = f"`{env}{spec.name.upper()}`" if env is not None and not nested else "—"
        kind = f"array of `[[{path}.{spec.name}]]` tables" if nested else _type_name(hint)
        yield f"`{spec.name}`", kind, _cell(f"`{_default(spec)}`"), variable, _cell(meaning)


def _section(name: str, cls: type, *, array: bool = False) -> list[str]:
    title = f"[[{name}]]" if array else f"[{name}]"
    out = [f"## `{title}`", ""]
    doc = _doc_of(cls)
    if doc:
        out += [_cell(doc), ""]
    env = None if array else f"{ENV_PREFIX}{name.upper()}_"
    out += ["| key | type | default | environment | meaning |", "|---|---|---|---|---|"]
    out += [f"| {' | '.join(row)} |" for row in _rows(cls, name, env)]
    out.append("")
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        args = typing.get_args(hints[spec.name])
        item = args[0] if typing.get_origin(hints[spec.name]) is tuple and args else hints[spec.name]
        if isinstance(item, type) and dataclasses.is_dataclass(item):
            sub = f"{name}.{spec.name}"
            many = typing.get_origin(hints[spec.name]) is tuple
            out += [f"### `{'[[' + sub + ']]' if many else '[' + sub + ']'}`", ""]
            doc = _doc_of(item)
            if doc:
                out += [_cell(doc), ""]
            out += ["| key | type | default | environment | meaning |", "|---|---|---|---|---|"]
            out += [f"| {' | '.join(row)} |" for row in _rows(item, sub, None)]
            out.append("")
    return out


def sections() -> list[tuple[str, type, bool]]:
    """(name, class, array) of every section: the core's, then each registered package's."""
    hints = typing.get_type_hints(Config)
    found: list[tuple[str, type, bool]] = [(name, hints[name], False) for name in _CORE_SECTIONS]
    for package in registered_packages():
        for spec in package.sections:
            cls = spec.type
            if spec.array:  # a wrapper holding the entries in a field of the section's name
                cls = typing.get_args(typing.get_type_hints(cls)[spec.name])[0]
            found.append((spec.name, cls, spec.array))
    return found


def reference() -> str:
    """The whole ``docs/configuration.md``."""
    out = [
        "# Configuration reference",
        "",
        "Generated from the configuration classes by `python -m burstbus.configdoc > docs/configuration.md`;",
        "`tests/test_configdoc.py` fails when this file and the code disagree. Where the values come from:",
        "built-in defaults → the TOML file (`--config`, else `./burstbus.toml` if present) →",
        f"`{ENV_PREFIX}<SECTION>_<KEY>` environment variables (lists as comma-separated text) → command-line options.",
        "Unknown sections and keys are refused with their name. Secrets (passwords, tokens) may be written",
        "`env:NAME` (read from that environment variable) or `file:/path` (the file's first line).",
        "",
    ]
    for name, cls, array in sections():
        out += _section(name, cls, array=array)
    return "\n".join(out).rstrip("\n") + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference())
