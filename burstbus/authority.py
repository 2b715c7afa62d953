"""Who may publish under which IVORNs: the ingest's authority rule, the same for every transport.

Why this exists: a VOEvent's IVORN says who speaks (``ivo://nasa.gsfc.gcn/...`` is GCN,
``ivo://<our authority>/trigger/<telescope>#...`` is *us, telling a telescope to slew*). The
schema cannot tell a real GCN notice from a forged one, and a telescope subscribed to its
trigger stream moves on whatever arrives there. So every source of packets is granted the IVORN
prefixes it may publish under, and the ingest refuses the rest before anything is appended:

* **Trigger streams** (every telescope's ``vtp_stream`` and ``ivo://<triggers.authority>/trigger``)
  belong to one component only, the trigger workflow (``local:triggers``). No grant can open
  them to anybody else (the configuration refuses such a grant), whatever the transport.
* **Reserved prefixes** (the centre's own authorities: ``ivo://<triggers.authority>/``, the
  broker's ``vtp.local_ivo`` authority, the notice publisher's ``[notices] stream`` authority,
  plus ``[authority] reserved``) are for burstbus's own components (``via = "local"``) and for
  sources an operator grants them to explicitly (the twin science centre relaying our
  notices, say). The notice publisher (``local:notices``) publishes *only* there: a notice
  built from a pipeline's request can never speak as anybody else.
* **Everything else**: a source with grants may publish only under its granted prefixes (Comet
  users asked for exactly this: a publisher restricted to its own IVORN prefix); a source with
  none gets ``[authority] default``: ``unreserved`` (anything not reserved: a bare
  ``burstbus run`` accepts ordinary notices) or ``none``.

IVORNs are compared case-insensitively (IVOA identifiers are) and percent-decoded, so
``ivo://Burstbus.Local/%74rigger#x`` is the trigger stream it looks like it avoids. A prefix
naming only an authority (``ivo://gcn``) is read as ``ivo://gcn/``, so it never covers
``ivo://gcn.evil/``.

A source is what the transport established, never what the packet claims: the VTP author's
address (or the subject CN of the client certificate it presented over TLS, verified against
``[vtp] tls_client_ca``: ``vtp-cert:<CN>``), the upstream broker we dialled, the XMPP
server-stamped bare JID, the NATS subject, the HTTP client's address, a Kafka topic. This
module is pure: no I/O, no clock.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

#: The one source that may publish under trigger streams.
TRIGGER_VIA, TRIGGER_PEER = "local", "triggers"
TRIGGER_SOURCE = f"{TRIGGER_VIA}:{TRIGGER_PEER}"
#: The centre's notice publisher (``handlers/notices``): only under the reserved prefixes.
NOTICES_VIA, NOTICES_PEER = "local", "notices"
NOTICES_SOURCE = f"{NOTICES_VIA}:{NOTICES_PEER}"
#: ``via`` of in-process components (trigger workflow, notice publisher, test events, demo).
LOCAL_VIA = "local"
#: Transports a grant may name (``local`` cannot be granted: it is not a transport).
GRANTABLE_VIAS = ("vtp", "vtp-cert", "vtp-upstream", "xmpp", "nats", "http", "kafka", "import", "*")
#: Transports whose peer is an IP address, so a grant may name a network (CIDR).
_ADDRESS_VIAS = ("vtp", "http")
#: The refusal code in ``voevent.rejected`` and NAKs.
AUTHORITY_CODE = "authority"


@dataclass(frozen=True)
class AuthorityGrant:
    """``[[authority.grants]]``: the IVORN prefixes one source (or a pattern of sources) may use.

    ``source`` is ``<via>:<peer>``: ``vtp:192.0.2.0/24`` (author address or network),
    ``vtp-cert:gft.svom.example`` (an author's verified TLS client certificate, by subject CN),
    ``vtp-upstream:broker.example:8099`` (an upstream we subscribe to), ``xmpp:gcn@example.org``
    (the server-stamped bare JID), ``nats:burstbus.in.voevent``, ``http:10.1.2.3``,
    ``kafka:gcn.notices.svom.voevent.*``, ``import:*``; ``*`` after the colon, or ``*`` alone,
    matches every peer (shell-style wildcards elsewhere)."""

    #: ``<via>:<peer>`` as the transport establishes it (see above); shell-style wildcards.
    source: str
    #: IVORN prefixes it may publish under (``ivo://nasa.gsfc.gcn/``); an authority alone covers all of it.
    prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuthoritySection:
    """``[authority]``: the IVORN prefixes each source may publish under (see module docs)."""

    #: More prefixes only burstbus's own components (and explicit grants) may publish under,
    #: beside the always-reserved ``ivo://<triggers.authority>/`` and ``vtp.local_ivo``'s authority.
    reserved: tuple[str, ...] = ()
    #: What a source without a grant may publish: ``unreserved`` (any IVORN outside the
    #: reserved prefixes) or ``none`` (nothing: every source must be granted).
    default: str = field(default="unreserved", metadata={"choices": ("unreserved", "none")})
    #: ``[[authority.grants]]``: per source, the prefixes it may publish under.
    grants: tuple[AuthorityGrant, ...] = ()


class AuthorityConfigError(ValueError):
    """A bad ``[authority]`` entry: ``key`` names it (the config loader reports it)."""

    def __init__(self, key: str, problem: str):
        super().__init__(problem)
        self.key = key
        self.problem = problem


def canonical(ivorn: str) -> str:
    """How IVORNs and prefixes are compared: percent-decoded, case-folded."""
    return unquote(ivorn).casefold()


def normal_prefix(prefix: str) -> str:
    """A prefix as compared: ``ivo://authority`` alone gets its ``/`` (never a longer authority)."""
    text = canonical(prefix.strip())
    rest = text[len("ivo://") :] if text.startswith("ivo://") else text
    if "/" not in rest and "#" not in rest:
        text += "/"
    return text


def authority_of(ivo: str) -> str:
    """``ivo://a.b/c#d`` → ``ivo://a.b/``."""
    rest = ivo[len("ivo://") :] if ivo.startswith("ivo://") else ivo
    return f"ivo://{rest.split('/', 1)[0].split('#', 1)[0]}/"


def covers(prefix: str, ivorn: str) -> bool:
    """True when ``ivorn`` (raw or canonical) lies under the normalised ``prefix``."""
    return canonical(ivorn).startswith(prefix) or ivorn.casefold().startswith(prefix)


@dataclass(frozen=True)
class SourcePattern:
    """``<via>:<peer>`` with shell-style wildcards in the peer, or a network (CIDR) for the
    address transports. ``local``: whether it may match burstbus's own components
    (``local:triggers``): never for an authority grant, which ``local`` cannot be given;
    the signature rules select them (to sign the centre's own packets)."""

    via: str
    peer: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    local: bool = False

    @staticmethod
    def parse(text: str, *, vias: Sequence[str] | None = GRANTABLE_VIAS, local: bool = False) -> SourcePattern:
        """``vias``: the transports it may name (None: any)."""
        via, sep, peer = text.strip().partition(":")
        if not sep:
            if via.strip() == "*":
                return SourcePattern("*", "*", None, local)
            raise ValueError(f"must be <transport>:<peer> (e.g. vtp:192.0.2.0/24 or xmpp:*), not {text!r}")
        via = via.strip().casefold()
        if vias is not None and via not in vias:
            raise ValueError(f"unknown transport {via!r} (one of {', '.join(vias)})")
        peer = peer.strip() or "*"
        network = None
        if via in _ADDRESS_VIAS and not any(c in peer for c in "*?["):
            try:
                network = ipaddress.ip_network(peer, strict=False)
            except ValueError:
                raise ValueError(f"{via} sources are addresses or networks (CIDR), not {peer!r}") from None
        return SourcePattern(via, peer.casefold(), network, local)

    def matches(self, via: str, peer: str) -> bool:
        if (via == LOCAL_VIA and not self.local) or not fnmatch.fnmatchcase(via.casefold(), self.via):
            return False
        if self.network is not None:
            try:
                return ipaddress.ip_address(peer) in self.network
            except ValueError:
                return False
        return fnmatch.fnmatchcase(peer.casefold(), self.peer)


@dataclass(frozen=True)
class _Grant:
    source: SourcePattern
    text: str
    prefixes: tuple[str, ...]


class AuthorityPolicy:
    """Decides whether a source may publish a given IVORN; :meth:`refusal` says why not."""

    def __init__(
        self,
        *,
        trigger_streams: Iterable[str] = (),
        reserved: Iterable[str] = (),
        grants: Sequence[AuthorityGrant] = (),
        default: str = "unreserved",
    ):
        self.trigger_streams = tuple(sorted({normal_prefix(s) for s in trigger_streams}))
        self.reserved = tuple(sorted({normal_prefix(p) for p in reserved}))
        self.default = default
        self._grants = tuple(
            _Grant(SourcePattern.parse(g.source), g.source, tuple(normal_prefix(p) for p in g.prefixes)) for g in grants
        )

    @classmethod
    def of(cls, section: AuthoritySection, *, trigger_streams: Iterable[str], own: Iterable[str]) -> AuthorityPolicy:
        """The policy of a configuration: ``own`` are the centre's IVORNs whose authorities are
        reserved (``ivo://<triggers.authority>/``, ``vtp.local_ivo``)."""
        reserved = [authority_of(canonical(o)) for o in own] + list(section.reserved)
        return cls(trigger_streams=trigger_streams, reserved=reserved, grants=section.grants, default=section.default)

    @classmethod
    def open(cls) -> AuthorityPolicy:
        """No reserved prefix at all (a bare :class:`~burstbus.ingest.Ingest` in a unit test)."""
        return cls()

    # -- the decision ---------------------------------------------------------------------

    def refusal(self, via: str, peer: str, ivorn: str) -> str | None:
        """None if ``via:peer`` may publish ``ivorn``, else the reason (for the NAK and the event)."""
        source = f"{via}:{peer}"
        stream = self._first(self.trigger_streams, ivorn)
        if stream is not None:
            if (via, peer) == (TRIGGER_VIA, TRIGGER_PEER):
                return None
            return (
                f"IVORN {ivorn} is in the trigger stream {stream}: only burstbus's trigger workflow "
                f"publishes there (after an approved request), never {source}"
            )
        if (via, peer) == (TRIGGER_VIA, TRIGGER_PEER):
            return f"the trigger workflow publishes only under trigger streams, not {ivorn}"
        reserved = self._first(self.reserved, ivorn)
        if (via, peer) == (NOTICES_VIA, NOTICES_PEER):
            if reserved is None:
                return f"the notice publisher speaks only for the centre (its reserved authorities), not under {ivorn}"
            return None
        if via == LOCAL_VIA:
            return None
        grants = [g for g in self._grants if g.source.matches(via, peer)]
        if grants:
            if any(covers(p, ivorn) for g in grants for p in g.prefixes):
                return None
            allowed = ", ".join(sorted({p for g in grants for p in g.prefixes})) or "nothing"
            return f"{source} may publish only under {allowed} ([authority] grants), not {ivorn}"
        if reserved is not None:
            return (
                f"IVORN {ivorn} is under {reserved}, reserved for burstbus's own components; "
                f'an operator can grant it to this source: [[authority.grants]] source = "{source}"'
            )
        if self.default == "none":
            return f"{source} has no [authority] grant, and [authority] default = \"none\""
        return None

    def in_trigger_stream(self, ivorn: str) -> bool:
        """Whether ``ivorn`` is under a trigger stream (every other source's attempt there is
        recorded as the refusal it is, even a replay of a packet already sent)."""
        return self._first(self.trigger_streams, ivorn) is not None

    @staticmethod
    def _first(prefixes: Sequence[str], ivorn: str) -> str | None:
        return next((p for p in prefixes if covers(p, ivorn)), None)

    # -- for people: who may publish what (``burstbus authority``, docs, audits) -------------

    def describe(self) -> list[tuple[str, str]]:
        """(prefix or rule, who may publish there) lines, most powerful first."""
        rows = [(s, TRIGGER_SOURCE + " only (the trigger workflow, after an approved request)") for s in self.trigger_streams]
        for prefix in self.reserved:
            granted = [g.text for g in self._grants if any(p.startswith(prefix) or prefix.startswith(p) for p in g.prefixes)]
            rows.append((prefix, "burstbus's own components (local:*)" + (f"; granted to {', '.join(granted)}" if granted else "")))
        if self.reserved:
            rows.append(("(the prefixes just above)", f"{NOTICES_SOURCE}, the centre's notice publisher, and nowhere else"))
        for grant in self._grants:
            rows.append((", ".join(grant.prefixes) or "(nothing)", f"{grant.text} (and nothing else)"))
        rows.append(("anything else", "any other source" if self.default == "unreserved" else "nobody ([authority] default = none)"))
        return rows


def check_authority(section: AuthoritySection, trigger_streams: Iterable[str]) -> None:
    """Refuse grants that could never be honoured or that would open a trigger stream."""
    streams = [normal_prefix(s) for s in trigger_streams]
    for i, prefix in enumerate(section.reserved):
        if not prefix.startswith("ivo://"):
            raise AuthorityConfigError(f"authority.reserved[{i}]", f"must start with ivo://, not {prefix!r}")
    for i, grant in enumerate(section.grants):
        key = f"authority.grants[{i}]"
        try:
            SourcePattern.parse(grant.source)
        except ValueError as exc:
            raise AuthorityConfigError(f"{key}.source", str(exc)) from None
        if not grant.prefixes:
            raise AuthorityConfigError(f"{key}.prefixes", "must list at least one ivo:// prefix")
        for j, prefix in enumerate(grant.prefixes):
            if not prefix.startswith("ivo://"):
                raise AuthorityConfigError(f"{key}.prefixes[{j}]", f"must start with ivo://, not {prefix!r}")
            wanted = normal_prefix(prefix)
            inside = next((s for s in streams if wanted.startswith(s)), None)
            if inside is not None:
                raise AuthorityConfigError(
                    f"{key}.prefixes[{j}]",
                    f"{prefix!r} is in the trigger stream {inside}: only the trigger workflow publishes there",
                )
