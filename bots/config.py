"""The ``[acl]`` and ``[triggers]`` configuration sections of the Burst Advocate bot.

Who may do what is configuration, never chat: roles per bare JID, the telescopes each may
request or approve, and how each telescope receives an approved trigger. A typo here must
stop the start with the key that is wrong (``ConfigError``), never fall back to a default —
a mistyped role silently giving nobody (or everybody) approval rights is the failure this
module exists to prevent.

Roles are ordered, each implying the ones below it: ``admin`` ⊃ ``approver`` ⊃ ``ba`` ⊃
``viewer``. A user's telescopes apply to ``ba`` (request) and ``approver`` (approve/deny);
``"*"`` means every configured telescope, and ``admin`` acts on every telescope.

These dataclasses follow :mod:`burstbus.config`'s conventions (frozen, ``metadata``
minimums); :func:`check_bot` is the cross-section check called from ``_check``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

from burstbus.config import ConfigError, resolve_secret


class Role(IntEnum):
    """What an asker may do; a higher role includes every lower one."""

    NONE = 0  # help and whoami only
    VIEWER = 1  # read-only queries
    BA = 2  # request triggers on their telescopes
    APPROVER = 3  # approve or deny triggers on their telescopes
    ADMIN = 4  # everything, on every telescope

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        """A role by name (``viewer``, ``ba``, ``approver``, ``admin``, ``none``); ValueError otherwise."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(text) from None


ROLE_NAMES = ("viewer", "ba", "approver", "admin")

#: A bare JID: localpart@domain, no resource. Deliberately strict: ACL keys are compared as
#: text, so anything unusual is refused at start rather than never matching at 3 a.m.
_BARE_JID = re.compile(r"^[^@/\s\"&'<>:]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_TELESCOPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_SUBJECT_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
_AUTHORITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]*$")


def normalise_jid(jid: str) -> str:
    """A bare JID as the ACL compares it: trimmed, lower case (XMPP localparts and domains
    are case-insensitive for the ASCII JIDs used here)."""
    return jid.strip().lower()


def is_bare_jid(jid: str) -> bool:
    return bool(_BARE_JID.match(jid.strip()))


@dataclass(frozen=True)
class AclUser:
    """One person: their bare JID, roles and telescopes."""

    jid: str
    roles: tuple[str, ...] = ("viewer",)
    #: Telescope names (as in ``[[triggers.telescopes]]``) they may request/approve; ``"*"``: all.
    telescopes: tuple[str, ...] = ()

    @property
    def role(self) -> Role:
        """The highest role listed (roles imply the lower ones)."""
        return max((Role.parse(r) for r in self.roles), default=Role.NONE)


@dataclass(frozen=True)
class AclSection:
    """``[acl]``: roles per bare JID. Identity is the server-stamped JID, never a nickname."""

    #: Role of an identified JID that is not listed, and of an asker whose real JID a room
    #: hides (capped at viewer: such askers only ever get read-only commands). ``none``: only
    #: ``help`` and ``whoami``.
    default_role: str = field(default="viewer", metadata={"choices": ("none", "viewer")})
    users: tuple[AclUser, ...] = ()


@dataclass(frozen=True)
class Telescope:
    """A follow-up telescope that can be triggered, and how a trigger reaches it."""

    name: str
    #: Approver must differ from the requester.
    two_person: bool = True
    #: The IVORN stream of its trigger VOEvents (``ivo://fsc.example/trigger/tarot``); its VTP
    #: subscriber filters on it. Empty: ``ivo://<triggers.authority>/trigger``.
    vtp_stream: str = ""
    #: Bare JIDs that receive the raw VOEvent by XMPP.
    jids: tuple[str, ...] = ()
    #: NATS subject the raw VOEvent is published on (empty: none).
    nats_subject: str = ""
    #: A jinja2 template replacing ``bots/templates/trigger.xml.j2`` for this telescope.
    template: str = ""

    def stream(self, authority: str) -> str:
        return self.vtp_stream.rstrip("/") if self.vtp_stream else f"ivo://{authority}/trigger"


