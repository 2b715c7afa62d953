"""Access control: what an :class:`~burstbus.chat.Asker` may do, from ``[acl]`` only.

The grant is computed from the asker's server-stamped bare JID (``Asker.jid``), which the
transport established; the room nickname is never consulted. An asker whose real JID a room
hides gets at most ``viewer`` and only read-only commands, whatever nickname they use.
"""

from __future__ import annotations

from dataclasses import dataclass

from burstbus.bots.config import AclSection, Role, TriggersSection, normalise_jid
from burstbus.chat import Asker


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

    def telescope_names(self, triggers: TriggersSection) -> list[str]:
        return [t.name for t in triggers.telescopes if self.may_act_on(t.name)]


class Acl:
    def __init__(self, acl: AclSection, triggers: TriggersSection):
        self.section = acl
        self.triggers = triggers
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

    def approvers(self, telescope: str) -> list[str]:
        """Bare JIDs allowed to approve triggers on ``telescope``, in config order."""
        found = []
        for jid in self._users:
            grant = self.grant(Asker(jid=jid, via="dm"))
            if grant.role >= Role.APPROVER and grant.may_act_on(telescope):
                found.append(jid)
        return found
