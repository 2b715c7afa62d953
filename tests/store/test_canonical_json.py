"""The canonical JSON text: orjson's fast path must write exactly what the definition writes."""

from __future__ import annotations

import json
import math
import random
import struct
from typing import Any

import pytest

from burstbus.events import canonical_json


def definition(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def random_float(rng: random.Random) -> float:
    kind = rng.randrange(4)
    if kind == 0:  # any bit pattern
        value = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
        return 0.5 if math.isnan(value) or math.isinf(value) else value
    if kind == 1:  # every decade, both signs
        return rng.choice((1, -1)) * rng.choice((1, 1.5, 2.5, 9.999999, 1.2345678901234567)) * 10.0 ** rng.randint(-320, 300)
    if kind == 2:
        return rng.uniform(-1000, 1000)
    return float(rng.randint(-10**17, 10**17))


def random_text(rng: random.Random) -> str:
    alphabet = [chr(i) for i in range(32)] + list('ab"\\é\u2028\u2029\x7f\uffff\U00010000😀 e-0.0000null')
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 8)))


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return random_text(rng)
    if kind == 1:
        return rng.choice((rng.randint(-10, 10), rng.randint(-2**63, 2**64 - 1), rng.randint(-2**80, 2**80)))
    if kind == 2:
        return random_float(rng)
    if kind == 3:
        return rng.choice((None, True, False))
    if kind in (4, 5):
        return random_text(rng) if rng.random() < 0.5 else rng.randint(0, 9)
    if kind in (6, 7):
        return {random_text(rng): random_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))}
    return [random_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]


def test_the_fast_path_writes_the_definitions_text_for_random_values() -> None:
    rng = random.Random(20261121)
    for _ in range(20000):
        value = {random_text(rng): random_value(rng) for _ in range(rng.randrange(1, 6))}
        assert canonical_json(value) == definition(value)


def test_every_float_decade_is_written_as_python_writes_it() -> None:
    for exponent in range(-324, 309):
        for mantissa in (1, 1.5, 2.5, 9.999999, 1.2345678901234567, 7):
            try:
                value = mantissa * 10.0 ** exponent
            except OverflowError:
                continue
            if math.isinf(value):
                continue
            for x in (value, -value):
                assert canonical_json({"x": x}) == definition({"x": x})


@pytest.mark.parametrize("value", [
    {"x": float("nan")}, {"x": float("inf")}, {"x": [float("-inf")]}, {"x": object()}, {"x": b"bytes"},
])
def test_what_the_definition_refuses_is_refused(value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        canonical_json(value)


def test_values_orjson_would_write_its_own_way_take_the_definitions_path() -> None:
    import collections
    import enum

    class Level(enum.IntEnum):
        HIGH = 3

    class Text(str):
        pass

    for value in ({1: "int key"}, {"big": 2**70}, {"e": Level.HIGH}, {"t": Text("x")}, collections.OrderedDict(b=1, a=2),
                  {"tuple": (1, 2)}, {"s": "1e-7 0.00001 null"}):
        assert canonical_json(value) == definition(value)


@pytest.mark.parametrize("value", [
    {"xml": "<Param value='0.00001'/>", "kind": None, "ra": 120.5},  # the markers in text only: orjson's text stands
    {"kind": None, "deep": [{"t": (1, [2.5e-05])}]},  # a tiny float far down
    {"kind": None, "x": -9.99e-05}, {"kind": None, "x": 0.0001}, {"kind": None, "x": -0.0},
])
def test_a_marker_in_the_text_is_settled_by_the_floats_themselves(value: Any) -> None:
    assert canonical_json(value) == definition(value)


def test_nan_beside_a_null_is_still_refused() -> None:
    with pytest.raises(ValueError):
        canonical_json({"a": None, "b": [{"c": float("nan")}]})
