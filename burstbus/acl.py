"""Who may do what: roles per server-stamped bare JID, from ``[acl]`` only.

Why in the core: the same people act through several doors (the chat bot over XMPP or Slack,
the trigger workflow it drives, and the web pages), and each must reach the same answer from
the same configuration. Who may do what is configuration, never chat: a typo here must stop
the start with the key that is wrong (``ConfigError``), never fall back to a default — a
mistyped role silently giving nobody (or everybody) approval rights is the failure this module
exists to prevent.

Roles are ordered, each implying the ones below it: ``admin`` ⊃ ``approver`` ⊃ ``ba`` ⊃
``viewer``. A user's telescopes apply to ``ba`` (request) and ``approver`` (approve/deny);
``"*"`` means every configured telescope, and ``admin`` acts on every telescope.

The grant is computed from the asker's server-stamped bare JID (``Asker.jid``), which the
transport established; the room nickname is never consulted. An asker whose real JID a room
hides gets at most ``viewer`` and only read-only commands, whatever nickname they use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from burstbus.chat import Asker
from burstbus.config import ConfigError


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


def normalise_jid(jid: str) -> str:
    """A bare JID as the ACL compares it: trimmed, lower case (XMPP localparts and domains
    are case-insensitive for the ASCII JIDs used here)."""
    return jid.strip().lower()


def is_bare_jid(jid: str) -> bool:
    return bool(_BARE_JID.match(jid.strip()))


@dataclass(frozen=True)
class AclUser:
    """One person: their bare JID, roles and telescopes."""

    #: The person's bare JID (``alice@fsc.example``), as the XMPP server stamps it.
    jid: str
    #: ``viewer``, ``ba`` (Burst Advocate: may request triggers), ``approver``, ``admin``; a role implies those below it.
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
    #: ``[[acl.users]]``: one entry per person.
    users: tuple[AclUser, ...] = ()


@dataclass(frozen=True)
class Grant:
    """An asker's rights for one command."""

    jid: str | None
    role: Role
    #: Casefolded telescope names they may act on; None: every telescope.
    telescopes: frozenset[str] | None
    #: Listed in ``[acl]`` (False: the default role applies).
    listed: bool
    transport: str = "xmpp"

    @property
    def actor(self) -> str:
        """The log's actor for what this person does (``xmpp:alice@fsc.example``)."""
        return f"{self.transport}:{self.jid}"

    @property
    def identified(self) -> bool:
        return self.jid is not None

    def may_act_on(self, telescope: str) -> bool:
        return self.telescopes is None or telescope.casefold() in self.telescopes

    def telescope_names(self, names: Iterable[str]) -> list[str]:
        """Those of ``names`` (configured telescopes) this grant may act on, in order."""
        return [name for name in names if self.may_act_on(name)]


class Acl:
    def __init__(self, acl: AclSection):
        self.section = acl
        self.default_role = Role.parse(acl.default_role)
        self._users = {normalise_jid(u.jid): u for u in acl.users}

    def grant(self, asker: Asker) -> Grant:
        if asker.jid is None:  # a room hiding real JIDs: read-only, never more than viewer
            return Grant(None, min(self.default_role, Role.VIEWER), frozenset(), listed=False, transport=asker.transport)
        jid = normalise_jid(asker.jid).split("/", 1)[0]  # bare, even if a resource slipped through
        user = self._users.get(jid)
        if user is None:
            return Grant(jid, self.default_role, frozenset(), listed=False, transport=asker.transport)
        role = user.role
        if role >= Role.ADMIN or "*" in user.telescopes:
            telescopes = None
        else:
            telescopes = frozenset(t.casefold() for t in user.telescopes)
        return Grant(jid, role, telescopes, listed=True, transport=asker.transport)

    def requesters(self, telescope: str) -> list[str]:
        """Bare JIDs allowed to request triggers on ``telescope``, in config order."""
        return [jid for jid in self._users if self._may(jid, Role.BA, telescope)]

    def _may(self, jid: str, role: Role, telescope: str) -> bool:
        grant = self.grant(Asker(jid=jid, via="dm"))
        return grant.role >= role and grant.may_act_on(telescope)

    def with_role(self, role: Role) -> list[str]:
        """Bare JIDs of the listed people with at least ``role``, in config order (who may
        publish another person's notice draft: approvers)."""
        return [jid for jid in self._users if self.grant(Asker(jid=jid, via="dm")).role >= role]

    def approvers(self, telescope: str) -> list[str]:
        """Bare JIDs allowed to approve triggers on ``telescope``, in config order."""
        found = []
        for jid in self._users:
            grant = self.grant(Asker(jid=jid, via="dm"))
            if grant.role >= Role.APPROVER and grant.may_act_on(telescope):
                found.append(jid)
        return found


def check_acl(acl: AclSection, telescopes: Sequence[str]) -> None:
    """Cross-field checks of ``[acl]`` against the configured telescope names; raises
    ``ConfigError`` naming the key."""
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
            if name != "*" and name.casefold() not in {t.casefold() for t in telescopes}:
                known = ", ".join(telescopes) or "none configured"
                raise ConfigError(f"{key}.telescopes[{j}]", f"unknown telescope {name!r} (known: {known})")
