"""``[vtp]``: the VTP (VOEvent Transport Protocol) section, beside the broker that reads it.

The core's loader (:mod:`burstbus.config`) reads it into :class:`VTPSection` because the broker
registers it (``burstbus.broker.component``); :func:`check_vtp` is its cross-field check.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from lxml import etree

from burstbus.config import ConfigError


@dataclass(frozen=True)
class SubscriberFilter:
    """An operator's XPath filter for the VTP subscribers connecting from ``network`` (CIDR).

    A packet goes to such a subscriber only if one of the operator's filters for it selects the
    packet *and* (if the subscriber sent filters of its own) one of its own filters does.
    """

    xpath: str
    network: str = "0.0.0.0/0"


@dataclass(frozen=True)
class UpstreamBroker:
    """A remote VTP broker burstbus subscribes to (like ``comet --remote=host:port``)."""

    host: str
    port: int = field(default=8099, metadata={"minimum": 1})
    #: XPath filters sent to the upstream in the authenticate reply (it applies them).
    filters: tuple[str, ...] = ()


@dataclass(frozen=True)
class CatchUpSubscriber:
    """A VTP subscriber that gets, when it reconnects within ``[vtp] catch_up_window``, what
    was accepted for it (its filters) while it was away, in order, before live events.

    It is known by the IVORN it gives in its authenticate reply (``Response``; Comet's
    ``--local-ivo``) *and* the network it connects from: the IVORN is only a claim, the address
    is what TCP established. Opt-in, since some clients cannot take a replay; Comet subscribers
    drop an IVORN they already have, so a packet sent twice across a reconnect is harmless."""

    ivorn: str
    network: str


_ANY_ADDRESS = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True)
class VTPSection:
    """VTP (VOEvent Transport Protocol): receive from authors, broadcast, subscribe upstream."""

    enabled: bool = True
    #: Our IVORN in transport messages (ACK/NAK origin, iamalive, authenticate).
    local_ivo: str = "ivo://burstbus.local/broker"
    receive: bool = True
    receive_host: str = "127.0.0.1"
    #: 0 picks a free port (tests); Comet's author port is 8098.
    receive_port: int = field(default=8098, metadata={"minimum": 0})
    #: Largest frame an author may send (bytes); Comet silently drops frames over 99,999.
    max_bytes: int = field(default=1_048_576, metadata={"minimum": 1024})
    #: An author must finish its packet within this many seconds of connecting (Comet: 20).
    receive_timeout: float = field(default=20.0, metadata={"minimum": 0.01})
    #: CIDR networks authors may connect from (Comet's --author-whitelist).
    author_allow: tuple[str, ...] = _ANY_ADDRESS
    broadcast: bool = True
    broadcast_host: str = "127.0.0.1"
    broadcast_port: int = field(default=8099, metadata={"minimum": 0})
    #: CIDR networks subscribers may connect from (Comet's --subscriber-whitelist).
    subscriber_allow: tuple[str, ...] = _ANY_ADDRESS
    #: Seconds between iamalive messages; a subscriber that missed the previous one is dropped.
    iamalive_interval: float = field(default=60.0, metadata={"minimum": 0.01})
    #: A subscriber with this many unacknowledged events at an iamalive is dropped (Comet: 10).
    max_outstanding_acks: int = field(default=10, metadata={"minimum": 1})
    #: Seconds to wait for a new subscriber's authenticate reply (its filters) before sending.
    authenticate_wait: float = field(default=5.0, metadata={"minimum": 0.0})
    subscriber_filters: tuple[SubscriberFilter, ...] = ()
    #: Subscribers that get a replay of what they missed when they reconnect (none by default).
    catch_up: tuple[CatchUpSubscriber, ...] = ()
    #: How long after a subscriber went away its replay is still owed (seconds); a broker
    #: restart within it counts too (positions are kept in ``state.sqlite``).
    catch_up_window: float = field(default=600.0, metadata={"minimum": 0.0})
    upstreams: tuple[UpstreamBroker, ...] = ()
    #: Longest wait between reconnection attempts to an upstream broker (seconds).
    upstream_max_delay: float = field(default=60.0, metadata={"minimum": 0.1})
    #: Drop an upstream connection that sent nothing (not even iamalive) for this long (Comet: 120).
    upstream_idle_timeout: float = field(default=120.0, metadata={"minimum": 0.1})
    #: Seconds between periodic test events sent to subscribers (Comet's default: 3600); 0: none.
    test_interval: float = field(default=3600.0, metadata={"minimum": 0.0})


def check_vtp(vtp: VTPSection) -> None:
    """Networks that parse, XPaths that compile, upstreams with a host, an ivo:// local_ivo."""
    def network(value: str, key: str) -> None:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError as exc:
            raise ConfigError(key, f"not an IP network (CIDR): {exc}") from None

    def xpath(value: str, key: str) -> None:
        try:
            etree.XPath(value)
        except etree.XPathSyntaxError as exc:
            raise ConfigError(key, f"not a valid XPath: {exc}") from None

    for name in ("author_allow", "subscriber_allow"):
        for i, value in enumerate(getattr(vtp, name)):
            network(value, f"vtp.{name}[{i}]")
    for i, flt in enumerate(vtp.subscriber_filters):
        network(flt.network, f"vtp.subscriber_filters[{i}].network")
        xpath(flt.xpath, f"vtp.subscriber_filters[{i}].xpath")
    seen: set[str] = set()
    for i, entry in enumerate(vtp.catch_up):
        if not entry.ivorn.startswith("ivo://"):
            raise ConfigError(f"vtp.catch_up[{i}].ivorn", f"must be an ivo:// identifier, not {entry.ivorn!r}")
        if entry.ivorn in seen:
            raise ConfigError(f"vtp.catch_up[{i}].ivorn", f"{entry.ivorn!r} is listed twice")
        seen.add(entry.ivorn)
        network(entry.network, f"vtp.catch_up[{i}].network")
    for i, upstream in enumerate(vtp.upstreams):
        if not upstream.host:
            raise ConfigError(f"vtp.upstreams[{i}].host", "must not be empty")
        for j, value in enumerate(upstream.filters):
            xpath(value, f"vtp.upstreams[{i}].filters[{j}]")
    if not vtp.local_ivo.startswith("ivo://"):
        raise ConfigError("vtp.local_ivo", f"must be an ivo:// identifier, not {vtp.local_ivo!r}")


