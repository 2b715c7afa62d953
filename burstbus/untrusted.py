"""JSON from outside (query strings, NATS messages, HTTP bodies, Kafka notices), parsed with limits.

Why: ``json.loads`` on ``[[[[…`` a few thousand deep raises ``RecursionError`` (not a
``ValueError``), which escaped the callers' error handling — an HTTP 500, a NATS request that
got no reply at all; an integer thousands of digits long costs quadratic time to convert. Every
piece of JSON a sender controls goes through :func:`parse_json`, which turns all of it into one
:class:`UntrustedJson` (a ``ValueError``) with a reason a sender can act on: too large, not
UTF-8, not JSON (line and column), nested too deeply, a number too long, NaN/Infinity.
"""

from __future__ import annotations

import json
from typing import Any

#: Deepest nesting accepted: real notices and requests nest a handful of levels.
MAX_DEPTH = 32
#: Longest integer accepted, in digits (a 64-bit integer has 20).
MAX_DIGITS = 64


class UntrustedJson(ValueError):
    """JSON from a sender that burstbus does not take, and why."""


def _no_constant(name: str) -> Any:
    raise UntrustedJson(f"not JSON: {name} is not a finite number")


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise UntrustedJson(f"an integer of {len(text)} digits (at most {MAX_DIGITS})")
    return int(text)


def parse_json(raw: str | bytes, *, max_bytes: int | None = None, max_depth: int = MAX_DEPTH) -> Any:
    """The value of ``raw`` if it is JSON within the limits, else :class:`UntrustedJson`."""
    if max_bytes is not None and len(raw) > max_bytes:
        raise UntrustedJson(f"{len(raw)} bytes exceeds the limit of {max_bytes}")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UntrustedJson(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_int=_integer)
    except UntrustedJson:
        raise
    except json.JSONDecodeError as exc:
        raise UntrustedJson(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise UntrustedJson(f"nested more than {max_depth} levels deep") from None
    except ValueError as exc:
        raise UntrustedJson(f"not JSON: {exc}") from None
    if _depth(value) > max_depth:
        raise UntrustedJson(f"nested more than {max_depth} levels deep")
    return value


def parse_json_object(raw: bytes, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """A message that must be one JSON object (a NATS or HTTP request): :func:`parse_json`
    plus "empty" and "not an object", in the words senders have always been answered with."""
    if not raw.strip():
        raise UntrustedJson("empty message: expected a JSON object")
    if len(raw) > max_bytes:
        raise UntrustedJson(f"message of {len(raw)} bytes exceeds the limit of {max_bytes}")
    value = parse_json(raw, max_depth=max_depth)
    if not isinstance(value, dict):
        raise UntrustedJson(f"expected a JSON object, got {type(value).__name__}")
    return value


def _depth(value: Any) -> int:
    """How deep lists and objects nest in ``value`` (iterative: no recursion to exhaust)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item)
    return deepest
