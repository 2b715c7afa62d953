"""``[triggers]``: approval codes, and the telescopes that can be triggered and how.

How each telescope receives an approved trigger is configuration; a typo must stop the start
with the key that is wrong (``ConfigError``). :func:`check_triggers` is the cross-section
check (``[triggers]`` with ``[acl]``) the bot package registers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from burstbus.acl import AclSection, check_acl, is_bare_jid
from burstbus.config import ConfigError, resolve_secret

_TELESCOPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_SUBJECT_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
_AUTHORITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]*$")
_PARAM = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Telescope:
    """A follow-up telescope that can be triggered, and how a trigger reaches it."""

    #: The telescope's name in commands (``trigger GRB… colibri``) and in ``[acl]`` grants.
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
    #: A jinja2 template replacing ``handlers/triggers/templates/trigger.xml.j2`` for this telescope.
    template: str = ""
    #: Minutes after ``trigger.sent`` within which it must acknowledge (a packet citing the
    #: trigger), else the BAs are told; 0: ``[triggers] ack_minutes``.
    ack_minutes: float = field(default=0.0, metadata={"minimum": 0.0})
    #: IVORN prefixes of the packets that speak for this telescope when they cite its trigger
    #: (its own stream, e.g. ``ivo://colibri.example/``; with an ``[[authority.grants]]`` entry
    #: binding that prefix to the telescope's address this is proof of who said it). Empty:
    #: any packet citing the trigger counts, and its source is recorded.
    reply_prefixes: tuple[str, ...] = ()

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
    #: Minutes a sent trigger may wait for the telescope's acknowledgement before the BAs are
    #: told (``trigger.unacknowledged``); 0: never (a telescope may set its own).
    ack_minutes: float = field(default=0.0, metadata={"minimum": 0.0})
    #: The Param of a telescope's packet that says which step it reports (its value:
    #: acknowledged, observation_started, observation_finished, data_uploaded and synonyms).
    followup_param: str = "Status"
    #: The telescopes that can be triggered, one ``[[triggers.telescopes]]`` table each.
    telescopes: tuple[Telescope, ...] = ()

    def telescope(self, name: str) -> Telescope | None:
        """The telescope with this name, compared case-insensitively (typed on phones)."""
        wanted = name.strip().casefold()
        return next((t for t in self.telescopes if t.name.casefold() == wanted), None)

    def ack_minutes_for(self, name: str) -> float:
        """Minutes the telescope ``name`` has to acknowledge a trigger (0: no limit)."""
        scope = self.telescope(name)
        return scope.ack_minutes if scope is not None and scope.ack_minutes else self.ack_minutes


def trigger_streams(triggers: TriggersSection) -> tuple[str, ...]:
    """Every IVORN stream an approved trigger can be published under (the authority rule gives
    them to the workflow alone)."""
    return (f"ivo://{triggers.authority}/trigger", *(t.stream(triggers.authority) for t in triggers.telescopes))


def check_triggers(acl: AclSection, triggers: TriggersSection) -> None:
    """Cross-field checks of ``[triggers]``, and of ``[acl]`` against its telescopes; raises
    ``ConfigError`` naming the key."""
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
        for j, prefix in enumerate(scope.reply_prefixes):
            if not prefix.startswith("ivo://") or len(prefix) <= len("ivo://"):
                raise ConfigError(f"{key}.reply_prefixes[{j}]", f"must be an ivo:// prefix, not {prefix!r}")
    if not _PARAM.match(triggers.followup_param):
        raise ConfigError("triggers.followup_param", f"must be a Param name (letters, digits, _), not {triggers.followup_param!r}")
    if not _AUTHORITY.match(triggers.authority):
        raise ConfigError("triggers.authority", f"must be an IVORN authority like fsc.example, not {triggers.authority!r}")
    if triggers.code_secret:
        secret = resolve_secret(triggers.code_secret, "triggers.code_secret")
        if len(secret) < 16:
            raise ConfigError("triggers.code_secret", "must be at least 16 characters")
    check_acl(acl, [t.name for t in triggers.telescopes])
