"""People's web identities: local accounts, per-person API tokens and sign-in sessions.

Why here and not in the log: a password hash or a session is a secret, and the log is
published, replicated and handed to auditors. These live in ``state.sqlite`` beside the other
handlers' state; what people *do* with them is in the log, with the person as actor
(``web:alice@fsc.example``), exactly as the chat bot records ``xmpp:alice@fsc.example``.

One identity across chat and web: an account is named by the person's bare JID, and what the
account may do is what ``[acl]`` grants that JID (:mod:`burstbus.acl`) at the moment of the
request — an account never carries a role of its own, so the ACL stays the one place that says
who may approve a trigger. A token carries a *scope* (a role), and acts with the lower of its
scope and the person's current role: a script's token can be limited to reading.

* Passwords: argon2id (``argon2-cffi``), hashed off the event loop by the caller (hashing is
  deliberately slow). A hash whose parameters are outdated is re-hashed on the next sign-in.
* API tokens: ``bbt_<id>_<secret>``; only SHA-256 of the secret is kept (a token is random
  and long: a slow hash adds nothing), compared in constant time. Expiring, revocable, listed.
* Sessions: a random value in the cookie; only its SHA-256 is kept, with the person, a CSRF
  token, an absolute expiry and an idle expiry. Signing out, disabling the account or changing
  its password ends its sessions.

Every function takes a ``sqlite3.Connection`` (the state store's thread runs them, and so can
the CLI beside a running service: SQLite WAL lets both write).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import sqlite3
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from burstbus.acl import ROLE_NAMES, Role, is_bare_jid, normalise_jid

SCHEMA = """
CREATE TABLE IF NOT EXISTS web_accounts (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    changed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS web_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    scope TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    revoked_at REAL,
    last_used_at REAL
);
CREATE TABLE IF NOT EXISTS web_sessions (
    digest TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    seen_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS web_sessions_by_name ON web_sessions (name);
CREATE TABLE IF NOT EXISTS web_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

TOKEN_PREFIX = "bbt_"
#: A session lasts a shift and then some, and ends after two idle hours.
SESSION_SECONDS = 12 * 3600
IDLE_SECONDS = 2 * 3600
#: Passwords shorter than this are refused (a passphrase is the advice).
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
#: A token lives at most this long (a year); the default is 90 days.
MAX_TOKEN_DAYS = 366
_SEEN_EVERY = 60.0  # a session's idle clock is written at most once a minute

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the account does not exist, so a wrong name costs as long as a
    wrong password (made on the first sign-in, not at import: hashing is slow on purpose)."""
    return _hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A request the accounts refuse (unknown person, weak password, bad scope); says why."""


@dataclass(frozen=True)
class Account:
    name: str
    disabled: bool
    created_at: float
    changed_at: float


@dataclass(frozen=True)
class TokenInfo:
    id: str
    name: str
    scope: str
    label: str
    created_at: float
    expires_at: float
    revoked_at: float | None
    last_used_at: float | None

    def state(self, now: float) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= now else "active"


@dataclass(frozen=True)
class Session:
    """A signed-in browser: whose, its CSRF token, when it ends."""

    name: str
    csrf: str
    expires_at: float


def ensure_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def account_name(text: str) -> str:
    """The account's name: the person's bare JID as ``[acl]`` compares it; AccountError otherwise."""
    name = normalise_jid(text)
    if not is_bare_jid(name):
        raise AccountError(f"an account is named by the person's bare JID, like alice@fsc.example (got {text[:80]!r})")
    return name


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password needs at least {MIN_PASSWORD} characters (a passphrase is best)")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password is longer than {MAX_PASSWORD} characters")


def hash_password(password: str) -> str:
    """argon2id; slow on purpose: call it off the event loop."""
    check_password(password)
    return _hasher.hash(password)


def password_matches(stored: str | None, password: str) -> bool:
    """Constant work whether or not the account exists (``stored`` None): no name oracle."""
    try:
        return _hasher.verify(stored or _dummy_hash(), password[:MAX_PASSWORD]) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return True


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


# -- accounts ------------------------------------------------------------------------------


