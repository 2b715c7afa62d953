"""TLS on VTP: the author and subscriber ports' server side, upstream connections' client side.

VTP itself has no security at all (GCN retired its VTP brokers as unsafe on today's Internet).
TLS adds three things and nothing else: the stream is private and cannot be altered; a client
(a subscriber, burstbus dialling an upstream) knows it talks to the broker it meant (CA *and*
host name checked); and the broker can know an author or subscriber by a client certificate
its operator's CA signed.

* **Server side** (:func:`server_options`): this node's certificate and key, TLS 1.2 or newer,
  Twisted's cipher choice. With ``tls_client_ca`` a client certificate is asked for and checked
  against that CA only (``optional``: an author without one is still known by its address;
  ``required``: no certificate, no connection). A certificate that does not verify ends the
  handshake in *either* mode: it is never quietly downgraded to "no certificate".
* **Identity** (:func:`identify`): an author that presented a verified certificate is the
  authority source ``vtp-cert:<subject CN>`` (see :mod:`burstbus.authority`), whatever the
  packet claims; the CN is the one name a certificate has exactly once, and the operator's CA
  decides who gets which. The CA in ``tls_client_ca`` should therefore be one that signs VTP
  clients only (never a public CA): every certificate it signs with that CN gets that grant.
* **Failures are facts**: :class:`TLSServerFactory` wraps the VTP factory in Twisted's
  ``TLSMemoryBIOFactory`` and remembers, per connection, the first bytes received before the
  handshake completed (a plain-TCP client's packet) and what the certificate check said (the
  refused certificate's subject and issuer, and why), so that the receiver can record the
  refusal (``voevent.rejected``, code ``tls``) with them.
* **Client side** (:func:`client_options`): ``optionsForClientTLS``: the upstream's certificate
  is checked against the configured CA (or the system's), and its name (``server_name``, else
  the configured host; an IP address is checked as one) with ``service_identity``.

No verify-none anywhere. The checks of files at configuration time (:func:`check_files`) use
``cryptography`` and do not import Twisted.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

#: How much of what a client sent before its handshake completed is kept for the refusal record
#: (the ingest keeps 4 KiB of any refused input).
CAPTURE_BYTES = 4096
#: The refusal code of a failed TLS handshake (``voevent.rejected``, NAK-less: no VTP yet).
TLS_CODE = "tls"
#: The authority ``via`` of an author known by its verified client certificate.
CERT_VIA = "vtp-cert"
CLIENT_CERTIFICATE_MODES = ("none", "optional", "required")

#: OpenSSL's X509_V_ERR_* codes a refused client certificate usually has (for the record).
_VERIFY_ERRORS = {
    2: "unable to get the issuer's certificate",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in the chain",
    20: "not signed by a trusted CA (unable to get the local issuer certificate)",
    21: "unable to verify the first certificate",
    23: "certificate revoked",
    24: "invalid CA certificate",
    26: "unsupported certificate purpose",
}


# -- files (configuration time, no Twisted) ---------------------------------------------------


class TLSFileError(ValueError):
    """A certificate, key or CA file that cannot be used; ``key`` names the config key."""

    def __init__(self, key: str, problem: str):
        super().__init__(problem)
        self.key = key
        self.problem = problem


def read_certificates(path: Path, key: str) -> list[x509.Certificate]:
    """Every certificate of a PEM file (a chain, or a CA bundle), or :class:`TLSFileError`."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TLSFileError(key, f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise TLSFileError(key, f"{path} holds no PEM certificate ({exc})") from None
    return certificates


def read_key(path: Path, key: str) -> Any:
    """The private key of a PEM file (unencrypted), or :class:`TLSFileError`."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TLSFileError(key, f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TLSFileError(key, f"{path} is an encrypted key; burstbus needs it unencrypted (readable by it only)") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise TLSFileError(key, f"{path} holds no usable PEM private key ({exc})") from None


def check_files(certificate: Path | None, private_key: Path | None, cert_key: str, key_key: str) -> None:
    """A certificate and its key go together: both or neither, both readable, the key the
    certificate's. Raises :class:`TLSFileError` naming the key at fault."""
    if certificate is None and private_key is None:
        return
    if certificate is None:
        raise TLSFileError(cert_key, f"{key_key} is set: set the certificate it belongs to as well")
    if private_key is None:
        raise TLSFileError(key_key, f"{cert_key} is set: set its private key as well")
    leaf = read_certificates(certificate, cert_key)[0]
    key = read_key(private_key, key_key)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(serialization.Encoding.PEM, public) != key.public_key().public_bytes(
        serialization.Encoding.PEM, public
    ):
        raise TLSFileError(key_key, f"{private_key} is not the key of the certificate in {certificate}")


