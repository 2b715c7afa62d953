"""The ``[xmpp]`` configuration section: the bot's account, its rooms, pages and forwards.

Follows ``burstbus.config``'s conventions (frozen dataclasses, ``metadata`` for choices and
minimums, secrets as ``env:NAME`` / ``file:/path``); :func:`check_xmpp` is its cross-field
check. Example::

    [xmpp]
    enabled = true
    jid = "burstbus@fsc.example"
    password = "env:BURSTBUS_XMPP_PASSWORD"
    ca_file = "/etc/ssl/fsc-ca.pem"          # a private server's CA (else the system's)
    on_duty = ["alice@fsc.example", "bob@fsc.example"]
    page_roles = ["observation"]             # which notices page the on-duty BAs
    page_missions = ["SVOM"]                 # empty: any mission
    voevent_senders = ["alice@fsc.example", "colibri@telescopes.example"]

    [[xmpp.rooms]]
    jid = "ba@conference.fsc.example"

    [[xmpp.forward]]
    jid = "colibri@telescopes.example"
    xpath = "//Param[@name='Packet_Type' and @value='202']"
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from burstbus.config import VALID_ROLES, ConfigError, resolve_secret

# burstbus.config imports this module (for the section), so ConfigError is imported inside
# functions only.

_BARE = re.compile(r"^[^@/\s]+@[^@/\s]+$")
_RESOURCE = re.compile(r"^[A-Za-z0-9._-]{1,40}$")
_NICK = re.compile(r"^[^\s/:@][^/:@]{0,39}$")


@dataclass(frozen=True)
class RoomConfig:
    """A room the bot joins: alert summaries are posted there and commands taken from it."""

    #: The room's bare JID (``ba@conference.fsc.example``).
    jid: str
    #: The bot's nickname there; empty: ``[xmpp] nick``.
    nick: str = ""
    #: The room's password, if it has one (``env:NAME`` / ``file:/path``).
    password: str = ""


@dataclass(frozen=True)
class ForwardRule:
    """Raw VOEvents to one JID (a telescope's account), when the filter selects them."""

    #: The receiving account's bare JID.
    jid: str
    #: VOEvent roles forwarded (``observation``, ``prediction``, ``utility``, ``test``).
    roles: tuple[str, ...] = ("observation",)
    #: Optional XPath on the packet (any non-empty result selects it), as VTP subscribers use.
    xpath: str = ""


@dataclass(frozen=True)
class XmppSection:
    """XMPP: the bot account (slixmpp), BA rooms, pages, VOEvent forwarding and intake."""

    #: Connect the bot at all.
    enabled: bool = False
    #: The bot's bare JID (``burstbus@fsc.example``).
    jid: str = ""
    #: Its password: ``env:NAME`` or ``file:/path`` keeps it out of the file.
    password: str = ""
    #: Connect here instead of the JID's domain (DNS SRV is not used when set).
    host: str = ""
    port: int = field(default=5222, metadata={"minimum": 1, "maximum": 65535})
    #: CA bundle (PEM) to verify the server certificate with (private servers); empty: the
    #: system's trust store. Certificates are always checked.
    ca_file: Path | None = None
    #: False: STARTTLS on the c2s port (the usual); true: TLS from the first byte (XEP-0368).
    direct_tls: bool = False
    #: Resource prefix; each process adds ``-<random>`` so two instances never clash.
    resource: str = "burstbus"
    #: The bot's nickname in rooms (a room's own ``nick`` wins); commands start ``<nick>:``.
    nick: str = "burstbus"
    #: Rooms the bot joins, one ``[[xmpp.rooms]]`` table each: alert summaries go there and commands come from them.
    rooms: tuple[RoomConfig, ...] = ()
    #: Bare JIDs paged by direct message (phones do not notify for room messages).
    on_duty: tuple[str, ...] = ()
    #: Which accepted notices page the on-duty BAs: their role must be listed …
    page_roles: tuple[str, ...] = ("observation",)
    #: … their mission (``SVOM``, ``SWIFT``, ``LVK`` …) listed, if this is not empty …
    page_missions: tuple[str, ...] = ()
    #: … and this XPath select something in the packet, if it is not empty.
    page_xpath: str = ""
    #: Roles of the notices summarised in the rooms (test packets stay out by default).
    room_roles: tuple[str, ...] = ("observation",)
    #: Raw VOEvents sent to telescopes' accounts, one ``[[xmpp.forward]]`` table each (JID and filter).
    forward: tuple[ForwardRule, ...] = ()
    #: Bare JIDs whose VOEvents (sent to the bot) go through the ingest; others are refused.
    voevent_senders: tuple[str, ...] = ()
    #: A directory with ``room.j2`` / ``page.j2`` / ``forward.j2`` overriding the built-in ones.
    templates_dir: Path | None = None
    #: No longer used (the outbox follows the identifier's decisions: nothing waits); still
    #: accepted so that existing configurations load.
    burst_wait: float = field(default=10.0, metadata={"minimum": 0.0})
    #: Reconnection backoff: first delay and ceiling (seconds).
    reconnect_delay: float = field(default=1.0, metadata={"minimum": 0.01})
    reconnect_max_delay: float = field(default=60.0, metadata={"minimum": 0.1})
    #: XEP-0199 ping to the server every this many seconds; no answer within
    #: ``ping_timeout`` drops the connection and reconnects.
    ping_interval: float = field(default=60.0, metadata={"minimum": 1.0})
    ping_timeout: float = field(default=20.0, metadata={"minimum": 1.0})
    #: Seconds to wait for the server to acknowledge (XEP-0198) what the bot sent.
    ack_timeout: float = field(default=30.0, metadata={"minimum": 0.1})
    #: Log records per notification batch (one acknowledgement wait per batch).
    batch_size: int = field(default=50, metadata={"minimum": 1})

    @property
    def domain(self) -> str:
        return self.jid.split("@", 1)[1] if "@" in self.jid else ""

    def room_nick(self, room: RoomConfig) -> str:
        return room.nick or self.nick


def _bare(value: str, key: str) -> None:
    if not _BARE.match(value):
        raise ConfigError(key, f"must be a bare JID like name@example.org, not {value!r}")


def check_xmpp(section: XmppSection) -> None:
    """Cross-field checks, raising ``ConfigError`` with the key."""
    from lxml import etree

    if not section.enabled:
        return
    if not section.jid:
        raise ConfigError("xmpp.jid", "is required when xmpp is enabled")
    _bare(section.jid, "xmpp.jid")
    if not section.password:
        raise ConfigError("xmpp.password", "is required when xmpp is enabled (env:NAME or file:/path)")
    resolve_secret(section.password, "xmpp.password")
    if not _RESOURCE.match(section.resource):
        raise ConfigError("xmpp.resource", f"must be 1-40 letters, digits, . _ -, not {section.resource!r}")
    if not _NICK.match(section.nick):
        raise ConfigError("xmpp.nick", f"not a usable nickname: {section.nick!r}")
    if section.ca_file is not None and not Path(section.ca_file).is_file():
        raise ConfigError("xmpp.ca_file", f"file not found: {section.ca_file}")
    if section.templates_dir is not None and not Path(section.templates_dir).is_dir():
        raise ConfigError("xmpp.templates_dir", f"directory not found: {section.templates_dir}")
    if section.reconnect_max_delay < section.reconnect_delay:
        raise ConfigError("xmpp.reconnect_max_delay", "must not be smaller than reconnect_delay")
    seen: set[str] = set()
    for i, room in enumerate(section.rooms):
        _bare(room.jid, f"xmpp.rooms[{i}].jid")
        if room.jid.lower() in seen:
            raise ConfigError(f"xmpp.rooms[{i}].jid", f"room {room.jid} is listed twice")
        seen.add(room.jid.lower())
        if room.nick and not _NICK.match(room.nick):
            raise ConfigError(f"xmpp.rooms[{i}].nick", f"not a usable nickname: {room.nick!r}")
        if room.password:
            resolve_secret(room.password, f"xmpp.rooms[{i}].password")
    for name in ("on_duty", "voevent_senders"):
        for i, jid in enumerate(getattr(section, name)):
            _bare(jid, f"xmpp.{name}[{i}]")
            if jid.lower() in seen:
                raise ConfigError(f"xmpp.{name}[{i}]", f"{jid} is a room, not a person")
    for name in ("page_roles", "room_roles"):
        for i, role in enumerate(getattr(section, name)):
            if role not in VALID_ROLES:
                raise ConfigError(f"xmpp.{name}[{i}]", f"must be one of {', '.join(VALID_ROLES)}, not {role!r}")

    def xpath(value: str, key: str) -> None:
        try:
            etree.XPath(value)
        except etree.XPathSyntaxError as exc:
            raise ConfigError(key, f"not a valid XPath: {exc}") from None

    if section.page_xpath:
        xpath(section.page_xpath, "xmpp.page_xpath")
    for i, rule in enumerate(section.forward):
        _bare(rule.jid, f"xmpp.forward[{i}].jid")
        for j, role in enumerate(rule.roles):
            if role not in VALID_ROLES:
                raise ConfigError(f"xmpp.forward[{i}].roles[{j}]", f"must be one of {', '.join(VALID_ROLES)}, not {role!r}")
        if rule.xpath:
            xpath(rule.xpath, f"xmpp.forward[{i}].xpath")