def add_account(conn: sqlite3.Connection, name: str, password_hash: str, now: float | None = None) -> Account:
    name = account_name(name)
    now = time.time() if now is None else now
    try:
        conn.execute("INSERT INTO web_accounts (name, password_hash, created_at, changed_at) VALUES (?, ?, ?, ?)",
                     (name, password_hash, now, now))
    except sqlite3.IntegrityError:
        raise AccountError(f"{name} already has an account (burstbus user passwd to change its password)") from None
    return Account(name, False, now, now)


def get_account(conn: sqlite3.Connection, name: str) -> tuple[Account, str] | None:
    """The account and its password hash."""
    row = conn.execute("SELECT name, disabled, created_at, changed_at, password_hash FROM web_accounts WHERE name = ?",
                       (normalise_jid(name),)).fetchone()
    if row is None:
        return None
    return Account(row[0], bool(row[1]), row[2], row[3]), row[4]


def list_accounts(conn: sqlite3.Connection) -> list[Account]:
    rows = conn.execute("SELECT name, disabled, created_at, changed_at FROM web_accounts ORDER BY name").fetchall()
    return [Account(r[0], bool(r[1]), r[2], r[3]) for r in rows]


def _require(conn: sqlite3.Connection, name: str) -> str:
    name = account_name(name)
    if conn.execute("SELECT 1 FROM web_accounts WHERE name = ?", (name,)).fetchone() is None:
        raise AccountError(f"{name} has no account (burstbus user add {name})")
    return name


def set_password(conn: sqlite3.Connection, name: str, password_hash: str, now: float | None = None) -> None:
    """A new password ends every session of the account (tokens stay: they are not the password)."""
    name = _require(conn, name)
    now = time.time() if now is None else now
    conn.execute("UPDATE web_accounts SET password_hash = ?, changed_at = ? WHERE name = ?", (password_hash, now, name))
    conn.execute("DELETE FROM web_sessions WHERE name = ?", (name,))


def set_disabled(conn: sqlite3.Connection, name: str, disabled: bool, now: float | None = None) -> None:
    """A disabled account cannot sign in, its sessions end and its tokens stop working."""
    name = _require(conn, name)
    now = time.time() if now is None else now
    conn.execute("UPDATE web_accounts SET disabled = ?, changed_at = ? WHERE name = ?", (int(disabled), now, name))
    if disabled:
        conn.execute("DELETE FROM web_sessions WHERE name = ?", (name,))