def check_ca(path: Path, key: str) -> None:
    read_certificates(path, key)


# -- identity ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerCertificate:
    """A verified client certificate, as the record and the authority see it."""

    #: The subject's one common name: the ``vtp-cert:`` authority peer.
    common_name: str | None
    subject: str
    issuer: str
    serial: str
    sha256: str
    not_after: str

    def facts(self) -> dict[str, str]:
        return {"subject": self.subject, "issuer": self.issuer, "serial": self.serial, "sha256": self.sha256,
                "not_after": self.not_after}


def describe(certificate: x509.Certificate) -> PeerCertificate:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(names[0].value) if len(names) == 1 else None
    return PeerCertificate(
        common_name=common_name,
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        serial=format(certificate.serial_number, "x"),
        sha256=hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest(),
        not_after=certificate.not_valid_after_utc.isoformat(),
    )


def identify(certificate: PeerCertificate) -> str | None:
    """The authority peer (``vtp-cert:<this>``) of a verified certificate, or None when it has
    no usable name: not exactly one subject CN, or one with control characters or blanks only."""
    name = certificate.common_name
    if name is None or not name.strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return None
    return name


# -- server side ------------------------------------------------------------------------------


def _key_and_chain(certificate: Path, private_key: Path) -> tuple[Any, x509.Certificate, list[x509.Certificate]]:
    """(key, leaf, intermediates) as ``cryptography`` objects, which pyOpenSSL ≥ 25.3 takes
    (its own X509/PKey types are deprecated there)."""
    chain = read_certificates(certificate, "certificate")
    return read_key(private_key, "key"), chain[0], chain[1:]


def server_options(certificate: Path, private_key: Path, client_ca: Path | None, client_certificate: str) -> Any:
    """The TLS context of a VTP listening port (see the module doc). Its verify callback only
    *notes* why a client certificate failed (for the record); the verdict is OpenSSL's."""
    from OpenSSL import SSL, crypto
    from twisted.internet import ssl

    key, leaf, extra = _key_and_chain(certificate, private_key)
    # cryptography's types: Twisted's annotations still name pyOpenSSL's (deprecated) ones
    options: dict[str, Any] = {"privateKey": key, "certificate": leaf, "extraCertChain": extra or None,
                               "raiseMinimumTo": ssl.TLSVersion.TLSv1_2}
    verify = client_ca is not None and client_certificate != "none"
    if client_ca is not None and verify:
        # the certificate store still takes pyOpenSSL's X509 only
        authorities = [crypto.X509.from_cryptography(c) for c in read_certificates(client_ca, "client_ca")]
        options.update(verify=True, caCerts=authorities, requireCertificate=client_certificate == "required")
    tls_options = ssl.CertificateOptions(**options)
    context = tls_options.getContext()  # built once and cached: every connection uses this one
    context.check_privatekey()
    if verify:
        context.set_verify(context.get_verify_mode() or SSL.VERIFY_PEER, _note_verify_failures)
    return tls_options


def _note_verify_failures(connection: Any, certificate: Any, error: int, depth: int, ok: int) -> bool:
    """OpenSSL's verdict, unchanged; a failed certificate's subject, issuer and reason are kept
    on the connection's TLS protocol for the refusal record. Never raises (pyOpenSSL would
    re-raise it from the handshake)."""
    if not ok:
        try:
            protocol = connection.get_app_data()
            subject = certificate.to_cryptography().subject.rfc4514_string()
            issuer = certificate.to_cryptography().issuer.rfc4514_string()
            why = _VERIFY_ERRORS.get(error, f"OpenSSL verify error {error}")
            note = f"client certificate {subject!r} (issued by {issuer!r}): {why}"
            notes = getattr(protocol, "verify_notes", None)
            if isinstance(notes, list) and note not in notes:
                notes.append(note)
        except Exception:  # noqa: BLE001 - a note is not worth a broken handshake
            pass
    return bool(ok)


