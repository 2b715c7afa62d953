"""``[vtp]``: the VTP (VOEvent Transport Protocol) section, beside the broker that reads it.

The core's loader (:mod:`burstbus.config`) reads it into :class:`VTPSection` because the broker
registers it (``burstbus.broker.component``); :func:`check_vtp` is its cross-field check.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from burstbus.config import ConfigError


@dataclass(frozen=True)
class SubscriberFilter:
    """An operator's XPath filter for the VTP subscribers connecting from ``network`` (CIDR).

    A packet goes to such a subscriber only if one of the operator's filters for it selects the
    packet *and* (if the subscriber sent filters of its own) one of its own filters does.
    """

    #: XPath 1.0 over the VOEvent; the packet goes out when it selects something.
    xpath: str
    #: The subscribers (CIDR of their address) this filter applies to.
    network: str = "0.0.0.0/0"


@dataclass(frozen=True)
class UpstreamBroker:
    """A remote VTP broker burstbus subscribes to (like ``comet --remote=host:port``)."""

    #: The upstream broker's host name or address.
    host: str
    #: Its VTP broadcast port (Comet's default: 8099).
    port: int = field(default=8099, metadata={"minimum": 1, "maximum": 65535})
    #: XPath filters sent to the upstream in the authenticate reply (it applies them).
    filters: tuple[str, ...] = ()
    #: Connect over TLS: the upstream's certificate is checked against ``ca`` and its name.
    tls: bool = False
    #: PEM file of the CA(s) to check the upstream's certificate with; unset: the system's.
    ca: Path | None = None
    #: The name its certificate must carry (DNS name or IP address); empty: ``host``.
    server_name: str = ""
    #: PEM file of our client certificate for this upstream (then any intermediates), if it asks.
    certificate: Path | None = None
    #: PEM file of that certificate's private key (unencrypted).
    key: Path | None = None


@dataclass(frozen=True)
class CatchUpSubscriber:
    """A VTP subscriber that gets, when it reconnects within ``[vtp] catch_up_window``, what
    was accepted for it (its filters) while it was away, in order, before live events.

    It is known by the IVORN it gives in its authenticate reply (``Response``; Comet's
    ``--local-ivo``) *and* the network it connects from: the IVORN is only a claim, the address
    is what TCP established. Opt-in, since some clients cannot take a replay; Comet subscribers
    drop an IVORN they already have, so a packet sent twice across a reconnect is harmless."""

    #: The IVORN the subscriber gives in its authenticate reply.
    ivorn: str
    #: The CIDR network it must connect from (the IVORN alone is only a claim).
    network: str


_ANY_ADDRESS = ("0.0.0.0/0", "::/0")
#: Listen backlog of the VTP ports unless configured (Twisted's own default is 50).
DEFAULT_LISTEN_BACKLOG = 1024


@dataclass(frozen=True)
class VTPSection:
    """VTP (VOEvent Transport Protocol): receive from authors, broadcast, subscribe upstream."""

    #: Run the VTP broker at all (receiver, broadcaster, upstream subscriptions).
    enabled: bool = True
    #: Our IVORN in transport messages (ACK/NAK origin, iamalive, authenticate).
    local_ivo: str = "ivo://burstbus.local/broker"
    #: Listen backlog of every VTP port: connections the kernel completes before burstbus
    #: accepts them. Twisted's default of 50 drops the SYNs of a storm of reconnecting
    #: subscribers (after a restart), who retry 1, 3, 7 s later and miss the first alerts.
    #: The kernel caps it at ``net.core.somaxconn``.
    listen_backlog: int = field(default=DEFAULT_LISTEN_BACKLOG, metadata={"minimum": 1})
    #: Accept packets from authors (``comet-sendvo``), on this address …
    receive: bool = True
    receive_host: str = "127.0.0.1"
    #: 0 picks a free port (tests); Comet's author port is 8098.
    receive_port: int = field(default=8098, metadata={"minimum": 0, "maximum": 65535})
    #: Largest frame an author may send (bytes); Comet silently drops frames over 99,999.
    max_bytes: int = field(default=1_048_576, metadata={"minimum": 1024})
    #: An author must finish its packet within this many seconds of connecting (Comet: 20).
    receive_timeout: float = field(default=20.0, metadata={"minimum": 0.01})
    #: CIDR networks authors may connect from (Comet's --author-whitelist).
    author_allow: tuple[str, ...] = _ANY_ADDRESS
    #: Serve subscribers (telescopes, Comet brokers), on this address and port (Comet's: 8099).
    broadcast: bool = True
    broadcast_host: str = "127.0.0.1"
    broadcast_port: int = field(default=8099, metadata={"minimum": 0, "maximum": 65535})
    #: CIDR networks subscribers may connect from (Comet's --subscriber-whitelist).
    subscriber_allow: tuple[str, ...] = _ANY_ADDRESS
    #: Seconds between iamalive messages; a subscriber that missed the previous one is dropped.
    iamalive_interval: float = field(default=60.0, metadata={"minimum": 0.01})
    #: A subscriber with this many unacknowledged events at an iamalive is dropped (Comet: 10).
    max_outstanding_acks: int = field(default=10, metadata={"minimum": 1})
    #: Seconds to wait for a new subscriber's authenticate reply (its filters) before sending.
    authenticate_wait: float = field(default=5.0, metadata={"minimum": 0.0})
    #: ``[[vtp.subscriber_filters]]``: what subscribers from a network may receive.
    subscriber_filters: tuple[SubscriberFilter, ...] = ()
    #: Subscribers that get a replay of what they missed when they reconnect (none by default).
    catch_up: tuple[CatchUpSubscriber, ...] = ()
    #: How long after a subscriber went away its replay is still owed (seconds); a broker
    #: restart within it counts too (positions are kept in ``state.sqlite``).
    catch_up_window: float = field(default=600.0, metadata={"minimum": 0.0})
    #: ``[[vtp.upstreams]]``: remote brokers to subscribe to; their packets go through the ingest.
    upstreams: tuple[UpstreamBroker, ...] = ()
    #: Longest wait between reconnection attempts to an upstream broker (seconds).
    upstream_max_delay: float = field(default=60.0, metadata={"minimum": 0.1})
    #: Drop an upstream connection that sent nothing (not even iamalive) for this long (Comet: 120).
    upstream_idle_timeout: float = field(default=120.0, metadata={"minimum": 0.1})
    #: Seconds between periodic test events sent to subscribers (Comet's default: 3600); 0: none.
    test_interval: float = field(default=3600.0, metadata={"minimum": 0.0})
    #: PEM file of this node's TLS certificate (then any intermediates), for the TLS ports.
    tls_certificate: Path | None = None
    #: PEM file of its private key (unencrypted; readable by burstbus only).
    tls_key: Path | None = None
    #: PEM file of the CA(s) that sign client certificates (authors, subscribers); a CA for VTP
    #: clients only: an author's certificate CN is its authority source ``vtp-cert:<CN>``.
    #: Unset: no client certificate is asked for.
    tls_client_ca: Path | None = None
    #: A TLS author port on ``receive_host``, beside ``receive_port`` (0: a free port); unset: none.
    receive_tls_port: int | None = field(default=None, metadata={"minimum": 0, "maximum": 65535})
    #: Serve the plain-TCP author port ``receive_port``; false (with ``receive_tls_port``): TLS only.
    receive_plain: bool = True
    #: Client certificates on the TLS author port (with ``tls_client_ca``): ``optional`` (an author
    #: without one is known by its address), ``required``, or ``none`` (not asked for).
    receive_client_certificate: str = field(default="optional", metadata={"choices": ("none", "optional", "required")})
    #: A TLS subscriber port on ``broadcast_host``, beside ``broadcast_port`` (0: a free port); unset: none.
    broadcast_tls_port: int | None = field(default=None, metadata={"minimum": 0, "maximum": 65535})
    #: Serve the plain-TCP subscriber port ``broadcast_port``; false (with ``broadcast_tls_port``): TLS only.
    broadcast_plain: bool = True
    #: Client certificates on the TLS subscriber port (with ``tls_client_ca``): ``optional``,
    #: ``required`` (only subscribers the CA signed), or ``none``.
    broadcast_client_certificate: str = field(default="optional", metadata={"choices": ("none", "optional", "required")})


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
        _check_upstream_tls(upstream, f"vtp.upstreams[{i}]")
    _check_tls(vtp)
    if not vtp.local_ivo.startswith("ivo://"):
        raise ConfigError("vtp.local_ivo", f"must be an ivo:// identifier, not {vtp.local_ivo!r}")


def _check_tls(vtp: VTPSection) -> None:
    """TLS ports need this node's certificate and key (which must go together); a client
    certificate required needs the CA that signs them; no port left open means no port."""
    from burstbus.broker.tls import TLSFileError, check_ca, check_files

    tls_ports = [name for name in ("receive_tls_port", "broadcast_tls_port") if getattr(vtp, name) is not None]
    try:
        check_files(vtp.tls_certificate, vtp.tls_key, "vtp.tls_certificate", "vtp.tls_key")
        if vtp.tls_client_ca is not None:
            check_ca(vtp.tls_client_ca, "vtp.tls_client_ca")
    except TLSFileError as exc:
        raise ConfigError(exc.key, exc.problem) from None
    if tls_ports and vtp.tls_certificate is None:
        raise ConfigError("vtp.tls_certificate", f"vtp.{tls_ports[0]} is set: a TLS port needs this node's certificate and key")
    for side, port in (("receive", "receive_tls_port"), ("broadcast", "broadcast_tls_port")):
        if getattr(vtp, f"{side}_client_certificate") == "required" and getattr(vtp, port) is not None and vtp.tls_client_ca is None:
            raise ConfigError("vtp.tls_client_ca", f"vtp.{side}_client_certificate = \"required\": set the CA that signs them")
        if getattr(vtp, side) and not getattr(vtp, f"{side}_plain") and getattr(vtp, port) is None:
            raise ConfigError(f"vtp.{side}_plain", f"false leaves no {side} port: set vtp.{port} (TLS) or leave it true")


def _check_upstream_tls(upstream: UpstreamBroker, key: str) -> None:
    from burstbus.broker.tls import TLSFileError, check_ca, check_files

    set_ = [name for name in ("ca", "certificate", "key") if getattr(upstream, name) is not None]
    if upstream.server_name:
        set_.append("server_name")
    if set_ and not upstream.tls:
        raise ConfigError(f"{key}.tls", f"{key}.{set_[0]} is set: set tls = true as well (it is used over TLS only)")
    try:
        check_files(upstream.certificate, upstream.key, f"{key}.certificate", f"{key}.key")
        if upstream.ca is not None:
            check_ca(upstream.ca, f"{key}.ca")
    except TLSFileError as exc:
        raise ConfigError(exc.key, exc.problem) from None
