"""Approval codes: what they look like, the keyed hash the log keeps, and the wrong-code guard.

Why this shape:

* 8 symbols from :mod:`secrets` over an alphabet without look-alikes (typed on phones; case,
  dashes and spaces ignored by the bot's parser, which folds what was typed to this form).
* The log keeps only an HMAC-SHA256, keyed with ``[triggers] code_secret`` or a random key kept
  in ``state.sqlite``, over the code *and* the request's binding (request id, telescope, burst,
  digest of the parameters and note): a code matches one action only, and short codes cannot
  be brute-forced from the log.
* Wrong codes are limited per person (:class:`WrongCodes`): 30⁸ codes cannot be guessed in five
  tries, and a person pasting the wrong page is told to slow down rather than locked out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from typing import Any

from burstbus.config import resolve_secret
from burstbus.events import canonical_json
from burstbus.state import StateStore

#: Letters and digits that cannot be mistaken for one another when read on a phone and typed
#: back (no 0/O, 1/I/L, U/V): 30 symbols, 8 of them ≈ 39 bits.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 8

#: Wrong codes one person may type within ``FAILURE_WINDOW`` seconds before being told to wait.
MAX_FAILURES = 5
FAILURE_WINDOW = 600.0


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def format_code(code: str) -> str:
    """``K7QXM2PD`` → ``K7QX-M2PD`` (easier to read out and type)."""
    return f"{code[:4]}-{code[4:]}"


def params_digest(params: Mapping[str, Any], note: str) -> str:
    return hashlib.sha256(canonical_json({"params": dict(params), "note": note}).encode()).hexdigest()


def code_hash(key: bytes, code: str, request_id: str, telescope: str, burst_id: str, digest: str) -> str:
    """The keyed hash the log keeps instead of the code, bound to the one action it approves."""
    message = canonical_json(
        {"code": code, "request_id": request_id, "telescope": telescope, "burst_id": burst_id, "params_sha256": digest}
    )
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


_SECRETS = "CREATE TABLE IF NOT EXISTS bot_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)"


async def load_code_key(state: StateStore, configured: str) -> bytes:
    """The HMAC key: ``[triggers] code_secret`` (resolved), else a random key created once and
    kept in ``state.sqlite`` (so it survives restarts and never appears in the log)."""
    if configured:
        return resolve_secret(configured, "triggers.code_secret").encode("utf-8")
    fresh = secrets.token_hex(32)

    def get_or_create(conn: sqlite3.Connection) -> str:
        conn.execute(_SECRETS)
        conn.execute("INSERT OR IGNORE INTO bot_secrets (name, value) VALUES ('trigger_code_key', ?)", (fresh,))
        return str(conn.execute("SELECT value FROM bot_secrets WHERE name = 'trigger_code_key'").fetchone()[0])

    return bytes.fromhex(await state.transaction(get_or_create))


class WrongCodes:
    """Wrong codes per person over a sliding window (in memory: a restart forgives, which is
    harmless at five tries against 30⁸)."""

    def __init__(self, limit: int = MAX_FAILURES, window: float = FAILURE_WINDOW,
                 clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)

    def blocked(self, who: str) -> bool:
        failures = self._failures[who]
        horizon = self.clock() - self.window
        while failures and failures[0] < horizon:
            failures.popleft()
        return len(failures) >= self.limit

    def failed(self, who: str) -> None:
        self._failures[who].append(self.clock())