@dataclass(frozen=True)
class TriggersSection:
    """``[triggers]``: approval codes and the telescopes that can be triggered."""

    #: An approval code expires this many minutes after the request.
    code_minutes: int = field(default=15, metadata={"minimum": 1})
    #: Key of the HMAC-SHA256 over approval codes (``env:NAME`` / ``file:/path``). Empty: a
    #: random key kept in the data directory's ``state.sqlite``, so short codes cannot be
    #: brute-forced from the log's hashes.
    code_secret: str = ""
    #: IVORN authority of trigger VOEvents (``ivo://<authority>/trigger#<request id>``).
    authority: str = "burstbus.local"
    #: Name in the trigger VOEvent's ``Who/Author/shortName``.
    author_name: str = "burstbus"
    #: Seconds a delivery channel (XMPP, NATS) may take before the trigger is marked failed.
    delivery_timeout: float = field(default=30.0, metadata={"minimum": 0.1})
    telescopes: tuple[Telescope, ...] = ()

    def telescope(self, name: str) -> Telescope | None:
        """The telescope with this name, compared case-insensitively (typed on phones)."""
        wanted = name.strip().casefold()
        return next((t for t in self.telescopes if t.name.casefold() == wanted), None)


def check_bot(acl: AclSection, triggers: TriggersSection) -> None:
    """Cross-field checks of ``[acl]`` and ``[triggers]``; raises ``ConfigError`` naming the key."""
    names: set[str] = set()
    for i, scope in enumerate(triggers.telescopes):
        key = f"triggers.telescopes[{i}]"
        if not _TELESCOPE.match(scope.name):
            raise ConfigError(f"{key}.name", f"must be letters, digits, _ . - (up to 40), not {scope.name!r}")
        if scope.name.casefold() in names:
            raise ConfigError(f"{key}.name", f"duplicate telescope {scope.name!r} (names ignore case)")
        names.add(scope.name.casefold())
        if scope.vtp_stream and (not scope.vtp_stream.startswith("ivo://") or "#" in scope.vtp_stream
                                 or len(scope.vtp_stream.split("/")) < 4):
            raise ConfigError(f"{key}.vtp_stream", f"must be ivo://authority/path without '#', not {scope.vtp_stream!r}")
        for j, jid in enumerate(scope.jids):
            if not is_bare_jid(jid):
                raise ConfigError(f"{key}.jids[{j}]", f"not a bare JID (user@domain): {jid!r}")
        if scope.nats_subject and not all(_SUBJECT_TOKEN.match(t) for t in scope.nats_subject.split(".")):
            raise ConfigError(f"{key}.nats_subject", f"not a NATS subject (tokens of letters, digits, _ -): {scope.nats_subject!r}")
        if scope.template and not Path(scope.template).expanduser().is_file():
            raise ConfigError(f"{key}.template", f"template file not found: {scope.template}")
    if not _AUTHORITY.match(triggers.authority):
        raise ConfigError("triggers.authority", f"must be an IVORN authority like fsc.example, not {triggers.authority!r}")
    if triggers.code_secret:
        secret = resolve_secret(triggers.code_secret, "triggers.code_secret")
        if len(secret) < 16:
            raise ConfigError("triggers.code_secret", "must be at least 16 characters")
    seen: set[str] = set()
    for i, user in enumerate(acl.users):
        key = f"acl.users[{i}]"
        if not is_bare_jid(user.jid):
            raise ConfigError(f"{key}.jid", f"not a bare JID (user@domain, no /resource): {user.jid!r}")
        jid = normalise_jid(user.jid)
        if jid in seen:
            raise ConfigError(f"{key}.jid", f"{user.jid!r} is listed twice")
        seen.add(jid)
        if not user.roles:
            raise ConfigError(f"{key}.roles", "must list at least one role")
        for j, role in enumerate(user.roles):
            if role.strip().lower() not in ROLE_NAMES:
                raise ConfigError(f"{key}.roles[{j}]", f"unknown role {role!r} (roles: {', '.join(ROLE_NAMES)})")
        for j, name in enumerate(user.telescopes):
            if name != "*" and triggers.telescope(name) is None:
                known = ", ".join(t.name for t in triggers.telescopes) or "none configured"
                raise ConfigError(f"{key}.telescopes[{j}]", f"unknown telescope {name!r} (known: {known})")