def failure_text(reason: Any) -> str:
    """A TLS failure as one readable sentence (OpenSSL's error stack, without its tuples)."""
    value = getattr(reason, "value", reason)
    mismatched = [getattr(getattr(e, "mismatched_id", None), "hostname", None) or getattr(
        getattr(e, "mismatched_id", None), "ip", None) for e in getattr(value, "errors", None) or ()]
    if type(value).__name__ == "VerificationError" and mismatched:  # service_identity: the name check
        wanted = ", ".join(m.decode() if isinstance(m, bytes) else str(m) for m in mismatched if m)
        return f"the peer's certificate is not for {wanted}"
    try:
        from OpenSSL import SSL

        if isinstance(value, SSL.Error) and value.args and isinstance(value.args[0], list):
            parts = [str(item[-1]) for item in value.args[0] if isinstance(item, tuple) and item]
            if parts:
                return "; ".join(dict.fromkeys(parts))
    except ImportError:  # pragma: no cover - twisted[tls] is a dependency
        pass
    return str(value) or type(value).__name__


def is_tls_error(reason: Any) -> bool:
    from OpenSSL import SSL

    return isinstance(getattr(reason, "value", reason), SSL.Error)


@functools.cache
def _server_factory_class() -> Any:
    """Twisted's ``TLSMemoryBIOFactory`` whose protocol keeps what a refusal record needs (built
    on first use, so that importing this module for the configuration checks needs no Twisted)."""
    from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol

    class RecordingTLSProtocol(TLSMemoryBIOProtocol):
        """Twisted's TLS protocol, plus the first :data:`CAPTURE_BYTES` received before the
        handshake completed, how many bytes that was, and the verify callback's notes."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.before_handshake = bytearray()
            self.received_before_handshake = 0
            self.verify_notes: list[str] = []
            self.handshake_done = False

        def dataReceived(self, data: bytes) -> None:
            if not self.handshake_done:
                self.received_before_handshake += len(data)
                room = CAPTURE_BYTES - len(self.before_handshake)
                if room > 0:
                    self.before_handshake += data[:room]
            super().dataReceived(data)

    class TLSServerFactory(TLSMemoryBIOFactory):
        protocol = RecordingTLSProtocol

    return TLSServerFactory


def server_factory(options: Any, wrapped: Any) -> Any:
    """``wrapped`` (a VTP ServerFactory) behind TLS; listen on it with ``listenTCP``."""
    return _server_factory_class()(options, False, wrapped)


def is_tls(transport: Any) -> bool:
    """Whether a wrapped protocol's transport is one of our TLS server connections."""
    return isinstance(transport, _server_factory_class().protocol)


def mark_handshake_done(transport: Any) -> None:
    """Called by a wrapped protocol's ``handshakeCompleted``: stop capturing."""
    if hasattr(transport, "handshake_done"):
        transport.handshake_done = True
        transport.before_handshake = bytearray()


def peer_certificate(transport: Any) -> PeerCertificate | None:
    """The verified client certificate of a TLS connection whose handshake completed."""
    certificate = transport.getPeerCertificate()
    if certificate is None:
        return None
    return describe(certificate.to_cryptography())


def protocol_version(transport: Any) -> str | None:
    try:
        return str(transport.getHandle().get_protocol_version_name())
    except Exception:  # noqa: BLE001 - informative only
        return None


# -- client side ------------------------------------------------------------------------------


def client_options(server_name: str, ca: Path | None, certificate: Path | None, private_key: Path | None) -> Any:
    """For connecting to an upstream: CA (``ca``, else the system's trust store) and name
    checked; our client certificate if configured."""
    from twisted.internet import ssl

    trust: Any = None
    if ca is not None:
        trust = ssl.trustRootFromCertificates(
            [ssl.Certificate.loadPEM(c.public_bytes(serialization.Encoding.PEM)) for c in read_certificates(ca, "ca")]
        )
    extra: dict[str, Any] = {"raiseMinimumTo": ssl.TLSVersion.TLSv1_2}
    if certificate is not None and private_key is not None:
        # what optionsForClientTLS(clientCertificate=…) would set, without pyOpenSSL's old types
        key, leaf, chain = _key_and_chain(certificate, private_key)
        extra.update(privateKey=key, certificate=leaf)
        if chain:
            extra["extraCertChain"] = chain
    return ssl.optionsForClientTLS(server_name, trustRoot=trust, extraCertificateOptions=extra)


def stdlib_client_context(ca: Path | None, certificate: Path | None, private_key: Path | None) -> Any:
    """The same for the CLI's asyncio clients (``burstbus publish --tls``, ``subscribe --tls``):
    the CA (else the system's), host name checked, TLS 1.2 or newer."""
    import ssl

    context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certificate is not None:
        context.load_cert_chain(str(certificate), str(private_key) if private_key is not None else None)
    return context