def active_account(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT disabled FROM web_accounts WHERE name = ?", (name,)).fetchone()
    return row is not None and not row[0]


# -- API tokens ----------------------------------------------------------------------------


def add_token(conn: sqlite3.Connection, name: str, scope: str, *, days: int = 90, label: str = "",
              now: float | None = None) -> tuple[str, TokenInfo]:
    """A new token (the secret is returned once, never stored) and what is kept of it."""
    name = _require(conn, name)
    if scope not in ROLE_NAMES:
        raise AccountError(f"a token's scope is one of {', '.join(ROLE_NAMES)} (got {scope[:40]!r})")
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise AccountError(f"a token lives 1 to {MAX_TOKEN_DAYS} days (got {days})")
    now = time.time() if now is None else now
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    info = TokenInfo(token_id, name, scope, label[:200], now, now + days * 86400, None, None)
    conn.execute("INSERT INTO web_tokens (id, name, digest, scope, label, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (token_id, name, _digest(secret), scope, info.label, now, info.expires_at))
    return f"{TOKEN_PREFIX}{token_id}_{secret}", info


def list_tokens(conn: sqlite3.Connection, name: str | None = None) -> list[TokenInfo]:
    query = "SELECT id, name, scope, label, created_at, expires_at, revoked_at, last_used_at FROM web_tokens"
    rows = (conn.execute(query + " WHERE name = ? ORDER BY created_at", (normalise_jid(name),)) if name
            else conn.execute(query + " ORDER BY name, created_at")).fetchall()
    return [TokenInfo(*row) for row in rows]


def revoke_token(conn: sqlite3.Connection, token_id: str, now: float | None = None) -> TokenInfo:
    now = time.time() if now is None else now
    changed = conn.execute("UPDATE web_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now, token_id)).rowcount
    row = conn.execute("SELECT id, name, scope, label, created_at, expires_at, revoked_at, last_used_at FROM web_tokens "
                       "WHERE id = ?", (token_id,)).fetchone()
    if row is None:
        raise AccountError(f"no token {token_id[:40]!r} (burstbus user tokens lists them)")
    if not changed:
        raise AccountError(f"token {token_id} was already revoked")
    return TokenInfo(*row)


def looks_like_token(text: str) -> bool:
    return text.startswith(TOKEN_PREFIX)


def token_holder(conn: sqlite3.Connection, presented: str, now: float | None = None) -> tuple[str, Role] | None:
    """Whose token this is and its scope, if it is valid now (active account, not expired or revoked)."""
    body = presented[len(TOKEN_PREFIX):] if presented.startswith(TOKEN_PREFIX) else ""
    token_id, _, secret = body.partition("_")
    if not token_id or not secret or len(presented) > 200:
        return None
    row = conn.execute("SELECT name, digest, scope, expires_at, revoked_at FROM web_tokens WHERE id = ?", (token_id,)).fetchone()
    now = time.time() if now is None else now
    if row is None or not hmac.compare_digest(row[1], _digest(secret)):
        return None
    name, _, scope, expires_at, revoked_at = row
    if revoked_at is not None or expires_at <= now or not active_account(conn, name):
        return None
    conn.execute("UPDATE web_tokens SET last_used_at = ? WHERE id = ?", (now, token_id))
    return name, Role.parse(scope)


# -- sessions ------------------------------------------------------------------------------


def open_session(conn: sqlite3.Connection, name: str, now: float | None = None) -> tuple[str, Session]:
    """A new session for an active account: the cookie value (returned once) and the session."""
    now = time.time() if now is None else now
    value = secrets.token_urlsafe(32)
    session = Session(name, secrets.token_urlsafe(24), now + SESSION_SECONDS)
    conn.execute("DELETE FROM web_sessions WHERE expires_at <= ? OR seen_at <= ?", (now, now - IDLE_SECONDS))
    conn.execute("INSERT INTO web_sessions (digest, name, csrf, created_at, expires_at, seen_at) VALUES (?, ?, ?, ?, ?, ?)",
                 (_digest(value), name, session.csrf, now, session.expires_at, now))
    return value, session


def find_session(conn: sqlite3.Connection, value: str, now: float | None = None) -> Session | None:
    """The live session this cookie value opens (not expired, not idle too long, account active)."""
    if not value or len(value) > 100:
        return None
    now = time.time() if now is None else now
    row = conn.execute("SELECT name, csrf, expires_at, seen_at FROM web_sessions WHERE digest = ?", (_digest(value),)).fetchone()
    if row is None:
        return None
    name, csrf, expires_at, seen_at = row
    if expires_at <= now or seen_at <= now - IDLE_SECONDS or not active_account(conn, name):
        conn.execute("DELETE FROM web_sessions WHERE digest = ?", (_digest(value),))
        return None
    if now - seen_at > _SEEN_EVERY:
        conn.execute("UPDATE web_sessions SET seen_at = ? WHERE digest = ?", (now, _digest(value)))
    return Session(name, csrf, expires_at)


def close_session(conn: sqlite3.Connection, value: str) -> None:
    conn.execute("DELETE FROM web_sessions WHERE digest = ?", (_digest(value),))


def server_secret(conn: sqlite3.Connection, name: str = "csrf") -> bytes:
    """A random key kept in the state (created on first use): for CSRF tokens bound to a
    person where there is no session row (sign-in through the proxy, the sign-in form)."""
    row = conn.execute("SELECT value FROM web_secrets WHERE name = ?", (name,)).fetchone()
    if row is None:
        conn.execute("INSERT OR IGNORE INTO web_secrets (name, value) VALUES (?, ?)", (name, secrets.token_hex(32)))
        row = conn.execute("SELECT value FROM web_secrets WHERE name = ?", (name,)).fetchone()
    return bytes.fromhex(row[0])
