"""The hash chain: how each record's hash is computed, independent of any backend.

``hash = SHA-256(canonical record)`` where the canonical record is the compact, key-sorted
JSON object of every stored column, ``prev_hash`` included, with ``data`` embedded as the
exact canonical text that was stored. Hashing the stored text (not a re-encoding of its
decoded value) means any byte changed in the database changes the hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

#: A str as a JSON string literal: the C function ``json.dumps`` itself uses for strings
#: with ensure_ascii=False (same text, without the encoder's per-call dispatch).
_dump: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]


def record_hash(
    *,
    prev_hash: str,
    seq: int,
    id: str,
    type: str,
    stream: str,
    actor: str,
    occurred_at: str,
    recorded_at: str,
    data_json: str,
) -> str:
    """SHA-256 (hex) of the canonical encoding of one record; keys in sorted order."""
    text = (
        '{"actor":' + _dump(actor)
        + ',"data":' + data_json
        + ',"id":' + _dump(id)
        + ',"occurred_at":' + _dump(occurred_at)
        + ',"prev_hash":' + _dump(prev_hash)
        + ',"recorded_at":' + _dump(recorded_at)
        + ',"seq":' + str(int(seq))
        + ',"stream":' + _dump(stream)
        + ',"type":' + _dump(type)
        + "}"
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_parts(*, id: str, type: str, stream: str, actor: str, occurred_at: str, data_json: str) -> tuple[bytes, bytes]:
    """The canonical record's text before and after the three values only the writer knows.

    The writer's batch is the log's one sequential section (it holds the GIL while it chains):
    building these parts beforehand, in the appending task, leaves it just the join and the
    digest (:func:`chained_hash`). Same bytes as :func:`record_hash`, tested.
    """
    before = (
        '{"actor":' + _dump(actor)
        + ',"data":' + data_json
        + ',"id":' + _dump(id)
        + ',"occurred_at":' + _dump(occurred_at)
        + ',"prev_hash":"'
    )
    after = ',"stream":' + _dump(stream) + ',"type":' + _dump(type) + "}"
    return before.encode("utf-8"), after.encode("utf-8")


def chained_hash(parts: tuple[bytes, bytes], prev_hash: str, recorded_at: str, seq: int) -> str:
    """:func:`record_hash` from :func:`record_parts`, for a ``prev_hash`` the writer computed
    (hex) and a ``recorded_at`` in the log's fixed-width form: neither needs JSON escaping."""
    middle = f'{prev_hash}","recorded_at":"{recorded_at}","seq":{int(seq)}'.encode("ascii")
    return hashlib.sha256(parts[0] + middle + parts[1]).hexdigest()
