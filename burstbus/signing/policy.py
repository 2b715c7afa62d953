"""Which packets must be signed, by whom: the ingest's signature policy (pure: no I/O, no clock).

Why: the authority rule (:mod:`burstbus.authority`) trusts the *transport* — an address, a
JID, a topic. A signature moves the trust to the *author*: a packet relayed by any broker,
forwarded by any XMPP account, still proves who wrote it, byte for byte. So:

* Every accepted packet records what its signature showed (``signature`` in
  ``voevent.accepted``): ``valid`` (a good signature by a key the matching rules trust),
  ``untrusted`` (a good signature by a key they do not trust, or by a key not in the
  keyring, which gpg cannot check), ``invalid`` (bad, malformed, made with an expired or
  revoked key), ``none`` (unsigned).
* ``[[signatures.rules]]`` select packets by IVORN prefix, ``Who/AuthorIVORN`` prefix and/or
  source (``<via>:<peer>``, as the transport established it, ``local`` included), and say
  ``require`` (refused with code ``signature`` unless ``valid`` for that rule) or ``verify``
  (recorded only; its keys decide ``valid`` vs ``untrusted``). Every matching rule applies:
  a permissive rule never shadows a strict one. A rule's ``keys`` are fingerprints; none
  means any key in the keyring (which holds only what the operator imported).
* A packet no rule selects is recorded, never refused: ``valid`` means a good signature by
  any key in the keyring.

IVORN prefixes compare as the authority rule compares them (case-folded, percent-decoded,
an authority alone covers all of it and nothing longer).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from burstbus.authority import SourcePattern, covers, normal_prefix

#: The refusal code in ``voevent.rejected`` and NAKs.
SIGNATURE_CODE = "signature"
#: What a packet's signature showed.
Status = Literal["valid", "invalid", "untrusted", "none"]
STATUSES: tuple[str, ...] = ("valid", "invalid", "untrusted", "none")
#: What gpg found, before the policy says whether the key is trusted.
Found = Literal["good", "bad", "unknown_key", "none"]
_FINGERPRINT = re.compile(r"(?:[0-9A-F]{40}|[0-9A-F]{64})")


@dataclass(frozen=True)
class SignatureRule:
    """``[[signatures.rules]]``: which packets, what is asked of their signature, whose keys.

    A packet is selected when it meets every criterion the rule gives (IVORN *and* author
    *and* source); a rule must give at least one."""

    #: A name for the rule: in refusals (``signature rule 'triggers' requires …``) and in the facts.
    name: str
    #: ``require`` (refused with code ``signature`` unless validly signed by one of ``keys``)
    #: or ``verify`` (recorded only: ``valid`` or ``untrusted`` by ``keys``).
    action: str = field(default="verify", metadata={"choices": ("require", "verify")})
    #: Packet IVORN prefixes the rule selects (``ivo://nasa.gsfc.gcn/``; an authority alone covers all of it).
    ivorns: tuple[str, ...] = ()
    #: ``Who/AuthorIVORN`` prefixes the rule selects (the author the packet names).
    authors: tuple[str, ...] = ()
    #: Sources the rule selects, ``<via>:<peer>`` as the transport establishes it
    #: (``xmpp:*``, ``vtp:192.0.2.0/24``, ``kafka:gcn.*``, ``local:triggers``); shell-style wildcards.
    sources: tuple[str, ...] = ()
    #: Fingerprints of the keys the rule trusts (40 or 64 hex digits, spaces allowed; never a
    #: short key id). Empty: any key in the keyring.
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class SignaturesSection:
    """``[signatures]``: OpenPGP signatures on VOEvents (Comet's scheme), checked and made with GnuPG."""

    #: Check the signature of every packet and record it; apply ``rules``; sign with ``sign_with``.
    enabled: bool = False
    #: The GnuPG home holding the keyring (public keys of trusted authors, our own secret key);
    #: never ``~/.gnupg``. Empty: DATA_DIR/keyring (created, mode 0700).
    keyring: Path | None = None
    #: The ``gpg`` program (GnuPG 2.2+; Debian's ``gpg`` package).
    gpg: str = "gpg"
    #: Fingerprint of the centre's secret key in the keyring that signs its own packets. Empty: nothing is signed.
    sign_with: str = ""
    #: Passphrase of that key (``env:NAME`` or ``file:/path``); empty for a key without one.
    #: Given to gpg on a pipe (loopback pinentry), never on the command line.
    passphrase: str = ""
    #: Sources whose packets the ingest signs before they are logged and sent (``<via>:<peer>``).
    sign_sources: tuple[str, ...] = ("local:triggers", "local:notices")
    #: Seconds one gpg call may take before it is killed: the packet's signature is then
    #: ``invalid``; a packet being signed is refused.
    timeout: float = field(default=10.0, metadata={"minimum": 0.5})
    #: ``[[signatures.rules]]``: per author or source, whether a valid signature is required, and from whom.
    rules: tuple[SignatureRule, ...] = ()

    def home(self, data_dir: Path) -> Path:
        """The keyring directory in use."""
        return self.keyring if self.keyring is not None else data_dir / "keyring"


class SignaturesConfigError(ValueError):
    """A bad ``[signatures]`` entry: ``key`` names it (the config loader reports it)."""

    def __init__(self, key: str, problem: str):
        super().__init__(problem)
        self.key = key
        self.problem = problem


def fingerprint(text: str) -> str:
    """``"ABCD 1234 …"`` → ``"ABCD1234…"`` (upper case, no spaces); raise ValueError if not one."""
    compact = re.sub(r"\s+", "", text).upper().removeprefix("0X")
    if not _FINGERPRINT.fullmatch(compact):
        if re.fullmatch(r"[0-9A-F]{8}|[0-9A-F]{16}", compact):
            raise ValueError(f"{text!r} is a key id, which anybody can forge; give the full fingerprint (40 hex digits)")
        raise ValueError(f"{text!r} is not an OpenPGP fingerprint (40 or 64 hex digits)")
    return compact


def _source(text: str) -> SourcePattern:
    """A rule's or ``sign_sources``' source: any transport, burstbus's own components included."""
    return SourcePattern.parse(text, vias=None, local=True)


def check_signatures(section: SignaturesSection) -> None:
    """Refuse entries that could never work, and settings that would silently do nothing."""
    if not section.enabled:
        if section.rules:
            raise SignaturesConfigError("signatures.enabled", "must be true for [[signatures.rules]] to apply")
        if section.sign_with:
            raise SignaturesConfigError("signatures.enabled", "must be true for signatures.sign_with to sign anything")
        return
    if section.sign_with:
        try:
            fingerprint(section.sign_with)
        except ValueError as exc:
            raise SignaturesConfigError("signatures.sign_with", str(exc)) from None
    for i, source in enumerate(section.sign_sources):
        try:
            _source(source)
        except ValueError as exc:
            raise SignaturesConfigError(f"signatures.sign_sources[{i}]", str(exc)) from None
    names: set[str] = set()
    for i, rule in enumerate(section.rules):
        key = f"signatures.rules[{i}]"
        if not rule.name.strip():
            raise SignaturesConfigError(f"{key}.name", "must not be empty")
        if rule.name in names:
            raise SignaturesConfigError(f"{key}.name", f"duplicate rule name {rule.name!r}")
        names.add(rule.name)
        if not (rule.ivorns or rule.authors or rule.sources):
            raise SignaturesConfigError(key, "must select packets: give ivorns, authors or sources (sources = [\"*\"] for all)")
        for what, prefixes in (("ivorns", rule.ivorns), ("authors", rule.authors)):
            for j, prefix in enumerate(prefixes):
                if not prefix.startswith("ivo://"):
                    raise SignaturesConfigError(f"{key}.{what}[{j}]", f"must start with ivo://, not {prefix!r}")
        for j, source in enumerate(rule.sources):
            try:
                _source(source)
            except ValueError as exc:
                raise SignaturesConfigError(f"{key}.sources[{j}]", str(exc)) from None
        for j, text in enumerate(rule.keys):
            try:
                fingerprint(text)
            except ValueError as exc:
                raise SignaturesConfigError(f"{key}.keys[{j}]", str(exc)) from None


@dataclass(frozen=True, slots=True)
class Checked:
    """What gpg said of a packet's signature, before any trust decision.

    ``found``: ``good`` (the signature matches the bytes, made by ``fingerprint``'s key, which
    is in the keyring), ``bad`` (it does not, or it is malformed, or the key expired or was
    revoked: ``detail`` says which), ``unknown_key`` (made by a key not in the keyring:
    ``fingerprint`` or ``key_id`` as the signature names it), ``none`` (unsigned).
    ``fingerprints`` are every fingerprint the good key is known by (primary and signing subkey)."""

    found: Found
    fingerprint: str | None = None
    fingerprints: tuple[str, ...] = ()
    key_id: str | None = None
    signer: str | None = None
    created: str | None = None
    detail: str | None = None
    #: The ingest signed this packet itself (``[signatures] sign_with``).
    signed_here: bool = False

    @classmethod
    def unsigned(cls) -> Checked:
        return cls("none")


@dataclass(frozen=True, slots=True)
class Verdict:
    """The policy's answer for one packet: what to record and, when a rule requires more, why it is refused."""

    status: Status
    facts: dict[str, Any]
    refusal: str | None = None


@dataclass(frozen=True)
class _Rule:
    name: str
    require: bool
    ivorns: tuple[str, ...]
    authors: tuple[str, ...]
    sources: tuple[SourcePattern, ...]
    keys: frozenset[str]

    def matches(self, via: str, peer: str, ivorn: str, author: str | None) -> bool:
        if self.ivorns and not any(covers(p, ivorn) for p in self.ivorns):
            return False
        if self.authors and not (author and any(covers(p, author) for p in self.authors)):
            return False
        if self.sources and not any(s.matches(via, peer) for s in self.sources):
            return False
        return True

    def trusts(self, checked: Checked) -> bool:
        return checked.found == "good" and (not self.keys or any(f in self.keys for f in checked.fingerprints))


class SignaturePolicy:
    """Decides what a packet's signature means here and whether the packet may be accepted."""

    def __init__(self, rules: Sequence[SignatureRule] = (), sign_sources: Iterable[str] = ()):
        self._rules = tuple(
            _Rule(
                r.name, r.action == "require",
                tuple(normal_prefix(p) for p in r.ivorns), tuple(normal_prefix(p) for p in r.authors),
                tuple(_source(s) for s in r.sources), frozenset(fingerprint(k) for k in r.keys),
            )
            for r in rules
        )
        self._signers = tuple(_source(s) for s in sign_sources)

    @classmethod
    def of(cls, section: SignaturesSection) -> SignaturePolicy:
        return cls(section.rules, section.sign_sources if section.sign_with else ())

    def signs(self, via: str, peer: str) -> bool:
        """Whether the ingest signs packets from this source (``sign_sources``, with a key set)."""
        return any(s.matches(via, peer) for s in self._signers)

    def decide(self, via: str, peer: str, ivorn: str, author: str | None, checked: Checked) -> Verdict:
        """The status to record and the refusal, if a matching ``require`` rule is not satisfied."""
        rules = [r for r in self._rules if r.matches(via, peer, ivorn, author)]
        untrusted_by = [r for r in rules if r.keys and not r.trusts(checked)]
        status: Status
        detail = checked.detail
        if checked.found == "none":
            status = "none"
        elif checked.found == "bad":
            status = "invalid"
        elif checked.found == "unknown_key":
            status = "untrusted"
            detail = detail or "signed with a key that is not in the keyring"
        elif untrusted_by:
            status = "untrusted"
            detail = f"key {checked.fingerprint} is not among the keys of rule {untrusted_by[0].name!r}"
        else:
            status = "valid"
        facts: dict[str, Any] = {"status": status}
        for name in ("fingerprint", "key_id", "signer", "created"):
            value = getattr(checked, name)
            if value and not (name == "key_id" and checked.fingerprint):
                facts[name] = value
        if detail and status != "valid":
            facts["detail"] = detail
        if checked.signed_here:
            facts["signed_here"] = True
        if rules:
            facts["rules"] = [r.name for r in rules]
        refusal = None
        for rule in rules:
            if rule.require and not rule.trusts(checked):
                refusal = self._refusal(rule, status, detail, checked)
                break
        return Verdict(status, facts, refusal)

    @staticmethod
    def _refusal(rule: _Rule, status: str, detail: str | None, checked: Checked) -> str:
        whose = "one of its keys (" + ", ".join(sorted(rule.keys)) + ")" if rule.keys else "a key in the keyring"
        what = {
            "none": "the packet is not signed",
            "invalid": f"the signature is invalid: {detail or 'it does not match the bytes'}",
            "untrusted": f"the signature is untrusted: {detail or 'an unknown key'}",
        }.get(status, f"the signature is {status}")
        return f"signature rule {rule.name!r} requires a valid signature by {whose}; {what}"

    def describe(self) -> list[tuple[str, str]]:
        """(rule, what it asks) lines for people (docs, audits)."""
        rows = []
        for r in self._rules:
            selects = [*(f"IVORN {p}" for p in r.ivorns), *(f"author {p}" for p in r.authors),
                       *(f"{s.via}:{s.peer}" for s in r.sources)]
            keys = ", ".join(sorted(r.keys)) or "any key in the keyring"
            rows.append((r.name, f"{'require' if r.require else 'verify'} {keys} for {' and '.join(selects)}"))
        return rows
